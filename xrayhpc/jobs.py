"""Job records: what was submitted for an experiment, kept in its result folder as job.json.

A record is written only after the scheduler accepted the job, so it is always true; `attempt`
counts submissions (retries included) and `requeues` the times the job put itself back in the
queue at its wall-time warning. Read by the dispatcher (skip what is queued or running, retry what
failed) and by the status table.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from xrayhpc.results import JOB, read_json, write_json


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
