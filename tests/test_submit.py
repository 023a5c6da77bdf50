"""The dispatcher without a cluster: dry-run and local runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT
from xrayhpc.cluster.lock import results_lock
from xrayhpc.cluster.state import Row
from xrayhpc.cluster.submit import decide
from xrayhpc.schema import read_json, read_metrics, read_record, write_json
from xrayhpc.signals import Held


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xrayhpc.submit", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def test_dry_run_prints_the_scc_scripts_and_records_nothing(tmp_path: Path) -> None:
    out = run(
        "--grid",
        "jobs/report.toml",
        "--executor",
        "dry-run",
        "--results",
        str(tmp_path),
        env={"XRAYHPC_PROJECT": "ms542", "KERAS_BACKEND": ""},
    )
    assert out.returncode == 0, out.stderr
    gpu, cpu = (tmp_path / "dry-run" / "gpu.sh").read_text(), (tmp_path / "dry-run" / "cpu.sh").read_text()
    assert gpu in out.stdout and cpu in out.stdout  # what is printed is what qsub would get
    for script in (gpu, cpu):
        assert script.startswith("#!/bin/bash -l\n")
        assert "#$ -P ms542" in script and "#$ -l h_rt=12:00:00" in script and "#$ -pe omp 4" in script
        assert "module load python3/3.12.4" in script
        assert "#$ -v KERAS_HOME,XRAYHPC_CACHE\n" in script  # set in this test's environment; KERAS_BACKEND not
        assert "# not passed, unset where qsub ran: KERAS_BACKEND\n" in script
    assert "#$ -l gpus=1" in gpu and "#$ -l gpu_c=6.0" in gpu and "#$ -t 1-9" in gpu
    assert "gpus" not in cpu and "#$ -t 1-4" in cpu
    assert f"$ qsub -terse -w e {tmp_path / 'dry-run' / 'gpu.sh'}" in out.stdout
    assert (
        "tasks: 1=task1-vgg16-gpu, 2=task2-vgg16-gpu, 3=task2-mobilenet-gpu, 4=task1-vgg16-gpu-random, "
        "5=task2-vgg16-gpu-random, 6=task2-mobilenet-gpu-random"
    ) in out.stdout
    assert (
        "tasks: 1=task1-vgg16-cpu, 2=task1-vgg16-cpu-random, 3=task1-metadata-cpu, 4=task2-metadata-cpu" in out.stdout
    )
    assert not list(tmp_path.glob("*/job.json")) and "0 submitted" in out.stdout


def test_dry_run_without_a_project_says_so(tmp_path: Path) -> None:
    out = run(
        "--grid", "jobs/report.toml", "--executor", "dry-run", "--results", str(tmp_path), env={"XRAYHPC_PROJECT": ""}
    )
    assert out.returncode == 0
    assert "`project` is empty" in out.stdout and "#$ -P YOUR_PROJECT" in out.stdout


def test_real_submission_without_a_project_is_refused(tmp_path: Path) -> None:
    out = run(
        "--grid", "jobs/report.toml", "--executor", "sge", "--results", str(tmp_path), env={"XRAYHPC_PROJECT": ""}
    )
    assert out.returncode == 2 and "pass --project NAME" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--profile", "nowhere"],
            "nowhere: no such profile; give a file, or one of the profiles in qsub/ (local, scc)",
        ),
        (["--grid", "jobs/report.toml", "--only", "task9*"], "no experiment matches"),
    ],
)
def test_bad_options_are_one_line(args: list[str], expected: str, tmp_path: Path) -> None:
    out = run(*args, "--executor", "dry-run", "--results", str(tmp_path))
    assert out.returncode == 2 and expected in out.stderr and len(out.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_local_executor_runs_here_and_records_it(tmp_path: Path, synthetic: Path) -> None:
    args = [
        "--grid",
        "jobs/smoke.toml",
        "--executor",
        "local",
        "--results",
        str(tmp_path),
        "--data",
        str(synthetic),
        "--only",
        "task1-vgg16-*",
        "--set",
        "epochs=1",
        "--set",
        "image_size=32",
    ]
    out = run(*args)
    assert out.returncode == 1, out.stdout + out.stderr  # the GPU experiment fails here, and says why
    assert read_metrics(tmp_path / "task1-vgg16-cpu") is not None
    assert read_record(tmp_path / "task1-vgg16-cpu").executor == "local"
    assert "failed" in out.stdout and "Refusing to run on the CPU" in out.stdout
    again = run(*args)
    assert "0 submitted, 1 already done" in again.stdout


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            Row("a", "failed", attempt=1, reason="killed by h_rt: the wall-time limit was reached"),
            ("submit", "attempt 2 of 3"),
        ),
        (Row("a", "lost", attempt=2, reason="the scheduler no longer knows this job"), ("submit", "attempt 3 of 3")),
        (
            Row("a", "deleted", attempt=3, reason="deleted with qdel while running"),
            ("held", "--max-attempts 4 allows one more"),
        ),
        (
            Row("a", "failed", attempt=1, reason="no images in data/two/train", cause="user"),
            ("held", "the input needs fixing"),
        ),
        (Row("a", "running", job="12"), ("live", "job 12 is running")),
        (Row("a", "done"), ("done", "complete result")),
        (Row("a", "not submitted"), ("submit", "")),
    ],
)
def test_retry_policy(row: Row, expected: tuple[str, str]) -> None:
    action, detail = decide(row, force=False, max_attempts=3, retry=False)
    assert action == expected[0] and expected[1] in detail


def test_retry_flag_sends_a_refused_input_again() -> None:
    assert decide(Row("a", "failed", attempt=5, cause="user"), force=False, max_attempts=3, retry=True)[0] == "submit"


def test_a_second_dispatcher_waits_then_gives_up_in_one_line(tmp_path: Path) -> None:
    with results_lock(tmp_path, 0, print):
        out = run("--grid", "jobs/smoke.toml", "--executor", "dry-run", "--results", str(tmp_path), "--wait", "0.5")
    assert out.returncode == 2 and "another submit-all" in out.stderr and "--wait SECONDS" in out.stderr
    assert f"pid {os.getpid()}" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "dry-run").exists()
    assert run("--grid", "jobs/smoke.toml", "--executor", "dry-run", "--results", str(tmp_path)).returncode == 0


def test_held_ctrl_c_is_delivered_after_the_block() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt), Held([signal.SIGINT]):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        done.append("recorded")
    assert done == ["recorded"]


def test_readers_never_see_half_a_file(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    write_json(path, {"epoch": 0, "pad": "x" * 100_000})
    stop = threading.Event()

    def writer() -> None:
        k = 0
        while not stop.is_set():
            k += 1
            write_json(path, {"epoch": k, "pad": "x" * 100_000})

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        reads = [read_json(path) for _ in range(300)]
    finally:
        stop.set()
        thread.join()
    assert all(r is not None and len(r["pad"]) == 100_000 for r in reads)


def test_a_refusal_is_read_from_the_commands_stderr() -> None:
    """submitit raises FailedJobError with qsub's stderr on its cause: that text, on one line, not a scrape."""
    from submitit.core.utils import FailedJobError

    from xrayhpc.cluster.submit import _refusal

    stderr = "Unable to run job: error: no suitable queues.\nExiting."
    try:
        try:
            raise subprocess.CalledProcessError(1, ["qsub"], output="", stderr=stderr)
        except subprocess.CalledProcessError as cause:
            raise FailedJobError("Job submission failed") from cause
    except FailedJobError as err:
        assert _refusal(err) == "Unable to run job: error: no suitable queues. Exiting."
    assert _refusal(OSError("qsub: not found")) == "qsub: not found"
