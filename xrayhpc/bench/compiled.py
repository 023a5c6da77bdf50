"""Keras on JAX, compiled against uncompiled: Task 2's MobileNet trained end to end, on the CPU.

Keras's JAX trainer runs each step op by op unless the model is compiled with jit_compile, and
before xrayhpc compiled them its JAX runs also augmented with scipy on one thread. `xla = "off"`
still gives that path, so both are measured here side by side: the same experiment, the same
seed, each a fresh worker process with a cold image cache.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from xrayhpc.bench.worker import report_experiment, run_worker
from xrayhpc.render import markdown

CASES = {"uncompiled (xla = off)": "off", "compiled (the default)": "auto"}


def bench_jax(data: Path, epochs: int, workdir: Path, **settings: Any) -> dict[str, Any]:
    """Each case's wall time, its epochs' seconds (the first holds the compiling) and what they held."""
    runs = {}
    for label, xla in CASES.items():
        exp = report_experiment("multiclass", "mobilenet", data, epochs=epochs, xla=xla, **settings)
        print(f"bench: jax: {label}, {epochs} epochs ...", flush=True)
        run, metrics = run_worker(exp, workdir, f"jax-{xla}", {"KERAS_BACKEND": "jax"})
        seconds = [h["seconds"] for h in metrics.history]
        runs[label] = {
            **run,
            "experiment": exp.id,
            "epochs": epochs,
            "images": metrics.images,
            "augmentation": metrics.augmentation,
            "first_epoch_s": seconds[0],
            "later_epoch_s": statistics.median(seconds[1:]) if len(seconds) > 1 else None,
            "train_breakdown": metrics.timing.train_breakdown,
            "accuracy": metrics.test.accuracy,
            "jax": metrics.environment.jax,
        }
    before, after = (runs[label] for label in CASES)
    steady = "later_epoch_s" if after["later_epoch_s"] else "first_epoch_s"
    return {"runs": runs, "epoch_speedup": round(before[steady] / after[steady], 2), "steady": steady}


def jax_table(j: dict[str, Any]) -> str:
    header = ["run", "augmentation", "wall s", "first epoch s", "later epochs s", "augment s", "test acc"]
    body = [
        [
            label,
            r["augmentation"],
            f"{r['wall_s']:.1f}",
            f"{r['first_epoch_s']:.2f}",
            f"{r['later_epoch_s']:.2f}" if r["later_epoch_s"] is not None else "-",
            f"{r['train_breakdown'].get('augment', 0.0):.2f}",
            f"{r['accuracy']:.3f}",
        ]
        for label, r in j["runs"].items()
    ]
    first = next(iter(j["runs"].values()))
    which = "a later epoch (the median)" if j["steady"] == "later_epoch_s" else "the one epoch"
    return "\n".join(
        [
            f"Keras {'on JAX ' + first['jax'] if first['jax'] else 'on JAX'}, Task 2's MobileNet trained end to end "
            f"({first['experiment']}, weights none, {sum(first['images'].values())} images), {first['epochs']} epochs, "
            "on this machine's CPU; each run a fresh worker process with a cold image cache.",
            "",
            markdown(header, body, "llrrrrr"),
            "",
            f"Compiled, {which} takes {j['epoch_speedup']}x less time than uncompiled. The first epoch holds "
            "the compiling; `augment s` is the whole run's augmentation (scipy's one thread uncompiled, one "
            "XLA warp per batch compiled).",
        ]
    )
