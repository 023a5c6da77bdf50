"""Why a GPU run finds no GPU: each cause named with its own fix, faked at the detection boundary."""

from __future__ import annotations

from pathlib import Path

import pytest

from xrayhpc.study import device
from xrayhpc.study.device import DeviceError, GpuFacts, diagnose

CUDA_BUILD = dict(backend="tensorflow", built_with_cuda=True, cuda_libraries=True, min_compute=6.0, host="scc-k01")


def test_a_build_without_cuda_points_at_the_gpu_install() -> None:
    line = diagnose(GpuFacts(**{**CUDA_BUILD, "built_with_cuda": False}, physical=[("Tesla V100", 7.0)]))
    assert "was built without CUDA" in line and "make install GPU=1" in line and "-l gpus" not in line


def test_missing_cuda_libraries_point_at_the_gpu_install() -> None:
    line = diagnose(GpuFacts(**{**CUDA_BUILD, "cuda_libraries": False}, physical=[("Tesla V100", 7.0)]))
    assert "CUDA libraries are not installed" in line and "make install GPU=1" in line


@pytest.mark.parametrize("visible_devices", [None, "", "-1"])
def test_no_gpu_allocated_points_at_the_request(visible_devices: str | None) -> None:
    physical = [] if visible_devices is None else [("Tesla V100", 7.0)]
    line = diagnose(GpuFacts(**CUDA_BUILD, physical=physical, cuda_visible_devices=visible_devices))
    assert "no GPU was allocated to this job" in line and "-l gpus=1" in line and "scc-k01" in line
    assert "install" not in line


def test_a_gpu_too_old_for_the_build_names_it_and_the_capability_to_ask() -> None:
    line = diagnose(GpuFacts(**CUDA_BUILD, physical=[("Tesla K40m", 3.5)], cuda_visible_devices="0"))
    assert "Tesla K40m has compute capability 3.5" in line and ">= 6.0" in line and "-l gpu_c=6.0" in line


def test_a_visible_gpu_needs_no_diagnosis() -> None:
    assert diagnose(GpuFacts(**CUDA_BUILD, visible=["NVIDIA H200"])) is None


def test_a_gpu_run_refuses_with_the_diagnosis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "gpu_names", lambda: [])
    monkeypatch.setattr(
        device, "gpu_facts", lambda: GpuFacts(**CUDA_BUILD, physical=[("Tesla K40m", 3.5)], cuda_visible_devices="0")
    )
    with pytest.raises(DeviceError, match="Tesla K40m has compute capability 3.5.*Refusing to run on the CPU"):
        device.check("gpu")


def test_driver_report_is_read_from_nvidia_smi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA H200, 9.0'\necho 'Tesla K40m, 3.5'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert device.physical_gpus() == [("NVIDIA H200", 9.0), ("Tesla K40m", 3.5)]


def test_the_scc_profile_asks_only_for_gpus_the_installed_build_can_drive() -> None:
    pytest.importorskip("tensorflow")
    from xrayhpc.cluster.profile import load_profile

    built, minimum = device.tensorflow_build()
    if not built:
        pytest.skip("this TensorFlow has no CUDA build information")
    assert load_profile("scc").devices["gpu"]["gpu_c"] >= minimum >= device.JAX_MIN_COMPUTE
