"""What `make` targets do to a user's files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT


@pytest.mark.skipif(shutil.which("make") is None, reason="no make here")
def test_clean_removes_results_but_keeps_the_committed_bench_figures(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    for name in ("README.md", "bench/worker.md", "task1-vgg16-cpu/metrics.json", "report.md"):
        (tmp_path / "results" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "results" / name).write_text("x")
    subprocess.run(["make", "-s", "clean"], cwd=tmp_path, check=True, capture_output=True, timeout=60)
    left = sorted(str(p.relative_to(tmp_path / "results")) for p in (tmp_path / "results").rglob("*"))
    assert left == ["README.md", "bench", "bench/worker.md"]


@pytest.mark.skipif(shutil.which("make") is None, reason="no make here")
def test_gpu_check_on_a_machine_without_a_gpu_is_refused_in_one_line(tmp_path: Path) -> None:
    out = subprocess.run(
        ["make", "-s", "gpu-check", f"GPU_PY={sys.executable}", f"ARGS=--out {tmp_path / 'out'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "-1"},
        timeout=300,
    )
    assert out.returncode != 0
    said = [line for line in out.stderr.splitlines() if not line.startswith("make")]
    assert len(said) == 1 and said[0].startswith("error: bench part gpu: ") and "sees no GPU" in said[0]
    assert not (tmp_path / "out").exists()
