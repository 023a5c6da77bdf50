"""Shared fixtures: a small synthetic dataset, an isolated cache, and where the real data is."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xrayhpc.study.synthetic import make_dataset

ROOT = Path(__file__).resolve().parent.parent


def faked(boundary: str) -> dict[str, str]:
    """PYTHONPATH for a child process with tests/<boundary>/sitecustomize.py first, which fakes that
    boundary there: `fakegpu` (a GPU TensorFlow lists) or `notensorflow` (no TensorFlow installed)."""
    return {"PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / boundary), os.environ.get("PYTHONPATH", "")])}


def python_c(code: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`python -c code` from the checkout, in a fresh process with this one's environment and `env`."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        timeout=timeout,
    )


def real_data() -> Path | None:
    """The real dataset: $XRAYHPC_REAL_DATA, else ../shared/data/covid-xray beside the checkout."""
    given = os.environ.get("XRAYHPC_REAL_DATA")
    path = Path(given) if given else ROOT.parent / "shared" / "data" / "covid-xray"
    return path if (path / "two").is_dir() else None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The cluster tests share one Grid Engine and one Slurm, and some stop the qmaster or drain the
    node: under `make test`'s workers (`--dist loadgroup`) one worker runs them all, one at a time."""
    for item in items:
        if item.get_closest_marker("cluster"):
            item.add_marker(pytest.mark.xdist_group("cluster"))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """A pytest whose node ids drop xdist's group suffix would spread the cluster tests over workers
    and let them stop each other's scheduler: stop before any runs."""
    if not getattr(session.config.option, "loadgroup", False):  # set in each xdist worker
        return
    loose = [i.nodeid for i in session.items if i.get_closest_marker("cluster") and "@cluster" not in i.nodeid]
    if loose:
        pytest.exit(
            f"--dist loadgroup did not group {loose[0]} with the other cluster tests: "
            f"pytest {pytest.__version__} with this pytest-xdist loses the groups; install pytest<9.2",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )


@pytest.fixture(autouse=True)
def isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own image cache and Keras home, and no inherited data root."""
    monkeypatch.setenv("XRAYHPC_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path_factory.mktemp("keras")))
    monkeypatch.delenv("XRAYHPC_DATA", raising=False)
    monkeypatch.delenv("XRAYHPC_SLOTS", raising=False)


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("synthetic"), train=10, test=3)


def browser(profile: Path) -> list[str]:
    """Headless Chromium's command line, its profile in `profile`; skipped where there is none,
    unless XRAYHPC_REQUIRE_BROWSER=1 (CI): then failed."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("XRAYHPC_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("no chromium here")
    return [
        found,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]


def cluster_answers() -> bool:
    if not shutil.which("qstat"):
        return False
    return subprocess.run(["qstat"], capture_output=True, timeout=30).returncode == 0


@pytest.fixture(scope="session")
def sge_cluster() -> None:
    """Skip where Grid Engine is absent, unless XRAYHPC_REQUIRE_CLUSTER=1 (CI): then fail."""
    if not cluster_answers():
        if os.environ.get("XRAYHPC_REQUIRE_CLUSTER") == "1":
            pytest.fail("Grid Engine does not answer: run `make cluster-up` (qsub/testcluster/up.sh)")
        pytest.skip("no Grid Engine here (make cluster-up)")


def slurm_answers() -> bool:
    if not shutil.which("sinfo"):
        return False
    listed = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, timeout=30)
    return listed.returncode == 0 and any(s in ("idle", "mix", "alloc") for s in listed.stdout.split())


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """Skip where Slurm is absent, unless XRAYHPC_REQUIRE_CLUSTER=1 (CI): then fail."""
    if not slurm_answers():
        if os.environ.get("XRAYHPC_REQUIRE_CLUSTER") == "1":
            pytest.fail("Slurm does not answer: run `make cluster-up` (qsub/testcluster/slurm-up.sh)")
        pytest.skip("no Slurm here (make cluster-up)")


@pytest.fixture(params=["sge", "slurm"])
def cluster(request: pytest.FixtureRequest) -> str:
    """Each scheduler in turn, brought up by `make cluster-up`: the same test on both."""
    request.getfixturevalue(f"{request.param}_cluster")
    return request.param
