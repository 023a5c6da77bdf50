"""Site profiles (qsub/*.toml): what a job asks the scheduler for, per device.

A profile has site-wide keys (project, wall time, setup lines, variables passed to the job, ...),
a [cpu] and a [gpu] table with the resources of each kind of job, and a table per scheduler with
what only that one knows ([slurm]: partition, account, qos, constraint, gres). On Grid Engine `gpu`
jobs ask `-l gpus=1 -l gpu_c=...` and `cpu` jobs `-pe omp N`; each scheduler module turns the
profile into its own request. Profiles ship inside the package; a `qsub/NAME.toml` in the working
directory overrides the packaged one.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xrayhpc import sitefiles
from xrayhpc.errors import UserError

DEFAULT_PROFILE = "scc"
SITE_KEYS = {
    "project": str,
    "require_project": bool,
    "queue": str,
    "partition": str,
    "time": str,
    "signal_delay_s": int,
    "setup": list,
    "array_parallelism": int,
    "extra_directives": list,
    "env": list,
    "mail": str,
    "mail_events": str,
}
# What the worker reads from its environment; Grid Engine passes the submitting shell's variables
# only when asked (-v), so these go with every job unless a profile lists its own.
DEFAULT_ENV = ["KERAS_HOME", "KERAS_BACKEND", "XRAYHPC_CACHE"]
DEVICE_KEYS = {"cores": int, "gpus": int, "gpu_c": float, "gpu_type": str, "gpu_memory": str, "mem_per_core": str}
# What each value that lands in a `#$` line may hold: one qsub option each, nothing a shell or
# qsub would read as more (no spaces, newlines, quotes or `$`).
NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
FEATURES = (r"[A-Za-z0-9_.&|,()\[\]*:-]+", 'node features such as "a100" or "v100|a100" (no spaces)')
TEXT_RULES = {
    "project": (NAME, "letters, digits and _ . - (not first)"),
    "queue": (
        r"[A-Za-z0-9][A-Za-z0-9_.@*,-]*",
        "a queue name such as gpu.q or gpu.q@host (letters, digits, _ . @ * , -)",
    ),
    "partition": (r"[A-Za-z0-9][A-Za-z0-9_.,-]*", "a partition name or a comma-separated list"),
    "account": (NAME, "letters, digits and _ . - (not first)"),
    "qos": (NAME, "letters, digits and _ . - (not first)"),
    "constraint": FEATURES,
    "gpu_constraint": FEATURES,
    "gres": (r"[A-Za-z0-9_:,.-]+", 'generic resources such as "gpu:1" or "gpu:a100:2"'),
    "mail": (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+(,[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+)*", "an address such as you@bu.edu"),
    "mail_events": (r"[beasn]+", "letters of b e a s n (begin, end, abort, suspend, none)"),
    "gpu_type": (r"[A-Za-z0-9][A-Za-z0-9_.|*-]*", 'a GPU model or several, such as "A100" or "A6000|A40|L40S"'),
    "gpu_memory": (r"\d+(\.\d+)?[KMGT]?", 'an amount such as "16G"'),
    "mem_per_core": (r"\d+(\.\d+)?[KMGT]?", 'an amount such as "4G"'),
}
# [slurm] extra_directives: each one sbatch option, as `#SBATCH` takes it (Grid Engine's are whole
# `#$` lines, checked for control characters only).
SBATCH_OPTION = (r"--[a-z][a-z-]*(=[A-Za-z0-9_.:,+=@%/-]+)?", 'sbatch options such as "--begin=now+1hour" or "--hold"')
# Numbers: the lowest and highest value each may take.
NUMBER_RULES = {"cores": (1, 1024), "gpus": (0, 64), "gpu_c": (1.0, 20.0), "array_parallelism": (1, 100_000),
                "signal_delay_s": (0, 48 * 3600)}  # fmt: skip
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Profile:
    path: Path
    site: dict[str, Any]
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)  # per scheduler: [slurm], ...

    @property
    def minutes(self) -> float:
        return _read_time(self.site.get("time", "01:00:00"), str(self.path))

    def section(self, scheduler: str) -> dict[str, Any]:
        """The scheduler's own table ({} when the profile has none)."""
        return self.sections.get(scheduler, {})

    def with_project(self, project: str) -> Profile:
        """The same profile charged to `project` (a dry run shows a placeholder)."""
        return Profile(self.path, {**self.site, "project": project}, self.devices, self.sections)


def _check(values: dict[str, Any], allowed: dict[str, type], where: str) -> dict[str, Any]:
    for key, value in values.items():
        if key not in allowed:
            raise UserError(f"{where}: unknown key `{key}`; the keys are: {', '.join(allowed)}")
        kind = allowed[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise UserError(f"{where}: `{key}` must be a {kind.__name__}, got {value!r}")
        _check_value(key, value, where)
    return values


def _check_value(key: str, value: Any, where: str) -> None:
    """Each value as it will land in the job script: one clean option, a sane number, whole lines."""
    if key in TEXT_RULES:
        check_text(key, value, where)
    elif key in NUMBER_RULES:
        low, high = NUMBER_RULES[key]
        if not (math.isfinite(value) and low <= value <= high):
            raise UserError(f"{where}: `{key}` = {value!r} is not allowed; give a number from {low:g} to {high:g}")
    elif isinstance(value, list):
        rule = SBATCH_OPTION if where.endswith("[slurm]") else None
        for line in value:
            if not isinstance(line, str) or CONTROL.search(line):
                raise UserError(
                    f"{where}: `{key}` holds {line!r}; give each as one line of text (no newline or control character)"
                )
            if rule and not re.fullmatch(rule[0], line):
                raise UserError(f"{where}: `{key}` holds {line!r}; use {rule[1]}")


def check_text(key: str, value: str, where: str) -> str:
    """A value of TEXT_RULES, or one line saying what it may hold."""
    pattern, allowed = TEXT_RULES[key]
    if value and not re.fullmatch(pattern, value):
        raise UserError(f"{where}: `{key}` = {value!r} is not allowed; use {allowed}")
    return value


def _read_time(text: str, where: str) -> float:
    """HH:MM:SS -> minutes, above zero."""
    if not re.fullmatch(r"[0-9]+:[0-5][0-9]:[0-5][0-9]", text):
        raise UserError(f"{where}: `time` = {text!r} must be HH:MM:SS (minutes and seconds up to 59)")
    h, m, s = (int(x) for x in text.split(":"))
    if h * 3600 + m * 60 + s == 0:
        raise UserError(f"{where}: `time` = {text!r} must be more than zero")
    return h * 60 + m + s / 60


def load_profile(name: str | Path | None = None, project: str | None = None) -> Profile:
    """Read and check a profile (a path, or a name in qsub/: here, else the packaged one).

    `name` defaults to $XRAYHPC_PROFILE, then `scc`; `project` (or $XRAYHPC_PROJECT) fills an
    empty `project`.
    """
    name = str(name or os.environ.get("XRAYHPC_PROFILE") or DEFAULT_PROFILE)
    path = sitefiles.find("qsub", name, ".toml")
    if path is None:
        known = ", ".join(sitefiles.names("qsub", ".toml"))
        raise UserError(f"{name}: no such profile; give a file, or one of the profiles in qsub/ ({known})")
    from xrayhpc.cluster.scheduler import schedulers

    doc = sitefiles.read_toml(path)
    devices = {d: doc.pop(d, {}) for d in ("cpu", "gpu")}
    keys = {s.name: s.section for s in schedulers().values() if s.section}
    sections = {name: doc.pop(name, {}) for name in keys}
    site = _check(doc, SITE_KEYS, str(path))
    for table, values in [*devices.items(), *sections.items()]:
        if not isinstance(values, dict):
            raise UserError(f"{path}: `{table}` must be a table ([{table}])")
        _check(values, keys.get(table, DEVICE_KEYS), f"{path} [{table}]")
    bad = [v for v in site.get("env", []) if not (isinstance(v, str) and v.isidentifier())]
    if bad:
        raise UserError(f"{path}: `env` lists {bad[0]!r}; give the names of environment variables to pass to the job")
    if project:
        site["project"] = check_text("project", project, "--project")
    elif os.environ.get("XRAYHPC_PROJECT"):
        site["project"] = check_text("project", os.environ["XRAYHPC_PROJECT"], "XRAYHPC_PROJECT")
    minutes = _read_time(site.get("time", "01:00:00"), str(path))
    if site.get("signal_delay_s", 0) >= minutes * 60:
        raise UserError(f"{path}: `signal_delay_s` = {site['signal_delay_s']} must be shorter than `time`")
    return Profile(path, site, devices, sections)


def missing_project(profile: Profile) -> str | None:
    """The one-line complaint when a site charges jobs to a project and none is set."""
    if profile.site.get("require_project") and not profile.site.get("project"):
        return (
            f"{profile.path}: `project` is empty and this site charges every job to a project (-P); "
            "pass --project NAME, export XRAYHPC_PROJECT=NAME, or set it in the profile"
        )
    return None
