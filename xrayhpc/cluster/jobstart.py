"""A job's first step: make sure its pickle is the submitter's own, then hand it to submitit.

submitit starts a job by unpickling `<folder>/<job id>_submitted.pkl`, and a pickle runs whatever
code its writer chose. So the job folder is the user's own (`results/.jobs/<user>/`, 0700, see
`safefiles.private_folder`), and every job script runs this module instead of submitit's
`_submit`: it opens that folder once, checks its owner and mode through the open descriptor, then
lets submitit read everything through that same descriptor (`/proc/self/fd/N`), so a folder
swapped in after the check is never read. A pickle that another user could have written is refused
in one line, before anything is unpickled. The submitter reads a job's result pickle the same way
(`result`).

    python -u -m xrayhpc.cluster.jobstart FOLDER      (the command of every job script)
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shlex
import signal
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import submitit
from submitit.core import job_environment, submission, utils

from xrayhpc import safefiles
from xrayhpc.errors import UserError

PICKLE_WAIT_S = 60  # submitit moves the pickle into place just after qsub answers: the job may start first


def command(python: str, folder: str | Path) -> str:
    """The command line a job script runs for jobs of this executor folder."""
    return " ".join([python, "-u -m xrayhpc.cluster.jobstart", shlex.quote(str(folder))])


def private_root(folder: str | Path) -> Path:
    """The executor folder's part without submitit's %j: the user's private folder."""
    return utils.JobPaths.get_first_id_independent_folder(folder)


@contextlib.contextmanager
def opened(private: Path) -> Iterator[Path]:
    """The private folder, checked by owner and mode, as a path through its open descriptor."""
    with safefiles.folder(private) as fd:
        problem = safefiles.private_problem(os.fstat(fd), private)
        if problem:
            raise UserError(problem)
        # Linux: every path below goes through the checked descriptor. Elsewhere (no /proc: macOS, a
        # local run) the checked folder by its path, which a swap after the check could redirect.
        yield Path(f"/proc/self/fd/{fd}") if Path("/proc/self/fd").is_dir() else private


def _check_file(path: Path, shown: Path) -> None:
    """A file in the private folder is a regular file of the user's own (one planted there before
    the folder was made private is refused); its mode matters less, since nobody else can reach it."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{shown}: is not a regular file; it is not loaded")
    if info.st_uid != os.getuid():
        raise UserError(f"{safefiles.private_problem(info, shown)}; it is not loaded")


def start(folder: str | Path) -> None:
    """Run the job whose pickle lies under `folder`, once it is known to be the submitter's."""
    private = private_root(folder)
    with opened(private) as through:
        inner = through / Path(folder).absolute().relative_to(private)
        os.environ["SUBMITIT_FOLDER"] = str(inner)
        pickled = job_environment.JobEnvironment().paths.submitted_pickle
        end = time.monotonic() + PICKLE_WAIT_S
        while not pickled.exists() and time.monotonic() < end:
            time.sleep(0.5)
        _check_file(pickled, private / pickled.relative_to(through))
        submission.process_job(inner)


def result(job: submitit.Job[Any], folder: str | Path) -> Any:
    """A finished job's result, read through the checked private folder: its value, or the job's
    error raised as submitit raises it (`FailedJobError` with the job's traceback)."""
    job.wait()
    private = private_root(folder)
    with opened(private) as through:
        path = through / job.paths.result_pickle.relative_to(private)
        _check_file(path, job.paths.result_pickle)
        with open(path, "rb") as f:
            outcome, value = pickle.load(f)
    if outcome != "success":
        raise utils.FailedJobError(f"Job (task={job.task_id}) failed during processing with trace:\n{value}")
    return value


class CheckedStart:
    """What makes a submitit executor's jobs start here: its folder of pickles the user's own (made
    0700 with the executor), and this module as the command its job scripts run. Put it first
    among an executor's bases."""

    folder: Path
    python: str

    def __init__(self, folder: str | Path, *args: Any, **kwargs: Any) -> None:
        super().__init__(folder, *args, **kwargs)  # type: ignore[call-arg]
        safefiles.own_folder(private_root(folder))

    @property
    def _submitit_command_str(self) -> str:
        return command(self.python, self.folder)


class LocalExecutor(CheckedStart, submitit.LocalExecutor):
    """submitit's local executor, whose jobs start here."""


def main(argv: list[str] | None = None) -> int:
    # a local run's controller passes Ctrl-C on blocked (cluster.submit.run_local): the job takes it
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m xrayhpc.cluster.jobstart FOLDER", file=sys.stderr)
        return 2
    try:
        start(args[0])
    except (UserError, safefiles.UnsafeFile) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
