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
import os
import tempfile
import time
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar, TypeVar

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


def umask() -> int:
    """The process's umask, read without changing it (/proc), else by setting and restoring it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write through `write(file)` to a temporary name beside `path`, then rename over it.

    The file gets the permissions any new file gets under the user's umask (group-readable under
    umask 002, as on a shared /projectnb), not the temporary file's private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"
    write_atomic(path, lambda f: f.write(text.encode()))


def read_json(path: Path) -> Any | None:
    """The parsed file, or None when it is absent or damaged."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def experiment_folders(root: Path) -> list[Path]:
    """Every folder under the results root that a worker or the dispatcher wrote."""
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and any((p / f).exists() for f in (METRICS, PROGRESS, JOB))
    )


class SchemaError(ValueError):
    """A record file that is there but cannot be read as this version's record."""


def _fields(cls: type, data: Any, path: Path) -> dict[str, Any]:
    """The record's fields from a parsed file: every field without a default present, with its type."""
    if not isinstance(data, dict):
        raise SchemaError(f"{path}: damaged (not readable JSON)")
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in data and _required(f)]
    if missing:
        raise SchemaError(f"{path}: incomplete (no {', '.join(missing)})")
    out = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
    for name, value in out.items():
        if not isinstance(value, _kinds(cls)[name]):
            raise SchemaError(f"{path}: {name} is {type(value).__name__}, not {cls.__dataclass_fields__[name].type}")
    return out


@functools.cache
def _kinds(cls: type) -> dict[str, tuple[type, ...]]:
    """What each field's value may be in JSON, from its annotation: `dict[str, Any]` a dict, `str |
    None` a str or null, a float an int or a float."""
    return {name: _json_kinds(hint) for name, hint in typing.get_type_hints(cls).items()}


def _json_kinds(hint: Any) -> tuple[type, ...]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return tuple(k for arg in typing.get_args(hint) for k in _json_kinds(arg))
    origin = typing.get_origin(hint) or hint
    if origin is float:
        return (int, float)
    return (origin,) if isinstance(origin, type) else (object,)


def _read(cls: type[R], path: Path) -> R | None:
    """The record in `path`, or None when it is absent, damaged or lacks a field (a reader moves on)."""
    try:
        return cls(**_fields(cls, read_json(path), path))
    except SchemaError:
        return None


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

    REQUIRED: ClassVar = {"test": ("accuracy", "count", "correct"), "experiment": ("task", "fingerprint"),
                          "timing": ("total",), "environment": ("host",)}  # fmt: skip

    @classmethod
    def from_json(cls, data: Any, path: Path) -> Metrics:
        if isinstance(data, dict) and data.get("schema_version") != SCHEMA_VERSION:
            raise SchemaError(f"{path}: schema_version {data.get('schema_version')!r} is not {SCHEMA_VERSION}")
        fields = _fields(cls, data, path)
        missing = [f"{s}.{k}" for s, keys in cls.REQUIRED.items() for k in keys if k not in fields[s]]
        if missing:
            raise SchemaError(f"{path}: incomplete (no {', '.join(missing)})")
        return cls(**fields)

    @property
    def images(self) -> dict[str, int]:
        """Images per split, all classes together."""
        return {split: sum(per_class.values()) for split, per_class in self.counts.items()}

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": self.schema_version, **dataclasses.asdict(self)}

    def write(self, folder: Path) -> None:
        write_json(Path(folder) / METRICS, self.to_json())


def check_metrics(folder: Path) -> tuple[Metrics | None, str]:
    """(the record, "") when metrics.json is complete and of this schema; else (None, why), "" when there is none."""
    path = Path(folder) / METRICS
    if not path.exists():
        return None, ""
    try:
        return Metrics.from_json(read_json(path), path), ""
    except SchemaError as err:
        return None, f"{err}, left out"


def read_metrics(folder: Path) -> Metrics | None:
    return check_metrics(folder)[0]


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
