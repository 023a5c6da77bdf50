"""Where each experiment stands, reconciled in one place from three sources.

The result folder (metrics.json, progress.json), the job record (job.json) and the scheduler (one
batched refresh per scheduler for every job, through `scheduler.Scheduler`). A complete
metrics.json means done, whatever the scheduler says; a recorded job that the scheduler no longer
knows and that left no result is lost.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from xrayhpc.cluster import scheduler
from xrayhpc.cluster.scheduler import JobInfo, Usage
from xrayhpc.experiment import load_grid, parse_overrides, select
from xrayhpc.render import one_line
from xrayhpc.schema import (
    JOB,
    LOG,
    PROGRESS,
    GpuUse,
    JobRecord,
    Progress,
    check,
    experiment_folders,
    inspect_metrics,
    planted_links,
)

STATES = ("done", "running", "queued", "failed", "error", "deleted", "lost", "unreadable", "not submitted")
ENDED = ("done", "failed", "deleted", "lost", "unreadable", "not submitted")
FAILURES = ("failed", "error", "deleted", "lost")
PROBLEMS = (*FAILURES, "unreadable")  # what status exits 1 for and the dashboard shows as failed
NEWER = "written by a newer xrayhpc: upgrade to read it"


def duration(seconds: float | None) -> str:
    """H:MM:SS, as the tables show elapsed, remaining and used time; empty when unknown."""
    if seconds is None:
        return ""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


USAGE = ("wall", "CPU", "max mem MB", "CPU use", "slots", "limit", "GPU busy", "GPU mem MB")


def usage_cells(u: Usage | None, gpu: GpuUse | None = None) -> list[str]:
    """The USAGE columns of one job, for the status table and the report: the scheduler's
    accounting, then what NVML saw of its GPUs."""
    cells = ["-"] * 6
    if u is not None:
        cells = [
            duration(u.wall_s),
            duration(u.cpu_s),
            f"{u.max_memory_mb:.0f}" if u.max_memory_mb is not None else "-",
            f"{u.cpu_efficiency:.0%}",
            str(u.slots),
            duration(u.limit_s) or "-",
        ]
    if gpu is None:
        return [*cells, "-", "-"]
    return [
        *cells,
        f"{gpu.utilisation_mean:.0f}% (idle {gpu.idle_share:.0%})",
        f"{gpu.memory_peak_mb:.0f} of {gpu.memory_total_mb:.0f}",
    ]


@dataclass
class Row:
    """One experiment's line in the status table (and in --json)."""

    id: str
    state: str
    executor: str = ""
    job: str = ""
    epoch: int = 0
    epochs: int = 0
    elapsed_s: float | None = None
    remaining_s: float | None = None
    host: str = ""
    accuracy: float | None = None
    reason: str = ""
    log: str = ""
    attempt: int = 0
    requeues: int = 0
    runs: int = 0
    cause: str = ""  # for a failure: "user" (fix the input; not retried) or "" (may be retried)
    usage: Usage | None = None  # what the ended job used, from the scheduler's accounting
    cancelled: bool = False  # removed with `submit --cancel`: not sent again unasked
    gpu_use: GpuUse | None = None  # what a finished GPU run's GPUs did, from its metrics.json
    folder: str = ""  # the result folder's own name (`id` is it made printable): where its files are

    def hint(self) -> str:
        """Where the job asked for far more than it used, or its GPU waited on its data."""
        cpu = self.usage.cpu_efficiency if self.usage else None
        said = [self.usage.hint() if self.usage else "", self.gpu_use.hint(cpu) if self.gpu_use else ""]
        return "; ".join(h for h in said if h)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["folder"]
        if self.usage:
            out["usage"].update(cpu_efficiency=round(self.usage.cpu_efficiency, 3), hint=self.usage.hint())
        if self.gpu_use:
            out["gpu_use"].update(hint=self.gpu_use.hint())
        return out


# The jobs whose accounting a refresh has read, kept by a caller that refreshes again and again:
# {experiment id: (job id, JobInfo)}.
Ended = dict[str, tuple[str, JobInfo]]


def scheduler_states(records: dict[str, JobRecord], ended: Ended | None = None) -> tuple[dict[str, JobInfo], str]:
    """One batched refresh per scheduler for every recorded job: {experiment id: JobInfo}, warning.

    The jobs in `ended` are not asked about again, and each newly ended one joins it.
    """
    kept = {eid: info for eid, (job, info) in (ended or {}).items() if eid in records and records[eid].job_id == job}
    infos: dict[str, JobInfo] = dict(kept)
    warnings = []
    for name in sorted({r.executor for eid, r in records.items() if eid not in kept}):
        sched = scheduler.get(name)
        if sched is None:
            continue  # run here (local): the files say it all
        refresh = sched.refresh({eid: r for eid, r in records.items() if r.executor == name and eid not in kept})
        infos.update(refresh.infos)
        warnings += [refresh.warning] if refresh.warning else []
    if ended is not None:
        ended.update({eid: (records[eid].job_id, i) for eid, i in infos.items() if i.usage and not i.live})
    return infos, "; ".join(warnings)


def pid_alive(pid: int | str | None) -> bool:
    try:
        os.kill(int(pid), 0)  # type: ignore[arg-type]
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


# An ended job without a result, by its scheduler state: how status names it.
ENDED_AS = {"CANCELLED": "deleted", "LOST": "lost"}


def _failure_reason(info: JobInfo, progress: Progress | None) -> tuple[str, str]:
    """(state, one-line reason) for a job the scheduler says has ended without a result."""
    if progress and progress.state == "failed" and progress.error:
        return "failed", progress.error
    if info.state == "COMPLETED":
        return "failed", "the job ended without writing metrics.json"
    if info.state == "LOST":
        return "lost", "the scheduler no longer knows this job and it left no result (deleted while queued?)"
    return ENDED_AS.get(info.state, "failed"), info.reason or f"ended as {info.state}"


def reconcile(
    folder: Path,
    fingerprints: tuple[str, ...] | None,
    recorded: tuple[JobRecord | None, str],
    info: JobInfo | None,
    now: float,
) -> Row:
    """The one place where files, record and scheduler become a state.

    A file that is there but cannot be read (damaged, mistyped, out of range, a link) makes the row
    `unreadable`, naming the file and why, unless the scheduler says the job is still live: such an
    experiment is never resubmitted on its own (submit holds it until --retry or --force).
    """
    record, unreadable = recorded  # job.json as collect read it: the record, or why it is unreadable
    found = inspect_metrics(folder)
    metrics = found.record
    progress, problem = check(Progress, folder / PROGRESS)
    unreadable = problem or unreadable
    if not found.newer:
        unreadable = found.problem or unreadable
    if progress and fingerprints and progress.fingerprint not in ("", *fingerprints):
        progress = None
    if record and fingerprints and record.fingerprint not in fingerprints:
        record = None
    if record and progress and not _same_job(progress, record):
        progress = None  # left by an earlier submission: it says nothing of this one
    row = _row(folder, record, progress, info)
    if metrics and (not fingerprints or metrics.experiment["fingerprint"] in fingerprints):
        row.state = "done"
        row.accuracy = metrics.test.accuracy
        row.elapsed_s = metrics.timing.total
        row.epoch = row.epochs = metrics.epochs_run
        row.host = metrics.environment.host
        row.gpu_use = metrics.gpu_use
        return row
    if found.newer:
        row.state, row.reason = "done", NEWER
        return row
    if progress and progress.state == "running":
        row.elapsed_s = now - progress.started
        done_here = row.epoch - progress.resumed_from
        if done_here > 0:
            row.remaining_s = row.elapsed_s / done_here * (row.epochs - row.epoch)
    if record and info is not None:
        row.state, row.reason = _scheduler_state(info, progress)
    else:
        row.state, row.reason = _files_state(record, progress)
    if record and record.cancelled and row.state in ("deleted", "lost", "failed"):
        row.state, row.reason, row.cancelled = "deleted", "cancelled with `submit --cancel`", True
    if unreadable and row.state not in ("queued", "running", "error"):
        row.state, row.reason = "unreadable", unreadable
    if row.state == "running" and progress and progress.state == "running" and progress.phase not in QUIET_PHASES:
        # after training: evaluating, probing (Grad-CAM and the probes), drawing; each written as it starts
        doing = f"{progress.phase} for {max(0.0, now - progress.updated):.0f} s"
        row.reason = f"{row.reason}; {doing}" if row.reason else doing
    row.cause = _cause(row, progress)
    row.reason = one_line(row.reason)
    return row


QUIET_PHASES = ("starting", "training")  # the epoch column says where training stands


def _row(folder: Path, record: JobRecord | None, progress: Progress | None, info: JobInfo | None) -> Row:
    """What every state's row shows: the job, its tries, the epoch reached, the host and what it used."""
    row = Row(
        one_line(folder.name),
        "not submitted",
        log=str(folder / LOG) if (folder / LOG).exists() else "",
        folder=folder.name,
    )
    if record:
        row.executor, row.job, row.attempt = record.executor, record.shown_id, record.attempt
        row.job += f"->{info.current}" if info and info.current else ""
        row.requeues = record.requeues
        row.log = row.log or record.log
    if progress:
        row.runs, row.epochs, row.epoch, row.host = progress.run, progress.epochs, progress.epoch, progress.host
    if info:
        row.host = row.host or info.host
        row.usage = info.usage
    return row


def _scheduler_state(info: JobInfo, progress: Progress | None) -> tuple[str, str]:
    """(state, reason) of a job the scheduler answered for, without a complete result."""
    if info.state == "ERROR":
        return "error", info.reason
    if info.state in ("PENDING", "REQUEUED"):
        return "queued", "on hold" if info.held else info.reason
    if info.live:
        return "running", info.reason
    return _failure_reason(info, progress)


def _files_state(record: JobRecord | None, progress: Progress | None) -> tuple[str, str]:
    """(state, reason) from the files alone: a local run, or the scheduler not reached."""
    scheduled = record is not None and scheduler.get(record.executor) is not None
    if progress and progress.state == "failed":
        return "failed", progress.error or ""
    if progress and progress.state == "running":
        same_host = progress.host == socket.gethostname()
        if same_host and not pid_alive(progress.pid):
            return "lost", "the worker process is gone (killed or interrupted) and left no result"
        return "running", "from progress.json (scheduler not reached)" if scheduled else ""
    if record:
        if scheduled:
            return "queued", "recorded as submitted (scheduler not reached)"
        return "lost", ""
    return "not submitted", ""


def _same_job(progress: Progress, record: JobRecord) -> bool:
    """Did this submission's worker write `progress`? (Every job script and submitit's local runs
    name the job to the worker; an older record without a name is taken as this job's.)"""
    return progress.job in ("", record.job_id)


def _cause(row: Row, progress: Progress | None) -> str:
    """ "user" when the worker refused its input: retrying would fail the same way."""
    failed = row.state in FAILURES and progress is not None and progress.state == "failed"
    return "user" if failed and progress.error_kind == "user" else ""


def grid_fingerprints(grid: str, sets: list[str], data: str | None, only: str | None) -> dict[str, tuple[str, ...]]:
    """{id: the fingerprints a finished run may carry} for a grid's experiments, as `collect` takes
    them: `sets` and `data` as given to submit, `only` a pattern of ids."""
    return {e.id: e.fingerprints for e in select(load_grid(Path(grid), parse_overrides(sets), data), only)}


def collect(
    root: Path,
    expected: dict[str, tuple[str, ...]] | None = None,
    ended: Ended | None = None,
) -> tuple[list[Row], str]:
    """Rows for the experiments of a grid ({id: the fingerprints a finished run may carry}, see
    Experiment.fingerprints) or for every result folder; `ended` as in `scheduler_states`."""
    folders = [root / eid for eid in expected] if expected is not None else experiment_folders(root)
    fingerprints = expected or {}
    recorded = {f.name: check(JobRecord, f / JOB) for f in folders}
    infos, warning = scheduler_states({name: r for name, (r, _) in recorded.items() if r}, ended)
    now = time.time()
    rows = [reconcile(f, fingerprints.get(f.name), recorded[f.name], infos.get(f.name), now) for f in folders]
    if expected is None:
        warning = "; ".join([warning, *planted_links(root)] if warning else planted_links(root))
    return rows, warning
