"""`make demo` must learn: a newcomer's first result, on synthetic X-rays, clearly above chance."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT
from xrayhpc.experiment import load_grid
from xrayhpc.schema import read_metrics
from xrayhpc.study.synthetic import make_dataset
from xrayhpc.study.worker import run_experiment

pytestmark = pytest.mark.slow
FLOOR = {"task1-vgg16-cpu": 0.9, "task2-vgg16-cpu": 0.7}  # chance: 0.5 and 0.25


def test_the_demo_grid_learns_both_tasks(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data")  # the demo's own set: the defaults, seed 0
    experiments = load_grid(ROOT / "jobs" / "demo.toml", {"data": str(data)})
    assert sorted(e.id for e in experiments) == sorted(FLOOR)
    for exp in experiments:
        metrics = read_metrics(run_experiment(exp, tmp_path / "results", tty=False))
        assert metrics.test.accuracy >= FLOOR[exp.id], (exp.id, metrics.test.accuracy)
        assert metrics.test.count == 20 * (1 if exp.task == "binary" else 2)
