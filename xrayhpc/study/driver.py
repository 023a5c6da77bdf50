"""What the NVIDIA driver says of the GPUs assigned to this process, read from `nvidia-smi`.

`nvidia-smi` lists every GPU of the node whatever CUDA_VISIBLE_DEVICES says, so its rows are
mapped to the assignment (indices or UUIDs) before anyone judges them: a job given one V100 on a
node that also holds an A100 is a V100 job. Its exit status is read too, since a driver that does
not answer, or one too old to know `compute_cap` (470 and before), is not "no GPU allocated".
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

# Values of CUDA_VISIBLE_DEVICES that assign no GPU (Grid Engine writes NoDevFiles on some sites).
NONE_ASSIGNED = ("", "-1", "NoDevFiles")
FIELDS = ("index", "uuid", "name", "compute_cap", "driver_version")


@dataclass(frozen=True)
class Gpu:
    """One GPU as the driver reports it."""

    index: str
    uuid: str
    name: str
    compute: float | None
    driver: str | None


@dataclass(frozen=True)
class DriverReport:
    """The assigned GPUs, the driver's version, and what went wrong asking (None: nothing)."""

    gpus: list[Gpu] = field(default_factory=list)
    every: int = 0  # GPUs on the node, assigned or not
    problem: str | None = None
    version: str | None = None  # the driver's, read from any of the node's GPUs


def assigned(every: list[Gpu], visible: str | None) -> list[Gpu]:
    """The rows CUDA_VISIBLE_DEVICES gives this process, in its order (unset: every GPU).

    CUDA reads the list up to its first unknown entry; so does this. A MIG slice (`MIG-...`) is
    not a row of `--query-gpu`: its GPU cannot be told, so every GPU of the node stands for it.
    """
    if visible is None:
        return every
    if visible.strip() in NONE_ASSIGNED:
        return []
    out = []
    for entry in (e.strip() for e in visible.split(",")):
        if entry.startswith("MIG-"):
            return every
        match = next(
            (g for g in every if entry in (g.index, g.uuid) or (entry.startswith("GPU-") and g.uuid.startswith(entry))),
            None,
        )
        if match is None:
            break
        out.append(match)
    return out


@functools.cache
def _query(program: str, fields: tuple[str, ...]) -> tuple[list[list[str]], str | None]:
    """nvidia-smi's rows for `fields`, or (no rows, what it said when it failed); asked once per
    process, since a driver that hangs costs its whole timeout each time."""
    try:
        out = subprocess.run(
            [program, f"--query-gpu={','.join(fields)}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as err:
        return [], f"nvidia-smi could not run: {err}"
    if out.returncode != 0:
        said = (out.stderr.strip() or out.stdout.strip()).splitlines()
        return [], f"nvidia-smi exited with status {out.returncode}" + (f": {said[0][:200]}" if said else "")
    return [[part.strip() for part in line.split(",")] for line in out.stdout.splitlines() if line.strip()], None


def _number(text: str) -> float | None:
    return float(text) if re.fullmatch(r"\d+(\.\d+)?", text) else None


def report(visible: str | None = None) -> DriverReport:
    """The driver's answer for this process's GPUs (`visible`: CUDA_VISIBLE_DEVICES, read if not given)."""
    program = shutil.which("nvidia-smi")
    if not program:
        return DriverReport()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
    rows, problem = _query(program, FIELDS)
    fields = FIELDS
    if problem:  # a driver too old for compute_cap still names its GPUs
        fields = tuple(f for f in FIELDS if f != "compute_cap")
        rows, second = _query(program, fields)
        if second:
            return DriverReport(problem=problem)
    every = []
    for row in rows:
        values = dict(zip(fields, row, strict=False))
        if values.get("name"):
            every.append(
                Gpu(
                    values.get("index", ""),
                    values.get("uuid", ""),
                    values["name"],
                    _number(values.get("compute_cap", "")),
                    values.get("driver_version") or None,
                )
            )
    return DriverReport(assigned(every, visible), len(every), None, next((g.driver for g in every if g.driver), None))
