"""Running what is measured: child processes with their wall time and peak memory, the
machine's matmul rate, and the data (real, a quarter of it, or repeated)."""

from __future__ import annotations

import math
import os
import subprocess
import tempfile
import time
from pathlib import Path

from xrayhpc.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


def run_child(args: list[str], env: dict[str, str], log: Path) -> dict[str, float]:
    """Run a process to the end; its wall time and its own peak RSS (from wait4)."""
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise UserError(f"benchmark run failed ({' '.join(args[:4])} ...); see {log}")
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def matmul_gflops() -> float:
    """float32 matmul rate of this machine through TensorFlow (best of a few)."""
    import tensorflow as tf

    a = tf.random.normal((2048, 2048))
    b = tf.random.normal((2048, 2048))
    tf.matmul(a, b).numpy()
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(5):
            c = tf.matmul(a, b)
        c.numpy()
        best = max(best, 5 * 2 * 2048**3 / (time.perf_counter() - t) / 1e9)
    return round(best, 1)


def find_data(given: str | None) -> tuple[Path, str]:
    """The real data when it can be found, else a synthetic set made for the run."""
    for candidate in (given, os.environ.get("XRAYHPC_DATA"), str(ROOT.parent / "shared" / "data" / "covid-xray")):
        if candidate and (Path(candidate) / "two").is_dir():
            return Path(candidate).resolve(), f"the data in {Path(candidate).name}/"
    from xrayhpc.study.synthetic import make_dataset

    return make_dataset(Path(tempfile.mkdtemp(prefix="xrayhpc-bench-data-"))), "synthetic data (no real data found)"


def data_view(source: Path, out: Path, fraction: float = 1.0, repeat: int = 1) -> Path:
    """Links to the first `fraction` of each class folder's images, each `repeat` times.

    The quick benchmark's smaller set, and the scaling runs' x2 and x4 (repeated data).
    """
    from xrayhpc.study.data import list_images

    for folder in sorted(p for p in source.glob("*/*/*") if p.is_dir()):
        files = list_images(folder)
        files = files[: max(2, math.ceil(len(files) * fraction))]
        target = out / folder.relative_to(source)
        target.mkdir(parents=True, exist_ok=True)
        for k in range(repeat):
            for f in files:
                (target / f"r{k}-{f.name}").symlink_to(f.resolve())
    return out
