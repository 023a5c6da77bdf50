"""Send a grid's experiments to the cluster: `make submit-all`, `python -m xrayhpc.submit`.

Skips every experiment whose result folder holds a complete metrics.json with the same
fingerprint, and every one whose job is still queued or running; retries a job that ended without
a result for a reason outside the user's hands (killed, lost, crashed) up to --max-attempts, but not
one whose input the worker refused; groups the rest by resource request and sends each group as one
array job; records each job in the experiment's folder. One dispatcher at a time per results folder.

    python -m xrayhpc.submit --grid jobs/report.toml [--executor sge|slurm|local] [--dry-run]
                             [--profile qsub/scc.toml] [--only PATTERN] [--force] [--max-attempts N]
    python -m xrayhpc.submit --grid jobs/report.toml --cancel [--only PATTERN]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from xrayhpc import sitefiles
from xrayhpc.cluster import jobstart, scheduler
from xrayhpc.cluster.lock import results_lock
from xrayhpc.cluster.profile import Profile, load_profile
from xrayhpc.cluster.requeue import ExperimentJob
from xrayhpc.cluster.scheduler import Scheduler, script_path_problem
from xrayhpc.cluster.state import FAILURES, Row, collect, pid_alive
from xrayhpc.errors import UserError, cli
from xrayhpc.experiment import Experiment, load_grid, parse_overrides, select
from xrayhpc.render import aligned, terminal
from xrayhpc.safefiles import is_folder, make_private, private_folder, write_text
from xrayhpc.schema import JobRecord, read_progress, read_record, results_root, write_record
from xrayhpc.signals import Held, blocked_in_children

EXECUTORS = (*scheduler.names(), "local", "dry-run")
MAX_ATTEMPTS = 3
PLACEHOLDER_PROJECT = "YOUR_PROJECT"


def default_executor() -> str:
    """The first installed scheduler (Grid Engine, then Slurm), else local."""
    found = scheduler.default()
    return found.name if found else "local"


def preview_scheduler(kind: str | None) -> Scheduler:
    """The scheduler whose scripts a dry run shows: the one asked for, else the installed one, else
    the first known (Grid Engine, as on SCC)."""
    return scheduler.get(kind or "") or scheduler.default() or next(iter(scheduler.schedulers().values()))


@dataclass
class Decision:
    exp: Experiment
    action: str  # submit | done | live | held | submitted | dry-run | failed | interrupted
    detail: str = ""

    def settle(self, action: str, detail: str) -> None:
        """What happened, keeping why it was sent (a retry says so)."""
        self.action, self.detail = action, detail + (f"; {self.detail}" if self.detail else "")


def plan(
    experiments: list[Experiment],
    root: Path,
    force: bool = False,
    max_attempts: int = MAX_ATTEMPTS,
    retry: bool = False,
) -> tuple[list[Decision], str]:
    """What to do with each experiment, from the same reconciled state that `xrayhpc.cluster.status` shows."""
    rows, warning = collect(root, {e.id: e.fingerprints for e in experiments})
    return [
        Decision(exp, *decide(row, force, max_attempts, retry))
        if is_folder(root / exp.id) or not os.path.lexists(root / exp.id)
        else Decision(exp, "held", f"{root / exp.id}: is not a folder (a link?); left alone: remove it to run this")
        for exp, row in zip(experiments, rows, strict=True)
    ], warning


def decide(row: Row, force: bool, max_attempts: int, retry: bool) -> tuple[str, str]:
    """Submit, or say why not: done, still queued or running, or a failure not worth retrying."""
    if row.state in ("queued", "running"):
        return "live", f"job {row.job} is {row.state}" + (f" ({row.reason})" if row.reason else "")
    if row.state == "error":
        return "live", f"job {row.job} is in an error state ({row.reason}): fix it, or `--cancel` it to resubmit"
    if row.state == "done":
        if force:
            return "submit", "--force"
        return "done", row.reason or "complete result with this fingerprint"
    if row.state == "unreadable":
        if force or retry:
            return "submit", f"{'--force' if force else '--retry'} over: {row.reason}"
        return "held", f"not sent: {row.reason}; fix or remove it, then pass --retry"
    if row.state not in FAILURES:
        return "submit", ""
    if row.cancelled and not retry:
        return "held", "cancelled with --cancel: not sent again unless you answer yes, or pass --retry"
    if retry:
        return "submit", f"retried (--retry) after: {row.reason}"
    if row.cause == "user":
        return "held", f"not retried, the input needs fixing: {row.reason}; then pass --retry"
    if row.attempt >= max_attempts:
        return "held", (
            f"not retried: {row.attempt} attempts ended without a result, the last: {row.reason}; "
            f"--max-attempts {row.attempt + 1} allows one more"
        )
    return "submit", f"attempt {row.attempt + 1} of {max_attempts}, after: {row.reason}"


def groups(decisions: list[Decision]) -> dict[str, list[Decision]]:
    """One array job per resource request (today: per device)."""
    out: dict[str, list[Decision]] = {}
    for d in decisions:
        if d.action == "submit":
            out.setdefault(d.exp.device, []).append(d)
    return out


def job_folder(root: Path) -> Path:
    """submitit's pickles and logs, one folder per job, in this user's private folder beside the
    result folders (`.jobs/<user>/`, 0700: a pickle runs code, so nobody else may write one there)."""
    return private_folder(root / ".jobs") / "%j"


def _attempt(folder: Path, fingerprint: str) -> int:
    old = read_record(folder)
    return old.attempt + 1 if old and old.fingerprint == fingerprint else 1


def _refusal(err: Exception) -> str:
    """The scheduler's own words on one line: the command's stderr, which submitit keeps on the
    error's cause (a CalledProcessError); the error's text where there is none."""
    cause = err.__cause__ if isinstance(err.__cause__, subprocess.CalledProcessError) else err
    text = getattr(cause, "stderr", None) or str(err)
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines[:3])[:400] or type(err).__name__


def _send(executor: Any, batch: list[Decision], sched: Scheduler, device: str, root: Path) -> None:
    """One batch as one array job, recorded; Ctrl-C waits until both are done, so records stay true.

    A refusal becomes one line with the scheduler's own words.
    """
    from submitit.core.utils import FailedJobError

    with Held([signal.SIGINT]):
        try:
            with contextlib.redirect_stderr(io.StringIO()), executor.batch():  # the error says it once
                jobs = [executor.submit(ExperimentJob(), d.exp, str(root)) for d in batch]
        except (FailedJobError, subprocess.CalledProcessError, OSError) as err:
            raise UserError(
                f"{sched.submit_command} refused the {device} jobs ({len(batch)}): {_refusal(err)}"
            ) from None
        _record(batch, jobs, sched, root)


def cluster_executor(kind: str, device: str, profile: Profile, folder: Path, name: str) -> Any:
    """A submitit executor for the scheduler `kind` asking the profile's request for `device`."""
    sched = scheduler.get(kind)
    if sched is None:
        raise UserError(f"--executor {kind}: no such scheduler; the schedulers are {', '.join(scheduler.names())}")
    return sched.executor(folder, device, profile, name)


def submit_cluster(sched: Scheduler, batch: list[Decision], device: str, profile: Profile, root: Path) -> None:
    executor = sched.executor(job_folder(root), device, profile, f"xrayhpc-{device}")
    _send(executor, batch, sched, device, root)


def _record(batch: list[Decision], jobs: list[Any], sched: Scheduler, root: Path) -> None:
    from submitit.core.utils import JobPaths

    now, private = time.time(), job_folder(root)  # checked once, not once per job of the array
    for d, job in zip(batch, jobs, strict=True):
        folder = root / d.exp.id
        # an array's one script lives with its first job's id
        script = JobPaths(private, job_id=job.job_id.split("_")[0]).submission_file
        make_private(job.paths.submitted_pickle)  # the folder keeps others out; the file says so too
        write_record(
            folder,
            JobRecord(
                executor=sched.name,
                job_id=job.job_id,
                fingerprint=d.exp.fingerprint,
                script=str(script),
                log=str(job.paths.stdout),
                submitted=now,
                attempt=_attempt(folder, d.exp.fingerprint),
                scheduler_id=sched.display_id(job.job_id),
            ),
        )
        d.settle("submitted", f"job {job.job_id}")


def run_local(batch: list[Decision], root: Path, console: Console) -> None:
    """One at a time on this machine, through submitit's local executor (training wants every core)."""
    folder = job_folder(root)
    executor = jobstart.LocalExecutor(folder)
    executor.update_parameters(timeout_min=24 * 60)
    for d in batch:
        # submitit's local controller answers a Ctrl-C by killing the worker a second later, before a
        # busy worker has written where it stopped: it starts with Ctrl-C blocked, the worker
        # unblocks it (jobstart), and the terminal's Ctrl-C reaches the worker itself
        with Held([signal.SIGINT]), blocked_in_children([signal.SIGINT]):
            job = executor.submit(ExperimentJob(), d.exp, str(root))
            make_private(job.paths.submitted_pickle)  # the folder keeps others out; the file says so too
            write_record(
                root / d.exp.id,
                JobRecord(
                    "local",
                    str(job.job_id),
                    d.exp.fingerprint,
                    str(job.paths.submission_file),
                    str(job.paths.stdout),
                    time.time(),
                    _attempt(root / d.exp.id, d.exp.fingerprint),
                ),
            )
        _wait_local(job, d, folder, root / d.exp.id, console)


def _wait_local(job: Any, d: Decision, jobs: Path, folder: Path, console: Console) -> None:
    """Until the local job ends; its outcome in the decision, the worker's own error where it left one."""
    console.print(f"running {d.exp.id} here (pid {job.job_id}); log: {folder / 'worker.log'}", markup=False)
    try:
        jobstart.result(job, jobs)
        d.settle("submitted", f"done: {folder}")
    except KeyboardInterrupt:  # the worker has it too: it notes where it stopped, its checkpoint stays
        _wait_for(job, folder, console)
        d.settle("interrupted", _worker_error(folder) or "interrupted")
        raise
    except Exception as err:  # say the worker's own error, which it left in progress.json
        reason = _worker_error(folder) or (str(err).strip().splitlines() or [type(err).__name__])[-1]
        d.settle("failed", f"{reason}  [log: {folder / 'worker.log'}]")


def _worker_error(folder: Path) -> str | None:
    """The error the worker left in progress.json, if it left one."""
    progress = read_progress(folder)
    return progress.error if progress else None


def _wait_for(job: Any, folder: Path, console: Console, bound_s: float = 600) -> None:
    """Until the interrupted worker has written where it stopped and ended (it outlives submitit's
    controller, and a backend op under way can hold the Ctrl-C for a long while on a busy node);
    a second Ctrl-C stops waiting."""
    with contextlib.suppress(Exception):
        job._process.wait(timeout=bound_s)
    end = time.monotonic() + bound_s
    if (p := read_progress(folder)) and pid_alive(p.pid):
        console.print("waiting for the worker to save where it stopped (Ctrl-C again to leave it)", markup=False)
    while (p := read_progress(folder)) and pid_alive(p.pid) and time.monotonic() < end:
        time.sleep(0.1)


def dry_run(
    batches: dict[str, list[Decision]], profile: Profile, root: Path, console: Console, sched: Scheduler
) -> None:
    """Write and print the exact job scripts and the commands that would send them; submit and
    record nothing."""
    out = root / "dry-run"
    for device, batch in batches.items():
        executor = sched.executor(job_folder(root), device, profile, f"xrayhpc-{device}")
        script = out / f"{device}.sh"
        text, command = sched.preview(executor, len(batch), script)
        write_text(script, text)
        console.rule(
            f"{device}: {len(batch)} experiment(s) as one {sched.title} {'array ' if len(batch) > 1 else ''}job"
        )
        print(text, end="" if text.endswith("\n") else "\n", flush=True)
        print("# tasks: " + ", ".join(f"{i}={d.exp.id}" for i, d in enumerate(batch, start=sched.first_task)))
        print("$ " + " ".join(command), flush=True)
        for task, d in enumerate(batch, start=sched.first_task):
            d.settle("dry-run", f"would be task {task} of {script}")


COLOURS = {"submitted": "green", "done": "blue", "live": "yellow", "dry-run": "cyan", "failed": "red",
           "held": "red", "interrupted": "red"}  # fmt: skip


def summary(decisions: list[Decision], console: Console) -> None:
    """What was done with each experiment; whole lines for logs and pipes, nothing cut to fit a width."""
    header = ["experiment", "action", "detail"]
    body = [[d.exp.id, d.action, d.detail] for d in decisions]
    if not console.is_terminal:
        print(aligned(header, body))
        return
    console.print(terminal(header, body, style=lambda column, cell: COLOURS.get(cell, "") if column == 1 else ""))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m xrayhpc.submit", description=__doc__.split("\n")[0])
    parser.add_argument("--grid", default="jobs/report.toml", help="grid file (default: jobs/report.toml)")
    parser.add_argument("--only", help="only experiments whose id matches this pattern")
    parser.add_argument("--force", action="store_true", help="resubmit experiments that are already done")
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=MAX_ATTEMPTS,
        metavar="N",
        help=f"retry a job that ended without a result (killed, lost, crashed) until N submissions (default {MAX_ATTEMPTS})",
    )
    parser.add_argument(
        "--retry",
        action="store_true",
        help="resubmit failed experiments whatever the cause or count (after fixing their input)",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=60,
        metavar="SECONDS",
        help="how long to wait for another submit-all on the same results folder (default 60)",
    )
    parser.add_argument(
        "--executor", choices=EXECUTORS, help="default: sge if installed, slurm if installed, else local"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the exact job scripts and commands for --executor's scheduler; send nothing",
    )
    parser.add_argument(
        "--cancel", action="store_true", help="remove the grid's queued and running jobs (one scheduler call)"
    )
    parser.add_argument(
        "--profile", help="site profile: a file, or a name in qsub/ (default: $XRAYHPC_PROFILE, else scc)"
    )
    parser.add_argument("--project", help="the project to charge (-P); default: the profile's or $XRAYHPC_PROJECT")
    parser.add_argument("--results", help="results root (default: $XRAYHPC_RESULTS or ./results)")
    parser.add_argument("--data", help="data root holding two/ and all/ (default: $XRAYHPC_DATA, the grid's)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting in every experiment"
    )
    return parser


@cli
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(highlight=False, soft_wrap=True)
    kind = args.executor or default_executor()
    if args.dry_run or kind == "dry-run":
        preview, kind = preview_scheduler(None if kind == "dry-run" else kind), "dry-run"
    profile = load_profile(args.profile, args.project)
    experiments = select(load_grid(Path(args.grid), parse_overrides(args.set), args.data), args.only)
    if not experiments:
        raise UserError(f"{args.grid}: no experiment matches {args.only!r}")
    root = results_root(args.results)
    if args.max_attempts < 1:
        raise UserError(f"--max-attempts {args.max_attempts}: give 1 or more")
    if kind != "local" and (problem := script_path_problem(root)):
        raise UserError(problem)
    if args.cancel:
        if kind == "dry-run":
            raise UserError("--cancel --dry-run: a dry run sends nothing, so it cancels nothing; leave one out")
        with results_lock(root, args.wait, lambda m: console.print(Text(m, style="yellow"))):
            return cancel(experiments, root, console)
    used = preview if kind == "dry-run" else scheduler.get(kind)
    templates = used.site_files() if used else []
    for note in sitefiles.overrides([profile.path, sitefiles.find("jobs", args.grid, ".toml"), *templates]):
        console.print(Text(note, style="yellow"))
    with results_lock(root, args.wait, lambda m: console.print(Text(m, style="yellow"))):
        decisions, warning = plan(experiments, root, args.force, args.max_attempts, args.retry)
        if warning:
            console.print(Text(f"warning: {warning}", style="yellow"))
        if kind != "dry-run":
            ask_about_cancelled(decisions, console)
        try:
            if kind == "dry-run":
                dry_run(groups(decisions), _shown_profile(profile, preview, console), root, console, preview)
            else:
                dispatch(kind, groups(decisions), profile, root, console)
        except KeyboardInterrupt:
            summary(decisions, console)
            console.print(
                f"interrupted: {sum(d.action == 'submitted' for d in decisions)} submitted and recorded; "
                "nothing else was sent (run it again to go on)"
            )
            return 130
    summary(decisions, console)
    sent = sum(d.action == "submitted" for d in decisions)
    console.print(
        f"{sent} submitted, {sum(d.action == 'done' for d in decisions)} already done, "
        f"{sum(d.action == 'live' for d in decisions)} queued or running"
        + (f", {held} held back" if (held := sum(d.action == "held" for d in decisions)) else "")
        + (f"; the dry run would send {shown}" if (shown := sum(d.action == "dry-run" for d in decisions)) else "")
    )
    return 1 if any(d.action in ("failed", "held") for d in decisions) else 0


def _shown_profile(profile: Profile, sched: Scheduler, console: Console) -> Profile:
    """The profile a dry run renders: a placeholder project where the site wants one and none is set."""
    if problem := sched.project_needed(profile):
        console.print(Text(f"warning: {problem}; the scripts show {PLACEHOLDER_PROJECT}", style="yellow"))
        return profile.with_project(PLACEHOLDER_PROJECT)
    return profile


def dispatch(kind: str, batches: dict[str, list[Decision]], profile: Profile, root: Path, console: Console) -> None:
    if kind == "local":
        run_local([d for b in batches.values() for d in b], root, console)
        return
    sched = scheduler.get(kind)
    if sched is None:
        raise UserError(f"--executor {kind}: no such scheduler; the schedulers are {', '.join(scheduler.names())}")
    if problem := sched.project_needed(profile):
        raise UserError(problem)
    if batches and not sched.installed():
        raise UserError(
            f"--executor {kind}: {sched.title} is not installed here (no {sched.submit_command}); submit from a "
            "login node of the cluster, or pass --dry-run to see the scripts"
        )
    for device, batch in batches.items():
        submit_cluster(sched, batch, device, profile, root)


def ask_about_cancelled(decisions: list[Decision], console: Console) -> None:
    """Experiments cancelled with --cancel go again only when the user says so (at a terminal)."""
    cancelled = [d for d in decisions if d.action == "held" and d.detail.startswith("cancelled with --cancel")]
    if not cancelled or not (sys.stdin.isatty() and console.is_terminal):
        return
    names = ", ".join(d.exp.id for d in cancelled)
    answer = console.input(
        f"{len(cancelled)} experiment(s) were cancelled with --cancel ({names}); send them again? [y/N] "
    )
    if answer.strip().lower() in ("y", "yes"):
        for d in cancelled:
            d.action, d.detail = "submit", "sent again after --cancel (answered yes)"


def cancel(experiments: list[Experiment], root: Path, console: Console) -> int:
    """Remove the grid's queued and running jobs, one scheduler call per scheduler, and record it so
    that status says `deleted` and the next submit asks before sending them again."""
    rows, warning = collect(root, {e.id: e.fingerprints for e in experiments})
    if warning:
        console.print(Text(f"warning: {warning}", style="yellow"))
    live = [(e, r) for e, r in zip(experiments, rows, strict=True) if r.state in ("queued", "running", "error")]
    by_scheduler: dict[str, list[tuple[Experiment, JobRecord]]] = {}
    for exp, _ in live:
        record = read_record(root / exp.id)
        if record is not None:
            by_scheduler.setdefault(record.executor, []).append((exp, record))
    failed = 0
    for name, jobs in by_scheduler.items():
        sched = scheduler.get(name)
        if sched is None:
            console.print(f"{len(jobs)} run(s) here, not by a scheduler: stop them with Ctrl-C where they run")
            continue
        problem = sched.cancel([r for _, r in jobs])
        if problem:  # nothing recorded: status asks the scheduler what became of each
            console.print(Text(f"{sched.cancel_command}: {problem}", style="red"))
            failed += 1
            continue
        now = time.time()
        for exp, record in jobs:
            write_record(root / exp.id, dataclasses.replace(record, cancelled=now))
            console.print(f"{exp.id}: {sched.title} job {record.shown_id} cancelled", markup=False)
    if not live:
        console.print("nothing to cancel: no job of this grid is queued or running")
    return 1 if failed else 0
