"""The result folder: the contract between the worker and everything after it.

One folder per experiment under the results root. Every file is written whole (a temporary name in
the same folder, then a rename), so a reader never sees half of one. `metrics.json` is written
last: its presence, with this schema version, means the run is complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

SCHEMA_VERSION = 1
METRICS = "metrics.json"
PROGRESS = "progress.json"
LOG = "worker.log"
JOB = "job.json"
AUDIT = "audit.json"
# metrics.json's `timing` phases, in the order the worker runs them (each also sums into `total`)
PHASES = (
    "load",
    "features",
    "train",
    "evaluate",
    "tsne",
)  # the metadata baseline's: what the files of its task folder say (xrayhpc.audit)


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


# What every reader of metrics.json relies on: (section, key) pairs, checked once on read.
REQUIRED = (("test", "accuracy"), ("test", "count"), ("experiment", "task"), ("experiment", "fingerprint"),
            ("timing", "total"), ("environment", "host"))  # fmt: skip


def check_metrics(folder: Path) -> tuple[dict[str, Any] | None, str]:
    """(metrics.json, "") when it is complete and of this schema; else (None, why), "" when there is none."""
    path = Path(folder) / METRICS
    if not path.exists():
        return None, ""
    data = read_json(path)
    if not isinstance(data, dict):
        return None, f"{path}: damaged (not readable JSON), left out"
    if data.get("schema_version") != SCHEMA_VERSION:
        return None, f"{path}: schema_version {data.get('schema_version')!r} is not {SCHEMA_VERSION}, left out"
    missing = [f"{a}.{b}" for a, b in REQUIRED if not isinstance(data.get(a), dict) or b not in data[a]]
    if missing:
        return None, f"{path}: incomplete (no {', '.join(missing)}), left out"
    return data, ""


def read_metrics(folder: Path) -> dict[str, Any] | None:
    """metrics.json when it is complete and of a schema this version reads, else None."""
    return check_metrics(folder)[0]
