"""The result folder: the contract between the worker and everything after it.

One folder per experiment under the results root. Every file is written whole (a temporary name in
the same folder, then a rename), so a reader never sees half of one. Three of them are records
with a type here, written and read only through it:

    metrics.json    Metrics: the complete run, written last; its presence means the run is complete
    progress.json   Progress: where a running worker is, rewritten at each phase and epoch
    job.json        JobRecord: what the dispatcher submitted, written once the scheduler accepted it

A reader gets a record or None (absent, damaged, another schema version, a key missing, a value
of the wrong kind or out of range, anywhere inside), never a half-checked dict; `check_metrics`,
`check` and `read_audit` also say why a file was left out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import re
import time
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from xrayhpc.safefiles import UnsafeFile, is_folder, is_regular, read_bytes, write_atomic

# Bumped only for a change that a reader of the previous version would misread: a field added
# later is optional (readers accept its absence, and a reader leaves out a key it does not know).
SCHEMA_VERSION = 1
R = TypeVar("R")
METRICS = "metrics.json"
PROGRESS = "progress.json"
LOG = "worker.log"
JOB = "job.json"
AUDIT = "audit.json"
PROBES = "probes.json"
WEIGHTS = "model.weights.h5"  # the trained model's weights: the head's, or all when the backbone trained
# metrics.json's `timing` phases, in the order the worker runs them (each also sums into `total`)
PHASES = ("load", "features", "train", "evaluate", "probe", "tsne")


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
RANGES = {
    "pid": (1, 2**22),
    "attempt": (1, 10**6),
    "run": (1, 10**6),
    "requeues": (0, 10**6),
    "idle_share": (0, 1),
    "utilisation_mean": (0, 100),
    "utilisation_peak": (0, 100),
    "accuracy_change": (-1, 1),
    "accuracy_low": (-1, 1),
    "accuracy_high": (-1, 1),
    "loss_change": (-1e6, 1e6),
    "loss_low": (-1e6, 1e6),
    "loss_high": (-1e6, 1e6),
    "share": (0, 1),
    "area": (0, 1),
    "chance": (0, 1),
    "accuracy": (0, 1),
    "loss": (0, 1e6),
}
# Lists that grow with a run, bounded before each entry is checked: an epoch a record.
LENGTHS = {"history": 100_000, "probes": 3, "shares": 1001}
# Strings that name something for a command: a job id is digits, an array task's `_N` after them.
PATTERNS = {
    "job_id": re.compile(r"[0-9]{1,20}(_[0-9]{1,9})?"),
    "scheduler_id": re.compile(r"[0-9]{1,20}([._][0-9]{1,9})?"),
}


def _fields(cls: type, data: Any, path: Path, prefix: str = "") -> dict[str, Any]:
    """The record's fields from a parsed object, each checked against its annotation (records inside
    it built too); a field without a default must be there; a key the record does not know is left
    out (a later writer of the same version may add fields)."""
    if not isinstance(data, dict):
        raise SchemaError(f"{path}: {prefix.rstrip('.')} is {type(data).__name__}, not dict" if prefix else
                          f"{path}: damaged (not a JSON object)")  # fmt: skip
    missing = [f"{prefix}{f.name}" for f in dataclasses.fields(cls) if f.name not in data and _required(f)]
    if missing:
        raise SchemaError(f"{path}: incomplete (no {', '.join(missing)})")
    hints = _hints(cls)
    return {
        f.name: _convert(data[f.name], hints[f.name], path, f"{prefix}{f.name}", RANGES.get(f.name, NUMBER))
        for f in dataclasses.fields(cls)
        if f.name in data
    }


def _convert(value: Any, hint: Any, path: Path, name: str, bounds: tuple[float, float] = NUMBER) -> Any:
    """`value` as JSON holds a `hint` (a bool is no number; numbers finite, within `bounds`), a
    record built where the hint is one; else SchemaError naming the file and the dotted key."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        kinds = [a for a in args if a is not type(None)]
        for kind in kinds[:-1]:
            with contextlib.suppress(SchemaError):
                return _convert(value, kind, path, name, bounds)
        return _convert(value, kinds[-1], path, name, bounds)
    if dataclasses.is_dataclass(hint):
        return hint(**_fields(hint, value, path, f"{name}."))
    kind = origin or hint
    number = kind in (int, float) and isinstance(value, int | float) and not isinstance(value, bool)
    if not (number and (kind is float or isinstance(value, int))) and (
        not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)
    ):
        raise SchemaError(f"{path}: {name} is {type(value).__name__}, not {_shown(hint)}")
    # the bounds first: an integer of hundreds of digits is JSON, and too large for isfinite
    if number and not (bounds[0] <= value <= bounds[1] and math.isfinite(value)):
        raise SchemaError(f"{path}: {name} = {str(value)[:40]} is out of range ({bounds[0]} to {bounds[1]})")
    if kind is list and len(value) > LENGTHS.get(name, len(value)):
        raise SchemaError(f"{path}: {name} has {len(value)} entries, more than any run of ours ({LENGTHS[name]})")
    pattern = PATTERNS.get(name)
    if pattern and isinstance(value, str) and not pattern.fullmatch(value):
        raise SchemaError(f"{path}: {name} = {value[:40]!r} is not a job id")
    if kind is dict and args:
        return {k: _convert(v, args[1], path, f"{name}.{k}") for k, v in value.items()}
    if kind is list and args:
        return [_convert(v, args[0], path, f"{name}[{i}]") for i, v in enumerate(value)]
    return value


def _shown(hint: Any) -> str:
    return getattr(typing.get_origin(hint) or hint, "__name__", str(hint))


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


# While a long watch runs (`parses_kept`): {(kind, path): (the file's version, what reading it gave)}.
_kept: dict[tuple[str, str], tuple[tuple[Any, ...], Any]] | None = None
KEPT_MAX = 50_000  # three record files for each of many thousand result folders


@contextlib.contextmanager
def parses_kept() -> Iterator[None]:
    """Read each record file once per version of it, for as long as this lasts: a dashboard that
    refreshes a thousand folders reads again only the files that changed."""
    global _kept
    outer, _kept = _kept, {}
    try:
        yield
    finally:
        _kept = outer


def _version(path: Path) -> tuple[Any, ...] | None:
    """What changes when a file is rewritten or replaced (write_atomic renames a new file in), or
    its folder is (a folder swapped for a link is read again, and refused); for a file not there,
    its folder's: a file made in a folder changes the folder."""
    try:
        up = os.lstat(path.parent)
    except OSError:
        return None
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return ("absent", *_stamp(up))
    except OSError:
        return None
    return (*_stamp(up), st.st_size, *_stamp(st))


def _stamp(st: os.stat_result) -> tuple[int, ...]:
    return st.st_mode, st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns


def _once(kind: str, path: Path, read: Callable[[], R]) -> R:
    """`read()`, or what it gave for this version of `path` while `parses_kept` lasts."""
    version = _version(path) if _kept is not None else None
    if _kept is None or version is None:
        return read()
    slot = (kind, str(path))
    if slot in _kept and _kept[slot][0] == version:
        return _kept[slot][1]
    value = read()
    if _version(path) == version:  # not rewritten while it was read
        if len(_kept) >= KEPT_MAX:  # folders come and go: start again rather than grow for ever
            _kept.clear()
        _kept[slot] = (version, value)
    return value


def check(cls: type[R], path: Path) -> tuple[R | None, str]:
    """(the record, "") or (None, why): why is "" when the file is absent, else one line naming it."""
    return _once(cls.__name__, path, lambda: _check(cls, path))


def _check(cls: type[R], path: Path) -> tuple[R | None, str]:
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
class Scores:
    """metrics.json `test`: the scores on the test set (study/evaluate.test_metrics builds them)."""

    accuracy: float
    correct: int
    count: int
    loss: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]  # precision, recall, f1, support
    confusion: list[list[int]]
    roc_auc: float | None = None  # None where a class is absent from the test labels
    predictions: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Timing:
    """metrics.json `timing`: seconds per phase (PHASES), in all, and the training's rates."""

    total: float
    load: float = 0.0
    features: float = 0.0
    train: float = 0.0
    evaluate: float = 0.0
    probe: float = 0.0  # Grad-CAM and the occlusion probes
    tsne: float = 0.0
    train_breakdown: dict[str, float] = field(default_factory=dict)  # features, augment, fit
    seconds_per_epoch: float = 0.0
    train_images_per_second: float = 0.0

    def seconds(self, phase: str) -> float:
        """One of PHASES."""
        return float(getattr(self, phase))


@dataclass(frozen=True)
class Environment:
    """metrics.json `environment`: where and how the run happened (study/device.environment)."""

    host: str
    device_requested: str = ""
    device_used: str = ""
    gpu_name: str | None = None
    cpu_model: str | None = None
    cpu_count: int | None = None
    slots: int | None = None
    scheduler_job_id: str | None = None
    scheduler_task_id: str | None = None
    python: str = ""
    keras: str | None = None  # None: the run used no Keras (the metadata baseline)
    backend: str | None = None
    tensorflow: str | None = None
    jax: str | None = None
    kernel_check: dict[str, Any] | None = None  # a GPU run's (study/kernels.py)
    deterministic: bool | None = None  # op determinism was on (None: not recorded, or no backend)
    tf32: bool | None = None  # float32 matrix products may use TF32 (on GPUs that have it)


@dataclass(frozen=True)
class GpuUse:
    """metrics.json `gpu_use`: the assigned GPUs as NVML sampled them through the run (study/gpuuse.py)."""

    gpus: list[str]
    samples: int
    every_s: float
    utilisation_mean: float  # percent, over the samples (and the GPUs)
    utilisation_peak: float
    memory_peak_mb: float
    memory_total_mb: float
    idle_share: float  # of the samples, those in which the GPU was idle

    def hint(self, cpu_efficiency: float | None = None) -> str:
        """Where the job was starved by its data or asked for a far larger GPU than it used."""
        hints = []
        if self.idle_share >= 0.5:
            cpu = f" while the CPU worked ({cpu_efficiency:.0%} of its cores)" if cpu_efficiency else ""
            hints.append(
                f"GPU idle in {self.idle_share:.0%} of the samples{cpu}: data-bound; more cores, "
                "or the frozen backbone's features cached (augment = false)"
            )
        if self.memory_total_mb and self.memory_peak_mb < 0.25 * self.memory_total_mb:
            hints.append(
                f"used {self.memory_peak_mb / 1024:.1f} of {self.memory_total_mb / 1024:.0f} GB of GPU memory: "
                "a smaller `gpu_memory` request queues sooner"
            )
        return "; ".join(hints)


@dataclass(frozen=True)
class ProbeScore:
    """probes.json: the test set again with part of each image taken away (study/probes.py)."""

    probe: str  # hidden | only | normalised
    shown: str
    accuracy: float
    loss: float
    accuracy_change: float  # mean over the test images of probed - original (correct: 1, wrong: 0)
    accuracy_low: float | None  # its paired 95% interval (None under two images)
    accuracy_high: float | None
    loss_change: float
    loss_low: float | None
    loss_high: float | None

    def change(self, sep: str = ",") -> str:
        """Its accuracy with the paired change and interval: `0.67 (-0.33, -0.57 to -0.09)`."""
        if self.accuracy_low is None or self.accuracy_high is None:
            return f"{self.accuracy:.2f}"
        low, high = self.accuracy_low, self.accuracy_high
        return f"{self.accuracy:.2f} ({self.accuracy_change:+.2f}{sep} {low:+.2f} to {high:+.2f})"


@dataclass(frozen=True)
class RegionShare:
    """probes.json: the share of Grad-CAM's mass inside the region, over one class's test images."""

    label: str  # a class, or "all"
    images: int
    share: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Probes:
    """probes.json: what a trained model looks at, beside its test accuracy (study/probes.py)."""

    id: str
    fingerprint: str  # the run's: a probe of an older run of the experiment is stale
    region: str  # centre | lung field
    outside: str  # border | outside the lungs
    area: float  # the region's share of the image
    images: int
    accuracy: float
    loss: float
    chance: float  # the majority class's share of the test set
    probes: list[ProbeScore]
    shares: list[RegionShare]
    verdict: str  # what the probes say: the region, the outside, both, neither, chance
    gradcam_verdict: str  # what Grad-CAM's share says, the same words
    sentence: str
    seconds: float
    schema_version: int = SCHEMA_VERSION

    def write(self, folder: Path) -> None:
        write_json(Path(folder) / PROBES, {**dataclasses.asdict(self), "schema_version": self.schema_version})


# What a probes.json may say, word for word: its strings reach the report's Markdown and the terminal.
REGIONS = {"centre": "border", "lung field": "outside the lungs"}
PROBE_KINDS = ("hidden", "only", "normalised")
NEWER_PROBES = "written by a newer xrayhpc"
SENTENCE = re.compile(r"[A-Za-z0-9 .,;:()%+?'\-]{1,2000}")


def check_probes(folder: Path) -> tuple[Probes | None, str]:
    """(probes.json, "") or (None, why), as `check`, and checked for sense: the three probes, the share
    over all images first, intervals with both ends or none, and only the words the probes write."""
    path = Path(folder) / PROBES
    probes, problem = check(Probes, path)
    if probes is None:
        return None, problem
    if probes.schema_version > SCHEMA_VERSION:
        return None, f"{path}: {NEWER_PROBES} (schema version {probes.schema_version}); left out"
    if probes.schema_version != SCHEMA_VERSION:
        return None, f"{path}: schema_version {probes.schema_version} is not one this xrayhpc reads"
    words = {probes.region, probes.outside, "both", "neither", "chance"}
    ends = [(s.accuracy_low, s.accuracy_high) for s in probes.probes] + [(s.low, s.high) for s in probes.shares]
    faults = [
        (REGIONS.get(probes.region) != probes.outside, "its region"),
        ([s.probe for s in probes.probes] != list(PROBE_KINDS), f"its probes (not {', '.join(PROBE_KINDS)})"),
        (not probes.shares or probes.shares[0].label != "all", "its shares (the first is not `all`)"),
        (any((low is None) != (high is None) for low, high in ends), "an interval with one end"),
        (not {probes.verdict, probes.gradcam_verdict} <= words, "its verdicts"),
        (not SENTENCE.fullmatch(probes.sentence), "its sentence (characters the probes never write)"),
    ]
    if wrong := next((why for bad, why in faults if bad), ""):
        return None, f"{path}: damaged ({wrong}); left out"
    return probes, ""


@dataclass(frozen=True)
class Metrics:
    """metrics.json: one complete run, every section a typed record checked whole on read."""

    id: str
    experiment: dict[str, Any]  # the settings, with id and fingerprint (checked as an Experiment)
    classes: list[str]
    counts: dict[str, dict[str, int]]  # images per split and class
    model: dict[str, Any]
    path: str  # plain | head-only | metadata
    history: list[dict[str, Any]]  # one entry per epoch: losses, accuracies (NaN where training diverged), seconds
    epochs_run: int
    best_epoch: int
    test: Scores
    timing: Timing
    environment: Environment
    finished: float
    skipped_images: list[dict[str, str]] = field(default_factory=list)  # file and reason
    runs: int = 1
    resumed_from: int = 0
    devices: list[str] = field(default_factory=list)  # each run's device, where a resumed run changed it
    augmentation: str = "off"  # off | cpu | device
    tsne: str | None = None  # why there is no t-SNE, where there is none
    gpu_use: GpuUse | None = None  # a GPU run's, where NVML could be asked
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_json(cls, data: Any, path: Path) -> Metrics:
        """Checked whole: its version, every field and record inside it, and the settings."""
        version = data.get("schema_version") if isinstance(data, dict) else None
        if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
            raise NewerSchema(
                f"{path}: written by a newer xrayhpc (schema version {version}; this one reads {SCHEMA_VERSION}): "
                "upgrade to read it"
            )
        if version != SCHEMA_VERSION:
            raise SchemaError(f"{path}: schema_version {version!r} is not one this xrayhpc reads ({SCHEMA_VERSION})")
        metrics = cls(**_fields(cls, data, path))
        if metrics.test.accuracy > 1 or metrics.test.correct > metrics.test.count:
            raise SchemaError(f"{path}: test.accuracy or test.correct is out of range")
        return dataclasses.replace(metrics, experiment=_checked_settings(metrics.experiment, path))

    @property
    def images(self) -> dict[str, int]:
        """Images per split, all classes together."""
        return {split: sum(per_class.values()) for split, per_class in self.counts.items()}

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": self.schema_version, **dataclasses.asdict(self)}

    def write(self, folder: Path) -> None:
        write_json(Path(folder) / METRICS, self.to_json())


def _checked_settings(settings: dict[str, Any], path: Path) -> dict[str, Any]:
    """The `experiment` section as a valid experiment's settings, each one there (a setting an older
    writer lacked takes its default; one a later writer added is kept but not checked), with its id and
    fingerprint. Files it names may be gone."""
    from xrayhpc.errors import UserError
    from xrayhpc.experiment import FIELDS, Experiment

    if not isinstance(settings.get("fingerprint"), str):
        raise SchemaError(f"{path}: incomplete (no experiment.fingerprint)")
    known = {k: v for k, v in settings.items() if k in FIELDS or k in ("id", "fingerprint")}
    try:
        exp = Experiment.from_settings(known, f"{path}: experiment", files=False)
    except UserError as err:
        raise SchemaError(str(err)) from None
    return {**settings, **exp.settings(), "id": exp.id, "fingerprint": settings["fingerprint"]}


@dataclass(frozen=True)
class MetricsFile:
    """What a folder's metrics.json holds: a record, or why not ("" when there is none)."""

    record: Metrics | None
    problem: str = ""
    newer: bool = False  # a newer xrayhpc wrote it: a finished run, never to be rerun


def inspect_metrics(folder: Path) -> MetricsFile:
    path = Path(folder) / METRICS
    return _once("Metrics", path, lambda: _inspect(path))


def _inspect(path: Path) -> MetricsFile:
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
    history: list[dict[str, Any]] = field(default_factory=list)  # every epoch so far, a resumed run's earlier ones too
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
    job_id: str  # submitit's id: "123", "123_0" (array task 0), or a pid for local
    fingerprint: str
    script: str
    log: str
    submitted: float
    attempt: int = 1
    requeues: int = 0
    scheduler_id: str = ""  # how the scheduler's own commands name it (Grid Engine: `123.1`)
    cancelled: float = 0.0  # when `submit --cancel` removed it (0: never)

    @property
    def task_index(self) -> int | None:
        _, sep, index = self.job_id.partition("_")
        return int(index) if sep else None

    @property
    def shown_id(self) -> str:
        return self.scheduler_id or self.job_id


def read_record(folder: Path) -> JobRecord | None:
    return _read(JobRecord, Path(folder) / JOB)


def write_record(folder: Path, record: JobRecord) -> None:
    """job.json, with what a person reading it wants besides: who, when, the scheduler's own id."""
    data: dict[str, Any] = dataclasses.asdict(record)
    data["task_index"] = record.task_index
    data["scheduler_id"] = record.shown_id  # a local run's pid, too: what to look for in `ps`
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
        _convert(task["colour_levels"], float, path, "colour_levels")
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
