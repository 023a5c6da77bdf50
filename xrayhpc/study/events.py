"""Each epoch's losses and accuracies as TensorBoard event files in the result folder.

`tensorboard --logdir results/` then shows every experiment as a run named by its id, while it
trains. The writer is tensorboardX: it needs neither TensorFlow (absent from a JAX run) nor the
`tensorboard` package (TensorFlow 2.21 no longer installs it).
"""

from __future__ import annotations

import math
import os
import secrets
from pathlib import Path
from types import TracebackType
from typing import Any

# Keras's history keys as TensorBoard tags: one chart per measure, training and validation on it.
TAGS = {
    "loss": "loss/train",
    "val_loss": "loss/validation",
    "accuracy": "accuracy/train",
    "val_accuracy": "accuracy/validation",
    "seconds": "time/epoch seconds",
}


class EpochEvents:
    """One event file per worker run, opened at its first epoch. Each run writes every epoch of its
    history, a resumed run the checkpoint's epochs too, and tells TensorBoard to drop what earlier
    runs wrote (`purge_step`): the curves are the kept run's, whatever an interrupted one left."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.written = 0
        self._writer: Any = None

    def __enter__(self) -> EpochEvents:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        if self._writer is not None:
            self._writer.close()

    def add(self, history: list[dict[str, float]]) -> None:
        """The epochs of `history` not yet written (1-based steps, as the worker counts epochs),
        flushed at once so TensorBoard sees the epoch that just ended."""
        if self._writer is None:
            from tensorboardX import SummaryWriter

            # a name nobody can guess: tensorboardX opens it as it is, so a link planted in its place
            # by someone sharing the folder would be written through
            suffix = f".{os.getpid()}.{secrets.token_hex(8)}"
            self._writer = SummaryWriter(logdir=str(self.folder), purge_step=1, filename_suffix=suffix)
        for step, record in enumerate(history[self.written :], start=self.written + 1):
            for key, value in record.items():
                if key in TAGS and isinstance(value, int | float) and math.isfinite(value):
                    self._writer.add_scalar(TAGS[key], float(value), step)
        self.written = len(history)
        self._writer.flush()
