"""xrayhpc: the COVID-19 chest X-ray transfer-learning study as a grid of batch jobs.

Data flows one way: grid -> jobs -> result folders -> status and report.

    experiment, backbones   the grid: what one experiment is, validated; which backbones exist
    schema                  the result folder: its files, checked on read (kinds, ranges, versions)
    safefiles, datadigest   files under a folder others may write (no links followed, bounded
                              reads, whole writes, private folders); a data folder by its content
    errors, signals,        shared pieces: the one-line user error, held signals,
      sitefiles, render,      the packaged qsub/ and jobs/ files, every table drawn as text,
      stats                   the intervals beside every figure (Wilson, t over seeds, paired)
    study/                  one experiment run: data, augmentation, models, training, evaluation,
                              plots, the worker; never imports submitit or the cluster side
    cluster/                sending and watching jobs: the SGE plugin, the checked job entry point,
                              profiles, job records, the dispatcher, status; reaches the study only
                              through the requeueable job
    report/                 tables and charts from the result folders; asks the cluster only for
                              live state (cluster.state)
    bench/                  the benchmarks; may use anything
    doctor                  checks both sides before sending; may use anything

The modules named for a command (worker, probe, submit, status, audit, weights, synthetic) only start it:
`python -m xrayhpc.status` runs xrayhpc/cluster/status.py. tests/test_layout.py holds these rules.
"""

__version__ = "0.1.0"
