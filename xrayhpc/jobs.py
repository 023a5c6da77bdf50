"""Job records, kept in the result folder as job.json, and the callable that a job runs.

A record is written only after the scheduler accepted the job, so it is always true; `attempt`
counts submissions (retries included) and `requeues` the times the job put itself back in the
queue at its wall-time warning. Read by the dispatcher (skip what is queued or running, retry what
failed) and by the status table.
"""

from __future__ import annotations

import os
import time
import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import submitit

from xrayhpc.experiment import Experiment
from xrayhpc.results import JOB, read_json, write_json
from xrayhpc.worker import run_experiment


@dataclass(frozen=True)
class JobRecord:
    executor: str
    job_id: str  # submitit's id: "123", "123_0" (array task 0 = SGE task 1), or a pid for local
    fingerprint: str
    script: str
    log: str
    submitted: float
    attempt: int = 1
    requeues: int = 0

    @property
    def task_index(self) -> int | None:
        _, sep, index = self.job_id.partition("_")
        return int(index) if sep else None

    @property
    def scheduler_id(self) -> str:
        """How the scheduler names it: `123.1` for the first task of array 123."""
        job, sep, index = self.job_id.partition("_")
        return f"{job}.{int(index) + 1}" if sep and self.executor == "sge" else self.job_id


def read_record(folder: Path) -> JobRecord | None:
    data = read_json(Path(folder) / JOB)
    if not isinstance(data, dict):
        return None
    fields = {f.name for f in dataclasses.fields(JobRecord) if f.default is dataclasses.MISSING}
    if not fields <= data.keys():
        return None
    try:
        return JobRecord(**{k: data[k] for k in JobRecord.__dataclass_fields__ if k in data})
    except TypeError:
        return None


def write_record(folder: Path, record: JobRecord) -> None:
    data: dict[str, Any] = asdict(record)
    data["task_index"] = record.task_index
    data["scheduler_id"] = record.scheduler_id
    data["submitted_by"] = os.environ.get("USER", "")
    data["submitted_at"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.submitted))
    write_json(Path(folder) / JOB, data)


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
