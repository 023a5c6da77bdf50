"""Sending experiments as jobs and knowing where each stands; the study is reached only through
`requeue.ExperimentJob`, the callable a job runs.

    scheduler what every scheduler module gives (Usage, JobInfo, Scheduler) and the list of them
    sge       Grid Engine: submitit plugin, job script, qsub, the qstat/qacct watcher, continuations
    slurm     Slurm: submitit's executor with the checked start, the squeue/sacct watcher, [slurm]
    jobstart  every job's first step: the private job folder checked before anything is unpickled
    profile   site profiles (qsub/*.toml): project, GPU request, modules, variables passed
    lock      one dispatcher per results folder (the lock file never through a link)
    requeue   the requeueable job
    submit    the dispatcher: `python -m xrayhpc.submit`
    state     each experiment's state from its folder and the scheduler
    status    the table: `python -m xrayhpc.status`
"""
