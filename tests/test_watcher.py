"""The watcher's qstat/qacct flow and the reconciliation of states, fed captured Grid Engine 8.1.9
output through a faked subprocess (as submitit's own tests do): fast, and no cluster needed."""

from __future__ import annotations

import dataclasses
import subprocess
import time
from pathlib import Path

import pytest

from xrayhpc.bench.report_build import synthetic_result
from xrayhpc.cluster import sge
from xrayhpc.cluster.sge import SgeExecutor, SgeInfoWatcher
from xrayhpc.cluster.state import collect
from xrayhpc.experiment import Experiment
from xrayhpc.schema import JobRecord, Progress, write_record

DATA = Path(__file__).parent / "data"


class CapturedScheduler:
    """Answers qstat -xml, qstat -j and qacct with captured output, and notes every call."""

    def __init__(self, qacct: str) -> None:
        self.qacct = qacct
        self.calls: list[list[str]] = []

    def __call__(self, command: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        self.calls.append(list(command))
        answers = {
            ("qstat", "-xml"): (DATA / "qstat.xml").read_bytes(),
            ("qstat", "-j"): (DATA / "qstat-j-error.txt").read_bytes(),
            ("qacct", "-o"): self.qacct.encode(),
        }
        return subprocess.CompletedProcess(command, 0, stdout=answers[tuple(command[:2])], stderr=b"")


@pytest.fixture
def scheduler(monkeypatch: pytest.MonkeyPatch) -> CapturedScheduler:
    """The captured accounting, plus job 11: a copy of job 8's record (deleted while running)."""
    text = (DATA / "qacct.txt").read_text()
    deleted = (
        text[text.index("jobnumber    8") :]
        .replace("jobnumber    8 ", "jobnumber    11")
        .replace("taskid       1 ", "taskid       undefined")
    )
    fake = CapturedScheduler(
        text + "==============================================================\nqname        all.q\n" + deleted
    )
    monkeypatch.setattr(sge.subprocess, "run", fake)
    monkeypatch.setattr(SgeExecutor, "affinity", classmethod(lambda cls: 2))
    return fake


def test_one_qstat_one_qstat_j_and_one_qacct_answer_every_job(scheduler: CapturedScheduler) -> None:
    watcher = SgeInfoWatcher()
    old = time.time() - 3600
    for job in ("8_0", "8_1", "9_2", "10", "6_1", "7", "11"):
        watcher.register_job(job)
    watcher.register_job("42", since=old)  # in neither: lost, after the accounting's grace period
    watcher.register_job("43")  # in neither, just submitted: accounting may lag, so not lost yet
    watcher.update()
    assert [c[:2] for c in scheduler.calls] == [["qstat", "-xml"], ["qstat", "-j"], ["qacct", "-o"]]
    assert scheduler.calls[1][2] == "10"  # only the job in an error state is asked about
    state = {j: watcher.get_state(j, mode="cache") for j in ("8_0", "8_1", "9_2", "10", "6_1", "7", "11", "42", "43")}
    assert state == {
        "8_0": "RUNNING",
        "8_1": "PENDING",
        "9_2": "PENDING",
        "10": "ERROR",
        "6_1": "COMPLETED",
        "7": "FAILED",
        "11": "CANCELLED",
        "42": "LOST",
        "43": "COMPLETING",
    }
    assert watcher.get_info("10", mode="cache")["Reason"].startswith("error: can't open output file")
    watcher.update()  # ended jobs (the error included) are not asked about again; 43 still waits for its record
    assert [c[:2] for c in scheduler.calls[3:]] == [["qstat", "-xml"], ["qacct", "-o"]]


def test_reconcile_turns_files_records_and_scheduler_into_states(tmp_path: Path, scheduler: CapturedScheduler) -> None:
    root = tmp_path / "results"
    now = time.time()
    jobs = {"running": "8_0", "held": "9_0", "error": "10", "done": "6_1", "failed": "7", "deleted": "11", "lost": "42"}
    for tag, job in jobs.items():
        exp = Experiment("binary", "vgg16", "cpu", tag=tag)
        write_record(root / exp.id, JobRecord("sge", job, exp.fingerprint, "job.sh", "log", now - 7200))
    Progress("running", 4, 10, now - 40, "node7", 1234, job="8_0").write(root / "task1-vgg16-cpu-running")
    failed = Progress("failed", 0, 10, now - 60, "node7", 1235, job="7", error="data folder /x/two not found")
    dataclasses.replace(failed, error_kind="user").write(root / "task1-vgg16-cpu-failed")
    synthetic_result(root, Experiment("binary", "vgg16", "cpu", tag="done"), 43.0, 17, 18)
    rows, warning = collect(root)
    assert warning == "" and len(scheduler.calls) == 3  # one refresh for every row
    got = {r.id.removeprefix("task1-vgg16-cpu-"): r for r in rows}
    assert {k: r.state for k, r in got.items()} == {
        "running": "running",
        "held": "queued",
        "error": "error",
        "done": "done",
        "failed": "failed",
        "deleted": "deleted",
        "lost": "lost",
    }
    assert got["running"].remaining_s == pytest.approx(60, abs=5) and got["held"].reason == "on hold"
    assert got["error"].reason.startswith("SGE error state Eqw: error: can't open output file")
    assert got["done"].accuracy == pytest.approx(17 / 18) and got["done"].usage.wall_s == 43.0
    assert got["failed"].reason == "data folder /x/two not found" and got["failed"].cause == "user"
    assert got["deleted"].reason == "deleted with qdel while running" and got["deleted"].cause == ""
    assert got["lost"].reason.startswith("the scheduler no longer knows this job")
