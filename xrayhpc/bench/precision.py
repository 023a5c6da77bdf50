"""bfloat16 against float32: the backbone's speed, and what it changes in features and results."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from xrayhpc.bench.runs import in_child
from xrayhpc.bench.worker import report_experiment, run_worker
from xrayhpc.render import markdown
from xrayhpc.study import device
from xrayhpc.study.data import load_dataset

SEEDS = (0, 1, 2)


def backbone_rates(data: Path, image_size: int = 224) -> dict[str, Any]:
    """VGG16 over the Task 1 test images in each precision, in a process on the CPU: images per
    second and feature difference."""
    return in_child("cpu", _backbone_rates, data, image_size)


def _backbone_rates(data: Path, image_size: int) -> dict[str, Any]:
    import keras

    from xrayhpc.study.models import build_backbone, preprocess
    from xrayhpc.study.training import run_batched

    images = preprocess(
        "vgg16", "rescale", load_dataset(data / "two", image_size, "nearest", 0.2, log=lambda _: None).test.images
    )
    out: dict[str, Any] = {}
    features = {}
    for name in ("float32", "bfloat16"):
        keras.utils.set_random_seed(0)
        model = build_backbone("vgg16", image_size, "none", name)
        model.compile(jit_compile=False)
        run_batched(model, images[:4])  # traced once before timing
        t = time.perf_counter()
        features[name] = run_batched(model, images)
        out[name] = {"images_per_s": round(len(images) / (time.perf_counter() - t), 2)}
        keras.backend.clear_session()
    scale = float(np.max(np.abs(features["float32"])))
    out["max_relative_difference"] = round(float(np.max(np.abs(features["float32"] - features["bfloat16"]))) / scale, 5)
    out["speedup"] = round(out["bfloat16"]["images_per_s"] / out["float32"]["images_per_s"], 2)
    return out


def bench_precision(data: Path, epochs: int, workdir: Path) -> dict[str, Any]:
    """Task 1 (frozen VGG16, augmentation off) in both precisions over a few seeds, and the backbone alone."""
    problem = device.bfloat16_problem("cpu")
    if problem:
        return {"skipped": f"{problem}: nothing to compare"}
    print("bench: precision: VGG16 alone ...", flush=True)
    out: dict[str, Any] = {"cpu": device.cpu_model(), "backbone": backbone_rates(data), "epochs": epochs, "runs": {}}
    for seed in SEEDS:
        predictions = {}
        for precision in ("float32", "bfloat16"):
            print(f"bench: precision: seed {seed}, {precision} ...", flush=True)
            exp = report_experiment(
                "binary", "vgg16", data, epochs=epochs, augment=False, seed=seed, precision=precision
            )
            run, metrics = run_worker(exp, workdir, f"{precision}-{seed}")
            predictions[precision] = metrics.test.predictions
            out["runs"][f"{seed} {precision}"] = {
                "wall_s": run["wall_s"],
                "features_s": metrics.timing.features,
                "accuracy": metrics.test.accuracy,
                "loss": metrics.test.loss,
            }
        same = np.mean(np.array(predictions["float32"]) == np.array(predictions["bfloat16"]))
        out["runs"][f"{seed} bfloat16"]["agreement"] = round(float(same), 3)
    return out


def precision_table(p: dict[str, Any]) -> str:
    if "skipped" in p:
        return p["skipped"]
    b = p["backbone"]
    body = [
        [
            key.split()[0],
            key.split()[1],
            f"{r['wall_s']:.1f}",
            f"{r['features_s']:.1f}",
            f"{r['accuracy']:.3f}",
            f"{r['loss']:.4f}",
            f"{r['agreement']:.3f}" if "agreement" in r else "",
        ]
        for key, r in p["runs"].items()
    ]
    return "\n".join(
        [
            f"On {p['cpu']}: VGG16 (224 px, no XLA) over the Task 1 test images, float32 {b['float32']['images_per_s']} "
            f"images/s, bfloat16 {b['bfloat16']['images_per_s']} ({b['speedup']}x); features differ by at most "
            f"{b['max_relative_difference']:.2%} of their largest value.",
            "",
            f"Task 1 (frozen VGG16, augmentation off, {p['epochs']} epochs, random weights), each seed in both precisions:",
            "",
            markdown(
                ["seed", "precision", "wall s", "backbone s", "test acc", "test loss", "same test predictions"],
                body,
                "llrrrrr",
            ),
        ]
    )
