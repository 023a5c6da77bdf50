"""Each phase of our worker alone, then beside a second worker that trains: what a shared node costs.

On a laptop, a login node or a shared compute node another process often holds a core. Thread
pools that spin at barriers lose whole time slices then, and the cheapest phase can become the
slowest. The target: no phase more than 2x slower beside the neighbour.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from xrayhpc.bench.runs import ROOT
from xrayhpc.bench.worker import report_experiment, run_worker
from xrayhpc.render import markdown
from xrayhpc.schema import PHASES, read_progress

NEIGHBOUR_EPOCHS = 100_000  # it trains until it is stopped


def start_neighbour(data: Path, workdir: Path, timeout_s: float = 600) -> subprocess.Popen[bytes]:
    """Task 1 with augmentation (the backbone runs every epoch), started and waited for until it trains."""
    exp = report_experiment("binary", "vgg16", data, epochs=NEIGHBOUR_EPOCHS, augment=True, image_size=128)
    spec = workdir / "spec-neighbour.json"
    spec.write_text(json.dumps(exp.settings()))
    results = workdir / "neighbour"
    proc = subprocess.Popen(
        [sys.executable, "-m", "xrayhpc.worker", "--spec", str(spec), "--results", str(results)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env={**os.environ, "XRAYHPC_CACHE": str(workdir / "cache-neighbour")},
    )
    end = time.monotonic() + timeout_s
    while (p := read_progress(results / exp.id)) is None or p.epoch < 1:
        if proc.poll() is not None or time.monotonic() > end:
            proc.kill()
            raise RuntimeError(f"the neighbour worker did not start training (log: {results / exp.id})")
        time.sleep(0.5)
    return proc


def bench_neighbour(data: Path, epochs: int, workdir: Path) -> dict[str, Any]:
    """Task 1, augmentation off (the fast path): alone, then beside a training worker; phase by phase."""
    exp = report_experiment("binary", "vgg16", data, epochs=epochs, augment=False)
    print("bench: neighbour: our worker alone ...", flush=True)
    alone, metrics_alone = run_worker(exp, workdir, "alone")
    print("bench: neighbour: starting a second worker that trains ...", flush=True)
    neighbour = start_neighbour(data, workdir)
    try:
        print("bench: neighbour: our worker beside it ...", flush=True)
        beside, metrics_beside = run_worker(exp, workdir, "beside")
    finally:
        neighbour.send_signal(signal.SIGTERM)
        neighbour.wait(timeout=60)
    phases = {
        name: {"alone": getattr(metrics_alone.timing, name), "beside": getattr(metrics_beside.timing, name)}
        for name in (*PHASES, "total")
    }
    for p in phases.values():
        p["ratio"] = round(p["beside"] / max(p["alone"], 1e-3), 2)
    return {
        "experiment": exp.id,
        "epochs": epochs,
        "cpus": os.cpu_count(),
        "phases": phases,
        "wall": {"alone": alone["wall_s"], "beside": beside["wall_s"]},
    }


def neighbour_table(n: dict[str, Any]) -> str:
    body = [[name, f"{p['alone']:.2f}", f"{p['beside']:.2f}", f"{p['ratio']:.2f}x"] for name, p in n["phases"].items()]
    body.append(
        [
            "wall (process)",
            f"{n['wall']['alone']:.1f}",
            f"{n['wall']['beside']:.1f}",
            f"{n['wall']['beside'] / n['wall']['alone']:.2f}x",
        ]
    )
    worst = max((p["ratio"], name) for name, p in n["phases"].items() if name != "total")
    return "\n".join(
        [
            f"{n['experiment']} (augmentation off, {n['epochs']} epochs), seconds per phase on {n['cpus']} CPUs, alone and "
            "beside a second worker training Task 1 with augmentation (128 px). Target: no phase over 2x.",
            "",
            markdown(["phase", "alone s", "beside s", "ratio"], body, "lrrr"),
            "",
            f"Worst phase: {worst[1]}, {worst[0]:.2f}x.",
        ]
    )
