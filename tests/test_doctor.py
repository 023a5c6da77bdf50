"""The preflight: what a job of a grid will see, and which experiments would fail and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from xrayhpc import doctor
from xrayhpc.study import device


@pytest.fixture
def no_cuda_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a machine installed with plain `make install`, whatever this one has."""
    monkeypatch.setattr(device, "cuda_wheels", lambda: False)


def smoke_cpu(data: Path, *more: str) -> list[str]:
    """The smoke grid's CPU experiments on `data`, with the local test cluster's profile."""
    return ["--grid", "jobs/smoke.toml", "--only", "*-cpu", "--data", str(data), "--profile", "local", *more]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = doctor.main(list(args))
    out = capsys.readouterr()
    return code, out.out + out.err


def test_the_report_grid_names_the_gpu_and_weights_problems(
    synthetic: Path, capsys: pytest.CaptureFixture[str], no_cuda_libraries: None
) -> None:
    code, out = run(capsys, "--grid", "jobs/report.toml", "--data", str(synthetic), "--executor", "local")
    assert code == 1
    lines = out.splitlines()
    backend = next(line for line in lines if "backend" in line)
    assert backend.startswith("✗") and "no CUDA libraries" in backend
    assert "fix: make install GPU=1" in out
    missing = [line for line in lines if line.startswith("✗ weights")]
    assert len(missing) == 2 and any("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in m for m in missing)
    assert "fix: make weights GRID=jobs/report.toml" in out
    assert any(
        line.startswith("✓ data") and "two: train 16, val 4, test 6" in line for line in lines
    )  # 10 and 3 a class
    failing = out.split("would fail: ")[1].split()
    gpu = {"task1-vgg16-gpu", "task2-vgg16-gpu", "task2-mobilenet-gpu"}  # no CUDA (and no weights)
    twins = {f"{g}-{tag}" for g in gpu for tag in ("random", "normalised")}
    assert {f.rstrip(",") for f in failing} == gpu | twins | {"task1-vgg16-cpu"}  # weights


def test_the_smoke_grids_cpu_experiments_can_start(
    synthetic: Path, capsys: pytest.CaptureFixture[str], no_cuda_libraries: None
) -> None:
    code, out = run(capsys, *smoke_cpu(synthetic, "--executor", "local"))
    assert code == 0, out
    assert "✗" not in out and "every experiment of jobs/smoke.toml (2) can start" in out


def test_missing_data_stops_the_experiments_that_read_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, *smoke_cpu(tmp_path / "nowhere", "--executor", "local"))
    assert code == 1
    assert f"✗ data      data folder {tmp_path / 'nowhere' / 'two'} not found" in out
    assert "would fail: task1-vgg16-cpu, task2-mobilenet-cpu" in out


def test_a_profile_asking_for_gpus_too_old_for_the_build_is_named(
    tmp_path: Path, synthetic: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tensorflow")
    if device.tensorflow_build()[1] is None:
        pytest.skip("this TensorFlow has no CUDA build information")
    profile = tmp_path / "old.toml"
    profile.write_text(Path("qsub/local.toml").read_text().replace("gpu_c = 6.0", "gpu_c = 3.5"))
    code, out = run(
        capsys, "--grid", "jobs/smoke.toml", "--data", str(synthetic), "--executor", "local", "--profile", str(profile)
    )
    assert code == 1 and "✗ profile   [gpu] gpu_c = 3.5 admits GPUs this TensorFlow cannot use (>= 6.0)" in out
