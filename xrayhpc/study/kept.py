"""The trained model's weights, kept in its result folder: probes and Grad-CAM run on a finished
experiment without training it again (`python -m xrayhpc.probe`).

Only what training changed is kept: the head, or the whole model when the backbone trained too; a
frozen backbone is built again from its settings (the same ImageNet file, or the same seed). The
file is HDF5 arrays, read through safefiles (no link followed, only the user's own file, at most
a little over what the model's parameters take) into a private copy: nothing another user planted
is parsed, followed or read without bound.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from xrayhpc.errors import UserError
from xrayhpc.experiment import Experiment
from xrayhpc.safefiles import read_own_bytes, write_atomic
from xrayhpc.schema import WEIGHTS

HDF5_SLACK = 16 * 1024**2  # the file's structure beside its float32 arrays


def _model(exp: Experiment, models: Any) -> Any:
    return models.full if exp.trainable_backbone else models.head


def save(folder: Path, exp: Experiment, models: Any) -> None:
    with tempfile.TemporaryDirectory(prefix="xrayhpc-weights-") as private:
        path = Path(private) / WEIGHTS
        _model(exp, models).save_weights(path)
        blob = path.read_bytes()
    write_atomic(folder / WEIGHTS, lambda f: f.write(blob))


def load(folder: Path, exp: Experiment, models: Any) -> None:
    """The kept weights into `models`, or UserError in one line (absent, a link, damaged, another shape)."""
    path = folder / WEIGHTS
    model = _model(exp, models)
    try:
        blob = read_own_bytes(path, 8 * model.count_params() + HDF5_SLACK)
    except FileNotFoundError:
        raise UserError(f"{path}: not there (a run finished before xrayhpc kept its weights): run it again") from None
    except OSError as err:
        raise UserError(str(err)) from None
    with tempfile.TemporaryDirectory(prefix="xrayhpc-weights-") as private:
        copy = Path(private) / WEIGHTS
        copy.write_bytes(blob)
        try:
            model.load_weights(copy)
        except Exception as err:  # h5py and Keras raise several kinds for a damaged or foreign file
            first = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
            raise UserError(f"{path}: cannot be loaded into {exp.id}'s model ({first}); run it again") from None
