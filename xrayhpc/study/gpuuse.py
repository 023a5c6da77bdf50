"""What a GPU job really used: its assigned GPUs sampled through NVIDIA's management library.

Grid Engine's accounting knows CPU time and memory, nothing of the GPU. A thread beside the
training asks NVML every few seconds for each assigned GPU's utilisation and memory in use, so
the run's folder says whether the GPU was starved (idle while the CPU worked) or far larger than
the job needed. NVML numbers GPUs its own way: the GPUs are found by the UUIDs the driver gives
for this process's assignment (`driver.report`), never by a CUDA index.
"""

from __future__ import annotations

import threading
from types import ModuleType, TracebackType
from typing import Any

from xrayhpc.schema import GpuUse
from xrayhpc.study import driver

EVERY_S = 5.0
IDLE = 5.0  # percent: a GPU this busy or less in a sample is idle in it


def nvml_module() -> ModuleType | str:
    """pynvml (the `nvidia-ml-py` wheel, in the `gpu` extra), or why it cannot be used."""
    try:
        import pynvml
    except ImportError:
        return "NVML's Python binding is not installed (pip install nvidia-ml-py, in the gpu extra)"
    return pynvml


class Sampler:
    """Samples the GPUs with these UUIDs every `every_s` seconds from `start` to `stop`, on a thread."""

    def __init__(self, uuids: list[str], nvml: Any, every_s: float = EVERY_S) -> None:
        self.nvml = nvml
        self.every_s = every_s
        nvml.nvmlInit()
        try:
            self.handles = [nvml.nvmlDeviceGetHandleByUUID(u) for u in uuids]
            self.names = [_text(nvml.nvmlDeviceGetName(h)) for h in self.handles]
            self.total_mb = sum(nvml.nvmlDeviceGetMemoryInfo(h).total for h in self.handles) / 1024**2
        except nvml.NVMLError:
            nvml.nvmlShutdown()
            raise
        self.utilisation: list[float] = []  # each sample's mean over the GPUs, percent
        self.memory_mb: list[float] = []  # each sample's sum over the GPUs
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="xrayhpc-gpu-sampler", daemon=True)

    def sample(self) -> None:
        """One sample of every GPU."""
        rates = [self.nvml.nvmlDeviceGetUtilizationRates(h).gpu for h in self.handles]
        used = [self.nvml.nvmlDeviceGetMemoryInfo(h).used for h in self.handles]
        self.utilisation.append(sum(rates) / len(rates))
        self.memory_mb.append(sum(used) / 1024**2)

    def _loop(self) -> None:
        while True:
            try:
                self.sample()
            except self.nvml.NVMLError:  # a GPU fallen off the bus: the training will say so
                return
            if self._stop.wait(self.every_s):
                return

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self.nvml.nvmlShutdown()

    def summary(self) -> GpuUse | None:
        if not self.utilisation:
            return None
        return GpuUse(
            gpus=self.names,
            samples=len(self.utilisation),
            every_s=self.every_s,
            utilisation_mean=round(sum(self.utilisation) / len(self.utilisation), 1),
            utilisation_peak=round(max(self.utilisation), 1),
            memory_peak_mb=round(max(self.memory_mb), 1),
            memory_total_mb=round(self.total_mb, 1),
            idle_share=round(sum(u <= IDLE for u in self.utilisation) / len(self.utilisation), 3),
        )


def sampler(every_s: float = EVERY_S) -> Sampler | str:
    """A sampler of this process's GPUs, or why there is none (a line for the worker's log)."""
    nvml = nvml_module()
    if isinstance(nvml, str):
        return nvml
    gpus = driver.report().gpus
    if not gpus or not all(g.uuid for g in gpus):
        return "the driver names no GPU (with its UUID) assigned to this job"
    try:
        return Sampler([g.uuid for g in gpus], nvml, every_s)
    except nvml.NVMLError as err:
        return f"NVML refused: {err}"


def _text(value: bytes | str) -> str:
    """Older bindings return bytes."""
    return value.decode() if isinstance(value, bytes) else value
