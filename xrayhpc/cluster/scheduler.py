"""What every scheduler module gives the rest of xrayhpc, and the list of them.

A scheduler is one module of this package holding a `Scheduler` subclass named SCHEDULER: it
renders and previews its job script, submits, refreshes every recorded job in one batch, reads its
accounting into `Usage`, cancels, says what the doctor should check, and decides how a job
continues past its wall-time limit. `state`, `submit`, `doctor` and `schema` know schedulers only
through this interface; a third one (PBS, LSF) is a module here, its name in MODULES, a template
and a profile section (README: "Adding a scheduler").
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from xrayhpc.cluster.profile import Profile
    from xrayhpc.schema import JobRecord

MODULES = ("xrayhpc.cluster.sge", "xrayhpc.cluster.slurm")
# submitit's state names for a job that has not ended; every other name is an end state.
LIVE = ("PENDING", "RUNNING", "REQUEUED", "SUSPENDED", "COMPLETING", "UNKNOWN")


@dataclass(frozen=True)
class Usage:
    """What an ended job used against what it asked for: the figures to right-size cores and time."""

    wall_s: float
    cpu_s: float
    max_memory_mb: float | None
    slots: int
    limit_s: float | None  # the wall-time limit it asked for (h_rt, --time)

    @property
    def cpu_efficiency(self) -> float:
        """CPU time over wall time times slots: 1.0 keeps every core it asked for busy."""
        return self.cpu_s / max(self.wall_s * self.slots, 1e-9)

    def hint(self) -> str:
        """A suggestion when the job asked for far more than it used, else an empty string."""
        hints = []
        busy = self.cpu_s / max(self.wall_s, 1e-9)  # cores kept busy on average
        if self.slots > 1 and self.cpu_efficiency < 0.5:
            hints.append(f"kept {busy:.1f} of {self.slots} cores busy: cores = {max(1, round(busy))} would do")
        if self.limit_s and self.wall_s < 0.25 * self.limit_s:
            hints.append(f"ran {self.wall_s / self.limit_s:.0%} of its time limit: a shorter `time` queues sooner")
        return "; ".join(hints)


@dataclass(frozen=True)
class JobInfo:
    """One job as its scheduler last saw it, in words that hold for every scheduler.

    `state` is submitit's name (PENDING, RUNNING, COMPLETED, FAILED, TIMEOUT, CANCELLED, NODE_FAIL,
    OUT_OF_MEMORY, ERROR: stuck in an error state, LOST: known to neither the queue nor the
    accounting); `reason` is the scheduler's own words; `current` is the job now running the work
    when it was continued past its wall-time limit as a new submission.
    """

    state: str
    host: str = ""
    reason: str = ""
    held: bool = False
    usage: Usage | None = None
    current: str = ""

    @property
    def live(self) -> bool:
        return self.state in LIVE or self.state == "ERROR"


@dataclass(frozen=True)
class Refresh:
    """One batched refresh: {experiment id: JobInfo} and a warning ("" when the scheduler answered)."""

    infos: dict[str, JobInfo]
    warning: str = ""
    calls: int = 0


class Scheduler:
    """The interface each scheduler module implements (see the module docstring)."""

    name: ClassVar[str]  # as the profile, --executor and job.json name it: "sge"
    title: ClassVar[str]  # as a person names it: "Grid Engine"
    submit_command: ClassVar[str]  # qsub
    cancel_command: ClassVar[str]  # qdel
    query_command: ClassVar[tuple[str, ...]]  # what the doctor runs to see that it answers
    first_task: ClassVar[int] = 1  # how its arrays number their first task (Grid Engine 1, Slurm 0)
    requeue: ClassVar[str]  # how a job goes on past its time limit, in a few words for the doctor
    continues_by_submitting: ClassVar[bool] = False  # does that need the node to submit a job?
    section: ClassVar[dict[str, type]] = {}  # the keys of its own profile table ([slurm]), if any
    executor_class: ClassVar[type]  # its submitit executor, with xrayhpc's checked job start

    def installed(self) -> bool:
        raise NotImplementedError

    def parameters(self, profile: Profile, device: str) -> dict[str, Any]:
        """The executor's parameters for jobs of `device`, from the profile."""
        raise NotImplementedError

    def executor(self, folder: Path, device: str, profile: Profile, name: str) -> Any:
        """A submitit executor asking the profile's request for `device`."""
        executor = self.executor_class(folder)
        executor.update_parameters(**self.parameters(profile, device), job_name=name)
        return executor

    def preview(self, executor: Any, count: int, script: Path) -> tuple[str, list[str]]:
        """(the exact job script a submission of `count` jobs sends, the command that sends it)."""
        raise NotImplementedError

    def watcher(self, records: dict[str, JobRecord]) -> Any:
        """A fresh watcher with every record registered: its `update()` makes the batched calls, then
        `listed` says whether the queue answered and `last_error` what failed."""
        raise NotImplementedError

    def job_info(self, info: dict[str, str]) -> JobInfo:
        """The watcher's record of one job, in the words every scheduler shares."""
        raise NotImplementedError

    def refresh(self, records: dict[str, JobRecord]) -> Refresh:
        """Every recorded job's state in one batch (live and ended; the accounting included)."""
        files_only = "states come from the result folders only"
        if not records:
            return Refresh({})
        if not self.installed():
            return Refresh({}, f"{self.title} is not installed here: {files_only}")
        watcher = self.watcher(records)
        watcher.update()
        if not watcher.listed:
            return Refresh(
                {}, f"{self.title} cannot be reached ({watcher.last_error}): {files_only}", watcher.num_calls
            )
        infos = {eid: self.job_info(watcher.get_info(r.job_id, mode="cache")) for eid, r in records.items()}
        return Refresh(infos, f"{self.title}: {watcher.last_error}" if watcher.last_error else "", watcher.num_calls)

    def cancel(self, records: list[JobRecord]) -> str:
        """Remove these recorded jobs with one call; "" or the scheduler's complaint."""
        raise NotImplementedError

    def display_id(self, job_id: str) -> str:
        """How the scheduler's own commands name a submitit id."""
        return job_id

    def project_needed(self, profile: Profile) -> str | None:
        """The one-line complaint when the site charges jobs to a project and none is set."""
        from xrayhpc.cluster.profile import missing_project

        return missing_project(profile)

    def notes(self, profile: Profile) -> list[str]:
        """What the doctor says of the profile for this scheduler (variables passed, ...)."""
        return []

    def site_files(self) -> list[Path]:
        """The packaged files its scripts come from, which a working directory's copy overrides."""
        return []

    def check_request(self, executor: Any) -> str:
        """Why no queue or partition could ever run this request ("" when one can), asked of the
        scheduler without submitting (qsub -w v, sbatch --test-only)."""
        raise NotImplementedError


def script_path_problem(path: str | Path) -> str:
    """Why a path cannot go into a job script ("" when it can): the script double-quotes it, so that its
    own `${SUBMITIT_JOB_ID}` expands, and a shell would run or expand `$`, a backtick, `"` or `\\` in it."""
    bad = sorted({c for c in str(path) if c in '$`"\\' or ord(c) < 32 or ord(c) == 127})
    if not bad:
        return ""
    shown = ", ".join(repr(c) for c in bad)
    return f'{str(path)!r}: a job script cannot hold this path ({shown} in it); choose a results folder without $ ` " \\ or control characters'


def run(command: list[str], timeout: float = 60) -> tuple[bool, str]:
    """(succeeded, stdout or the command's own complaint on one line)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=timeout)
    except (OSError, subprocess.SubprocessError) as err:
        return False, f"{command[0]}: {err}"
    if done.returncode:
        said = " ".join(line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip())
        return False, said[:400] or f"{command[0]} exited {done.returncode}"
    return True, done.stdout


@contextlib.contextmanager
def script_file(text: str) -> Iterator[Path]:
    """A job script in a private temporary file, for a scheduler to judge without running it."""
    with tempfile.TemporaryDirectory(prefix="xrayhpc-check-") as folder:
        path = Path(folder) / "job.sh"
        path.write_text(text)
        yield path


@functools.cache
def schedulers() -> dict[str, Scheduler]:
    """Every scheduler module's SCHEDULER, by name."""
    found = [importlib.import_module(m).SCHEDULER for m in MODULES]
    return {s.name: s for s in found}


def get(name: str) -> Scheduler | None:
    """The scheduler of that name; None for the local executor or a name no module has."""
    return schedulers().get(name)


def names() -> tuple[str, ...]:
    return tuple(schedulers())


def default() -> Scheduler | None:
    """The first installed scheduler, in MODULES' order."""
    return next((s for s in schedulers().values() if s.installed()), None)
