"""Our worker on this machine's GPU, per phase, beside the course's published Task 1 times.

    python -m xrayhpc.bench --only gpu        (on a GPU node; KERAS_BACKEND=jax works too)

Task 1 (frozen VGG16, 40 epochs) with augmentation off and on, and Task 2's MobileNet trained end to
end with the report's settings. `make bench` skips this part where no GPU is visible, saying why.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xrayhpc.bench.runs import ROOT, Unavailable
from xrayhpc.bench.worker import report_experiment, run_worker
from xrayhpc.errors import UserError, cli, said_errors
from xrayhpc.experiment import Experiment
from xrayhpc.render import markdown
from xrayhpc.report.compare import PUBLISHED_SECONDS
from xrayhpc.schema import PHASES
from xrayhpc.study import kernels

# Issue 15's target on one current datacenter GPU: Task 1 with augmentation, 40 epochs, end to end.
TARGET_S = 20.0
PUBLISHED_EPOCHS = 40


class NoGpu(Unavailable):
    """No GPU a worker could use here."""


def device_check(device: str) -> dict[str, Any]:
    """What a worker asking for `device` would use here, and its kernel check there, asked of a
    fresh process: the bench's own process must not start a backend that holds the GPU's memory
    while the workers run. No GPU skips the part; a GPU whose kernels fail stops the bench."""
    out = subprocess.run(
        [sys.executable, "-m", "xrayhpc.bench.gpu", device], capture_output=True, text=True, cwd=ROOT, check=False
    )
    errors = said_errors(out.stderr)
    if out.returncode != 0:
        said = errors[-1] if errors else f"the device check exited with status {out.returncode}"
        if said.startswith(kernels.FAILED) or out.returncode < 0:  # a GPU whose kernels fail, or kill
            raise UserError(f"bench part gpu: {said}")
        raise NoGpu(f"bench part gpu: {said}")
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise UserError(f"bench part gpu: the device check gave no answer ({out.stdout.strip()[-200:]!r})") from None


def gpu_cases(
    data: Path, task1_epochs: int, task2_epochs: int | None, device: str, **settings: Any
) -> dict[str, Experiment]:
    """The report's own experiments on `device` (`task2_epochs` None: the report's 100)."""
    task2 = {"epochs": task2_epochs} if task2_epochs else {}
    return {
        "Task 1, augmentation off": report_experiment(
            "binary", "vgg16", data, epochs=task1_epochs, augment=False, device=device, **settings
        ),
        "Task 1, augmentation on": report_experiment(
            "binary", "vgg16", data, epochs=task1_epochs, augment=True, device=device, **settings
        ),
        "Task 2, MobileNet trained": report_experiment(
            "multiclass", "mobilenet", data, device=device, **task2, **settings
        ),
    }


def bench_gpu(
    cases: dict[str, Experiment],
    workdir: Path,
    device: str = "gpu",
    save: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """The kernel check, then each case by our worker, a fresh process with a cold image cache, timed
    end to end; `save` is given the figures so far as each case ends (a run cut short keeps them)."""
    check = device_check(device)
    used = check["used"]
    print(f"bench: gpu part on {used}; {check['line']}", flush=True)
    runs: dict[str, Any] = {}
    figures = {
        "device": used,
        "kernel_check": check,
        "published_s": PUBLISHED_SECONDS[("binary", "vgg16")],
        "target_s": TARGET_S,
        "runs": runs,
    }
    if save:
        save(figures)
    for n, (label, exp) in enumerate(cases.items()):
        print(f"bench: {label}: our worker, {exp.epochs} epochs on {device} ...", flush=True)
        run, metrics = run_worker(exp, workdir, f"gpu{n}")
        runs[label] = {
            "experiment": exp.id,
            "epochs": exp.epochs,
            "augment": exp.augment,
            "images": metrics.images,
            **run,
            "phases": dataclasses.asdict(metrics.timing),
            "accuracy": metrics.test.accuracy,
            "device_used": metrics.environment.device_used,
        }
        if save:
            save(figures)
    return figures


def gpu_table(g: dict[str, Any]) -> str:
    header = ["run", "epochs", "wall s", *(f"{p} s" for p in PHASES), "train img/s", "test acc"]
    body = [
        [
            label,
            str(r["epochs"]),
            f"{r['wall_s']:.1f}",
            *(f"{r['phases'][p]:.1f}" for p in PHASES),
            f"{r['phases']['train_images_per_second']:.0f}",
            f"{r['accuracy']:.3f}",
        ]
        for label, r in g["runs"].items()
    ]
    published = g["published_s"]
    lines = [
        f"On {g['device']}; each run a fresh worker process with a cold image cache, wall time end to end.",
        "",
        g["kernel_check"]["line"] + ".",
        "",
        markdown(header, body, "lrrrrrrrrr"),
        "",
        f"The course's published Task 1 ({PUBLISHED_EPOCHS} epochs, augmentation on): "
        f"GPU {published['gpu']:.0f} s, CPU {published['cpu']:.0f} s.",
    ]
    task1 = g["runs"].get("Task 1, augmentation on")
    if task1 and task1["epochs"] == PUBLISHED_EPOCHS:
        wall = task1["wall_s"]
        verdict = "met" if wall < g["target_s"] else "not met"
        lines.append(
            f"Ours, the same run from random weights (the same work): {wall:.1f} s, {published['gpu'] / wall:.1f}x faster than the published GPU time; "
            f"target under {g['target_s']:.0f} s: {verdict}."
        )
    elif task1:
        lines.append(
            f"Ours: {task1['epochs']} of {PUBLISHED_EPOCHS} epochs (quick), not set against the published time."
        )
    return "\n".join(lines)


@cli
def main(argv: list[str] | None = None) -> int:
    """Print, as JSON, the device a worker asking for the one named would use and its kernel check
    there (float32), or say why it cannot."""
    from xrayhpc.study import device

    (asked,) = argv if argv is not None else sys.argv[1:]
    with device.configured(asked):
        used = device.check(asked)
        check = kernels.run(used, "float32")
    print(json.dumps({"used": used, "line": check.line(), **check.record()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
