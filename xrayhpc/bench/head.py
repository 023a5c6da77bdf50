"""The head's training step against its floor: the bytes one step must move over the memory bandwidth.

With the frozen backbone's features cached, Task 1's training is the head alone: each step sends a
batch (5 images in the report's grid) of 7x7x512 features through a 6.4 M-parameter Dense layer and
updates it with Adam. Such a step is bound by memory, not arithmetic (about 0.2 GFLOP forward and
back; the parameters and Adam's two moments are 77 MB): forward reads the weights, backward writes
their gradient, Adam reads the gradient and reads and writes the weights and both moments: 9 passes
over the parameters, the floor. The bandwidth is this machine's own, measured with a large copy.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from xrayhpc.bench.runs import in_child
from xrayhpc.bench.worker import report_experiment
from xrayhpc.render import markdown
from xrayhpc.study import device

PASSES = 9  # weights read, gradient written and read, weights, m and v read and written
COPY_MB = 512


def bandwidth_gbs(repeats: int = 5) -> float:
    """Memory bandwidth of one large copy (bytes read plus bytes written per second), best of a few."""
    src = np.ones(COPY_MB * 2**20 // 4, np.float32)
    dst = np.empty_like(src)
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(dst, src)
        best = max(best, 2 * src.nbytes / (time.perf_counter() - t) / 1e9)
    return round(best, 2)


def step_seconds(jit_compile: bool, steps: int) -> dict[str, Any]:
    """The report's Task 1 head trained on random features of VGG16's shape, one compiled step a batch."""
    import keras

    from xrayhpc.study.models import build_backbone, build_head
    from xrayhpc.study.training import HeadSteps

    exp = report_experiment("binary", "vgg16", Path("."))
    shape = build_backbone("vgg16", exp.image_size, "none").output_shape[1:]
    keras.utils.set_random_seed(0)
    head = build_head(shape, exp.head_units, exp.dropouts, 2, exp.seed)
    head.compile(optimizer=keras.optimizers.Adam(exp.learning_rate), loss="binary_crossentropy")
    step = HeadSteps(head, jit_compile).train_step
    rng = np.random.default_rng(0)
    x = rng.standard_normal((exp.batch_size, *shape), dtype=np.float32)
    y = rng.integers(0, 2, (exp.batch_size, 1)).astype(np.float32)
    for _ in range(5):  # traced and warm
        [float(v) for v in step(x, y)]
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        [float(v) for v in step(x, y)]  # as the epoch loop reads them: the step has finished
        times.append(time.perf_counter() - t)
    params = sum(int(np.prod(v.shape)) for v in head.trainable_variables)
    keras.backend.clear_session()
    return {"params": params, "batch": exp.batch_size, "median_s": float(np.median(times)), "best_s": min(times)}


def bench_head(steps: int) -> dict[str, Any]:
    """Step time with and without XLA beside the floor, in one run, in a process on the CPU."""
    return in_child("cpu", _head_figures, steps)


def _head_figures(steps: int) -> dict[str, Any]:
    out: dict[str, Any] = {"cpu": device.cpu_model(), "bandwidth_gbs": bandwidth_gbs(), "steps": steps, "runs": {}}
    for jit in (True, False):
        print(f"bench: head: {steps} steps, XLA {'on' if jit else 'off'} ...", flush=True)
        run = step_seconds(jit, steps)
        floor = PASSES * 4 * run["params"] / (out["bandwidth_gbs"] * 1e9)
        run.update(floor_s=floor, ratio=round(run["median_s"] / floor, 2))
        out["runs"]["xla" if jit else "no-xla"] = run
    return out


def head_table(figures: dict[str, Any]) -> str:
    header = ["head step", "parameters", "batch", "median ms", "best ms", "floor ms", "median / floor"]
    body = [
        [
            name,
            f"{r['params']:,}",
            str(r["batch"]),
            f"{r['median_s'] * 1e3:.2f}",
            f"{r['best_s'] * 1e3:.2f}",
            f"{r['floor_s'] * 1e3:.2f}",
            f"{r['ratio']:.2f}x",
        ]
        for name, r in figures["runs"].items()
    ]
    return (
        f"Memory bandwidth (one {COPY_MB} MB copy, read + write): {figures['bandwidth_gbs']} GB/s on "
        f"{figures['cpu']}. Floor: {PASSES} passes over the float32 parameters at that bandwidth; "
        f"{figures['steps']} timed steps each, after five to trace and warm.\n\n" + markdown(header, body, "lrrrrrr")
    )
