"""The benchmark's pieces: the roofline's work, the data views, and one side-by-side comparison."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conftest import faked
from xrayhpc.bench import worker as bench
from xrayhpc.bench.runs import ROOT, data_view, shown_command
from xrayhpc.study.data import load_dataset

COUNTS = {"train": 104, "val": 25, "test": 18}  # Task 1 of the real data


def test_backbone_passes_count_what_each_pipeline_runs(synthetic: Path) -> None:
    frozen = bench.report_experiment("binary", "vgg16", synthetic, epochs=40, augment=False)
    augmented = bench.report_experiment("binary", "vgg16", synthetic, epochs=40, augment=True)
    trained = bench.report_experiment("multiclass", "mobilenet", synthetic, epochs=5, augment=False)
    # the template: train+val every epoch, the test set, the training folder again for the t-SNE
    assert bench.backbone_passes(COUNTS, frozen, template=True) == 40 * 129 + 18 + 129
    # ours: every image once; with augmentation, the train transforms each epoch and the t-SNE's pass
    assert bench.backbone_passes(COUNTS, frozen, template=False) == 147
    assert bench.backbone_passes(COUNTS, augmented, template=False) == 147 + 40 * 104
    # a training step counts three passes; our plain path runs the test set twice
    assert bench.backbone_passes(COUNTS, trained, template=True) == 5 * (3 * 104 + 25) + 18 + 129
    assert bench.backbone_passes(COUNTS, trained, template=False) == 5 * (3 * 104 + 25) + 2 * 18 + 129


def test_template_runs_the_same_experiment(synthetic: Path, tmp_path: Path) -> None:
    exp = bench.report_experiment("multiclass", "mobilenet", synthetic, epochs=3, augment=False)
    args = bench.template_args(exp, tmp_path / "out.json")
    assert args[3:5] == [str(synthetic / "all"), str(tmp_path / "out.json")]
    text = " ".join(args)
    for part in (
        "--epochs 3",
        "--batch-size 10",
        "--learning-rate 0.0001",
        "--backbone mobilenet",
        "--checkpoint val_accuracy",
        "--head-units 256 256",
        "--dropouts 0.5 0.25",
        "--trainable",
        "--no-augment",
    ):
        assert part in text
    assert exp.device == "cpu" and exp.weights == "none"


def test_recorded_command_names_no_path_of_this_machine(synthetic: Path) -> None:
    """The figures are committed: a data folder outside the checkout is named, not located."""
    argv = ["--only", "seeds", "--data", str(synthetic), f"--out={ROOT / 'results' / 'bench'}", "--epochs", "20"]
    assert shown_command(argv) == (
        f"python -m xrayhpc.bench --only seeds --data .../{synthetic.name} --out=results/bench --epochs 20"
    )
    assert shown_command(["--data", "data/covid-xray"]).endswith("--data data/covid-xray")  # as typed


def test_data_views_take_a_fraction_and_repeat(synthetic: Path, tmp_path: Path) -> None:
    quarter = data_view(synthetic, tmp_path / "quarter", fraction=0.25)
    doubled = data_view(synthetic, tmp_path / "doubled", repeat=2)
    full = load_dataset(synthetic / "two", 32, "nearest", 0.2)
    small = load_dataset(quarter / "two", 32, "nearest", 0.2)
    twice = load_dataset(doubled / "two", 32, "nearest", 0.2)
    assert len(small.train) + len(small.val) == 2 * 3  # ceil(10 / 4) of each of the two classes
    assert (len(twice.train), len(twice.val), len(twice.test)) == (
        2 * len(full.train),
        2 * len(full.val),
        2 * len(full.test),
    )
    link = next((doubled / "all" / "train" / "covid").iterdir())
    assert link.is_symlink() and link.resolve().parent == (synthetic / "all" / "train" / "covid").resolve()


@pytest.mark.slow
def test_comparison_runs_both_pipelines_and_tabulates(synthetic: Path, tmp_path: Path) -> None:
    """Our worker and the template on the same small MobileNet experiment: the same images, a table."""
    exp = bench.report_experiment("multiclass", "mobilenet", synthetic, epochs=1, augment=False, image_size=32)
    figures = bench.compare({"MobileNet trained": exp}, tmp_path)
    run = figures["runs"]["MobileNet trained"]
    assert run["images"] == {"train": 32, "val": 8, "test": 12}
    # the template's own counts (80/20 of the train folders) give the same work: it saw the same images
    assert run["template"]["backbone_passes"] == bench.backbone_passes(run["images"], exp, template=True)
    for name in ("ours", "template"):
        assert run[name]["wall_s"] > 0 and run[name]["peak_rss_mb"] > 100 and 0 <= run[name]["accuracy"] <= 1
        assert run[name]["over_floor"] == pytest.approx(run[name]["wall_s"] / run[name]["floor_s"], rel=0.05)
    assert run["speedup"] == pytest.approx(run["template"]["wall_s"] / run["ours"]["wall_s"], rel=0.01)
    table = bench.worker_table(figures)
    assert "| MobileNet trained | template |" in table and "| MobileNet trained | ours |" in table
    assert "fast path" not in table  # no frozen run without augmentation: no fast-path line


@pytest.mark.slow
def test_head_step_stands_beside_its_bandwidth_floor() -> None:
    from xrayhpc.bench.head import PASSES, bench_head, head_table

    figures = bench_head(3)
    assert figures["bandwidth_gbs"] > 0 and set(figures["runs"]) == {"xla", "no-xla"}
    for run in figures["runs"].values():
        assert run["params"] == 7 * 7 * 512 * 256 + 256 + 257 and run["batch"] == 5  # the report's Task 1 head
        assert run["floor_s"] == pytest.approx(PASSES * 4 * run["params"] / (figures["bandwidth_gbs"] * 1e9))
        assert run["ratio"] == pytest.approx(run["median_s"] / run["floor_s"], rel=0.01)
    assert "| xla | 6,423,041 | 5 |" in head_table(figures)


def test_gpu_part_asked_for_without_a_gpu_is_refused_in_one_line(synthetic: Path, tmp_path: Path) -> None:
    """A GPU hidden from the backend (as on a CPU node) stops the part before any run, saying why."""
    out = subprocess.run(
        [sys.executable, "-m", "xrayhpc.bench", "--only", "gpu", "--quick", "--data", str(synthetic)]
        + ["--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "-1"},
        timeout=300,
    )
    assert out.returncode == 2, out.stderr
    [line] = out.stderr.splitlines()
    assert line.startswith('error: bench part gpu: device = "gpu" but the ') and "sees no GPU" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_gpu_part_times_each_case_and_sets_task1_beside_the_published_times(
    synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The part's whole path, with the GPU faked at TensorFlow's boundary (none here); each case is
    handed on to be written as it ends."""
    from xrayhpc.bench.gpu import bench_gpu, gpu_cases, gpu_table

    monkeypatch.setenv("PYTHONPATH", faked("fakegpu")["PYTHONPATH"])
    saved: list[dict[str, Any]] = []
    figures = bench_gpu(
        gpu_cases(synthetic, 1, 1, "gpu", image_size=32),
        tmp_path,
        save=lambda f: saved.append(json.loads(json.dumps(f))),
    )
    assert figures["device"] == "gpu: Fake GPU" and saved[-1] == figures
    assert [len(s["runs"]) for s in saved] == [0, 1, 2, 3]
    runs = figures["runs"]
    assert list(runs) == ["Task 1, augmentation off", "Task 1, augmentation on", "Task 2, MobileNet trained"]
    assert [r["augment"] for r in runs.values()] == [False, True, True]  # Task 2 as the report runs it
    for run in runs.values():
        assert run["device_used"] == figures["device"] and run["wall_s"] > run["phases"]["train"] > 0
    assert runs["Task 2, MobileNet trained"]["images"] == {"train": 32, "val": 8, "test": 12}
    table = gpu_table(figures)
    assert "| Task 1, augmentation on | 1 |" in table and "GPU 124 s, CPU 155 s" in table
    assert "kernel check on gpu: Fake GPU (float32): conv " in table
    assert "1 of 40 epochs (quick), not set against the published time" in table
    runs["Task 1, augmentation on"].update(epochs=40, wall_s=12.4)
    assert "12.4 s, 10.0x faster than the published GPU time; target under 20 s: met." in gpu_table(figures)


@pytest.mark.slow
def test_jax_part_sets_uncompiled_beside_compiled_steps(
    synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The part's two worker runs (each a JAX worker like the one tests/test_worker.py runs) stand in
    here with their figures; the augmentation is timed for real, under JAX in a child."""
    pytest.importorskip("jax")
    from xrayhpc.bench import compiled

    asked = []

    def worker(exp: Any, workdir: Path, name: str, env: dict[str, str]) -> tuple[dict[str, Any], Any]:
        asked.append((exp.xla, exp.backbone, exp.trainable_backbone, env))
        seconds = [30.0, 20.0, 22.0] if exp.xla == "off" else [25.0, 10.0, 12.0]
        metrics = SimpleNamespace(
            history=[{"seconds": s} for s in seconds],
            images={"train": 32, "val": 8, "test": 12},
            augmentation="cpu",
            timing=SimpleNamespace(train_breakdown={"augment": 0.5}),
            test=SimpleNamespace(accuracy=0.25),
            environment=SimpleNamespace(jax="0.10.2"),
        )
        return {"wall_s": sum(seconds) + 5, "peak_rss_mb": 900.0}, metrics

    monkeypatch.setattr(compiled, "run_worker", worker)
    figures = compiled.bench_jax(synthetic, 3, tmp_path, image_size=32)
    jax = {"KERAS_BACKEND": "jax"}
    assert asked == [("off", "mobilenet", True, jax), ("auto", "mobilenet", True, jax)]
    assert figures["epoch_speedup"] == 1.91 and figures["steady"] == "later_epoch_s"  # 21 s against 11 s
    assert figures["warp"]["images"] == 32 and figures["warp"]["scipy_s"] > 0 and figures["warp"]["xla_s"] > 0
    table = compiled.jax_table(figures)
    assert "| uncompiled (xla = off) | cpu | 77.0 | 30.00 | 21.00 |" in table
    assert "Compiled, a later epoch (the median) takes 1.91x less time than uncompiled" in table
    assert "One epoch's augmentation of the 32 training images on this CPU: scipy " in table


def test_report_part_times_the_report_and_the_live_page_on_the_same_folders(tmp_path: Path) -> None:
    from xrayhpc.bench.report_build import bench_report, report_table

    figures = bench_report([10], tmp_path)["sizes"]["10"]
    assert set(figures) == {"build_s", "html_kb", "watch_first_s", "watch_steady_s", "watch_one_more_s", "live_kb"}
    assert all(v > 0 for v in figures.values())
    page = (tmp_path / "watched-10" / "report.html").read_text()
    assert "1 of 10 done" not in page and "10 of 10 done" in page  # the last refresh: the running one finished
    assert report_table({"sizes": {"10": figures}}).splitlines()[-1].startswith("| 10 |")


def test_welch_interval_of_two_unpaired_samples() -> None:
    from xrayhpc.stats import welch

    d = welch([0.556, 0.889, 0.5], [0.611, 1.0, 1.0])  # the hand-measured Task 1 runs
    assert d.mean == pytest.approx(-0.222, abs=1e-3) and d.low < 0 < d.high  # no evidence at n = 3
    assert welch([1.0, 1.0], [1.0, 1.0]).low == 0 == welch([1.0, 1.0], [1.0, 1.0]).high


@pytest.mark.slow
def test_seeds_part_runs_both_pipelines_seeded_and_tabulates(synthetic: Path, tmp_path: Path) -> None:
    """Two seeds of each pipeline: the template takes `--seed`, each seed its own run, one table."""
    exp = bench.report_experiment("binary", "vgg16", synthetic, epochs=1, augment=True, image_size=32)
    assert bench.template_args(exp, tmp_path / "t.json", seeded=True)[-2:] == ["--seed", "0"]
    figures = bench.bench_seeds(exp, 2, tmp_path)
    assert [r["seed"] for r in figures["runs"]["template"]] == [0, 1] == [r["seed"] for r in figures["runs"]["ours"]]
    accuracy = figures["summary"]["accuracy"]
    ours = [r["accuracy"] for r in figures["runs"]["ours"]]
    assert accuracy["ours"]["mean"] == pytest.approx(sum(ours) / 2)
    table = bench.seeds_table(figures)
    assert "| 1 |" in table and "95% Welch interval" in table
