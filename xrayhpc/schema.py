"""The result folder: the contract between the worker and everything after it.

One folder per experiment under the results root. Every file is written whole (a temporary name in
the same folder, then a rename), so a reader never sees half of one. Three of them are records
with a type here, written and read only through it:

    metrics.json    Metrics: the complete run, written last; its presence means the run is complete
    progress.json   Progress: where a running worker is, rewritten at each phase and epoch
    job.json        JobRecord: what the dispatcher submitted, written once the scheduler accepted it

A reader gets a record or None (absent, damaged, another schema version, a key missing), never a
half-checked dict; `check_metrics` also says why a metrics.json was left out.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from xrayhpc.safefiles import UnsafeFile, is_folder, is_regular, read_bytes, write_atomic

SCHEMA_VERSION = 1
R = TypeVar("R")
METRICS = "metrics.json"
PROGRESS = "progress.json"
LOG = "worker.log"
JOB = "job.json"
AUDIT = "audit.json"
# metrics.json's `timing` phases, in the order the worker runs them (each also sums into `total`)
PHASES = ("load", "features", "train", "evaluate", "tsne")


def results_root(given: str | Path | None = None) -> Path:
    """--results, else $XRAYHPC_RESULTS, else ./results."""
    return Path(given or os.environ.get("XRAYHPC_RESULTS") or "results").resolve()


def write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"
    write_atomic(path, lambda f: f.write(text.encode()))


def read_json(path: Path) -> Any | None:
    """The parsed file, or None when it is absent, damaged, a link, too large or nested too deep."""
    return parse_json(path)[0]


def parse_json(path: Path) -> tuple[Any | None, str]:
    """(the parsed file, "") or (None, why): "" when it is absent, else one line naming it."""
    try:
        return json.loads(read_bytes(path)), ""
    except FileNotFoundError:
        return None, ""
    except UnsafeFile as err:
        return None, str(err)
    except OSError as err:
        return None, f"{path}: cannot be read ({err.strerror or err})"
    except (ValueError, RecursionError):
        return None, f"{path}: damaged (not readable JSON)"


def experiment_folders(root: Path) -> list[Path]:
    """Every folder under the results root that a worker or the dispatcher wrote (links left out: see
    `planted_links`)."""
    if not is_folder(root):
        return []
    return sorted(
        p
        for p in root.iterdir()
        if is_folder(p) and not p.name.startswith(".") and any(is_regular(p / f) for f in (METRICS, PROGRESS, JOB))
    )


def planted_links(root: Path) -> list[str]:
    """One line for each link among the result folders: never followed, named so a person looks."""
    if not is_folder(root):
        return []
    return [
        f"{p}: is a symbolic link; left alone (xrayhpc never follows links under the results root)"
        for p in sorted(root.iterdir())
        if p.is_symlink() and not p.name.startswith(".")
    ]


class SchemaError(ValueError):
    """A record file that is there but cannot be read as this version's record."""


class NewerSchema(SchemaError):
    """A metrics.json that a newer xrayhpc wrote: a finished run this version cannot read."""


# Numbers read from a file are checked before anything uses them: finite, and within these bounds
# (a pid is a pid; a time is a time). A field not named here takes NUMBER.
NUMBER = (0, 2**53)
RANGES = {"pid": (1, 2**22), "attempt": (1, 10**6), "run": (1, 10**6), "requeues": (0, 10**6)}


def _fields(cls: type, data: Any, path: Path) -> dict[str, Any]:
    """The record's fields from a parsed file: every field without a default present, with its type."""
    if not isinstance(data, dict):
        raise SchemaError(f"{path}: damaged (not a JSON object)")
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in data and _required(f)]
    if missing:
        raise SchemaError(f"{path}: incomplete (no {', '.join(missing)})")
    out = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
    for name, value in out.items():
        _check_value(f"{path}: {name}", value, _kinds(cls)[name], RANGES.get(name, NUMBER))
    return out


def _check_value(where: str, value: Any, kinds: tuple[type, ...], bounds: tuple[float, float] = NUMBER) -> None:
    """`value` is of one of `kinds` (JSON's: a bool is no number) and, if a number, finite within `bounds`."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
        raise SchemaError(f"{where} is {type(value).__name__}, not {names}")
    if number and not (math.isfinite(value) and bounds[0] <= value <= bounds[1]):
        raise SchemaError(f"{where} = {value!r} is out of range ({bounds[0]} to {bounds[1]})")


@functools.cache
def _kinds(cls: type) -> dict[str, tuple[type, ...]]:
    """What each field's value may be in JSON, from its annotation: `dict[str, Any]` a dict, `str |
    None` a str or null, a float an int or a float."""
    return {name: _json_kinds(hint) for name, hint in typing.get_type_hints(cls).items()}


def _json_kinds(hint: Any) -> tuple[type, ...]:
    if hint is None:
        return (type(None),)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return tuple(k for arg in typing.get_args(hint) for k in _json_kinds(arg))
    origin = typing.get_origin(hint) or hint
    if origin is float:
        return (int, float)
    return (origin,) if isinstance(origin, type) else (object,)


def check(cls: type[R], path: Path) -> tuple[R | None, str]:
    """(the record, "") or (None, why): why is "" when the file is absent, else one line naming it."""
    data, problem = parse_json(path)
    if data is None:
        return None, problem
    try:
        return cls(**_fields(cls, data, path)), ""
    except SchemaError as err:
        return None, str(err)


def _read(cls: type[R], path: Path) -> R | None:
    """The record in `path`, or None when it is absent, damaged or lacks a field (a reader moves on)."""
    return check(cls, path)[0]


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


@dataclass(frozen=True)
class Metrics:
    """metrics.json: one complete run. `test`, `timing` and `environment` keep their open sections
    (per-class figures, phases, the machine); the keys every reader relies on are checked on read."""

    id: str
    experiment: dict[str, Any]  # the settings, with id and fingerprint
    classes: list[str]
    counts: dict[str, dict[str, int]]  # images per split and class
    model: dict[str, Any]
    path: str  # plain | head-only | metadata
    history: list[dict[str, Any]]  # one entry per epoch
    epochs_run: int
    best_epoch: int
    test: dict[str, Any]  # accuracy, count, correct, loss, confusion, predictions, per class
    timing: dict[str, Any]  # seconds per PHASES entry, total, train breakdown, images per second
    environment: dict[str, Any]  # host, device, backend, CPU and GPU, slots
    finished: float
    skipped_images: list[dict[str, str]] = field(default_factory=list)  # file and reason
    runs: int = 1
    resumed_from: int = 0
    augmentation: str = "off"  # off | cpu | device
    tsne: str | None = None  # why there is no t-SNE, where there is none
    schema_version: int = SCHEMA_VERSION

    # The inner keys that readers use, with what each may be: every one of REQUIRED must be there;
    # the others, written by some versions, may be absent.
    INNER: ClassVar = {
        "test": {"accuracy": float, "count": int, "correct": int, "loss": float | None, "roc_auc": float | None,
                 "per_class": dict, "predictions": list, "confusion": list},
        "timing": {"total": float, **dict.fromkeys(PHASES, float), "seconds_per_epoch": float,
                   "train_images_per_second": float},
        "environment": {"host": str, "device_used": str, "gpu_name": str | None, "cpu_model": str | None,
                        "slots": int | None, "cpu_count": int | None},
    }  # fmt: skip
    REQUIRED: ClassVar = {"test": ("accuracy", "count", "correct"), "timing": ("total",), "environment": ("host",)}

    @classmethod
    def from_json(cls, data: Any, path: Path) -> Metrics:
        """Checked whole: its version, each field's kind, the inner keys readers use and the settings."""
        version = data.get("schema_version") if isinstance(data, dict) else None
        if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
            raise NewerSchema(
                f"{path}: written by a newer xrayhpc (schema version {version}; this one reads {SCHEMA_VERSION}): "
                "upgrade to read it"
            )
        if version != SCHEMA_VERSION:
            raise SchemaError(f"{path}: schema_version {version!r} is not one this xrayhpc reads ({SCHEMA_VERSION})")
        fields = _fields(cls, data, path)
        for section, keys in cls.INNER.items():
            missing = [k for k in cls.REQUIRED.get(section, ()) if k not in fields[section]]
            if missing:
                raise SchemaError(f"{path}: incomplete (no {', '.join(f'{section}.{k}' for k in missing)})")
            for key, kind in keys.items():
                if key in fields[section]:
                    _check_value(f"{path}: {section}.{key}", fields[section][key], _json_kinds(kind))
        test = fields["test"]
        if test["accuracy"] > 1 or test["correct"] > test["count"]:
            raise SchemaError(f"{path}: test.accuracy or test.correct is out of range")
        _check_settings(fields["experiment"], path)
        return cls(**fields)

    @property
    def images(self) -> dict[str, int]:
        """Images per split, all classes together."""
        return {split: sum(per_class.values()) for split, per_class in self.counts.items()}

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": self.schema_version, **dataclasses.asdict(self)}

    def write(self, folder: Path) -> None:
        write_json(Path(folder) / METRICS, self.to_json())


def _check_settings(settings: dict[str, Any], path: Path) -> None:
    """The `experiment` section is a valid experiment, with its fingerprint (files it names may be gone)."""
    from xrayhpc.errors import UserError
    from xrayhpc.experiment import Experiment

    if not isinstance(settings.get("fingerprint"), str):
        raise SchemaError(f"{path}: incomplete (no experiment.fingerprint)")
    try:
        Experiment.from_settings(settings, f"{path}: experiment", files=False)
    except UserError as err:
        raise SchemaError(str(err)) from None


@dataclass(frozen=True)
class MetricsFile:
    """What a folder's metrics.json holds: a record, or why not ("" when there is none)."""

    record: Metrics | None
    problem: str = ""
    newer: bool = False  # a newer xrayhpc wrote it: a finished run, never to be rerun


def inspect_metrics(folder: Path) -> MetricsFile:
    path = Path(folder) / METRICS
    data, problem = parse_json(path)
    if data is None:
        return MetricsFile(None, problem)
    try:
        return MetricsFile(Metrics.from_json(data, path))
    except SchemaError as err:
        return MetricsFile(None, str(err), isinstance(err, NewerSchema))


def check_metrics(folder: Path) -> tuple[Metrics | None, str]:
    """(the record, "") when metrics.json is complete and of this schema; else (None, why), "" when there is none."""
    found = inspect_metrics(folder)
    return found.record, f"{found.problem}, left out" if found.problem else ""


def read_metrics(folder: Path) -> Metrics | None:
    return inspect_metrics(folder).record


@dataclass(frozen=True)
class Progress:
    """progress.json: where a worker is, for `xrayhpc.status`; a failed run leaves its error here."""

    state: str  # running | failed | done
    epoch: int
    epochs: int
    started: float
    host: str
    pid: int
    id: str = ""
    fingerprint: str = ""
    phase: str = ""
    updated: float = 0.0
    job: str = ""  # the scheduler's or submitit's job id
    run: int = 1  # counts starts: a requeued or resumed run is the next
    resumed_from: int = 0
    last: dict[str, Any] = field(default_factory=dict)  # the last epoch's losses and accuracies
    error: str | None = None
    error_kind: str | None = None  # "user" for a mistake the user can fix
    elapsed_s: float = 0.0

    def write(self, folder: Path) -> None:
        write_json(Path(folder) / PROGRESS, dataclasses.asdict(self))


def read_progress(folder: Path) -> Progress | None:
    return _read(Progress, Path(folder) / PROGRESS)


@dataclass(frozen=True)
class JobRecord:
    """job.json: what was submitted, written only after the scheduler accepted the job, so always true.
    `attempt` counts submissions (retries included), `requeues` the times the job put itself back in
    the queue at its wall-time warning."""

    executor: str
    job_id: str  # submitit's id: "123", "123_0" (array task 0 = SGE task 1), or a pid for local
    fingerprint: str
    script: str
    log: str
    submitted: float
    attempt: int = 1
    requeues: int = 0

    @property
    def task_index(self) -> int | None:
        _, sep, index = self.job_id.partition("_")
        return int(index) if sep else None

    @property
    def scheduler_id(self) -> str:
        """How the scheduler names it: `123.1` for the first task of array 123."""
        job, sep, index = self.job_id.partition("_")
        return f"{job}.{int(index) + 1}" if sep and self.executor == "sge" else self.job_id


def read_record(folder: Path) -> JobRecord | None:
    return _read(JobRecord, Path(folder) / JOB)


def write_record(folder: Path, record: JobRecord) -> None:
    """job.json, with what a person reading it wants besides: who, when, the scheduler's own id."""
    data: dict[str, Any] = dataclasses.asdict(record)
    data["task_index"] = record.task_index
    data["scheduler_id"] = record.scheduler_id
    data["submitted_by"] = os.environ.get("USER", "")
    data["submitted_at"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.submitted))
    write_json(Path(folder) / JOB, data)


# audit.json (xrayhpc.study.audit): per task folder, a row per split and class, then duplicate pairs
AUDIT_COLUMNS = ("split", "class", "images", "formats", "modes", "coloured", "width", "height", "kb")
AUDIT_HEADER = [
    "split",
    "class",
    "images",
    "formats",
    "colour modes",
    "channels differ (> {levels:g} levels)",
    "width min/median/max",
    "height min/median/max",
    "KB min/median/max",
]


def read_audit(folder: Path) -> tuple[dict[str, Any] | None, list[tuple[str, list[str], list[list[str]]]], str]:
    """(audit.json's task audit, its tables, "") or (None, [], why): why is "" when there is none."""
    path = Path(folder) / AUDIT
    task, problem = parse_json(path)
    if task is None:
        return None, [], problem
    try:
        tables = audit_tables(task)
        _check_value(f"{path}: colour_levels", task["colour_levels"], (int, float))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        detail = f"no {err}" if isinstance(err, KeyError) else str(err)
        return None, [], f"{path}: incomplete or mistyped ({detail})"
    return task, tables, ""


def audit_tables(task: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, body) for one task folder of audit.json: its summary and its duplicate pairs."""
    folder, pairs = task["folder"], task["duplicates"]
    header = [h.format(levels=task["colour_levels"]) for h in AUDIT_HEADER]
    return [
        (f"{folder}/: files per split and class", header, [[str(r[c]) for c in AUDIT_COLUMNS] for r in task["rows"]]),
        (
            f"{folder}/: duplicates ({len(pairs)} pairs; near: perceptual hashes within {task['near_bits']} of 64 bits)",
            ["kind", "bits apart", "where", "file", "file"],
            [[p["kind"], str(p["bits"]), p["where"], p["a"], p["b"]] for p in pairs] or [["none", "", "", "", ""]],
        ),
    ]
