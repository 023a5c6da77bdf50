"""The report from result folders: numbers checked against the metrics files, and the HTML in a browser."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, browser
from xrayhpc.bench.report_build import synthetic_result
from xrayhpc.experiment import Experiment
from xrayhpc.render import markdown
from xrayhpc.report.build import build
from xrayhpc.report.compare import PUBLISHED
from xrayhpc.report.writers import to_html
from xrayhpc.schema import Progress, write_json
from xrayhpc.stats import wilson


def fake(
    root: Path,
    device: str,
    total: float,
    correct: int = 15,
    count: int = 18,
    tag: str = "",
    backbone: str = "vgg16",
    task: str = "binary",
) -> dict:
    return synthetic_result(
        root, Experiment(task, backbone, device, data="/data", epochs=40, tag=tag), total, correct, count
    )


@pytest.fixture
def hand_made(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    fake(root, "gpu", 124.0, correct=17)
    fake(root, "cpu", 155.0, correct=15)
    fake(root, "cpu", 300.0, correct=20, count=36, backbone="mobilenet", task="multiclass")
    (root / "task2-vgg16-gpu").mkdir(parents=True)  # partial grid: still running
    Progress("running", 12, 100, 0, "elsewhere", 1).write(root / "task2-vgg16-gpu")
    (root / "task1-resnet50-cpu").mkdir()
    (root / "task1-resnet50-cpu" / "metrics.json").write_text('{"schema_version": 1, "test": ')  # damaged
    future = fake(root, "cpu", 10.0, tag="future").to_json()
    future["schema_version"] = 99
    write_json(root / "task1-vgg16-cpu-future" / "metrics.json", future)
    for eid in ("task1-vgg16-gpu", "task1-vgg16-cpu"):
        Image.fromarray(np.full((40, 60, 3), 120, np.uint8)).save(root / eid / "tsne-train.png")
    return root


# Added by the test, not shipped: once loaded, the page's title counts its images and the broken ones.
BROKEN_IMAGES = (
    "<script>window.addEventListener('load',()=>{const i=[...document.images];"
    "const bad=i.filter(x=>!x.complete||x.naturalWidth===0).length;"
    "document.title=`xrayhpc report: ${i.length} images, ${bad} broken`;});</script>"
)


def md_rows(text: str, first_cell: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith(f"| {first_cell} |")
    ]


def test_wilson_interval() -> None:
    low, high = wilson(17, 18)
    assert low == pytest.approx(0.7424, abs=1e-3) and high == pytest.approx(0.9901, abs=1e-3)
    assert wilson(0, 0) == (0.0, 1.0)


def test_tables_carry_the_metrics_and_the_published_figures(hand_made: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "xrayhpc.report", "--results", str(hand_made)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "task1-resnet50-cpu/metrics.json: damaged" in out.stdout
    said = " ".join(out.stdout.split())  # the terminal may wrap a long warning
    assert "written by a newer xrayhpc (schema version 99; this one reads 1): upgrade to read it" in said
    md = (hand_made / "report.md").read_text()
    for device, correct in (("gpu", 17), ("cpu", 15)):
        [row] = md_rows(md, f"task1-vgg16-{device}")
        low, high = wilson(correct, 18)
        assert row[1] == "study" and row[6] == f"{correct / 18:.3f} ({low:.2f}–{high:.2f})"
        assert row[-2] == "0.944 / 0.3084" and PUBLISHED[("binary", "vgg16")] == (0.944, 0.3084)
        assert row[-1] == f"{correct / 18 - 0.944:+.3f} / {0.31 - 0.3084:+.3f}"
        assert row[10] == "0.500" and row[11] == "0.600"  # recall per class
    [mobilenet] = md_rows(md, "task2-mobilenet-cpu")  # 40 epochs of a frozen MobileNet: not the report's run
    assert mobilenet[-2] == "–" and mobilenet[-1].startswith(
        "not comparable: epochs 40 (report: 100); batch_size 5 (report: 10)"
    )
    assert "trainable_backbone false (report: true)" in mobilenet[-1]
    # the timing report pairs the two devices: 155 / 124
    [gpu_row, cpu_row] = md_rows(md, "task1-vgg16")
    assert cpu_row[1] == "cpu" and cpu_row[2] == "155.0"
    assert gpu_row[2] == "124.0" and gpu_row[-2] == f"{155 / 124:.2f}x" and "Tesla V100" in gpu_row[-1]
    assert (gpu_row[3], cpu_row[3]) == ("124", "155")  # the course's own times: the same settings
    assert "Ran on one device only: task2-mobilenet-cpu" in md
    assert (hand_made / "timing.png").is_file()
    # partial grid: listed with its state, not dropped
    [running] = md_rows(md, "task2-vgg16-gpu")
    assert running[1] == "running" and running[3] == "12/100"
    assert "| task1-vgg16-cpu-future |" not in md and "| task1-resnet50-cpu |" not in md


def test_a_run_with_the_reports_settings_is_compared_and_a_demo_run_is_not(tmp_path: Path) -> None:
    root = tmp_path / "results"
    mobilenet = Experiment(
        "multiclass",
        "mobilenet",
        "gpu",
        data="/data",
        epochs=100,
        batch_size=10,
        learning_rate=1e-4,
        head_units=(256, 256),
        dropouts=(0.5, 0.25),
        trainable_backbone=True,
        checkpoint="val_accuracy",
    )
    synthetic_result(root, mobilenet, 300.0, 27, 36)
    synthetic_result(
        root,
        Experiment("binary", "vgg16", "cpu", data="/data", epochs=3, image_size=64, weights="none", augment=False),
        40.0,
        9,
        18,
    )
    md = "\n".join(s.title + "\n" + markdown(*s.table) for s in build(root)[0] if s.table)
    [same] = md_rows(md, "task2-mobilenet-gpu")
    assert same[-2] == "0.75 / 0.69" and same[-1] == f"{27 / 36 - 0.75:+.3f} / {0.31 - 0.69:+.3f}"
    [demo] = md_rows(md, "task1-vgg16-cpu")
    assert demo[-2] == "–" and "Δ" not in demo[-1]
    assert demo[-1] == (
        "not comparable: weights none (report: imagenet); image_size 64 (report: 224); "
        "epochs 3 (report: 40); augment false (report: true)"
    )


def test_seeds_are_grouped_and_two_configurations_compared_over_the_same_seeds(tmp_path: Path) -> None:
    root = tmp_path / "results"
    vgg = dict(
        data="/data",
        epochs=100,
        head_units=(256, 256),
        dropouts=(0.5, 0.5),
        checkpoint="val_accuracy",
        learning_rate=1e-4,
    )
    mobilenet = dict(vgg, dropouts=(0.5, 0.25), trainable_backbone=True, batch_size=10)
    correct = {"vgg16": [22, 24, 23], "mobilenet": [27, 26, 29]}
    for backbone, settings in (("vgg16", vgg), ("mobilenet", mobilenet)):
        for seed, right in enumerate(correct[backbone]):
            synthetic_result(
                root,
                Experiment("multiclass", backbone, "gpu", seed=seed, id_suffix=f"seed{seed}", **settings),
                100.0,
                right,
                36,
            )
    sections = build(root)[0]
    [seeds] = [s for s in sections if s.title == "Task 2: four classes: over seeds"]
    rows = {row[0]: row for row in seeds.table[1]}
    acc = np.array(correct["mobilenet"]) / 36
    assert rows["task2-mobilenet-gpu"][1:4] == ["3", "0,1,2", f"{acc.mean():.3f} ± {acc.std(ddof=1):.3f}"]
    assert rows["task2-mobilenet-gpu"][-1] == "0.75 / 0.69" and rows["task2-vgg16-gpu"][-1] == "0.66 / 0.79"
    [pairs] = [s for s in sections if s.title == "Task 2: four classes: paired comparisons"]
    [row] = pairs.table[1]
    diff = (np.array(correct["mobilenet"]) - np.array(correct["vgg16"])) / 36
    half = 4.302653 * diff.std(ddof=1) / np.sqrt(3)  # t(0.975, 2 degrees of freedom)
    assert row[:3] == ["task2-mobilenet-gpu − task2-vgg16-gpu", "3", f"{diff.mean():.3f} ± {diff.std(ddof=1):.3f}"]
    assert row[3] == f"{diff.mean() - half:+.3f} to {diff.mean() + half:+.3f}"
    assert (root / "accuracy.png").is_file()


@pytest.mark.slow
def test_report_from_real_worker_runs_of_the_smoke_grid(tmp_path: Path, synthetic: Path) -> None:
    from xrayhpc.experiment import load_grid, select
    from xrayhpc.study.worker import run_experiment

    root = tmp_path / "results"
    overrides = {"epochs": 1, "image_size": 32, "data": str(synthetic)}
    for exp in select(load_grid(ROOT / "jobs" / "smoke.toml", overrides), "*-cpu"):
        run_experiment(exp, root, tty=False)
    sections, skipped, _ = build(root)
    assert skipped == []
    for title, eid in (("Task 1", "task1-vgg16-cpu"), ("Task 2", "task2-mobilenet-cpu")):
        test = json.loads((root / eid / "metrics.json").read_text())["test"]
        [section] = [s for s in sections if s.title.startswith(title) and s.title.endswith(f"({eid[:5]})")]
        [row] = section.table[1]
        low, high = wilson(test["correct"], test["count"])
        assert row[0] == eid and row[6] == f"{test['accuracy']:.3f} ({low:.2f}–{high:.2f})"
        assert row[7] == f"{test['loss']:.3f}" and row[8] == f"{test['macro_f1']:.3f}"
        recalls = [f"{v['recall']:.3f}" for v in test["per_class"].values()]
        assert row[10 : 10 + len(recalls)] == recalls
        [gallery] = [s for s in sections if s.title == f"Gallery: {eid}"]
        assert len(gallery.images) == 7  # Grad-CAM, t-SNE by class and by source twice, curves, confusion
        [looks] = [s for s in sections if s.title.startswith(title) and s.title.endswith("what the models look at")]
        assert [r[0] for r in looks.table[1]] == [eid]
    timing = next(s for s in sections if s.title == "GPU versus CPU")
    assert "Ran on one device only: task1-vgg16-cpu, task2-mobilenet-cpu" in timing.text


@pytest.mark.slow
def test_html_opens_in_a_browser_with_every_image(hand_made: Path, tmp_path: Path) -> None:
    sections, skipped, _ = build(hand_made)
    page = tmp_path / "report.html"
    page.write_text(to_html(sections, skipped).replace("</head>", f"{BROKEN_IMAGES}</head>"))
    flags = [*browser(tmp_path / "profile"), "--virtual-time-budget=5000", "--window-size=1400,2400"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert "<title>xrayhpc report: 4 images, 0 broken</title>" in dom.stdout, dom.stdout[:300] + dom.stderr[-500:]
    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120)
    with Image.open(shot) as img:
        pixels = np.asarray(img.convert("L"))
    assert pixels.std() > 5  # tables and images drawn, not a blank page


def test_an_incomplete_metrics_file_is_named_and_left_out(tmp_path: Path) -> None:
    """Every reader relies on the same keys; one file that lacks them is named once, not a KeyError later."""
    root = tmp_path / "results"
    metrics = fake(root, "cpu", 10.0).to_json()
    del metrics["timing"]["total"]
    write_json(root / "task1-vgg16-cpu" / "metrics.json", metrics)
    sections, skipped, _ = build(root)
    assert skipped == [f"{root / 'task1-vgg16-cpu' / 'metrics.json'}: incomplete (no timing.total), left out"]
    assert not any(s.title.startswith("Task 1") for s in sections)
    from xrayhpc.cluster.state import collect

    [row] = collect(root)[0]  # status reads it the same way: named, and never taken as not yet run
    assert (row.state, row.reason) == ("unreadable", skipped[0].removesuffix(", left out"))


def test_the_terminal_leaves_out_only_the_columns_marked_for_the_files() -> None:
    """Every usage column reaches the terminal; the timing table's detail and the audit stay in the files."""
    from rich.console import Console

    from xrayhpc.cluster.state import USAGE
    from xrayhpc.report.tables import FileOnly, timing_table, usage_table
    from xrayhpc.report.writers import Section, print_tables

    console = Console(record=True, width=300)
    sections = [
        Section("What the jobs used", "", usage_table([])),
        Section("GPU versus CPU", "", timing_table([])),
        Section("Dataset audit, two/", "", ([FileOnly("file"), FileOnly("bits apart")], [["a.png", "3"]])),
    ]
    print_tables(sections, [], "", console)
    shown = console.export_text()
    assert all(column in shown for column in USAGE)
    assert "published s" in shown and "train s" in shown and "hardware" not in shown and "tsne s" not in shown
    assert "Dataset audit" not in shown and "a.png" not in shown


@pytest.mark.parametrize("count", [6, 21])
def test_a_perfect_score_is_charted_where_its_intervals_end_rounds_under_it(tmp_path: Path, count: int) -> None:
    """Wilson's upper end for 6 of 6 or 21 of 21 comes out a hair under 1.0."""
    root = tmp_path / "results"
    fake(root, "cpu", 10.0, correct=count, count=count)
    sections, _, _ = build(root)
    assert any(s.title == "Accuracy at a glance" for s in sections) and (root / "accuracy.png").stat().st_size > 0


def test_the_published_figures_stand_beside_the_reports_runs_and_not_their_normalised_twins() -> None:
    """A normalised twin of jobs/report.toml is not the report's run: no 0.944 beside it."""
    from xrayhpc.experiment import load_grid
    from xrayhpc.report.compare import reference

    task1 = [e for e in load_grid(ROOT / "jobs" / "report.toml") if e.id.startswith("task1-vgg16-gpu")]
    row = {e.id: reference({**e.settings(), "id": e.id}) for e in task1}
    assert row["task1-vgg16-gpu"] == (PUBLISHED["binary", "vgg16"], [])
    assert row["task1-vgg16-gpu-normalised"] == (None, ["normalise true (report: false)"])
