"""The callable a scheduler job runs: one experiment, requeued at the wall-time warning.

Kept apart from the job records so that reading them (status, report) does not load the worker.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import submitit

from xrayhpc.experiment import Experiment
from xrayhpc.schema import read_record, write_record
from xrayhpc.study.worker import run_experiment


class ExperimentJob(submitit.helpers.Checkpointable):
    """What a scheduler job runs: one experiment. At the wall-time warning the worker saves at the
    end of its epoch, then submitit calls `checkpoint` and requeues the same call, which resumes."""

    def __call__(self, exp: Experiment, results: str) -> Path:
        return run_experiment(exp, results)

    def checkpoint(self, exp: Experiment, results: str) -> submitit.helpers.DelayedSubmission:
        folder = Path(results) / exp.id
        record = read_record(folder)
        if record and record.fingerprint == exp.fingerprint:
            write_record(folder, dataclasses.replace(record, requeues=record.requeues + 1))
        return submitit.helpers.DelayedSubmission(self, exp, results)
