"""Preflight: what a job of this grid will see, one line each with ✓ or ✗ and the fix.

    python -m xrayhpc.doctor --grid jobs/report.toml [--profile scc] [--data DIR] [--on-node cpu|gpu]

Checks Python and the packages, the backend and whether it can drive a GPU, the GPUs here, the
data, the weights each backbone needs, the profile's request and the scheduler. `--on-node` runs
the same checks inside a short job with the profile's request for that device, where the answer
that matters is given: a login node has no GPU. Exit 1 when any experiment would fail, naming it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import platform
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from xrayhpc.backbones import keras_models_dir
from xrayhpc.cluster import scheduler as schedulers
from xrayhpc.cluster.profile import Profile, load_profile
from xrayhpc.cluster.scheduler import script_path_problem
from xrayhpc.errors import UserError, cli
from xrayhpc.experiment import Experiment, load_grid, parse_overrides, select
from xrayhpc.safefiles import private_folder
from xrayhpc.schema import results_root
from xrayhpc.study import device
from xrayhpc.study.data import discover
from xrayhpc.study.weights import needed, problem

PACKAGES = ("xrayhpc", "keras", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "jax-cuda12-plugin", "submitit")
MARKS = {True: "[green]✓[/]", False: "[red]✗[/]", None: "·"}


@dataclass(frozen=True)
class Finding:
    """One line of the answer: `ok` None is a plain fact; `blocks` are the experiments it stops."""

    ok: bool | None
    topic: str
    text: str
    fix: str = ""
    blocks: tuple[str, ...] = ()


def _ids(experiments: list[Experiment], device_name: str | None = None) -> tuple[str, ...]:
    return tuple(e.id for e in experiments if device_name is None or e.device == device_name)


def packages(experiments: list[Experiment]) -> list[Finding]:
    versions = {}
    for name in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    out = [
        Finding(
            None,
            "host",
            f"{socket.gethostname()}: {os.cpu_count()} CPUs ({device.cpu_model()}), "
            f"slots granted: {device.slots() or 'unset'}",
        ),
        Finding(True, "python", f"Python {platform.python_version()} ({sys.executable})"),
        Finding(None, "packages", ", ".join(f"{k} {v}" for k, v in versions.items())),
    ]
    if "tensorflow" in versions and "tensorflow-cpu" in versions:
        out.append(
            Finding(
                False,
                "packages",
                "tensorflow and tensorflow-cpu are both installed and overwrite each other",
                "pip uninstall -y tensorflow tensorflow-cpu, then make install (GPU=1 on GPU nodes)",
                _ids(experiments),
            )
        )
    return out


def backend(experiments: list[Experiment], here: str | None) -> list[Finding]:
    """The backend, whether this install can drive a GPU, and the GPUs this host shows."""
    name = device.backend_name()
    try:
        facts = device.gpu_facts()
    except Exception as err:  # an import that fails is the finding itself
        return [
            Finding(
                False,
                "backend",
                f"the {name} backend cannot start: {type(err).__name__}: {err}",
                "make install (GPU=1 on GPU nodes) in this environment",
                _ids(experiments),
            )
        ]
    build = (
        f"built with CUDA for compute capability >= {facts.min_compute:.1f}"
        if facts.built_with_cuda and facts.min_compute
        else "built with CUDA"
        if facts.built_with_cuda
        else "built without CUDA"
    )
    libraries = "NVIDIA's CUDA libraries installed" if facts.cuda_libraries else "no CUDA libraries"
    gpu_jobs = _ids(experiments, "gpu")
    out = [
        Finding(
            facts.cuda_ready if gpu_jobs else None,
            "backend",
            f"{name}: {build}; {libraries}",
            "" if facts.cuda_ready or not gpu_jobs else device.GPU_INSTALL,
            () if facts.cuda_ready else gpu_jobs,
        )
    ]
    shown = ", ".join(f"{n} (compute capability {c if c is not None else '?'})" for n, c in facts.physical) or "none"
    if here == "gpu":
        reason = device.diagnose(facts)
        driver = f"driver {facts.driver_version}" if facts.driver_version else "driver"
        out.append(
            Finding(
                reason is None,
                "gpu",
                f"GPUs the backend uses: {', '.join(facts.visible) or 'none'}; {driver} reports: {shown}",
                reason or "",
                gpu_jobs if reason else (),
            )
        )
        if reason is None:
            out += kernel_check(experiments, facts.visible[0])
    else:
        note = "" if facts.visible else " (login nodes have none: --on-node gpu asks a GPU node)" if gpu_jobs else ""
        out.append(Finding(None, "gpu", f"GPUs here: {', '.join(facts.visible) or shown}{note}"))
    return out


def kernel_check(experiments: list[Experiment], gpu: str) -> list[Finding]:
    """The GPU jobs' operations, run on this GPU in each of their precisions, as the worker runs them
    first (a GPU without bfloat16 units is said as such, not as a failed kernel)."""
    from xrayhpc.study import kernels

    used = f"gpu: {gpu}"
    out = []
    for precision in sorted({e.precision for e in experiments if e.device == "gpu"}):
        ids = tuple(e.id for e in experiments if e.device == "gpu" and e.precision == precision)
        if refused := device.bfloat16_refusal(precision, used):
            out.append(Finding(False, "kernels", *refused, ids))
            continue
        try:
            out.append(Finding(True, "kernels", kernels.isolated(used, precision).line()))
        except device.DeviceError as err:
            out.append(Finding(False, "kernels", str(err), "", ids))
    return out


def data(experiments: list[Experiment]) -> list[Finding]:
    out = []
    for folder in sorted({e.data_dir for e in experiments}):
        users = tuple(e.id for e in experiments if e.data_dir == folder)
        try:
            found = discover(folder)
        except UserError as err:
            out.append(Finding(False, "data", str(err), "", users))
            continue
        split = max((e.validation_split for e in experiments if e.data_dir == folder), default=0.0)
        counts = found.counts(split)
        per_class = "; ".join(f"{c} {'/'.join(str(counts[s][c]) for s in counts)}" for c in found.classes)
        totals = ", ".join(f"{s} {sum(n.values())}" for s, n in counts.items())
        out.append(Finding(True, "data", f"{folder}: {totals} ({per_class})"))
    return out


def weights(experiments: list[Experiment], grid: str) -> list[Finding]:
    out = []
    folder = keras_models_dir()
    for w in needed(experiments):
        issue = problem(folder / w.name, w)
        fix = f"make weights GRID={grid} (python -m xrayhpc.weights) where there is internet"
        out.append(
            Finding(
                issue is None,
                "weights",
                issue or f"{folder / w.name}",
                fix if issue else "",
                w.experiments if issue else (),
            )
        )
    return out


def profile_request(experiments: list[Experiment], profile: Profile, kind: str) -> list[Finding]:
    out = [Finding(None, "profile", f"{profile.path}; setup: {'; '.join(profile.site.get('setup', [])) or 'none'}")]
    sched = schedulers.get(kind)
    if sched and (complaint := sched.project_needed(profile)):
        out.append(Finding(False, "profile", complaint, "", _ids(experiments)))
    out += [Finding(None, "profile", note) for note in (sched.notes(profile) if sched else [])]
    gpu_jobs = _ids(experiments, "gpu")
    gpu_c = profile.devices.get("gpu", {}).get("gpu_c")
    if gpu_jobs and device.backend_name() == "tensorflow":
        _, minimum = device.tensorflow_build()
        if minimum and (gpu_c is None or gpu_c < minimum):
            out.append(
                Finding(
                    False,
                    "profile",
                    f"[gpu] gpu_c = {gpu_c} admits GPUs this TensorFlow cannot use (>= {minimum:.1f})",
                    f"set gpu_c = {minimum:.1f} in {profile.path}",
                    gpu_jobs,
                )
            )
        elif minimum:
            out.append(Finding(True, "profile", f"[gpu] gpu_c = {gpu_c} (this build needs >= {minimum:.1f})"))
    return out


def scheduler(experiments: list[Experiment], kind: str, profile: Profile, root: Path) -> list[Finding]:
    """Does the scheduler answer, and could it ever run each device's request (asked without
    submitting: each scheduler's own verification)?"""
    sched = schedulers.get(kind)
    if sched is None:
        return [
            Finding(None, "scheduler", "none: experiments run one after another on this machine (--executor local)")
        ]
    command = list(sched.query_command)
    if not shutil.which(command[0]):
        return [
            Finding(
                False, "scheduler", f"{command[0]} is not installed here", "submit from a login node", _ids(experiments)
            )
        ]
    ok, said = schedulers.run(command)
    found = [
        Finding(
            ok,
            "scheduler",
            f"{' '.join(command)} " + ("answers" if ok else f"fails: {said[:200]}"),
            "" if ok else "is the scheduler up? (here: make cluster-up)",
            () if ok else _ids(experiments),
        )
    ]
    if not ok:
        return found
    if problem := script_path_problem(root):
        return [*found, Finding(False, "request", problem, "", _ids(experiments))]
    folder = private_folder(root / ".doctor") / "%j"
    for node in sorted({e.device for e in experiments}):
        executor = sched.executor(folder, node, profile, f"xrayhpc-doctor-{node}")
        problem = sched.check_request(executor)
        found.append(
            Finding(
                not problem,
                "request",
                f"{sched.title} could run the profile's {node} request"
                if not problem
                else f"no {sched.title} queue or partition can run the profile's {node} request: {problem}",
                f"change [{node}] (or the scheduler's table) in {profile.path}" if problem else "",
                _ids(experiments, node) if problem else (),
            )
        )
    return found


def submits_here() -> list[Finding]:
    """Inside a job: can it submit its own continuation past the wall-time limit from this node?"""
    sched = schedulers.get(os.environ.get("SUBMITIT_EXECUTOR", ""))
    if sched is None:
        return []
    if not sched.continues_by_submitting:
        return [Finding(None, "requeue", f"at its time-limit warning a job {sched.requeue}")]
    found = shutil.which(sched.submit_command) is not None and schedulers.run(list(sched.query_command))[0]
    return [
        Finding(
            None,
            "requeue",
            f"this node can submit ({sched.submit_command}): at its time-limit warning a job {sched.requeue}"
            if found
            else f"this node cannot submit ({sched.submit_command}): a job stopped at its time limit goes "
            "on at the next `make submit-all`",
        )
    ]


def on_this_host(experiments: list[Experiment], grid: str, here: str | None) -> list[Finding]:
    """What a job of these experiments finds on this host (run here, or inside a job)."""
    with device.configured(here) if here else contextlib.nullcontext():
        return [
            *packages(experiments),
            *backend(experiments, here),
            *data(experiments),
            *weights(experiments, grid),
            *submits_here(),
        ]


def on_node(
    experiments: list[Experiment],
    grid: str,
    profile: Profile,
    kind: str,
    node: str,
    root: Path,
    wait_s: float,
    say: Any,
) -> list[Finding]:
    """The same checks inside a short job that asks the profile's request for `node` (cpu or gpu)."""
    from xrayhpc.cluster import jobstart
    from xrayhpc.cluster.submit import cluster_executor

    if schedulers.get(kind) is None:
        raise UserError(f"--on-node needs a scheduler; this machine has none (executor {kind})")
    mine = [e for e in experiments if e.device == node]
    if not mine:
        raise UserError(f'{grid}: no experiment has device = "{node}"; nothing to check on such a node')
    folder = private_folder(root / ".doctor") / "%j"  # the answer comes back as a pickle: ours alone
    if problem := script_path_problem(folder):
        raise UserError(problem)
    executor = cluster_executor(kind, node, profile, folder, f"xrayhpc-doctor-{node}")
    executor.update_parameters(time=10)  # minutes, on Grid Engine and Slurm alike
    job = executor.submit(on_this_host, mine, grid, node)
    say(f"job {job.job_id} sent with the profile's {node} request; waiting for its answer (up to {wait_s:g} s)")
    end = time.monotonic() + wait_s
    while not job.done(force_check=True):
        if time.monotonic() > end:
            job.cancel(check=False)
            raise UserError(
                f"job {job.job_id} did not finish within {wait_s:g} s (state {job.state}); it was "
                "deleted. A busy queue? Try again with --wait SECONDS"
            )
        time.sleep(1)
    try:
        return [Finding(None, "node", f"answered by job {job.job_id}"), *jobstart.result(job, folder)]
    except Exception as err:  # the job itself failed: its own words
        raise UserError(
            f"job {job.job_id} failed: {str(err).strip().splitlines()[-1][:300]} (log: {job.paths.stdout})"
        ) from None


def show(found: list[Finding], console: Console) -> list[str]:
    """Print each finding; returns the experiments something stops."""
    for f in found:
        console.print(f"{MARKS[f.ok]} [bold]{f.topic:<9}[/] ", end="")
        console.print(f.text, markup=False)
        if f.ok is False and f.fix:
            console.print(f"            fix: {f.fix}", markup=False)
    return sorted({i for f in found for i in f.blocks})


@cli
def main(argv: list[str] | None = None) -> int:
    from xrayhpc.cluster.submit import EXECUTORS, default_executor

    parser = argparse.ArgumentParser(prog="python -m xrayhpc.doctor", description=__doc__.split("\n")[0])
    parser.add_argument("--grid", default="jobs/report.toml", help="grid file or name (default: jobs/report.toml)")
    parser.add_argument("--only", help="only experiments whose id matches this pattern")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting in every experiment"
    )
    parser.add_argument("--data", help="data root holding two/ and all/ (default: $XRAYHPC_DATA, the grid's)")
    parser.add_argument(
        "--profile", help="site profile: a file, or a name in qsub/ (default: $XRAYHPC_PROFILE, else scc)"
    )
    parser.add_argument("--project", help="the project to charge (-P); default: the profile's or $XRAYHPC_PROJECT")
    parser.add_argument(
        "--executor",
        choices=[e for e in EXECUTORS if e != "dry-run"],
        help="default: sge if installed, slurm if installed, else local",
    )
    parser.add_argument(
        "--on-node", choices=("cpu", "gpu"), help="run the checks inside a job with this device's request"
    )
    parser.add_argument(
        "--wait", type=float, default=600, metavar="SECONDS", help="how long --on-node waits (default 600)"
    )
    parser.add_argument("--results", help="results root; --on-node keeps the job's files in its .doctor/")
    args = parser.parse_args(argv)
    experiments = select(load_grid(Path(args.grid), parse_overrides(args.set), args.data), args.only)
    if not experiments:
        raise UserError(f"{args.grid}: no experiment matches {args.only!r}")
    kind = args.executor or default_executor()
    profile = load_profile(args.profile, args.project)
    console = Console(highlight=False, soft_wrap=True)
    root = results_root(args.results)
    found = [*profile_request(experiments, profile, kind), *scheduler(experiments, kind, profile, root)]
    if args.on_node:
        stopped = show(found, console)
        found = on_node(
            experiments,
            args.grid,
            profile,
            kind,
            args.on_node,
            root,
            args.wait,
            lambda line: console.print(line, markup=False),
        )
        stopped += show(found, console)
    else:
        stopped = show([*on_this_host(experiments, args.grid, None), *found], console)
    if stopped:
        console.print(f"[red]would fail:[/] {', '.join(sorted(set(stopped)))}")
        return 1
    console.print(
        f"[green]every experiment of {args.grid} ({len(experiments)}) can start"
        + (f" on a {args.on_node} node" if args.on_node else "")
        + "[/]"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
