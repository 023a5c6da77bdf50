"""The same cluster tests on Grid Engine and on Slurm, both real (make cluster-up): a queued job is
queued and not sent twice, cancel, refusals, accounting, a requeue past the wall-time limit, and
submitit's own documented examples through AutoExecutor(cluster=...).

Skipped where a scheduler is not installed, unless XRAYHPC_REQUIRE_CLUSTER=1 (CI).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest
import submitit

from conftest import ROOT
from test_cluster import profile, submit_args, wait
from test_status import row
from xrayhpc.cluster import scheduler
from xrayhpc.cluster.profile import load_profile
from xrayhpc.schema import read_record

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
EID = "task1-vgg16-cpu"
HOST = socket.gethostname()
# Keep a cluster from starting anything, then let it go on: a queue disabled, a node drained.
PAUSE = {
    "sge": (["qmod", "-d", f"all.q@{HOST}"], ["qmod", "-e", f"all.q@{HOST}"]),
    "slurm": (
        ["scontrol", "update", f"nodename={HOST.split('.')[0]}", "state=drain", "reason=xrayhpc-test"],
        ["scontrol", "update", f"nodename={HOST.split('.')[0]}", "state=resume"],
    ),
}


@contextlib.contextmanager
def paused(cluster: str) -> Iterator[None]:
    stop, go = PAUSE[cluster]
    subprocess.run(stop, check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(go, check=True, capture_output=True)


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=180)


def test_a_queued_job_is_queued_not_sent_twice_cancelled_then_run_with_its_usage(
    cluster: str, tmp_path: Path, synthetic: Path
) -> None:
    results = tmp_path / "results"
    args = submit_args(results, synthetic, profile(tmp_path), "--only", EID, executor=cluster)
    with paused(cluster):
        first = run(args)
        assert first.returncode == 0 and "1 submitted" in first.stdout, first.stdout + first.stderr
        record = read_record(results / EID)
        assert record.executor == cluster and row(results, EID).state == "queued"
        refresh = scheduler.get(cluster).refresh({EID: record})
        assert refresh.infos[EID].state == "PENDING" and refresh.calls == 1  # one query for every live job
        second = run(args)
        assert "0 submitted" in second.stdout and "1 queued or running" in second.stdout, second.stdout
        cancelled = run([*args, "--cancel"])
        assert cancelled.returncode == 0 and f"job {record.shown_id} cancelled" in cancelled.stdout, cancelled.stdout
        wait(lambda: row(results, EID).state == "deleted", timeout=90)
        assert "submit --cancel" in row(results, EID).reason
        held = run(args)  # not at a terminal: held, not asked
        assert held.returncode == 1 and "cancelled with --cancel" in held.stdout, held.stdout
    again = run([*args, "--retry"])
    assert again.returncode == 0 and "1 submitted" in again.stdout, again.stdout + again.stderr
    wait(lambda: row(results, EID).state == "done", timeout=400)
    wait(lambda: row(results, EID).usage is not None, timeout=90)  # the accounting may lag the result
    used = row(results, EID).usage
    assert used.wall_s > 0 and used.slots == 1 and used.limit_s == 30 * 60


def test_a_gpu_request_no_node_can_meet_is_refused_in_one_line(cluster: str, tmp_path: Path, synthetic: Path) -> None:
    """The local clusters offer 2 fake GPUs: 5 is refused by the scheduler itself, nothing recorded;
    the doctor's check (qsub -w v, sbatch --test-only) says the same without submitting."""
    too_many = profile(tmp_path, "five", gpus="5")
    out = run(submit_args(tmp_path / "r", synthetic, too_many, "--only", "task1-vgg16-gpu", executor=cluster))
    lines = out.stderr.strip().splitlines()
    sched = scheduler.get(cluster)
    assert out.returncode == 2 and len(lines) == 1 and f"{sched.submit_command} refused the gpu jobs" in lines[0], out
    assert not list((tmp_path / "r").glob("*/job.json"))
    folder = tmp_path / "check" / "%j"
    assert sched.check_request(sched.executor(folder, "gpu", load_profile(too_many), "x"))
    assert sched.check_request(sched.executor(folder, "gpu", load_profile(profile(tmp_path)), "x")) == ""


class Counter(submitit.helpers.Checkpointable):
    """submitit's checkpointing example (docs/checkpointing.md): work that outlasts the time limit,
    its progress kept in the callable, which submitit pickles again at the warning."""

    def __init__(self) -> None:
        self.done = 0
        self.runs = 0

    def __call__(self, total: int) -> tuple[int, int]:
        self.runs += 1
        while self.done < total:
            time.sleep(1)
            self.done += 1
        return self.runs, self.done


@pytest.mark.usefixtures("sge_cluster", "slurm_cluster")
def test_submitits_checkpoint_example_outlives_the_time_limit_on_both(tmp_path: Path) -> None:
    """70 s of work under a 1-minute limit: each scheduler's requeue gives the job a whole new limit
    (Slurm's `scontrol requeue`; on Grid Engine a continuation submitted by the job), so it returns.
    Both at once: the test lasts as long as the slower one."""
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    jobs = {}
    # Grid Engine warns at s_rt exactly; Slurm looks at its jobs' limits every 30 s or so, and so
    # warns up to half a minute before the time asked for: a run may do as little as 15 s of work,
    # less on a busy machine, so the job may time out more often than submitit's default 3 allows
    for name, warning_s in (("sge", 30), ("slurm", 15)):
        executor = submitit.AutoExecutor(tmp_path / name / "%j", cluster=name, **{f"{name}_max_num_timeout": 10})
        executor.update_parameters(timeout_min=1, **{f"{name}_signal_delay_s": warning_s})
        jobs[name] = executor.submit(Counter(), 70)
    for name, job in jobs.items():
        runs, done = job.result()
        assert done == 70 and runs >= 2, (name, runs)


def add(a: int, b: int) -> int:
    return a + b


def fail() -> None:
    raise ValueError("this job fails on purpose")


def test_submitits_documented_examples_run_unchanged(cluster: str, tmp_path: Path) -> None:
    """docs/examples.md of submitit 1.5.4 through AutoExecutor(cluster=...): submit and result, an
    array with map_array, a batch, a failure with its stderr, a command, as_completed, cancel."""
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    executor = submitit.AutoExecutor(tmp_path / "%j", cluster=cluster)
    executor.update_parameters(timeout_min=5, **{f"{cluster}_array_parallelism": 4})
    assert executor.cluster == cluster
    job = executor.submit(add, 5, 7)
    jobs = executor.map_array(add, [1, 2, 3], [10, 20, 30])
    with executor.batch():
        batch = [executor.submit(add, i, i) for i in range(2)]
    failing = executor.submit(fail)
    command = executor.submit(submitit.helpers.CommandFunction(["echo", "hello"]))
    long = executor.submit(time.sleep, 600)
    assert job.result() == 12
    assert sorted(j.result() for j in submitit.helpers.as_completed(jobs)) == [11, 22, 33]
    assert [j.result() for j in batch] == [0, 2]
    with pytest.raises(submitit.core.utils.FailedJobError):
        failing.result()
    assert "this job fails on purpose" in (failing.stderr() or "")
    assert command.result().strip() == "hello"
    long.cancel()
    wait(lambda: long.done(force_check=True), timeout=120)
    assert long.state.startswith("CANCELLED") or long.state in ("LOST", "FAILED"), long.state
