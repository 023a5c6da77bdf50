"""NVIDIA's management library faked at its Python boundary (put this folder on PYTHONPATH, or
import it): two GPUs, listed in the other order from nvidia-smi's (tests/fakenvml/nvidia-smi), as
NVML and CUDA may number them; each sample's utilisation is the next of FAKE_NVML_UTIL (percent,
comma-separated, the last repeated); 2 GiB of 16 GiB in use."""

import os
from types import SimpleNamespace

GPUS = {"GPU-bbbb-2222": "Fake GPU B", "GPU-aaaa-1111": "Fake GPU A"}  # NVML's order: B first
asked: list[str] = []  # the UUIDs asked for, in order
samples = 0


class NVMLError(Exception):
    pass


def nvmlInit() -> None:
    global samples
    samples = 0


def nvmlShutdown() -> None:
    pass


def nvmlDeviceGetCount() -> int:
    return len(GPUS)


def nvmlDeviceGetHandleByIndex(index: int) -> str:
    return list(GPUS)[index]


def nvmlDeviceGetHandleByUUID(uuid: bytes | str) -> str:
    uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
    if uuid not in GPUS:
        raise NVMLError("Not Found")
    asked.append(uuid)
    return uuid


def nvmlDeviceGetName(handle: str) -> str:
    return GPUS[handle]


def nvmlDeviceGetUtilizationRates(handle: str) -> SimpleNamespace:
    global samples
    rates = [float(r) for r in os.environ.get("FAKE_NVML_UTIL", "50").split(",")]
    value = rates[min(samples, len(rates) - 1)]
    samples += 1
    return SimpleNamespace(gpu=value, memory=value / 2)


def nvmlDeviceGetMemoryInfo(handle: str) -> SimpleNamespace:
    return SimpleNamespace(total=16 * 1024**3, used=2 * 1024**3, free=14 * 1024**3)
