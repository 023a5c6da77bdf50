"""The GPU paths on a CPU, with the GPU faked at TensorFlow's device boundary (tests/fakegpu):
one device per process, no environment change that outlives its call, a bench process that
holds no backend, and the kernel check before training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, faked, python_c
from test_worker import small
from xrayhpc.experiment import load_grid, parse_overrides, select
from xrayhpc.schema import read_json, read_metrics
from xrayhpc.study import device, driver, kernels
from xrayhpc.study.device import DeviceError

FAKE_GPU = faked("fakegpu")
FAKE_NVML = {  # NVML's binding and nvidia-smi, both faked: two GPUs, numbered differently
    "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "fakenvml"), FAKE_GPU["PYTHONPATH"]]),
    "PATH": os.pathsep.join([str(ROOT / "tests" / "fakenvml"), os.environ["PATH"]]),
}


def python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -c code` with the GPU faked."""
    return python_c(code, {**FAKE_GPU, **(env or {})})


def test_configured_puts_the_environment_back_even_on_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "_backend_started", lambda: False)  # as in a fresh process
    monkeypatch.setattr(device, "_started_for", device._started_for)  # this process's own, kept
    monkeypatch.setenv("XRAYHPC_SLOTS", "3")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    before = dict(os.environ)
    with device.configured("cpu", deterministic=True):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "-1" and os.environ["OMP_NUM_THREADS"] == "3"
        assert device.DETERMINISTIC_XLA in os.environ["XLA_FLAGS"]
    assert dict(os.environ) == before
    with pytest.raises(RuntimeError), device.configured("cpu"):
        raise RuntimeError("the run failed")
    assert dict(os.environ) == before


@pytest.mark.slow
def test_a_process_started_on_the_gpu_refuses_a_cpu_run_in_one_line() -> None:
    code = (
        "from xrayhpc.study import device\n"
        "with device.configured('gpu'):\n    print(device.check('gpu'))\n"
        "try:\n    device.configured('cpu').__enter__()\nexcept device.DeviceError as err:\n    print(err)\n"
    )
    out = python(code)
    assert out.returncode == 0, out.stderr
    said = out.stdout.strip().splitlines()
    assert said[0] == "gpu: Fake GPU"
    assert "started its backend on Fake GPU" in said[1] and "a process of its own" in said[1]


@pytest.mark.slow
def test_one_worker_call_runs_the_report_grids_gpu_then_cpu_runs(synthetic: Path, tmp_path: Path) -> None:
    """`python -m xrayhpc.worker --grid jobs/report.toml` runs task1-vgg16-gpu before task1-vgg16-cpu;
    the GPU run samples the GPU it was given (CUDA's 1: nvidia-smi's B) through NVML (tests/fakenvml)."""
    overrides = ["weights=none", "epochs=1", "image_size=32"]
    args = ["--grid", "jobs/report.toml", "--only", "task1-vgg16-?pu", "--data", str(synthetic)]
    args += ["--results", str(tmp_path), *(a for o in overrides for a in ("--set", o))]
    out = subprocess.run(
        [sys.executable, "-m", "xrayhpc.worker", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **FAKE_GPU, **FAKE_NVML, "CUDA_VISIBLE_DEVICES": "1", "FAKE_NVML_UTIL": "0,80"},
        cwd=ROOT,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr
    gpu, cpu = read_metrics(tmp_path / "task1-vgg16-gpu"), read_metrics(tmp_path / "task1-vgg16-cpu")
    grid = select(
        load_grid(ROOT / "jobs" / "report.toml", parse_overrides(overrides), str(synthetic)), "task1-vgg16-?pu"
    )
    assert [gpu.experiment["fingerprint"], cpu.experiment["fingerprint"]] == [e.fingerprint for e in grid]
    assert gpu.environment.device_used == "gpu: Fake GPU" and set(gpu.environment.kernel_check["second_s"]) == {
        "conv",
        "matmul",
        "warp",
        "reduce",
    }
    assert cpu.environment.device_used.startswith("cpu: ") and cpu.environment.kernel_check is None
    assert "kernel check on gpu: Fake GPU" in (tmp_path / "task1-vgg16-gpu" / "worker.log").read_text()
    use = gpu.gpu_use
    assert use is not None and use.gpus == ["Fake GPU B"] and use.samples >= 1 and use.memory_peak_mb == 2048
    assert cpu.gpu_use is None


@pytest.mark.slow
def test_the_bench_process_holds_no_backend_and_keeps_its_environment() -> None:
    """The roofline runs in a child on the CPU; the device check after it still finds the GPU."""
    code = (
        "import os, sys\nbefore = dict(os.environ)\n"
        "from xrayhpc.bench.gpu import device_check\nfrom xrayhpc.bench.runs import roofline\n"
        "rate, [flops] = roofline([('mobilenet', 32)])\n"
        "print(rate > 0, flops > 0, 'tensorflow' in sys.modules, 'jax' in sys.modules, dict(os.environ) == before)\n"
        "print(device_check('gpu')['used'])\n"
    )
    out = python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-2:] == ["True True False False True", "gpu: Fake GPU"]


@pytest.mark.slow
def test_the_kernel_check_runs_the_jobs_operations_in_a_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    check = kernels.isolated("cpu: this CPU", "bfloat16")
    assert set(check.first_s) == set(check.second_s) == {"conv", "matmul", "warp", "reduce"}
    assert all(t > 0 for t in check.second_s.values()) and check.precision == "bfloat16"
    assert check.line().startswith("kernel check on cpu: this CPU (bfloat16): conv ")


H200 = driver.Gpu("0", "GPU-1", "NVIDIA H200", 9.0, "535.104.05")
H200_ON_AN_OLD_DRIVER = driver.DriverReport([H200], every=1, version=H200.driver)
PTX_FAILURE = "CUDA_ERROR_UNSUPPORTED_PTX_VERSION: the provided PTX was compiled with an unsupported toolchain."


def failing(message: str) -> dict[str, object]:
    def op() -> None:
        raise RuntimeError(message)

    return {"conv": lambda: 0.0, "warp": op}


def test_a_kernel_the_driver_cannot_compile_is_refused_naming_the_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver, "report", lambda visible=None: H200_ON_AN_OLD_DRIVER)
    monkeypatch.setattr(kernels, "build", lambda: kernels.Build("12.5.1", ["sm_60", "sm_80", "sm_89", "compute_90"]))
    with pytest.raises(DeviceError) as caught:
        kernels.run("gpu: NVIDIA H200", "float32", failing(PTX_FAILURE))
    line = str(caught.value)
    assert len(line.splitlines()) == 1
    assert "warp (float32)" in line and "UNSUPPORTED_PTX_VERSION" in line
    assert "driver 535.104.05" in line and "build CUDA 12.5.1" in line and "compute_90" in line
    assert "GPU compute capability 9.0" in line and "driver older than the build's CUDA" in line and "gpu_c" in line


@pytest.mark.slow
@pytest.mark.parametrize(
    ("failure", "said"),
    [
        ("ptx", "UNSUPPORTED_PTX_VERSION"),
        ("abort", "the check (float32): its process died of SIGABRT"),
    ],
)
def test_a_gpu_whose_kernels_fail_is_refused_before_training_and_not_retried(
    failure: str, said: str, synthetic: Path, tmp_path: Path
) -> None:
    exp = small(synthetic, device="gpu", epochs=1, image_size=32)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(exp.settings()))
    out = subprocess.run(
        [sys.executable, "-m", "xrayhpc.worker", "--spec", str(spec), "--results", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, **FAKE_GPU, "FAKE_GPU_KERNELS": failure},
        cwd=ROOT,
        timeout=600,
    )
    assert out.returncode == 2, out.stderr
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("error: the kernel check failed on gpu: Fake GPU: ") and said in line
    progress = read_json(tmp_path / exp.id / "progress.json")
    assert progress["state"] == "failed" and progress["error_kind"] == "user"
    assert progress["phase"] == "failed" and progress["epoch"] == 0
    assert not (tmp_path / exp.id / "metrics.json").exists()
