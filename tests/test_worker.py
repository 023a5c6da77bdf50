"""The worker end to end on synthetic images: the result folder is the contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, faked, python_c, real_data
from xrayhpc.experiment import Experiment
from xrayhpc.schema import read_json, read_metrics
from xrayhpc.study.device import DeviceError
from xrayhpc.study.worker import run_experiment

pytestmark = pytest.mark.slow


def small(data: Path, **settings: object) -> Experiment:
    base: dict[str, object] = {
        "task": "binary",
        "backbone": "vgg16",
        "device": "cpu",
        "data": str(data),
        "epochs": 2,
        "batch_size": 4,
        "learning_rate": 1e-3,
        "image_size": 32,
        "weights": "none",
        "augment": False,
        "head_units": (16,),
        "dropouts": (0.5,),
    }
    base.update(settings)
    return Experiment(**base)  # type: ignore[arg-type]


def test_result_folder_is_complete(synthetic: Path, tmp_path: Path) -> None:
    exp = small(synthetic, checkpoint="val_loss", epochs=3)
    folder = run_experiment(exp, tmp_path, tty=False)
    assert folder == tmp_path / "task1-vgg16-cpu"
    m = read_metrics(folder)
    assert m is not None
    assert m.experiment["fingerprint"] == exp.fingerprint
    assert m.counts == {
        "train": {"covid": 8, "normal": 8},
        "val": {"covid": 2, "normal": 2},
        "test": {"covid": 3, "normal": 3},
    }
    assert len(m.history) == 3 and {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(m.history[0])
    best = 1 + int(np.argmin([h["val_loss"] for h in m.history]))
    assert m.best_epoch == best
    test = m.test
    assert test.count == 6 and test.accuracy == test.correct / 6
    assert sum(map(sum, test.confusion)) == 6
    assert set(test.per_class) == {"covid", "normal"}
    for phase in ("load", "features", "train", "evaluate", "tsne", "total"):
        assert m.timing.seconds(phase) >= 0
    env = m.environment
    assert env.device_requested == "cpu" and env.device_used.startswith("cpu")
    assert env.gpu_name is None and env.keras
    for png in ("tsne-train.png", "tsne-test.png", "curves.png", "confusion.png"):
        with Image.open(folder / png) as img:
            assert img.size[0] > 200
    progress = read_json(folder / "progress.json")
    assert progress["state"] == "done" and progress["epoch"] == 3 == progress["epochs"]
    assert "epoch 3/3" in (folder / "worker.log").read_text()
    assert not list(folder.glob(".*tmp"))  # no temporary file left behind


def test_fast_path_gives_the_plain_paths_model(synthetic: Path, tmp_path: Path) -> None:
    """Frozen backbone: training the head on cached features == training the whole model.

    Both compiled with XLA, so that dropout draws the same masks.
    """
    runs = {}
    for fast in (True, False):
        exp = small(synthetic, fast_path=fast, epochs=3, tag="fast" if fast else "plain", xla="on")
        runs[fast] = read_metrics(run_experiment(exp, tmp_path, tty=False))
    fast, plain = runs[True], runs[False]
    assert fast.path == "head-only" and plain.path == "plain"
    for a, b in zip(fast.history, plain.history, strict=True):
        for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
            assert a[key] == pytest.approx(b[key], abs=2e-4), key
    assert fast.test.loss == pytest.approx(plain.test.loss, abs=2e-4)
    assert fast.test.predictions == plain.test.predictions


def test_augmented_multiclass_with_a_trainable_backbone(synthetic: Path, tmp_path: Path) -> None:
    exp = small(
        synthetic,
        task="multiclass",
        backbone="mobilenet",
        trainable_backbone=True,
        augment=True,
        head_units=(16, 16),
        dropouts=(0.5, 0.25),
        checkpoint="val_accuracy",
    )
    m = read_metrics(run_experiment(exp, tmp_path, tty=False))
    assert m.path == "plain" and m.classes == ["covid", "normal", "pneumonia_bac", "pneumonia_vir"]
    assert len(m.test.confusion) == 4 and m.test.roc_auc is not None
    assert m.timing.train_breakdown["augment"] > 0


def test_gpu_run_without_a_gpu_fails_and_says_so(synthetic: Path, tmp_path: Path) -> None:
    exp = small(synthetic, device="gpu")
    with pytest.raises(DeviceError, match="sees no GPU"):
        run_experiment(exp, tmp_path, tty=False)
    folder = tmp_path / exp.id
    assert not (folder / "metrics.json").exists()
    progress = read_json(folder / "progress.json")
    assert progress["state"] == "failed" and "Refusing to run on the CPU" in progress["error"]


def test_slots_size_the_thread_pools(synthetic: Path, tmp_path: Path) -> None:
    code = (
        "import os, sys; from xrayhpc.study import device\nwith device.configured('cpu'):\n device.check('cpu');"
        "import tensorflow as tf; print(os.environ['OMP_NUM_THREADS'], tf.config.threading.get_intra_op_parallelism_threads())"
    )
    out = python_c(code, {"XRAYHPC_SLOTS": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["1", "1"]


def tiny_task1(data: Path, results: Path) -> list[str]:
    """The worker's arguments for Task 1 of the smoke grid, one epoch at 32 px."""
    return [
        "--grid",
        "jobs/smoke.toml",
        "--id",
        "task1-vgg16-cpu",
        "--set",
        "epochs=1",
        "--set",
        "image_size=32",
        "--data",
        str(data),
        "--results",
        str(results),
    ]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xrayhpc.worker", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        timeout=600,
    )


def test_cli_runs_a_grid_experiment_with_the_jax_backend_without_tensorflow(synthetic: Path, tmp_path: Path) -> None:
    """As on a machine with JAX and no TensorFlow: every step compiled, scipy's augmentation (a CPU
    run), op determinism as asked (XLA reads its flag when JAX starts)."""
    pytest.importorskip("jax")
    settings = ["--set", "augment=true", "--set", "deterministic=true"]
    out = run_cli(*tiny_task1(synthetic, tmp_path), *settings, env={"KERAS_BACKEND": "jax", **faked("notensorflow")})
    assert out.returncode == 0, out.stderr
    m = read_metrics(tmp_path / "task1-vgg16-cpu")
    assert m.environment.backend == "jax" and m.environment.jax and m.environment.tensorflow is None
    assert m.augmentation == "cpu" and m.timing.train_breakdown["augment"] > 0
    assert (m.environment.deterministic, m.environment.tf32) == (True, None)  # a CPU has no TF32 units
    assert "epoch 1/1" in out.stdout  # plain lines when not on a terminal
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "task1-vgg16-cpu"))  # written without TensorFlow
    events.Reload()
    assert [(e.step, round(e.value, 5)) for e in events.Scalars("loss/train")] == [(1, round(m.history[0]["loss"], 5))]


def test_a_deterministic_run_records_it_and_its_fingerprint_differs(synthetic: Path, tmp_path: Path) -> None:
    out = run_cli(*tiny_task1(synthetic, tmp_path), "--set", "deterministic=true")
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "task1-vgg16-cpu"
    m = read_metrics(folder)
    assert m.experiment["deterministic"] is True
    assert m.experiment["fingerprint"] != Experiment.from_settings({**m.experiment, "deterministic": False}).fingerprint
    assert (m.environment.deterministic, m.environment.tf32) == (True, None)  # a CPU has no TF32 units
    assert "op determinism on" in (folder / "worker.log").read_text()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--grid", "jobs/nope.toml"], "jobs/nope.toml: no such grid file"),
        (["--grid", "jobs/smoke.toml", "--id", "task9-x-cpu"], "no experiment"),
        (["--grid", "jobs/smoke.toml", "--set", "epochs=0"], "`epochs` = 0 is not allowed"),
        (
            ["--grid", "jobs/smoke.toml", "--id", "task1-vgg16-cpu", "--data", "/nonexistent"],
            "data folder /nonexistent/two not found",
        ),
    ],
)
def test_cli_errors_are_one_line(args: list[str], expected: str, tmp_path: Path) -> None:
    out = run_cli(*args, "--results", str(tmp_path))
    assert out.returncode == 2
    assert expected in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(real_data() is None, reason="the real dataset is not beside this checkout")
def test_real_data_task1_fast_path(tmp_path: Path) -> None:
    """The real images: counts as the template saw them, a complete result (small images to stay quick)."""
    exp = small(real_data(), image_size=64, epochs=2, batch_size=5)
    m = read_metrics(run_experiment(exp, tmp_path, tty=False))
    assert {k: sum(v.values()) for k, v in m.counts.items()} == {"train": 104, "val": 25, "test": 18}
    assert m.skipped_images == []
    assert json.loads((tmp_path / exp.id / "metrics.json").read_text())["test"]["count"] == 18


def test_files_follow_the_users_umask_so_a_group_can_read_them(synthetic: Path, tmp_path: Path) -> None:
    """On a shared /projectnb (umask 002) collaborators open a student's results and report."""

    def shared() -> None:
        os.umask(0o002)

    common = dict(capture_output=True, text=True, cwd=ROOT, timeout=600, preexec_fn=shared)
    worker = subprocess.run([sys.executable, "-m", "xrayhpc.worker", *tiny_task1(synthetic, tmp_path)], **common)
    assert worker.returncode == 0, worker.stderr
    report = subprocess.run([sys.executable, "-m", "xrayhpc.report", "--results", str(tmp_path), "--quiet"], **common)
    assert report.returncode == 0, report.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {"metrics.json", "tsne-train.png", "worker.log", "report.html", "report.md"} <= {p.name for p in written}
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in written} == {p.name: "0o664" for p in written}


def test_bfloat16_is_recorded_and_refused_where_the_cpu_has_no_units(
    synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xrayhpc.errors import UserError
    from xrayhpc.study import device

    exp = small(synthetic, precision="bfloat16", epochs=1)
    monkeypatch.setattr(device, "cpu_flags", lambda: {"avx2", "avx512f"})
    with pytest.raises(UserError, match=r'precision = "bfloat16" but this CPU .* has no bfloat16 units'):
        run_experiment(exp, tmp_path, tty=False)
    monkeypatch.setattr(device, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    m = read_metrics(run_experiment(exp, tmp_path, tty=False))
    assert m.experiment["precision"] == "bfloat16"
    assert m.experiment["fingerprint"] != small(synthetic, epochs=1).fingerprint
    assert 0 <= m.test.accuracy <= 1 and np.isfinite(m.test.loss)


def test_a_gpu_older_than_ampere_has_no_bfloat16(monkeypatch: pytest.MonkeyPatch) -> None:
    from xrayhpc.study import device

    monkeypatch.setattr(device, "physical_gpus", lambda: [("Tesla V100", 7.0)])
    assert "Tesla V100 (compute capability 7.0) has no bfloat16 units" in device.bfloat16_problem("gpu: Tesla V100")
    monkeypatch.setattr(device, "physical_gpus", lambda: [("NVIDIA H200", 9.0)])
    assert device.bfloat16_problem("gpu: NVIDIA H200") is None
