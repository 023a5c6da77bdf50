"""Training state kept between epochs, so a job that is killed or requeued resumes where it was.

One file, `checkpoint.npz` in the result folder, written whole. It holds the trained model's and
its optimizer's variables (the dropout seed state included, so a resumed run draws the same masks
as an uninterrupted one), the epochs done, their history and the best-so-far weights, and the
fingerprint: a checkpoint made with other settings is never resumed from. The worker removes it
once metrics.json is written.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xrayhpc.safefiles import open_read, write_atomic

# A trained VGG16 with Adam's state and the best weights is about 250 MB; a planted 100 GB file is refused.
MAX_CHECKPOINT = 8 * 1024**3

FILE = "checkpoint.npz"


@dataclass
class TrainState:
    """Where training stands after `epoch` epochs; `runs` counts the worker starts that made it."""

    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_value: float | None = None
    best_weights: list[np.ndarray] | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    runs: int = 1
    resumed_from: int = 0
    devices: list[str] = field(default_factory=list)  # the device of each run that trained


def _devices(saved: Any) -> list[str]:
    """The saved runs' devices; an older checkpoint has none, a damaged one's are dropped."""
    return [d for d in saved if isinstance(d, str)] if isinstance(saved, list) else []


class Checkpoint:
    """Save the attached variables with a TrainState; load them back if the settings match.

    Saving costs a write of every trained weight (about 100 MB for the VGG16 head at 224 px), so an
    epoch end saves only when `every_s` seconds passed since the last save; `save(force=True)` saves
    now (at the end of training, and when the scheduler's warning came).
    """

    def __init__(self, folder: Path, fingerprint: str, every_s: float, log: Callable[[str], None]) -> None:
        self.path = Path(folder) / FILE
        self.fingerprint = fingerprint
        self.every_s = every_s
        self.log = log
        self.saved_epoch = -1
        self.runs, self.resumed_from = 1, 0
        self.device = ""  # what this run trains on, as the worker found it
        self._last = time.monotonic()
        self.groups: dict[str, list[Any]] = {"model": [], "optimizer": []}

    def attach(self, variables: list[Any], optimizer_variables: list[Any]) -> None:
        """The variables that training changes: the trained model's and its optimizer's."""
        self.groups = {"model": list(variables), "optimizer": list(optimizer_variables)}

    def load(self) -> TrainState | None:
        """The saved state, assigned into the attached variables; None (and a log line) when there is none
        to use. The file lies in a folder others may write: read through safefiles, arrays only (no
        pickles), every part checked."""
        if not os.path.lexists(self.path):
            return None
        try:
            with open_read(self.path, MAX_CHECKPOINT) as raw, np.load(raw, allow_pickle=False) as f:
                meta = json.loads(str(f["meta"]))
                arrays = {k: f[k] for k in f.files if k != "meta"}
            return self._restore(meta, arrays)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as err:
            self.log(f"checkpoint {self.path} is unreadable ({err}); starting from epoch 0")
            return None

    def _restore(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> TrainState | None:
        if meta.get("fingerprint") != self.fingerprint:
            self.log(
                f"checkpoint {self.path} was made with other settings (fingerprint "
                f"{meta.get('fingerprint')}); starting from epoch 0"
            )
            return None
        for name, targets in self.groups.items():
            saved = [arrays.get(f"{name}/{i}") for i in range(len(targets))]
            if meta["counts"].get(name) != len(targets) or any(
                s is None or tuple(s.shape) != tuple(t.shape) for s, t in zip(saved, targets, strict=True)
            ):
                self.log(f"checkpoint {self.path} does not fit this model ({name}); starting from epoch 0")
                return None
        for name, targets in self.groups.items():
            for i, target in enumerate(targets):
                target.assign(arrays[f"{name}/{i}"])
        best = [arrays[f"best/{i}"] for i in range(meta["counts"]["best"])] if meta["counts"]["best"] else None
        state = TrainState(
            epoch=meta["epoch"],
            history=meta["history"],
            best_epoch=meta["best_epoch"],
            best_value=meta["best_value"],
            best_weights=best,
            seconds=meta["seconds"],
            runs=meta["runs"] + 1,
            resumed_from=meta["epoch"],
            devices=[*_devices(meta.get("devices")), self.device],
        )
        self.saved_epoch = state.epoch
        self.runs, self.resumed_from = state.runs, state.epoch
        self.log(f"resuming from the checkpoint at epoch {state.epoch} (run {state.runs} of this experiment)")
        before = state.devices[-2] if len(state.devices) > 1 else self.device
        if before != self.device:  # another CPU or GPU model rounds otherwise (other kernels, other units)
            self.log(
                f"resuming on {self.device} after a run on {before}: from epoch {state.epoch} on the "
                "history may differ from an uninterrupted run's by more than rounding (README, Resuming)"
            )
        return state

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every_s

    def save(self, state: TrainState, force: bool = False) -> bool:
        """Write the state whole, when due (or forced) and not already saved at this epoch."""
        if state.epoch == self.saved_epoch or not (force or self.due()):
            return False
        arrays: dict[str, np.ndarray] = {}
        for name, values in self.groups.items():
            arrays.update({f"{name}/{i}": np.asarray(v) for i, v in enumerate(values)})
        best = state.best_weights or []
        arrays.update({f"best/{i}": np.asarray(w) for i, w in enumerate(best)})
        meta = {
            "fingerprint": self.fingerprint,
            "epoch": state.epoch,
            "history": state.history,
            "best_epoch": state.best_epoch,
            "best_value": state.best_value,
            "seconds": state.seconds,
            "runs": state.runs,
            "devices": state.devices or [self.device],
            "saved": time.time(),
            "counts": {**{k: len(v) for k, v in self.groups.items()}, "best": len(best)},
        }
        buffer = io.BytesIO()
        np.savez(buffer, meta=np.array(json.dumps(meta)), **arrays)
        write_atomic(self.path, lambda f: f.write(buffer.getbuffer()))
        self.saved_epoch = state.epoch
        self._last = time.monotonic()
        return True

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
