"""Sending experiments as jobs and knowing where each stands; the study is reached only through
`requeue.ExperimentJob`, the callable a job runs.

    sge       submitit's Grid Engine plugin: job script, qsub, the qstat/qacct watcher
    profile   site profiles (qsub/*.toml): project, GPU request, modules, variables passed
    jobs      job.json records;  lock: one dispatcher per results folder
    requeue   the requeueable job
    submit    the dispatcher: `python -m xrayhpc.submit`
    state     each experiment's state from its folder and the scheduler
    status    the table: `python -m xrayhpc.status`
"""
