"""What a GPU job used, sampled through NVML faked at its Python boundary (tests/fakenvml): the
assigned GPU found by UUID, the figures and their hints, the thread that samples beside a run."""

from __future__ import annotations

import importlib.util
import os
import sys
import threading

import pytest

from conftest import ROOT
from xrayhpc.cluster.state import Row, usage_cells
from xrayhpc.schema import GpuUse
from xrayhpc.study import driver, gpuuse

FAKES = ROOT / "tests" / "fakenvml"


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201 - the fake module
    """The fake pynvml, fresh, and the fake nvidia-smi first on PATH."""
    spec = importlib.util.spec_from_file_location("pynvml", FAKES / "pynvml.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    driver._query.cache_clear()
    yield module
    driver._query.cache_clear()


def test_the_gpu_cuda_was_given_is_the_one_sampled_found_by_uuid(nvml, monkeypatch: pytest.MonkeyPatch) -> None:
    """CUDA's GPU 1 (PCI order, as the worker sets it) is nvidia-smi's B; NVML lists B first, so an
    index taken across would have sampled A."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    got = gpuuse.sampler()
    assert isinstance(got, gpuuse.Sampler), got
    assert nvml.asked == ["GPU-bbbb-2222"] and got.names == ["Fake GPU B"]


def test_figures_of_a_data_bound_run_and_their_hints(nvml, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setenv("FAKE_NVML_UTIL", "0,2,90,100,0,0")
    got = gpuuse.sampler()
    for _ in range(6):
        got.sample()
    use = got.summary()
    assert use == GpuUse(
        gpus=["Fake GPU A"],
        samples=6,
        every_s=gpuuse.EVERY_S,
        utilisation_mean=32.0,
        utilisation_peak=100.0,
        memory_peak_mb=2048.0,
        memory_total_mb=16384.0,
        idle_share=round(4 / 6, 3),
    )
    hint = Row("x", "done", gpu_use=use).hint()
    assert "GPU idle in 67% of the samples: data-bound" in hint
    assert "used 2.0 of 16 GB of GPU memory: a smaller `gpu_memory` request queues sooner" in hint
    assert usage_cells(None, use)[-2:] == ["32% (idle 67%)", "2048 of 16384"]
    busy = GpuUse(["A"], 3, 5.0, 95.0, 99.0, 15000.0, 16384.0, 0.0)
    assert busy.hint() == ""


def test_the_thread_samples_until_the_run_ends(nvml, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sampled beside the run, from its start to its end; waited on by samples taken, not by time."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaaa")  # a UUID prefix, as CUDA takes it
    third = threading.Event()
    real = nvml.nvmlDeviceGetUtilizationRates

    def counted(handle: str):  # noqa: ANN202
        rates = real(handle)
        if nvml.samples >= 3:
            third.set()
        return rates

    monkeypatch.setattr(nvml, "nvmlDeviceGetUtilizationRates", counted)
    got = gpuuse.sampler(every_s=0.01)
    with got:
        assert third.wait(60)
    taken = got.summary().samples
    assert taken >= 3 and nvml.samples == taken  # none after the end


def test_without_nvml_or_an_assigned_gpu_the_log_says_why(nvml, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "NoDevFiles")  # Grid Engine gave none
    assert gpuuse.sampler() == "the driver names no GPU (with its UUID) assigned to this job"
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed
    assert "pip install nvidia-ml-py" in gpuuse.sampler()
