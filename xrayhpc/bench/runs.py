"""Running what is measured: child processes with their wall time and peak memory, the
machine's matmul rate, and the data (real, a quarter of it, or repeated)."""

from __future__ import annotations

import math
import multiprocessing
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

from xrayhpc.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
NOTE = "COPY.md"  # in a data copy made by `make gpu-carry`: its first line labels figures made from it
T = TypeVar("T")


class Unavailable(UserError):
    """A part that cannot run on this machine: `make bench` skips it, saying why; asked for alone, it
    is refused."""


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


def in_child(device: str, fn: Callable[..., T], *args: Any, env: dict[str, str] | None = None) -> T:
    """`fn(*args)` in a fresh process whose backend starts on `device`, with `env` set there first
    (such as another KERAS_BACKEND).

    The bench's own process never starts a backend: one started here would hold the GPU's memory
    while the workers it times run, and fix this process's devices for every later part.
    """
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(_on_device, device, env or {}, fn, *args).result()
        except BrokenProcessPool:
            raise UserError(
                f"benchmark child process for {fn.__name__} on the {device} died (see its output above)"
            ) from None


def _on_device(device: str, env: dict[str, str], fn: Callable[..., T], *args: Any) -> T:
    from xrayhpc.study import device as devices

    os.environ.update(env)  # this child's own, before its backend starts
    with devices.configured(device):
        devices.start_backend()
        return fn(*args)


def roofline(backbones: list[tuple[str, int]]) -> tuple[float, list[int]]:
    """The CPU roofline's two figures, from one child process on the CPU: the float32 matmul rate
    in GFLOP/s (best of a few) and one forward pass of each (backbone, image size), in FLOPs."""
    return in_child("cpu", _roofline, backbones)


def _roofline(backbones: list[tuple[str, int]]) -> tuple[float, list[int]]:
    from xrayhpc.study.models import build_backbone, forward_flops

    return _matmul_gflops(), [forward_flops(build_backbone(name, size, "none")) for name, size in backbones]


def _matmul_gflops() -> float:
    import keras

    a = keras.random.normal((2048, 2048), seed=0)
    b = keras.random.normal((2048, 2048), seed=1)
    keras.ops.convert_to_numpy(keras.ops.matmul(a, b))
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(5):
            c = keras.ops.matmul(a, b)
        keras.ops.convert_to_numpy(c)
        best = max(best, 5 * 2 * 2048**3 / (time.perf_counter() - t) / 1e9)
    return round(best, 1)


def shown_command(argv: list[str]) -> str:
    """The bench's command line as its figures record it: a path of this machine (an absolute one
    outside the checkout) is shown by its name alone, since the figures are committed and shared."""

    def shown(arg: str) -> str:
        option, eq, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        path = Path(value)
        if not path.is_absolute():
            return arg
        short = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else f".../{path.name}"
        return f"{option}{eq}{short}"

    return " ".join(["python -m xrayhpc.bench", *map(shown, argv)])


def find_data(given: str | None) -> tuple[Path, str]:
    """The real data when it can be found, else a synthetic set made for the run; a copy made by
    `make gpu-carry` is labelled as the copy it is (its COPY.md's first line)."""
    for candidate in (given, os.environ.get("XRAYHPC_DATA"), str(ROOT.parent / "shared" / "data" / "covid-xray")):
        if candidate and (Path(candidate) / "two").is_dir():
            folder = Path(candidate).resolve()
            note = folder / NOTE
            if note.is_file() and not note.is_symlink():
                return folder, note.read_text(errors="replace").splitlines()[0].strip() or "a copy of the data"
            return folder, f"the data in {Path(candidate).name}/"
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
