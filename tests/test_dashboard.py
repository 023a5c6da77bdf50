"""The live dashboard (`python -m xrayhpc.report --watch`) followed in headless Chromium while a real
local job trains, the TensorBoard event files read back with TensorBoard's own reader, and what one
refresh asks of the schedulers."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, browser
from xrayhpc.bench.report_build import synthetic_result
from xrayhpc.cluster import scheduler, state
from xrayhpc.cluster.scheduler import JobInfo, Refresh, Usage
from xrayhpc.experiment import Experiment
from xrayhpc.report.live import counts, curves_svg
from xrayhpc.report.watch import Dashboard
from xrayhpc.schema import JobRecord, parses_kept, read_metrics, read_progress, write_json
from xrayhpc.study.events import EpochEvents

EID = "task1-vgg16-cpu"
EPOCHS = 8
SETTINGS = ["--grid", "jobs/demo.toml", "--only", EID, "--set", f"epochs={EPOCHS}", "--set", "augment=true"]
# Added by the test, beside the page: the dashboard in a frame; once loaded, the title says its
# images, the broken ones and the epoch it shows.
HARNESS = (
    """<!doctype html><html><head><title>loading</title></head><body>
<iframe id="f" src="report.html" width="1400" height="1600"></iframe>
<script>document.getElementById("f").addEventListener("load", (e) => {
  const d = e.target.contentDocument, i = [...d.images];
  const bad = i.filter((x) => !x.complete || x.naturalWidth === 0).length;
  const epoch = (d.body.innerText.match(/(\\d+) of EPOCHS/) || [, "none"])[1];
  const svg = d.querySelectorAll("svg polyline").length;
  document.title = `${i.length} images, ${bad} broken, epoch ${epoch}, ${svg} curves`;
});</script></body></html>"""
).replace("EPOCHS", str(EPOCHS))


def wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def shown_epoch(page: Path) -> int:
    """The epoch the live page shows for the running experiment (0 when none)."""
    found = re.search(rf"<td>(\d+) of {EPOCHS}</td>", page.read_text()) if page.exists() else None
    return int(found.group(1)) if found else 0


def load(flags: list[str], harness: Path) -> str:
    out = subprocess.run([*flags, "--dump-dom", harness.as_uri()], capture_output=True, text=True, timeout=120)
    title = re.search(r"<title>(.*?)</title>", out.stdout)
    assert title, out.stdout[:300] + out.stderr[-500:]
    return title.group(1)


@pytest.mark.slow
def test_the_page_follows_a_training_job_to_its_end_in_a_browser(synthetic: Path, tmp_path: Path) -> None:
    root = tmp_path / "results"
    done = Experiment("binary", "mobilenet", "cpu", data="/data", epochs=3)  # finished before: its images link
    synthetic_result(root, done, 30.0, 5, 6)
    Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(root / done.id / "curves.png")
    where = ["--data", str(synthetic), "--results", str(root)]
    worker = subprocess.Popen(
        [sys.executable, "-m", "xrayhpc.worker", *SETTINGS, *where], cwd=ROOT, stdout=subprocess.DEVNULL
    )
    watcher = subprocess.Popen(
        [sys.executable, "-m", "xrayhpc.report", "--watch", "1", *SETTINGS, *where],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        page, harness = root / "report.html", root / "harness.html"
        harness.write_text(HARNESS)
        flags = [*browser(tmp_path / "profile"), "--allow-file-access-from-files", "--window-size=1400,1700"]
        wait(lambda: shown_epoch(page) >= 1, 600, "the page to show a first epoch")
        first = load(flags, harness)
        seen = int(re.search(r"epoch (\d+)", first).group(1))
        assert re.fullmatch(r"2 images, 0 broken, epoch \d+, [1-9]\d* curves", first), first
        wait(lambda: shown_epoch(page) > seen or worker.poll() is not None, 600, "a later epoch")
        assert worker.poll() is None or shown_epoch(page) > seen, "the job ended before the page moved on"
        later = load(flags, harness)
        assert int(re.search(r"epoch (\d+)", later).group(1)) > seen and "0 broken" in later, later
        assert worker.wait(timeout=600) == 0
        said = watcher.communicate(timeout=300)[0]
    finally:
        worker.kill()
        watcher.kill()
    assert watcher.returncode == 0 and "every experiment has ended" in said, said
    final = page.read_text()  # the self-contained report in the live page's place
    assert "http-equiv='refresh'" not in final and "data:image/png;base64," in final
    metrics, progress = read_metrics(root / EID), read_progress(root / EID)
    assert progress.history == metrics.history and len(metrics.history) == EPOCHS

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(root / EID))
    events.Reload()
    loss = events.Scalars("loss/train")
    assert [e.step for e in loss] == list(range(1, EPOCHS + 1))
    assert np.allclose([e.value for e in loss], [h["loss"] for h in metrics.history], rtol=1e-6)
    assert {"loss/validation", "accuracy/train", "accuracy/validation"} <= set(events.Tags()["scalars"])


def test_curves_leave_gaps_for_values_that_are_not_numbers() -> None:
    history = [{"loss": 0.9, "val_loss": float("nan")}, {"loss": "0.5"}, {"loss": 0.4, "accuracy": 0.7}]
    svg = curves_svg(history, 10)
    assert svg.count("<polyline") == 2 and "nan" not in svg  # training loss, training accuracy
    assert curves_svg([], 10) == "" and curves_svg([{"loss": float("inf")}], 10) == ""


class Counting:
    """A scheduler that answers for every job asked about and counts the calls."""

    name = "counting"

    def __init__(self) -> None:
        self.asked: list[set[str]] = []

    def refresh(self, records: dict[str, JobRecord]) -> Refresh:
        self.asked.append(set(records))
        ended = JobInfo("COMPLETED", usage=Usage(wall_s=60.0, cpu_s=50.0, max_memory_mb=None, slots=1, limit_s=None))
        return Refresh({eid: JobInfo("RUNNING") if eid == "running" else ended for eid in records}, "")


def test_a_refresh_asks_each_scheduler_once_and_an_ended_job_not_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = Counting()
    monkeypatch.setattr(scheduler, "get", lambda name: counting if name == "counting" else None)
    for eid in ("running", "ended"):
        write_json(
            tmp_path / eid / "job.json", asdict(JobRecord("counting", "7", "f", "s", "l", 0.0, scheduler_id="7"))
        )
    kept: state.Ended = {}
    for _ in range(3):
        rows, _ = state.collect(tmp_path, ended=kept)
    assert counting.asked == [{"running", "ended"}, {"running"}, {"running"}]
    assert {r.id: r.usage.wall_s if r.usage else None for r in rows} == {"running": None, "ended": 60.0}
    write_json(
        tmp_path / "ended" / "job.json", asdict(JobRecord("counting", "8", "f", "s", "l", 0.0, scheduler_id="8"))
    )
    state.collect(tmp_path, ended=kept)  # sent again: a new job, asked about
    assert counting.asked[-1] == {"running", "ended"}
    assert counts(rows).startswith("0 of 2 done, 1 running")


def test_watch_refuses_a_refresh_faster_than_a_second(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "xrayhpc.report", "--watch", "0.1", "--results", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ},
        timeout=120,
    )
    assert out.returncode == 2 and out.stderr.strip() == (
        "error: --watch 0.1: refresh at most once a second; give SECONDS >= 1"
    )


def running(folder: Path, **fields: object) -> None:
    """A running worker's progress.json on another host, two epochs in."""
    record = {"state": "running", "epoch": 2, "epochs": 5, "started": 0.0, "host": "elsewhere", "pid": 4242}
    record["history"] = [{"loss": 1.0, "val_loss": 1.1}, {"loss": 0.8, "val_loss": 0.9}]
    write_json(folder / "progress.json", {**record, **fields})


def refreshed(root: Path) -> tuple[list[state.Row], str]:
    with parses_kept():
        rows = Dashboard(root, None, 30).refresh()
    return rows, (root / "report.html").read_text()


def test_numbers_too_large_for_a_float_are_refused_in_one_line_not_a_traceback(tmp_path: Path) -> None:
    running(tmp_path / "a")
    text = (tmp_path / "a" / "progress.json").read_text()
    (tmp_path / "a" / "progress.json").write_text(text.replace('"loss": 1.0', '"loss": 1' + "0" * 400, 1))
    running(tmp_path / "b")
    text = (tmp_path / "b" / "progress.json").read_text()
    (tmp_path / "b" / "progress.json").write_text(text.replace('"epoch": 2', '"epoch": 1' + "0" * 400, 1))
    rows, page = refreshed(tmp_path)
    assert [r.state for r in rows] == ["running", "unreadable"] and "epoch = 1000" in rows[1].reason
    assert "out of range" in rows[1].reason and "0.800" in page  # a's other epochs still drawn


def test_a_history_longer_than_any_run_is_refused_before_it_is_read(tmp_path: Path) -> None:
    running(tmp_path / "a", history=[{"loss": 0.5}] * 100_001)
    [row], _ = refreshed(tmp_path)
    assert row.state == "unreadable" and "history has 100001 entries" in row.reason


def test_a_folder_named_like_another_shows_its_own_files_only(tmp_path: Path) -> None:
    running(tmp_path / "task1-vgg16-cpu")
    (tmp_path / "task1-vgg16-cpu" / "worker.log").write_text("the real run's log\n")
    running(tmp_path / "task1-vgg16-cpu\n", state="failed", error="planted")
    rows, page = refreshed(tmp_path)
    assert sorted(r.state for r in rows) == ["failed", "running"]
    assert "planted</p>" in page and "the real run&#x27;s log" not in page


def test_a_result_folder_swapped_for_a_link_is_refused_though_its_files_were_read(tmp_path: Path) -> None:
    running(tmp_path / "a")
    board = Dashboard(tmp_path, {"a": ()}, 30)
    with parses_kept():
        assert [r.state for r in board.refresh()] == ["running"]
        os.rename(tmp_path / "a", tmp_path / "b")
        os.symlink("b", tmp_path / "a")
        [row] = board.refresh()
    assert row.state == "unreadable" and "symbolic link" in row.reason


def test_event_files_are_never_written_through_a_planted_link(tmp_path: Path) -> None:
    """Their names cannot be guessed from the time, the host and the pid (progress.json shows them)."""
    victim = tmp_path / "victim"
    victim.write_text("someone else's file")
    folder = tmp_path / "run"
    folder.mkdir()
    now = int(time.time())
    for t in range(now, now + 30):
        (folder / f"events.out.tfevents.{t}.{socket.gethostname()}.{os.getpid()}").symlink_to(victim)
    with EpochEvents(folder) as events:
        events.add([{"loss": 1.0}])
    assert victim.read_text() == "someone else's file"
    assert len([p for p in folder.iterdir() if not p.is_symlink()]) == 1
