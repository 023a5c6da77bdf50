"""Site profiles (qsub/*.toml): what a job asks the scheduler for, per device.

A profile has site-wide keys (project, wall time, setup lines, variables passed to the job, ...)
and a [cpu] and a [gpu] table with the resources of each kind of job. `gpu` jobs ask
`-l gpus=1 -l gpu_c=...`; `cpu` jobs ask `-pe omp N` and no GPU. Profiles ship inside the package;
a `qsub/NAME.toml` in the working directory overrides the packaged one.
"""

from __future__ import annotations

import os
import tomllib
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


@dataclass(frozen=True)
class Profile:
    path: Path
    site: dict[str, Any]
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def minutes(self) -> float:
        h, m, s = (int(x) for x in self.site.get("time", "01:00:00").split(":"))
        return h * 60 + m + s / 60

    def sge(self, device: str) -> dict[str, Any]:
        """Keyword options for SgeExecutor.update_parameters for jobs of this device."""
        resources = dict(self.devices.get(device, {}))
        if device != "gpu":
            for key in ("gpus", "gpu_c", "gpu_type", "gpu_memory"):
                resources.pop(key, None)
        params: dict[str, Any] = {
            "time": self.minutes,
            "setup": list(self.site.get("setup", [])),
            "extra_directives": list(self.site.get("extra_directives", [])),
            "env": list(self.site.get("env", DEFAULT_ENV)),
            **{
                k: self.site[k]
                for k in ("project", "queue", "array_parallelism", "mail", "mail_events")
                if self.site.get(k)
            },
            **({"signal_delay_s": self.site["signal_delay_s"]} if "signal_delay_s" in self.site else {}),
            **resources,
        }
        return params

    def slurm(self, device: str) -> dict[str, Any]:
        """The same request for submitit's Slurm executor."""
        resources = self.devices.get(device, {})
        params: dict[str, Any] = {
            "timeout_min": int(self.minutes),
            "cpus_per_task": resources.get("cores", 1),
            "slurm_setup": list(self.site.get("setup", [])),
            "slurm_array_parallelism": self.site.get("array_parallelism", 256),
        }
        if device == "gpu":
            params["gpus_per_node"] = resources.get("gpus", 1)
        if self.site.get("partition"):
            params["slurm_partition"] = self.site["partition"]
        if self.site.get("project"):
            params["slurm_account"] = self.site["project"]
        return params

    def with_project(self, project: str) -> Profile:
        """The same profile charged to `project` (a dry run shows a placeholder)."""
        return Profile(self.path, {**self.site, "project": project}, self.devices)


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
    return values


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
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"{path}: not valid TOML: {err}") from None
    devices = {d: doc.pop(d, {}) for d in ("cpu", "gpu")}
    site = _check(doc, SITE_KEYS, str(path))
    for device, values in devices.items():
        _check(values, DEVICE_KEYS, f"{path} [{device}]")
    bad = [v for v in site.get("env", []) if not (isinstance(v, str) and v.isidentifier())]
    if bad:
        raise UserError(f"{path}: `env` lists {bad[0]!r}; give the names of environment variables to pass to the job")
    chosen = project or os.environ.get("XRAYHPC_PROJECT")
    if chosen:
        site["project"] = chosen
    time = site.get("time", "01:00:00")
    if len(time.split(":")) != 3 or not all(x.isdigit() for x in time.split(":")):
        raise UserError(f"{path}: `time` = {time!r} must be HH:MM:SS")
    return Profile(path, site, devices)


def missing_project(profile: Profile) -> str | None:
    """The one-line complaint when a site charges jobs to a project and none is set."""
    if profile.site.get("require_project") and not profile.site.get("project"):
        return (
            f"{profile.path}: `project` is empty and this site charges every job to a project (-P); "
            "pass --project NAME, export XRAYHPC_PROJECT=NAME, or set it in the profile"
        )
    return None
