"""A non-editable install works from any directory: the job template, profiles and grids ship inside."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow
BUILD_LEFTOVERS = shutil.ignore_patterns(
    ".venv", ".git", "results", "build", "*.egg-info", "__pycache__", ".pytest_cache"
)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with xrayhpc installed from a wheel; its dependencies are this environment's (no download)."""
    tmp = tmp_path_factory.mktemp("install")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=BUILD_LEFTOVERS)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    venv = tmp / "a venv" / "with spaces"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next((tmp / "dist").glob("xrayhpc-*.whl"))
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    shutil.rmtree(source)  # nothing may be read from a checkout
    return python


def test_dry_run_from_another_directory_uses_the_packaged_profile_and_grid(installed: Path, tmp_path: Path) -> None:
    out = subprocess.run(
        [
            installed,
            "-m",
            "xrayhpc.submit",
            "--grid",
            "report",
            "--executor",
            "dry-run",
            "--profile",
            "scc",
            "--project",
            "ms542",
            "--results",
            str(tmp_path / "results"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    script = (tmp_path / "results" / "dry-run" / "gpu.sh").read_text()
    assert "#$ -l gpu_c=6.0" in script and "module load python3/3.12.4" in script and "#$ -P ms542" in script
    assert f"'{installed}' -u -m xrayhpc.cluster.jobstart" in script  # the installed Python, quoted


def run_python(python: Path, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`code` run by the installed package's Python, away from any checkout; it must succeed."""
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=300)
    assert out.returncode == 0, out.stderr
    return out


def test_submitit_finds_the_sge_plugin_of_the_installed_package(installed: Path, tmp_path: Path) -> None:
    code = (
        "import submitit, xrayhpc; ex = submitit.AutoExecutor(folder='jobs', cluster='sge');"
        "ex.update_parameters(timeout_min=30, gpus_per_node=1, sge_gpu_c=6.0, sge_project='p');"
        "print(type(ex._executor).__name__); print(xrayhpc.__file__); print(ex._executor.script())"
    )
    out = run_python(installed, code, tmp_path)
    name, where = out.stdout.splitlines()[:2]
    assert name == "SgeExecutor" and where.startswith(str(installed.parent.parent))
    assert "#$ -l gpus=1" in out.stdout and "#$ -l gpu_c=6.0" in out.stdout


@pytest.mark.cluster
def test_a_job_sent_from_the_installed_package_runs_its_python(
    installed: Path, tmp_path: Path, sge_cluster: None
) -> None:
    """From a venv whose path holds spaces, through the real Grid Engine, and back."""
    code = (
        "import submitit, sys; ex = submitit.AutoExecutor(folder='jobs', cluster='sge');"
        "ex.update_parameters(timeout_min=10, sge_project='xrayhpc-test');"
        "job = ex.submit(lambda: sys.executable); print(job.result())"
    )
    out = run_python(installed, code, tmp_path)
    assert out.stdout.strip().splitlines()[-1] == str(installed)


def test_every_module_of_the_checkout_ships_in_the_wheel(installed: Path, tmp_path: Path) -> None:
    """A package left out of pyproject's list installs fine and fails at its first `python -m`."""
    out = run_python(installed, "import xrayhpc; print(xrayhpc.__path__[0])", tmp_path)
    shipped = Path(out.stdout.strip())
    ours = {p.relative_to(ROOT / "xrayhpc") for p in (ROOT / "xrayhpc").rglob("*.py")}
    assert ours <= {p.relative_to(shipped) for p in shipped.rglob("*.py")}
    report = subprocess.run(
        [installed, "-m", "xrayhpc.report", "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert report.returncode == 0 and "usage: python -m xrayhpc.report" in report.stdout, report.stderr
