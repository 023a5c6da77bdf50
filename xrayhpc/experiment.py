"""Experiments and the TOML grid files that list them.

A grid file has an optional `[defaults]` table, an optional top-level `data` path and any number
of `[[experiment]]` tables. Every value may be a list: a table expands into the cartesian product
of its lists (a list-valued setting such as `head_units` expands when given a list of lists).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from xrayhpc import sitefiles
from xrayhpc.backbones import BACKBONES
from xrayhpc.datadigest import data_digest
from xrayhpc.errors import UserError

TASKS = {"binary": "two", "multiclass": "all"}
TASK_LABELS = {"binary": "task1", "multiclass": "task2"}
DEVICES = ("gpu", "cpu")
PREPROCESSING = ("rescale", "backbone")
CHECKPOINTS = ("last", "val_loss", "val_accuracy")
INTERPOLATIONS = ("nearest", "bilinear")
COLOURS = ("rgb", "grey")
PRECISIONS = ("float32", "bfloat16")
# Controls that are not networks: `metadata` fits a model on file facts alone (xrayhpc.study.baseline).
BASELINES = ("metadata",)
XLA = ("auto", "on", "off")
# Axes that name an experiment; any other key that a table expands is added to the id.
ID_KEYS = ("task", "backbone", "device")
# Settings of how a run goes, not of what it computes: left out of the fingerprint.
RUN_ONLY = ("save_every_s",)
# An id names a folder under the results root, a job and a log: no path separators, spaces or
# shell characters can get through.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
SAFE_CHARACTERS = "letters, digits and . _ + - (not first)"
# Bounds at the door: far beyond any sensible run, and each named in the refusal.
BOUNDS = {"epochs": (1, 100_000), "batch_size": (1, 65_536), "image_size": (1, 4096), "seed": (0, 2**32 - 1),
          "save_every_s": (0, 7 * 24 * 3600)}  # fmt: skip
MAX_LEARNING_RATE = 10
MAX_HEAD_LAYERS, MAX_UNITS = 16, 65_536
MAX_TAG = 64
MAX_ID = 200  # a file name holds 255 bytes; submitit and Grid Engine add their own parts to a job's


@dataclass(frozen=True)
class Experiment:
    """One training run: what the worker needs, and all that its result depends on."""

    task: str
    backbone: str
    device: str
    data: str = "data"
    epochs: int = 40
    batch_size: int = 5
    learning_rate: float = 5e-4
    image_size: int = 224
    head_units: tuple[int, ...] = (256,)
    dropouts: tuple[float, ...] = (0.5,)
    trainable_backbone: bool = False
    augment: bool = True
    preprocessing: str = "rescale"
    interpolation: str = "nearest"
    colour: str = "rgb"
    normalise: bool = False
    masks: str = ""
    precision: str = "float32"
    weights: str = "imagenet"
    seed: int = 0
    validation_split: float = 0.2
    checkpoint: str = "last"
    fast_path: bool = True
    xla: str = "auto"
    deterministic: bool = False
    tag: str = ""
    save_every_s: float = 60.0
    id_suffix: str = field(default="", compare=False, repr=False)

    @property
    def id(self) -> str:
        parts = [TASK_LABELS[self.task], self.backbone, self.device]
        parts += [p for p in (self.tag, self.id_suffix) if p]
        return "-".join(parts)

    @property
    def data_dir(self) -> Path:
        """The task's folder (`two/` or `all/`) under the data root."""
        return Path(self.data) / TASKS[self.task]

    @property
    def jit_compile(self) -> bool:
        """XLA pays on the head-only path: the head (a 6.4 M-parameter Dense) and the frozen backbone's
        inference (VGG16 5-8% faster here, the same outputs); training a whole backbone was slower with it.

        XLA and the plain kernels draw different dropout masks from the same seed: both paths of
        one experiment agree when they use the same setting.
        """
        return self.head_only if self.xla == "auto" else self.xla == "on"

    @property
    def backbone_jit_compile(self) -> bool:
        """The backbone's passes: in bfloat16 without XLA, whose CPU path gained nothing from it
        (VGG16 at 224 px here: 6.3 images/s with XLA, 14.8 without, float32 7.4)."""
        return self.jit_compile and self.precision == "float32"

    @property
    def head_only(self) -> bool:
        """A frozen backbone is run in large batches and only the head is trained on its features.

        Without augmentation the backbone runs once over the images (the fast path); with it, once
        per epoch over the fresh transforms. Either gives the same model as the plain path.
        """
        return self.fast_path and not self.trainable_backbone

    def settings(self) -> dict[str, Any]:
        """Every setting the result depends on, as JSON-ready values."""
        out = dataclasses.asdict(self)
        out.pop("id_suffix")
        out["head_units"] = list(self.head_units)
        out["dropouts"] = list(self.dropouts)
        return out

    @property
    def fingerprint(self) -> str:
        """Changes whenever what the result depends on changes: a result with another fingerprint is stale.

        The data enters by what it holds (`datadigest`), not by its path, where the folder is here; a
        setting added after the first release enters only when it differs from its default, so an
        upgrade that adds a setting leaves finished runs finished.
        """
        settings = {
            k: v for k, v in self.settings().items() if k not in RUN_ONLY and (k in FIRST_SETTINGS or v != _default(k))
        }
        settings["data"] = data_digest(str(self.data_dir)) or self.data
        return _digest(settings)

    @property
    def fingerprints(self) -> tuple[str, ...]:
        """Every fingerprint a finished run of this experiment may carry: today's, then the one xrayhpc
        0.1 wrote (every setting, the data by its path), so those runs are not sent again."""
        settings = self.settings()
        if any(settings[k] != _default(k) for k in settings if k not in FIRST_SETTINGS):
            return (self.fingerprint,)  # a setting 0.1 did not have: none of its runs is this one
        return self.fingerprint, _digest({k: v for k, v in settings.items() if k in FIRST_SETTINGS - set(RUN_ONLY)})

    @classmethod
    def from_settings(cls, settings: dict[str, Any], source: str = "spec", files: bool = True) -> Experiment:
        """Build from a dict such as metrics.json's `experiment` or a JSON spec, validated.

        Its `id` and `fingerprint`, as metrics.json holds them, are not taken as settings. The id is
        checked and keeps its varying suffix (`task1-vgg16-gpu-seed3`), so the run writes to that same
        folder; the fingerprint takes the data's content, so whoever reads the data compares it.
        `files=False` skips checks of files the settings name (a finished run's weights file may be gone).
        """
        values = {k: v for k, v in settings.items() if k not in ("id", "fingerprint")}
        exp = _build(values, source, "", data_default=str(settings.get("data", "data")), files=files)
        given = settings.get("id", exp.id)
        if not isinstance(given, str) or not (given == exp.id or given.startswith(f"{exp.id}-")):
            raise UserError(f"{source}: `id` = {given!r} does not match its settings (it would be {exp.id!r})")
        suffix = given[len(exp.id) + 1 :]
        if suffix and not SAFE_NAME.fullmatch(suffix):
            raise UserError(f"{source}: `id` = {given!r}: its suffix may hold only {SAFE_CHARACTERS}")
        return dataclasses.replace(exp, id_suffix=suffix)


FIELDS = {f.name: f for f in dataclasses.fields(Experiment) if f.name != "id_suffix"}
# The settings of schema version 1, written out: each enters every fingerprint. A setting added
# later is not listed here and enters only when it differs from its default (Experiment.fingerprint).
FIRST_SETTINGS = frozenset(
    ("task", "backbone", "device", "data", "epochs", "batch_size", "learning_rate", "image_size", "head_units",
     "dropouts", "trainable_backbone", "augment", "preprocessing", "interpolation", "colour", "precision",
     "weights", "seed", "validation_split", "checkpoint", "fast_path", "xla", "tag", "save_every_s")
)  # fmt: skip


def _default(name: str) -> Any:
    value = FIELDS[name].default
    return list(value) if isinstance(value, tuple) else value


def _digest(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def _kind(name: str) -> str:
    return {
        "int": "an integer",
        "float": "a number",
        "bool": "true or false",
        "str": "a string",
        "tuple[int, ...]": "a list of integers",
        "tuple[float, ...]": "a list of numbers",
    }[FIELDS[name].type]


def _coerce(name: str, value: Any, where: str) -> Any:
    kind = FIELDS[name].type
    bad = UserError(f"{where}: `{name}` must be {_kind(name)}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{where}: `{name}` = {value!r} is not a finite number")
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        return float(value)
    if kind == "str":
        if not isinstance(value, str):
            raise bad
        return value
    item = int if kind == "tuple[int, ...]" else (int, float)
    if not isinstance(value, list | tuple) or not all(isinstance(v, item) and not isinstance(v, bool) for v in value):
        raise bad
    if not all(math.isfinite(v) for v in value):
        raise UserError(f"{where}: `{name}` = {value!r}: every number must be finite")
    return tuple(value) if item is int else tuple(float(v) for v in value)


def _check(exp: Experiment, where: str, files: bool = True) -> None:
    """Impossible values, each named with what is allowed."""

    def fail(key: str, allowed: str) -> None:
        raise UserError(f"{where}: `{key}` = {getattr(exp, key)!r} is not allowed; {allowed}")

    if exp.task not in TASKS:
        fail("task", f"use one of {', '.join(TASKS)}")
    if exp.backbone not in BACKBONES and exp.backbone not in BASELINES:
        fail("backbone", f"use one of {', '.join([*BACKBONES, *BASELINES])}")
    if exp.device not in DEVICES:
        fail("device", f"use one of {', '.join(DEVICES)}")
    if exp.backbone in BASELINES and exp.device != "cpu":
        fail("device", 'the metadata baseline is a scikit-learn model and runs on the CPU: use "cpu"')
    for key, (low, high) in BOUNDS.items():
        if not low <= getattr(exp, key) <= high:
            fail(key, f"it must be from {low} to {high}")
    if not 0 < exp.learning_rate <= MAX_LEARNING_RATE:
        fail("learning_rate", f"it must be greater than 0 and at most {MAX_LEARNING_RATE:g}")
    smallest = BACKBONES[exp.backbone].min_size if exp.backbone in BACKBONES else 1
    if exp.image_size < smallest:
        fail("image_size", f"{exp.backbone} needs at least {smallest}")
    if not 1 <= len(exp.head_units) <= MAX_HEAD_LAYERS or not all(1 <= u <= MAX_UNITS for u in exp.head_units):
        fail("head_units", f"give 1 to {MAX_HEAD_LAYERS} layer widths, each from 1 to {MAX_UNITS}")
    if len(exp.dropouts) != len(exp.head_units):
        fail("dropouts", f"give one rate per head layer ({len(exp.head_units)})")
    if any(not 0 <= d < 1 for d in exp.dropouts):
        fail("dropouts", "each rate must be in [0, 1)")
    if exp.preprocessing not in PREPROCESSING:
        fail("preprocessing", f"use one of {', '.join(PREPROCESSING)}")
    if exp.interpolation not in INTERPOLATIONS:
        fail("interpolation", f"use one of {', '.join(INTERPOLATIONS)}")
    if exp.colour not in COLOURS:
        fail("colour", f"use one of {', '.join(COLOURS)}")
    if exp.precision not in PRECISIONS:
        fail("precision", f"use one of {', '.join(PRECISIONS)}")
    if exp.xla not in XLA:
        fail("xla", f"use one of {', '.join(XLA)}")
    if exp.checkpoint not in CHECKPOINTS:
        fail("checkpoint", f"use one of {', '.join(CHECKPOINTS)}")
    if not 0 <= exp.validation_split < 1:
        fail("validation_split", "it must be in [0, 1)")
    if exp.validation_split == 0 and exp.checkpoint != "last":
        fail("checkpoint", 'a best-validation checkpoint needs validation_split > 0; use "last"')
    if files and exp.masks and not Path(exp.masks).is_dir():
        fail(
            "masks", "give the folder of lung masks (laid out as the data root: two/test/covid/a.png), or leave it out"
        )
    if exp.masks and exp.backbone in BASELINES:
        fail("masks", "a model of file facts has no pixels to probe: leave `masks` out of the metadata baseline")
    if exp.normalise and exp.backbone in BASELINES:
        fail("normalise", "a model of file facts reads no pixels: leave `normalise` out of the metadata baseline")
    if files and exp.weights not in ("imagenet", "none") and not Path(exp.weights).is_file():
        fail("weights", 'use "imagenet", "none" or the path of an existing weights file')
    if exp.tag and not (SAFE_NAME.fullmatch(exp.tag) and len(exp.tag) <= MAX_TAG):
        fail("tag", f"it names a folder and a job: use at most {MAX_TAG} of {SAFE_CHARACTERS}")
    for key in ("data", "masks"):
        if any(ord(c) < 32 or ord(c) == 127 for c in getattr(exp, key)):
            fail(key, "a path without control characters (newline, carriage return, escape, ...)")


def _build(values: dict[str, Any], where: str, suffix: str, data_default: str, files: bool = True) -> Experiment:
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise UserError(f"{where}: unknown key `{unknown[0]}`; the keys are: {', '.join(FIELDS)}")
    for key in ID_KEYS:
        if key not in values:
            raise UserError(f"{where}: `{key}` is missing; every experiment needs {', '.join(ID_KEYS)}")
    values.setdefault("data", data_default)
    typed = {k: _coerce(k, v, where) for k, v in values.items()}
    exp = Experiment(**typed, id_suffix=suffix)
    _check(exp, where, files)
    if len(exp.id) > MAX_ID:
        raise UserError(
            f"{where}: id `{exp.id[:60]}...` has {len(exp.id)} characters; it names a folder and a job, "
            f"so at most {MAX_ID}: shorten `tag` or vary fewer settings in one table"
        )
    return exp


def _expand(table: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """One table -> its cartesian product, each with the id suffix of its non-id axes."""
    axes: dict[str, list[Any]] = {}
    for key, value in table.items():
        is_tuple = key in FIELDS and FIELDS[key].type.startswith("tuple")
        expands = isinstance(value, list) and (not is_tuple or (value and all(isinstance(v, list) for v in value)))
        axes[key] = value if expands else [value]
    varying = [k for k, v in axes.items() if len(v) > 1 and k not in ID_KEYS]
    out = []
    for combo in itertools.product(*axes.values()):
        values = dict(zip(axes, combo, strict=True))
        suffix = "-".join(f"{k}{_label(values[k])}" for k in varying)
        out.append((values, suffix))
    return out


def _label(value: Any) -> str:
    """A varying value as part of the id: only characters a folder and a job name can hold."""
    if isinstance(value, list):
        return "x".join(_label(v) for v in value)
    if isinstance(value, bool):
        return "on" if value else "off"
    text = Path(value).stem if isinstance(value, str) and "/" in value else str(value)
    return re.sub(r"[^A-Za-z0-9._+]", "_", text)


def data_root(grid_data: str | None, base: Path, given: str | None = None) -> str:
    """--data wins, then XRAYHPC_DATA, then the grid's `data` (relative to the grid file), then ./data."""
    chosen = given or os.environ.get("XRAYHPC_DATA")
    if chosen:
        return str(Path(chosen).expanduser().resolve())
    if grid_data:
        return str((base / Path(grid_data).expanduser()).resolve())
    return str(Path("data").resolve())


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`--set key=value` pairs, the value read as TOML (`epochs=2`, `weights="none"` or `weights=none`)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or key not in FIELDS:
            raise UserError(f"--set {pair!r}: give key=value with a key among: {', '.join(FIELDS)}")
        try:
            out[key] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = text
    return out


def load_grid(path: Path, overrides: dict[str, Any] | None = None, data: str | None = None) -> list[Experiment]:
    """Read a grid file and return its experiments, validated, ids unique.

    `path` is a file, or the name of a grid in jobs/ (here, else the one shipped with the package).
    `overrides` (from --set) replace a setting in every experiment, after the file's own values;
    `data` (from --data) is the data root, before $XRAYHPC_DATA and the grid's own.
    """
    found = sitefiles.find("jobs", str(path), ".toml")
    if found is None:
        known = ", ".join(sitefiles.names("jobs", ".toml"))
        raise UserError(f"{path}: no such grid file; give a file, or one of the grids in jobs/ ({known})")
    path = found
    doc = sitefiles.read_toml(path)
    allowed_top = {"data", "defaults", "experiment"}
    unknown = sorted(set(doc) - allowed_top)
    if unknown:
        raise UserError(f"{path}: unknown top-level key `{unknown[0]}`; use `data`, [defaults] and [[experiment]]")
    tables = doc.get("experiment", [])
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise UserError(f"{path}: no [[experiment]] tables; add at least one")
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        raise UserError(f"{path}: `defaults` must be a table ([defaults]), got {defaults!r}")
    if not isinstance(doc.get("data", ""), str):
        raise UserError(f"{path}: `data` must be a path in quotes, got {doc['data']!r}")
    root = data_root(doc.get("data"), path.parent, data)
    experiments: list[Experiment] = []
    seen: dict[str, str] = {}
    for number, table in enumerate(tables, start=1):
        where = f"{path}: experiment {number}"
        merged = {**defaults, **table, **(overrides or {})}
        if isinstance(merged.get("weights"), str) and merged["weights"] not in ("imagenet", "none"):
            merged["weights"] = str((path.parent / merged["weights"]).resolve())
        if isinstance(merged.get("masks"), str) and merged["masks"]:
            merged["masks"] = str((path.parent / Path(merged["masks"]).expanduser()).resolve())
        for values, suffix in _expand(merged):
            exp = _build(values, where, suffix, root)
            if exp.id in seen:
                raise UserError(
                    f"{where}: id `{exp.id}` is also made by {seen[exp.id]}; give one of them a distinct `tag`"
                )
            seen[exp.id] = where
            experiments.append(exp)
    return experiments


def select(experiments: list[Experiment], only: str | None) -> list[Experiment]:
    """Keep the experiments whose id matches a shell-style pattern (or contains the text)."""
    if not only:
        return experiments
    return [e for e in experiments if fnmatch(e.id, only) or only in e.id]
