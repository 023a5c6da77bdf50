"""Checkpoint and resume: a run stopped between epochs ends as if it had never stopped."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_worker import small
from xrayhpc.experiment import Experiment
from xrayhpc.schema import read_json, read_metrics
from xrayhpc.study.checkpoint import FILE
from xrayhpc.study.runlog import RunLog
from xrayhpc.study.worker import run_experiment

pytestmark = pytest.mark.slow


def stopped_at(epoch: int, exp: Experiment, results: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run until `epoch` is logged, then Ctrl-C (the checkpoint of that epoch is on disk by then)."""
    original = RunLog.epoch

    def interrupt(self: RunLog, k: int, total: int, record: dict[str, float]) -> None:
        original(self, k, total, record)
        if k == epoch:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(RunLog, "epoch", interrupt)
        with pytest.raises(KeyboardInterrupt):
            run_experiment(exp, results, tty=False)


def curves(metrics: dict) -> list[dict[str, float]]:
    return [{k: v for k, v in h.items() if k != "seconds"} for h in metrics.history]


@pytest.mark.parametrize(
    "settings",
    [
        {"augment": True, "checkpoint": "val_loss"},  # head-only path, fresh transforms each epoch, best kept
        {"fast_path": False, "trainable_backbone": True},  # every weight trains
    ],
    ids=["head-only-augmented", "plain-trainable"],
)
def test_resumed_run_ends_like_an_uninterrupted_one(
    settings: dict, synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp = small(synthetic, epochs=5, save_every_s=0.0, **settings)
    whole = read_metrics(run_experiment(exp, tmp_path / "whole", tty=False))

    stopped_at(2, exp, tmp_path / "resumed", monkeypatch)
    folder = tmp_path / "resumed" / exp.id
    progress = read_json(folder / "progress.json")
    assert progress["state"] == "failed" and progress["error_kind"] == "interrupted"
    assert "resumes from epoch 2" in progress["error"]
    assert (folder / FILE).exists() and read_metrics(folder) is None

    resumed = read_metrics(run_experiment(exp, tmp_path / "resumed", tty=False))
    assert (resumed.runs, resumed.resumed_from) == (2, 2)
    assert "resuming from the checkpoint at epoch 2" in (folder / "worker.log").read_text()
    assert whole is not None and resumed is not None
    for a, b in zip(curves(whole), curves(resumed), strict=True):
        assert a == pytest.approx(b, abs=1e-5)
    assert resumed.best_epoch == whole.best_epoch
    assert resumed.test.loss == pytest.approx(whole.test.loss, abs=1e-5)
    assert resumed.test.predictions == whole.test.predictions
    assert not (folder / FILE).exists(), "the checkpoint goes once the result is complete"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))  # two runs' files; TensorBoard keeps the resumed run's epochs
    events.Reload()
    loss = events.Scalars("loss/train")
    assert [e.step for e in loss] == [1, 2, 3, 4, 5]
    assert [e.value for e in loss] == pytest.approx([h["loss"] for h in resumed.history], rel=1e-6)


def test_checkpoint_of_other_settings_is_not_resumed(
    synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp = small(synthetic, epochs=4, save_every_s=0.0)
    stopped_at(2, exp, tmp_path, monkeypatch)
    changed = small(synthetic, epochs=4, save_every_s=0.0, learning_rate=5e-4)
    metrics = read_metrics(run_experiment(changed, tmp_path, tty=False))
    assert metrics is not None and (metrics.runs, metrics.resumed_from) == (1, 0)
    assert "made with other settings" in (tmp_path / exp.id / "worker.log").read_text()


def test_save_interval_is_not_part_of_the_fingerprint(synthetic: Path) -> None:
    assert small(synthetic, save_every_s=0.0).fingerprint == small(synthetic).fingerprint


def test_a_run_resumed_on_another_device_says_so(
    synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A requeued GPU job may land on another GPU model: the resumed run names both, and metrics.json
    lists each run's device (here the CPU's name stands in for two GPU models)."""
    from xrayhpc.study import device

    exp = small(synthetic, epochs=3, save_every_s=0.0)
    monkeypatch.setattr(device, "check", lambda asked: "cpu: model A")
    stopped_at(1, exp, tmp_path, monkeypatch)
    monkeypatch.setattr(device, "check", lambda asked: "cpu: model B")
    metrics = read_metrics(run_experiment(exp, tmp_path, tty=False))
    assert metrics.devices == ["cpu: model A", "cpu: model B"]
    assert "resuming on cpu: model B after a run on cpu: model A" in (tmp_path / exp.id / "worker.log").read_text()
    assert metrics.environment.deterministic is False
