"""Shared fixtures: a small synthetic dataset, an isolated cache, and where the real data is."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from xrayhpc.study.synthetic import make_dataset

ROOT = Path(__file__).resolve().parent.parent


def real_data() -> Path | None:
    """The real dataset: $XRAYHPC_REAL_DATA, else ../shared/data/covid-xray beside the checkout."""
    given = os.environ.get("XRAYHPC_REAL_DATA")
    path = Path(given) if given else ROOT.parent / "shared" / "data" / "covid-xray"
    return path if (path / "two").is_dir() else None


@pytest.fixture(autouse=True)
def isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own image cache and Keras home, and no inherited data root."""
    monkeypatch.setenv("XRAYHPC_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path_factory.mktemp("keras")))
    monkeypatch.delenv("XRAYHPC_DATA", raising=False)
    monkeypatch.delenv("NSLOTS", raising=False)


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("synthetic"), train=10, test=3)


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
