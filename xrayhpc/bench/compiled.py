"""Keras on JAX, compiled against uncompiled: Task 2's MobileNet trained end to end, on the CPU.

Keras's JAX trainer runs each step op by op unless the model is compiled with jit_compile, as
every JAX run of xrayhpc did before. `xla = "off"` still gives that path, so both are measured
here side by side: the same experiment, the same seed, each a fresh worker process with a cold
image cache. Beside them, one epoch's augmentation by scipy (what CPU runs use) and by the XLA
warp that a JAX run on a GPU uses, on the same images, measured on this CPU.
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from pathlib import Path
from typing import Any

from xrayhpc.bench.runs import Unavailable, in_child
from xrayhpc.bench.worker import report_experiment, run_worker
from xrayhpc.experiment import Experiment
from xrayhpc.render import markdown

CASES = {"uncompiled (xla = off)": "off", "compiled (the default)": "auto"}


def bench_jax(data: Path, epochs: int, workdir: Path, **settings: Any) -> dict[str, Any]:
    """Each case's wall time, its epochs' seconds (the first holds the compiling) and what they held;
    then the augmentation of one epoch both ways."""
    if importlib.util.find_spec("jax") is None:
        raise Unavailable("bench part jax: JAX is not installed here (make install brings it)")
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
    print("bench: jax: one epoch's augmentation, scipy and the XLA warp ...", flush=True)
    exp = report_experiment("multiclass", "mobilenet", data, **settings)
    warp = in_child("cpu", augmentation_seconds, exp, env={"KERAS_BACKEND": "jax"})
    return {"runs": runs, "epoch_speedup": round(before[steady] / after[steady], 2), "steady": steady, "warp": warp}


def augmentation_seconds(exp: Experiment) -> dict[str, Any]:
    """One epoch's transforms of the training images: scipy's, and the XLA warp's once compiled
    (run by `in_child` under JAX)."""
    from xrayhpc.study.augment import augment, augment_on_device
    from xrayhpc.study.data import load_dataset
    from xrayhpc.study.training import BACKBONE_BATCH, equal_batch

    data = load_dataset(exp.data_dir, exp.image_size, exp.interpolation, exp.validation_split, log=lambda _: None)
    images = data.train.images
    batch = equal_batch(len(images), BACKBONE_BATCH)
    augment_on_device(images, 0, batch=batch)  # compiled once
    out: dict[str, Any] = {"images": len(images)}
    for name, run in (
        ("scipy_s", lambda: augment(images, 1)),
        ("xla_s", lambda: augment_on_device(images, 1, batch=batch)),
    ):
        t = time.perf_counter()
        run()
        out[name] = round(time.perf_counter() - t, 3)
    return out


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
    warp = j["warp"]
    return "\n".join(
        [
            f"Keras {'on JAX ' + first['jax'] if first['jax'] else 'on JAX'}, Task 2's MobileNet trained end to end "
            f"({first['experiment']}, weights none, {sum(first['images'].values())} images), {first['epochs']} epochs, "
            "on this machine's CPU; each run a fresh worker process with a cold image cache.",
            "",
            markdown(header, body, "llrrrrr"),
            "",
            f"Compiled, {which} takes {j['epoch_speedup']}x less time than uncompiled; the first epoch holds the "
            "compiling. `augment s` is the whole run's augmentation (scipy's one thread in both: a CPU run).",
            "",
            f"One epoch's augmentation of the {warp['images']} training images on this CPU: scipy "
            f"{warp['scipy_s']:.2f} s, the XLA warp (compiled, as a JAX run on a GPU uses it) {warp['xla_s']:.2f} s.",
        ]
    )
