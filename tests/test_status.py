"""Each state as it happens, against the real local Grid Engine, through `xrayhpc.cluster.status`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from test_cluster import profile, submit, wait
from xrayhpc.cluster.state import Row, collect
from xrayhpc.schema import JobRecord, read_record, write_record

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.usefixtures("sge_cluster")]


def row(results: Path, eid: str) -> Row:
    rows, warning = collect(results)
    assert warning == ""
    return next(r for r in rows if r.id == eid)


def status_cli(results: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xrayhpc.status", "--results", str(results), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


LONG_EPOCHS = 100_000


def long_job(tmp: Path, data: Path, **edits: str) -> tuple[Path, str]:
    """Task 1 for more quick epochs than any test waits for (the head trains an epoch in milliseconds), so that it
    is seen running, its progress moving, and only a limit or a qdel ends it."""
    results = tmp / "results"
    out = submit(results, data, profile(tmp, **edits), "--only", "task1-vgg16-cpu", "--set", f"epochs={LONG_EPOCHS}")
    assert out.returncode == 0, out.stderr
    return results, "task1-vgg16-cpu"


def test_queued_running_with_progress_then_deleted(tmp_path: Path, synthetic: Path) -> None:
    results, eid = long_job(tmp_path, synthetic, extra_directives='["-h"]')
    queued = row(results, eid)
    assert queued.state == "queued" and queued.reason == "on hold" and queued.job.isdigit()
    subprocess.run(["qrls", queued.job], check=True, capture_output=True)
    wait(lambda: row(results, eid).epoch > 2, timeout=180)
    first = row(results, eid)
    assert first.state == "running" and first.epochs == LONG_EPOCHS and first.host
    wait(lambda: row(results, eid).epoch > first.epoch + 5, timeout=60)
    moving = row(results, eid)
    assert moving.state == "running" and moving.remaining_s is not None and moving.elapsed_s > 0
    subprocess.run(["qdel", moving.job], check=True, capture_output=True)
    wait(lambda: row(results, eid).state == "deleted", timeout=90)
    out = status_cli(results)
    assert out.returncode == 1 and "deleted with qdel" in out.stdout


def test_done_and_failed_by_the_worker(tmp_path: Path, synthetic: Path) -> None:
    results = tmp_path / "results"
    assert submit(results, synthetic, profile(tmp_path), "--only", "task1-*").returncode == 0
    wait(lambda: {r.state for r in collect(results)[0]} <= {"done", "failed"}, timeout=240)
    done, failed = row(results, "task1-vgg16-cpu"), row(results, "task1-vgg16-gpu")
    assert done.state == "done" and done.accuracy is not None and done.epoch == done.epochs == 1
    assert failed.state == "failed" and "Refusing to run on the CPU" in failed.reason
    assert failed.log.endswith("worker.log")
    data = json.loads(status_cli(results, "--json").stdout)
    assert {r["id"]: r["state"] for r in data["rows"]} == {"task1-vgg16-cpu": "done", "task1-vgg16-gpu": "failed"}
    only_done = status_cli(results, "--state", "done")
    assert "task1-vgg16-gpu" not in only_done.stdout and only_done.returncode == 0
    # what the job used, from the accounting (which may lag the job's end by a few seconds)
    wait(lambda: row(results, "task1-vgg16-cpu").usage is not None, timeout=90)
    used = row(results, "task1-vgg16-cpu").usage
    assert used.cpu_s > 0 and used.slots == 1 and used.limit_s == 1800 and used.max_memory_mb > 50
    assert "CPU use" in status_cli(results, "--state", "done").stdout.splitlines()[0]
    [done_json] = [r for r in json.loads(status_cli(results, "--json").stdout)["rows"] if r["id"] == "task1-vgg16-cpu"]
    assert done_json["usage"]["cpu_s"] == used.cpu_s and done_json["usage"]["cpu_efficiency"] > 0
    assert "a shorter `time` queues sooner" in done_json["usage"]["hint"]  # seconds of a 30-minute h_rt
    from xrayhpc.report.build import build

    [used_section] = [s for s in build(results)[0] if s.title == "What the jobs used"]
    used_rows = {row[0]: row for row in used_section.table[1]}  # the failed GPU job used its share too
    assert set(used_rows) == {"task1-vgg16-cpu", "task1-vgg16-gpu"} and used_rows["task1-vgg16-cpu"][-1] == used.hint()


def test_killed_by_the_wall_time_limit(tmp_path: Path, synthetic: Path) -> None:
    results, eid = long_job(tmp_path, synthetic, time='"00:00:12"', signal_delay_s="0")
    wait(lambda: row(results, eid).state not in ("queued", "running"), timeout=180)
    killed = row(results, eid)
    assert killed.state == "failed" and "h_rt" in killed.reason


def test_a_record_the_scheduler_does_not_know_is_lost(tmp_path: Path) -> None:
    folder = tmp_path / "results" / "task1-vgg16-cpu"
    write_record(folder, JobRecord("sge", "999999", "f" * 12, "script.sh", "log.out", time.time() - 600))
    lost = row(tmp_path / "results", "task1-vgg16-cpu")
    assert lost.state == "lost" and "no longer knows" in lost.reason


def test_unreachable_grid_engine_shows_the_files_with_one_warning(tmp_path: Path) -> None:
    folder = tmp_path / "results" / "task1-vgg16-cpu"
    write_record(folder, JobRecord("sge", "999998", "f" * 12, "script.sh", "log.out", time.time()))
    out = status_cli(tmp_path / "results", env={"SGE_QMASTER_PORT": "1"})
    lines = out.stdout.splitlines()
    assert lines[0].startswith("warning: Grid Engine cannot be reached")
    assert sum(line.startswith("warning") for line in lines) == 1
    assert "task1-vgg16-cpu" in out.stdout and "queued" in out.stdout
    assert read_record(folder) is not None
