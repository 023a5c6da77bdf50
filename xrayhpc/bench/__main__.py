"""Benchmarks, measured side by side in one run and written to results/bench/ (JSON + Markdown).

    python -m xrayhpc.bench [--quick] [--only PART ...] [--epochs N] [--data DIR] [--out DIR]

worker, task2: the experiments of jobs/report.toml on the real data (else synthetic images, and it
says so), CPU, `weights = "none"`: our worker against the course template's pipeline
(xrayhpc/bench/template.py) with the same settings. Task 1 with augmentation off and on; Task 2's VGG16 and
MobileNet with it off. Each run is a fresh process with a cold image cache, timed end to end, with
its peak memory, test accuracy and its roofline: the backbone passes it needs at this machine's
measured float32 matmul rate.
seeds: Task 1 (augmentation on) by our worker and by the template, each seeded, over --seeds seeds:
test accuracy and loss, and the difference of the means with its Welch interval.
scaling: our worker's fast path on the data repeated x1, x2, x4.
dispatch: scheduler calls and wall time of one submit and of one status refresh for grids of 1 to
10,000 experiments (dry-run, and on the local Grid Engine with jobs held and then deleted), against
one qsub per experiment (up to 1,000).
report: time to build the report from 10 to 1000 result folders.
neighbour: each phase of our worker alone and beside a second worker that trains.
precision: bfloat16 against float32, where the CPU has bfloat16 units: speed, features, results.
head: the head's training step, with and without XLA, against its memory-bandwidth floor.
jax: Keras on JAX, Task 2's trained MobileNet with its steps and augmentation compiled and not.
probes: Grad-CAM and the occlusion probes of Task 1's and Task 2's frozen VGG16 (random weights),
timed beside the run's other phases, with what they say.
gpu: the kernel check, then Task 1 (augmentation off and on) and Task 2's trained MobileNet on this
machine's GPU, per phase, beside the course's published Task 1 times, each case written as it
ends; skipped, saying why, where no GPU is visible.

The bench's own process starts no backend: each measurement runs in a child on its device.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from xrayhpc.bench.compiled import bench_jax, jax_table
from xrayhpc.bench.dispatch import bench_dispatch, dispatch_table
from xrayhpc.bench.gpu import bench_gpu, gpu_cases, gpu_table
from xrayhpc.bench.head import bench_head, head_table
from xrayhpc.bench.neighbour import bench_neighbour, neighbour_table
from xrayhpc.bench.precision import bench_precision, precision_table
from xrayhpc.bench.probes import bench_probes, probes_table
from xrayhpc.bench.report_build import bench_report, report_table
from xrayhpc.bench.runs import ROOT, Unavailable, data_view, find_data, shown_command
from xrayhpc.bench.worker import (
    bench_scaling,
    bench_seeds,
    compare,
    report_experiment,
    scaling_table,
    seeds_table,
    task1_cases,
    task2_cases,
    worker_table,
)
from xrayhpc.errors import cli
from xrayhpc.schema import write_atomic, write_json
from xrayhpc.study.device import cpu_model

PARTS = (
    "worker",
    "task2",
    "seeds",
    "scaling",
    "dispatch",
    "report",
    "neighbour",
    "precision",
    "head",
    "jax",
    "probes",
    "gpu",
)

# Task 1 runs the report's 40 epochs; Task 2 (100 in the report) and the scaling runs take fewer, or
# the template's Task 2 VGG16 alone would need hours here (~90 s an epoch on 2 cores).
FULL_EPOCHS = {"worker": 40, "task2": 5, "seeds": 40, "scaling": 3, "neighbour": 40, "precision": 40, "jax": 2, "probes": 40,
               "gpu": 40}  # fmt: skip

QUICK_EPOCHS = 2
HEAD_STEPS = 840  # Task 1's 40 epochs of 21 batches
QUICK_HEAD_STEPS = 100
QUICK_FRACTION = 0.25


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xrayhpc.bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a quarter of each class folder and {QUICK_EPOCHS} epochs: every part in a few minutes",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        help=f"epochs for Task 1 in the worker and seeds parts (default {FULL_EPOCHS['worker']}, quick {QUICK_EPOCHS})",
    )
    parser.add_argument(
        "--data", help="data root with two/ and all/ (default: $XRAYHPC_DATA, ../shared/data/covid-xray)"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "results" / "bench", help="where the figures go (default results/bench/)"
    )
    parser.add_argument(
        "--only", nargs="+", choices=PARTS, metavar="PART", help=f"run these parts only: {', '.join(PARTS)}"
    )
    parser.add_argument(
        "--task2-epochs",
        type=int,
        help="epochs of Task 2's MobileNet in the gpu part (default: the report's 100, quick 2)",
    )
    parser.add_argument(
        "--seeds", type=int, default=3, help="seeds of each pipeline in the seeds part (default 3, quick 2)"
    )
    parser.add_argument(
        "--augment",
        choices=("off", "on", "both"),
        default="both",
        help="Task 1: augmentation off (the fast path), on, or both (default)",
    )
    args = parser.parse_args(argv)
    epochs = dict(FULL_EPOCHS) if not args.quick else dict.fromkeys(FULL_EPOCHS, QUICK_EPOCHS)
    if args.epochs:
        epochs["worker"] = epochs["seeds"] = args.epochs
    head_steps = QUICK_HEAD_STEPS if args.quick else HEAD_STEPS
    source, kind = find_data(args.data)
    command = shown_command(argv if argv is not None else sys.argv[1:])
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="xrayhpc-bench-") as views:
        data = data_view(source, Path(views), fraction=QUICK_FRACTION) if args.quick else source
        if args.quick:
            kind += f", the first {QUICK_FRACTION:.0%} of each class folder"
        print(f"bench: {kind} ({source})", flush=True)
        machine = f"{cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}"
        header = {
            "command": command,
            "data": kind,
            "host": platform.node(),
            "machine": machine,
            "when": time.strftime("%Y-%m-%d %H:%M"),
        }
        augment = {"off": (False,), "on": (True,), "both": (False, True)}[args.augment]
        parts = {
            "worker": (
                "Worker benchmark: Task 1",
                lambda tmp: compare(task1_cases(data, epochs["worker"], augment), tmp),
                worker_table,
            ),
            "task2": (
                "Worker benchmark: Task 2",
                lambda tmp: compare(task2_cases(data, epochs["task2"]), tmp),
                worker_table,
            ),
            "seeds": (
                "Our worker and the course template over seeds",
                lambda tmp: bench_seeds(
                    report_experiment("binary", "vgg16", data, epochs=epochs["seeds"], augment=True),
                    2 if args.quick and args.seeds == 3 else args.seeds,
                    tmp,
                ),
                seeds_table,
            ),
            "scaling": ("Worker scaling", lambda tmp: bench_scaling(data, epochs["scaling"], tmp), scaling_table),
            "dispatch": (
                "Dispatch and status benchmark",
                lambda tmp: bench_dispatch(
                    [1, 10, 100, 1000, *([] if args.quick else [10_000])], tmp, data, 100 if args.quick else 1000
                ),
                dispatch_table,
            ),
            "report": ("Report benchmark", lambda tmp: bench_report([10, 100, 1000], tmp), report_table),
            "neighbour": (
                "Beside a busy neighbour",
                lambda tmp: bench_neighbour(data, epochs["neighbour"], tmp),
                neighbour_table,
            ),
            "precision": (
                "bfloat16 against float32",
                lambda tmp: bench_precision(data, epochs["precision"], tmp),
                precision_table,
            ),
            "head": ("Head training step against its floor", lambda tmp: bench_head(head_steps), head_table),
            "jax": ("Keras on JAX, compiled and not", lambda tmp: bench_jax(data, epochs["jax"], tmp), jax_table),
            "probes": (
                "What the models look at: the probe phase",
                lambda tmp: bench_probes(data, {"binary": epochs["probes"], "multiclass": epochs["task2"]}, tmp),
                probes_table,
            ),
            "gpu": (
                "Our worker on a GPU",
                lambda tmp: bench_gpu(
                    gpu_cases(data, epochs["gpu"], task2_epochs, "gpu"),
                    tmp,
                    save=lambda figures: write(args.out, "gpu", figures, time.perf_counter() - t, show=False),
                ),
                gpu_table,
            ),
        }
        task2_epochs = args.task2_epochs or (QUICK_EPOCHS if args.quick else None)

        def write(out: Path, name: str, figures: dict[str, Any], took: float, show: bool = True) -> None:
            title, _, table = parts[name]
            took = round(took, 1)
            write_json(out / f"{name}.json", {**header, "took_s": took, **figures})
            text = (
                f"# {title}\n\n`{command}` on {kind}, {machine}, {header['when']}, {took:.0f} s\n\n{table(figures)}\n"
            )
            write_atomic(out / f"{name}.md", lambda f: f.write(text.encode()))
            if show:
                print(text, flush=True)

        for name, (_, run, _) in parts.items():
            if args.only and name not in args.only:
                continue
            t = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix=f"xrayhpc-bench-{name}-") as tmp:
                try:
                    figures = run(Path(tmp))
                except Unavailable as err:
                    if args.only:
                        raise
                    print(f"bench: skipped: {err}", flush=True)
                    continue
            write(args.out, name, figures, time.perf_counter() - t)
    print(f"bench: done in {time.perf_counter() - start:.0f} s; figures in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
