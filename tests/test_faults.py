"""Faults against the real single-host Grid Engine: wall-time warnings, kill -9, qdel, a master
restart, two dispatchers at once and Ctrl-C. Each ends with the result a user expects and records
that tell the truth. The README's fault table lists what these show."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT
from test_cluster import profile, submit, submit_args, wait, watch
from test_status import row, status_cli
from xrayhpc.experiment import load_grid, parse_overrides, select
from xrayhpc.schema import read_json, read_metrics, read_record
from xrayhpc.study.worker import run_experiment

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.usefixtures("sge_cluster")]
EID = "task1-vgg16-cpu"
# Task 1 with augmentation at 96 px: the frozen backbone runs every epoch, about 1 s each here.
SLOW = ["--only", EID, "--set", "image_size=96", "--set", "augment=true"]
EPOCHS = 20  # the warned job's: stopped at its first epochs, it resumes with the rest


def progress(results: Path) -> dict:
    return read_json(results / EID / "progress.json") or {}


def curves(metrics: dict) -> list[dict[str, float]]:
    return [{k: v for k, v in h.items() if k != "seconds"} for h in metrics.history]


def job_logs(log: str) -> str:
    """The tails of a job's stdout and stderr, for an assertion's message (a crash's stack is there)."""
    out = Path(log)
    return "\n".join(f"{f}:\n{f.read_text()[-4000:]}" for f in (out, out.with_suffix(".err")) if f.is_file())


def pending(pid: int, signum: int) -> bool:
    """The signal waits for the process (sent while it was stopped): /proc's pending-signal masks."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    masks = [int(line.split()[1], 16) for line in status.splitlines() if line.startswith(("SigPnd:", "ShdPnd:"))]
    return any(mask & (1 << (signum - 1)) for mask in masks)


def test_warned_job_saves_requeues_and_ends_like_an_uninterrupted_run(tmp_path: Path, synthetic: Path) -> None:
    """Whatever the machine's speed: the worker is stopped in its first epochs until the s_rt warning is
    pending, so the warning always comes mid-training; then it goes on, saves, requeues and resumes."""
    results = tmp_path / "results"
    # s_rt at 60 s (the least xrayhpc asks for), h_rt at 5 min. At the warning the job continues as
    # a new submission with an h_rt of its own (Grid Engine's exit-99 requeue would keep counting
    # from the first start); the first run waits for the warning whatever the machine's speed. On a
    # machine too slow to train an epoch in 60 s, the warning requeues an untrained run instead and
    # the continuation is the one stopped for its own warning: slower, the same ending.
    prof = profile(tmp_path, time='"00:05:00"', signal_delay_s="240")
    out = submit(results, synthetic, prof, *SLOW, "--set", f"epochs={EPOCHS}")
    assert out.returncode == 0, out.stderr
    wait(
        lambda: progress(results).get("phase") == "training" and progress(results).get("epoch", 0) >= 1,
        timeout=300,
        every=0.05,
    )
    pid = progress(results)["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        wait(lambda: pending(pid, signal.SIGUSR1), timeout=300)
    finally:
        os.kill(pid, signal.SIGCONT)
    record = read_record(results / EID)
    seen = watch([record.job_id], timeout=400, folders={record.job_id: Path(record.log).parent})
    assert seen[record.job_id][-1] == "COMPLETED", (seen, job_logs(record.log))
    metrics = read_metrics(results / EID)
    assert metrics is not None and metrics.runs >= 2 and metrics.resumed_from > 0
    log = (results / EID / "worker.log").read_text()
    assert "wall-time warning: state saved at epoch" in log and "resuming from the checkpoint" in log
    again = read_record(results / EID)
    # each run that saved was requeued once; a continuation warned before it saved (a slow or busy
    # machine) is requeued without adding a run
    assert again.attempt == 1 and again.requeues >= metrics.runs - 1
    assert "requeued 1x" in status_cli(results).stdout or again.requeues > 1

    exp = select(
        load_grid(
            ROOT / "jobs" / "smoke.toml",
            parse_overrides(
                ["epochs=1", "image_size=32", "image_size=96", "augment=true", f"epochs={EPOCHS}", f"data={synthetic}"]
            ),
        ),
        EID,
    )[0]
    assert exp.fingerprint == metrics.experiment["fingerprint"]
    whole = read_metrics(run_experiment(exp, tmp_path / "whole", tty=False))
    for a, b in zip(curves(whole), curves(metrics), strict=True):
        assert a == pytest.approx(b, abs=1e-5)
    assert metrics.test.predictions == whole.test.predictions


def test_killed_worker_resumes_from_its_last_epoch_on_the_next_submit(tmp_path: Path, synthetic: Path) -> None:
    results = tmp_path / "results"
    prof = profile(tmp_path)
    args = [*SLOW, "--set", "epochs=15", "--set", "save_every_s=0"]
    assert submit(results, synthetic, prof, *args).returncode == 0
    wait(lambda: progress(results).get("epoch", 0) >= 4, timeout=180)
    os.kill(progress(results)["pid"], signal.SIGKILL)
    wait(lambda: row(results, EID).state == "failed", timeout=90)
    killed_at = progress(results)["epoch"]
    out = submit(results, synthetic, prof, *args)
    assert out.returncode == 0 and "attempt 2 of 3" in out.stdout, out.stdout
    record = read_record(results / EID)
    watch([record.job_id], timeout=240)
    metrics = read_metrics(results / EID)
    assert metrics is not None and record.attempt == 2
    assert metrics.runs == 2 and killed_at - 1 <= metrics.resumed_from <= killed_at
    assert len(metrics.history) == 15


def test_deleted_job_is_resubmitted_once_and_counted_up_to_the_limit(tmp_path: Path, synthetic: Path) -> None:
    results = tmp_path / "results"
    prof = profile(tmp_path)
    args = [*SLOW, "--set", "epochs=400"]
    assert submit(results, synthetic, prof, *args).returncode == 0
    for attempt in (1, 2):
        wait(lambda: progress(results).get("epoch", 0) >= 1 and row(results, EID).state == "running", timeout=180)
        subprocess.run(["qdel", read_record(results / EID).job_id], check=True, capture_output=True)
        wait(lambda: row(results, EID).state == "deleted", timeout=90)
        if attempt == 1:
            first = submit(results, synthetic, prof, *args)
            second = submit(results, synthetic, prof, *args)
            assert "1 submitted" in first.stdout and "attempt 2 of 3" in first.stdout, first.stdout
            assert "0 submitted" in second.stdout and "1 queued or running" in second.stdout, second.stdout
            assert read_record(results / EID).attempt == 2
    held = submit(results, synthetic, prof, *args, "--max-attempts", "2")
    assert held.returncode == 1 and "held" in held.stdout and "--max-attempts 3 allows one more" in held.stdout
    assert read_record(results / EID).attempt == 2


def test_status_answers_while_the_master_is_down_and_jobs_finish(tmp_path: Path, synthetic: Path) -> None:
    results = tmp_path / "results"
    assert submit(results, synthetic, profile(tmp_path), *SLOW, "--set", "epochs=25").returncode == 0
    wait(lambda: progress(results).get("epoch", 0) >= 2, timeout=180)
    subprocess.run(["qconf", "-km"], check=True, capture_output=True)
    try:
        wait(lambda: subprocess.run(["qstat"], capture_output=True).returncode != 0, timeout=30)
        out = status_cli(results)
        assert out.stdout.startswith("warning: Grid Engine cannot be reached"), out.stdout
        assert EID in out.stdout and "running" in out.stdout
        time.sleep(3)
    finally:
        subprocess.run(["bash", str(ROOT / "qsub" / "testcluster" / "up.sh")], check=True, capture_output=True)
    wait(lambda: row(results, EID).state == "done", timeout=240)


def test_two_dispatchers_at_once_submit_each_experiment_once(tmp_path: Path, synthetic: Path) -> None:
    results = tmp_path / "results"
    prof = profile(tmp_path, extra_directives='["-h"]')
    args = submit_args(results, synthetic, prof)
    both = [
        subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outs = [p.communicate(timeout=120)[0] for p in both]
    try:
        assert all(p.returncode == 0 for p in both), outs
        assert sorted(o.splitlines()[-1] for o in outs) == [
            "0 submitted, 0 already done, 3 queued or running",
            "3 submitted, 0 already done, 0 queued or running",
        ]
        records = [read_record(f) for f in results.iterdir() if (f / "job.json").exists()]
        assert len(records) == 3 and all(r.attempt == 1 for r in records)
        assert (
            sum(
                line.startswith("#$ -N")
                for line in "".join(
                    Path(r.script).read_text() for r in {r.script: r for r in records}.values()
                ).splitlines()
            )
            == 2
        )
    finally:
        for record in {read_record(f).job_id.split("_")[0] for f in results.iterdir() if (f / "job.json").exists()}:
            subprocess.run(["qdel", record], capture_output=True)


def test_ctrl_c_during_a_local_run_keeps_true_records_and_the_next_run_resumes(tmp_path: Path, synthetic: Path) -> None:
    results = tmp_path / "results"
    args = submit_args(
        results, synthetic, None, *SLOW, "--set", "epochs=12", "--set", "save_every_s=0", executor="local"
    )
    run = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    wait(lambda: progress(results).get("epoch", 0) >= 3, timeout=180)
    os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
    out = run.communicate(timeout=60)[0]
    assert run.returncode == 130 and "interrupted" in out, out
    record, stopped = read_record(results / EID), progress(results)
    assert record is not None and record.executor == "local" and record.attempt == 1
    assert stopped["state"] == "failed" and stopped["error_kind"] == "interrupted"
    assert read_metrics(results / EID) is None
    assert json.loads(status_cli(results, "--json").stdout)["rows"][0]["state"] == "failed"
    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "attempt 2 of 3" in again.stdout, again.stdout
    metrics = read_metrics(results / EID)
    assert metrics is not None and metrics.runs == 2 and metrics.resumed_from >= 3
