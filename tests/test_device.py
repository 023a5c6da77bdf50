"""Why a GPU run finds no GPU: each cause named with its own fix, faked at the detection boundary."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from xrayhpc.study import device, driver, kernels
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


NODE = [  # nvidia-smi's rows on a node of two GPU models: index, uuid, name, compute_cap, driver_version
    "0, GPU-1a2b3c4d-0000-0000-0000-000000000000, NVIDIA A100-SXM4-80GB, 8.0, 550.54.15",
    "1, GPU-5e6f7a8b-0000-0000-0000-000000000000, Tesla V100-SXM2-16GB, 7.0, 550.54.15",
]


def fake_nvidia_smi(monkeypatch: pytest.MonkeyPatch, folder: Path, body: str) -> None:
    """`nvidia-smi` on PATH answering with the shell `body` (its arguments are in "$*")."""
    fake = folder / "nvidia-smi"
    fake.write_text(f"#!/bin/sh\n{body}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")


def rows(lines: list[str]) -> str:
    return "\n".join(f"echo '{line}'" for line in lines)


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        (None, [("NVIDIA A100-SXM4-80GB", 8.0), ("Tesla V100-SXM2-16GB", 7.0)]),
        ("1", [("Tesla V100-SXM2-16GB", 7.0)]),
        ("GPU-5e6f7a8b", [("Tesla V100-SXM2-16GB", 7.0)]),
        ("1,0", [("Tesla V100-SXM2-16GB", 7.0), ("NVIDIA A100-SXM4-80GB", 8.0)]),
        ("-1", []),
        ("NoDevFiles", []),
        (
            "MIG-4c6b0000-0000",
            [("NVIDIA A100-SXM4-80GB", 8.0), ("Tesla V100-SXM2-16GB", 7.0)],
        ),  # its GPU cannot be told
    ],
)
def test_only_the_gpus_assigned_to_the_job_are_judged(
    visible: str | None, expected: list[tuple[str, float]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_nvidia_smi(monkeypatch, tmp_path, rows(NODE))
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert device.physical_gpus() == expected
    assert driver.report().version == "550.54.15" and driver.report().every == 2


def test_bfloat16_is_judged_on_the_assigned_gpu_not_the_node(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_nvidia_smi(monkeypatch, tmp_path, rows(NODE))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert device.bfloat16_problem("gpu: NVIDIA A100-SXM4-80GB") is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert "Tesla V100-SXM2-16GB (compute capability 7.0) has no bfloat16" in device.bfloat16_problem("gpu: V100")


def test_a_driver_that_does_not_answer_is_not_called_no_gpu_allocated(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_nvidia_smi(
        monkeypatch,
        tmp_path,
        "echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'; exit 9",
    )
    said = driver.report("0")
    assert said.gpus == [] and "status 9" in said.problem and "could not communicate" in said.problem
    line = diagnose(GpuFacts(**CUDA_BUILD, cuda_visible_devices="0", driver_problem=said.problem))
    assert "the NVIDIA driver did not answer" in line and "no GPU was allocated" not in line


def test_a_driver_too_old_for_compute_cap_still_names_its_gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Drivers of 470 and older refuse the compute_cap field; they still name the GPU and their version."""
    fake_nvidia_smi(
        monkeypatch,
        tmp_path,
        'case "$*" in *compute_cap*) echo \'Field "compute_cap" is not a valid field to query.\'; exit 2;; esac\n'
        "echo '0, GPU-1a2b3c4d, Tesla K80, 470.82.01'",
    )
    said = driver.report("0")
    assert [(g.name, g.compute, g.driver) for g in said.gpus] == [("Tesla K80", None, "470.82.01")]
    line = diagnose(
        GpuFacts(**CUDA_BUILD, physical=[("Tesla K80", None)], cuda_visible_devices="0", driver_version=said.version)
    )
    assert "470.82.01" in line and "too old" in line and "no GPU was allocated" not in line


def test_jax_on_cuda_13_is_recognised_with_its_own_oldest_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == "jax_cuda13_plugin" else real(name, *a)
    )
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert device.jax_plugin() == "jax_cuda13_plugin"
    assert kernels.build() == kernels.Build("13", ["compute capability >= 7.5"])


def test_the_scc_profile_asks_only_for_gpus_the_installed_build_can_drive() -> None:
    pytest.importorskip("tensorflow")
    from xrayhpc.cluster.profile import load_profile

    built, minimum = device.tensorflow_build()
    if not built:
        pytest.skip("this TensorFlow has no CUDA build information")
    assert load_profile("scc").devices["gpu"]["gpu_c"] >= minimum >= device.JAX_MIN_COMPUTE
