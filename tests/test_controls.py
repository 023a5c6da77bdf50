"""Controls: the dataset audit, the metadata-only baseline, and the report's sentence per task."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, real_data
from xrayhpc.bench.report_build import synthetic_result
from xrayhpc.experiment import Experiment
from xrayhpc.report.build import build
from xrayhpc.schema import read_json, read_metrics
from xrayhpc.study.audit import audit
from xrayhpc.study.worker import run_experiment


def picture(seed: int, size: int = 120) -> np.ndarray:
    """A smooth random grey picture: any two differ by about half their perceptual-hash bits."""
    coarse = np.random.default_rng(seed).integers(0, 256, (6, 6), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC))


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """two/ with 4 grey images a class and split, one exact copy across splits, one re-saved near copy
    within train, and two images with real colour."""
    root = tmp_path / "data" / "two"
    seed = 0
    for split in ("train", "test"):
        for label in ("covid", "normal"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(4):
                seed += 1
                Image.fromarray(picture(seed), "L").save(folder / f"{label}-{i}.png")
    shutil.copy(root / "train" / "normal" / "normal-2.png", root / "test" / "normal" / "copy-of-train.png")
    near = picture(3).astype(np.int16) + 3  # brighter by 3 levels, then JPEG
    Image.fromarray(np.clip(near, 0, 255).astype(np.uint8), "L").save(
        root / "train" / "covid" / "resaved.jpeg", quality=85
    )
    for name, seed in (("figure-a", 101), ("figure-b", 102)):
        grey = picture(seed)
        Image.fromarray(np.stack([grey, 255 - grey, grey // 2], -1), "RGB").save(
            root / "train" / "covid" / f"{name}.png"
        )
    return tmp_path / "data"


def test_the_audit_finds_exactly_the_planted_duplicates_and_colour(planted: Path) -> None:
    result = audit(planted)
    assert list(result["tasks"]) == ["two"]
    two = result["tasks"]["two"]
    pairs = {(p["kind"], p["where"], p["a"], p["b"]) for p in two["duplicates"]}
    assert pairs == {
        ("exact", "across splits", "train/normal/normal-2.png", "test/normal/copy-of-train.png"),
        ("near", "train", "train/covid/covid-2.png", "train/covid/resaved.jpeg"),
    }
    rows = {(r["split"], r["class"]): r for r in two["rows"]}
    assert rows[("train", "covid")]["coloured"] == 2 and rows[("train", "covid")]["images"] == 7
    assert rows[("train", "covid")]["modes"] == "L 5, RGB 2" and rows[("train", "covid")]["formats"] == "PNG 6, JPEG 1"
    assert sum(r["coloured"] for r in two["rows"]) == 2


def test_the_audit_cli_is_fast_and_cached(planted: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "xrayhpc.audit", "--data", str(planted), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["tasks"]["two"]["near_bits"] == 4
    missing = subprocess.run(
        [sys.executable, "-m", "xrayhpc.audit", "--data", str(planted / "nowhere")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert (
        missing.returncode == 2
        and len(missing.stderr.strip().splitlines()) == 1
        and "neither two/ nor all/" in missing.stderr
    )


def test_the_metadata_baseline_writes_a_whole_result_folder(planted: Path, tmp_path: Path) -> None:
    exp = Experiment("binary", "metadata", "cpu", data=str(planted))
    folder = run_experiment(exp, tmp_path / "results", tty=False)
    metrics = read_metrics(folder)
    assert metrics.path == "metadata" and metrics.test.count == 9
    assert metrics.counts == {
        "train": {"covid": 6, "normal": 4},
        "val": {"covid": 1, "normal": 0},
        "test": {"covid": 4, "normal": 5},
    }
    assert metrics.tsne.startswith("none") and "mode RGB" in metrics.model["importances"]
    assert {p.name for p in folder.iterdir()} == {
        "metrics.json",
        "progress.json",
        "worker.log",
        "confusion.png",
        "audit.json",
    }
    assert read_json(folder / "audit.json")["folder"] == "two"
    assert metrics.environment.keras is None  # no backend was started for it


def test_the_metadata_baseline_runs_on_the_cpu_only(tmp_path: Path) -> None:
    from xrayhpc.errors import UserError

    with pytest.raises(UserError, match="metadata baseline is a scikit-learn model and runs on the CPU"):
        Experiment.from_settings({"task": "binary", "backbone": "metadata", "device": "gpu"})


def test_the_report_sets_the_study_beside_its_controls_and_says_what_it_gains(tmp_path: Path) -> None:
    root = tmp_path / "results"
    study = Experiment("binary", "vgg16", "gpu", data="/data")
    twin = Experiment("binary", "vgg16", "gpu", data="/data", weights="none", tag="random")
    facts = Experiment("binary", "metadata", "cpu", data="/data")
    labels = [0] * 9 + [1] * 9
    for exp, wrong in ((study, {3}), (twin, {3, 4, 5, 12}), (facts, {3, 12})):
        metrics = synthetic_result(root, exp, 50.0, 18 - len(wrong), 18)
        predictions = [1 - y if i in wrong else y for i, y in enumerate(labels)]
        test = dataclasses.replace(metrics.test, labels=labels, predictions=predictions)
        dataclasses.replace(metrics, test=test).write(root / exp.id)
    sections = build(root)[0]
    [task1] = [s for s in sections if s.title.startswith("Task 1")]
    assert [row[:2] for row in task1.table[1]] == [
        ["task1-vgg16-gpu", "study"],
        ["task1-metadata-cpu", "control: file facts"],
        ["task1-vgg16-gpu-random", "control: random weights"],
    ]
    diff = np.array([0] * 12 + [1] + [0] * 5)  # the study is right where the best control is wrong, once
    half = 2.109816 * diff.std(ddof=1) / np.sqrt(18)  # t(0.975, 17 degrees of freedom)
    assert (
        f"the study's best model, task1-vgg16-gpu, reaches 0.944 (0.74–0.99); the best control, task1-metadata-cpu "
        f"(file facts), reaches 0.889 (0.67–0.97). Gain +0.056, 95% interval {-half + 1 / 18:+.3f} to "
        f"{half + 1 / 18:+.3f} (paired over 18 test images): the interval holds 0"
    ) in task1.text


@pytest.mark.slow
@pytest.mark.skipif(real_data() is None, reason="the real dataset is not beside this checkout")
def test_on_the_real_data_file_facts_alone_reach_the_published_accuracy(tmp_path: Path) -> None:
    """What the controls rest on, held: covid images stored in colour modes, the rest grey; 0.944 from file facts."""
    two = audit(real_data())["tasks"]["two"]
    rows = {(r["split"], r["class"]): r for r in two["rows"]}
    assert rows[("train", "covid")]["modes"] == "RGB 46, RGBA 10, L 3" and rows[("train", "normal")]["modes"] == "L 70"
    metrics = read_metrics(
        run_experiment(Experiment("binary", "metadata", "cpu", data=str(real_data())), tmp_path, tty=False)
    )
    assert metrics.test.accuracy >= 0.9
