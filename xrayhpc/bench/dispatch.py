"""Submitting and refreshing 1 to 10,000 experiments on each installed scheduler: seconds and
scheduler calls, against one qsub per experiment."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from xrayhpc.bench.runs import ROOT
from xrayhpc.cluster.profile import load_profile
from xrayhpc.errors import UserError
from xrayhpc.render import markdown
from xrayhpc.schema import read_record

SCHEDULER_COMMANDS = ("qsub", "qstat", "qacct", "qdel", "sbatch", "squeue", "sacct", "scancel")
# Slurm's default MaxArraySize is 1001: its largest array here is 1,000 tasks.
SLURM_MAX = 1000


def shim_scheduler(folder: Path) -> Path:
    """Wrappers that log each scheduler call, then run the real command; put first on PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    calls = folder / "calls.log"
    for name in SCHEDULER_COMMANDS:
        real = shutil.which(name)
        if real:
            shim = folder / name
            shim.write_text(f'#!/bin/sh\necho {name} >> "{calls}"\nexec "{real}" "$@"\n')
            shim.chmod(0o755)
    return calls


def count_calls(calls: Path) -> dict[str, int]:
    lines = calls.read_text().split() if calls.exists() else []
    calls.unlink(missing_ok=True)
    return {name: lines.count(name) for name in SCHEDULER_COMMANDS}


def grid_of(n: int, folder: Path) -> Path:
    """A grid that expands to n CPU experiments (one resource group)."""
    path = folder / f"grid-{n}.toml"
    seeds = ", ".join(str(i) for i in range(n))
    path.write_text(
        f'[[experiment]]\ntask = "binary"\nbackbone = "vgg16"\ndevice = "cpu"\n'
        f'weights = "none"\nepochs = 1\nseed = [{seeds}]\n'
    )
    return path


def naive_submit(n: int, workdir: Path, project: str | None) -> float:
    """Seconds to send n jobs the way the course did: one qsub per experiment (held, then deleted)."""
    script = workdir / "one-job.sh"
    script.write_text("#!/bin/sh\ntrue\n")
    args = [
        "qsub",
        "-h",
        "-terse",
        "-o",
        "/dev/null",
        "-e",
        "/dev/null",
        *(["-P", project] if project else []),
        str(script),
    ]
    start = time.perf_counter()
    ids = [subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip() for _ in range(n)]
    wall = time.perf_counter() - start
    subprocess.run(["qdel", *ids], capture_output=True)
    return round(wall, 3)


def answering() -> list[Any]:
    """The schedulers installed here whose query command answers (the local test clusters)."""
    from xrayhpc.cluster import scheduler

    return [
        s
        for s in scheduler.schedulers().values()
        if s.installed() and subprocess.run(list(s.query_command), capture_output=True).returncode == 0
    ]


def bench_dispatch(sizes: list[int], workdir: Path, data: Path, naive_max: int = 1000) -> dict[str, Any]:
    """Scheduler calls and wall time of one submit and one status refresh, per grid size and scheduler.

    Against the local clusters the jobs are submitted on hold (Grid Engine `-h`, Slurm `--hold`)
    and cancelled once counted, and on Grid Engine the same number of jobs is sent one qsub each,
    as the course did, up to `naive_max`.
    """
    from xrayhpc.cluster import submit
    from xrayhpc.cluster.state import collect

    calls = shim_scheduler(workdir / "shims")
    os.environ["PATH"] = f"{calls.parent}{os.pathsep}{os.environ['PATH']}"
    profile = workdir / "held.toml"
    profile.write_text(
        (ROOT / "qsub" / "local.toml").read_text().replace("setup = []", 'setup = []\nextra_directives = ["-h"]')
        + '\n[slurm]\nextra_directives = ["--hold"]\n'
    )
    clusters = answering()
    out: dict[str, Any] = {"clusters": [f"local {s.title}" for s in clusters], "sizes": {}}
    for n in sizes:
        grid = grid_of(n, workdir)
        row: dict[str, Any] = {}
        for sched in [None, *clusters]:
            name = sched.name if sched else "dry-run"
            if sched and sched.name == "slurm" and n > SLURM_MAX:
                continue
            results = workdir / f"results-{name}-{n}"
            argv = ["--grid", str(grid), "--executor", name, "--profile", str(profile), "--results", str(results),
                    "--data", str(data)]  # fmt: skip
            count_calls(calls)
            with contextlib.redirect_stdout(io.StringIO()):
                t = time.perf_counter()
                code = submit.main(argv)
                wall = time.perf_counter() - t
            if code:
                raise UserError(f"benchmark submission of {n} experiments to {name} failed")
            row[name] = {"submit_s": round(wall, 3), "calls": count_calls(calls)}
            if sched is None:
                continue
            t = time.perf_counter()
            rows, _ = collect(results)  # what `xrayhpc.cluster.status` does for one refresh
            row[name]["status_refresh_s"] = round(time.perf_counter() - t, 3)
            row[name]["status_calls"] = count_calls(calls)
            row[name]["states_seen"] = sorted({r.state for r in rows})
            arrays = {r.job_id.split("_")[0] for r in (read_record(results / state.id) for state in rows) if r}
            subprocess.run([sched.cancel_command, *sorted(arrays)], capture_output=True)  # whole arrays
            count_calls(calls)
            if sched.name == "sge" and n <= naive_max:
                row["naive_submit_s"] = naive_submit(n, workdir, load_profile(profile).site.get("project"))
        out["sizes"][str(n)] = row
        print(f"bench: dispatch {n}: {row}", flush=True)
    return out


def dispatch_table(d: dict[str, Any]) -> str:
    header = ["experiments", "scheduler", "submit s", "submit calls", "one qsub each s", "ratio", "status refresh s",
              "refresh calls"]  # fmt: skip
    body = []
    for n, row in d["sizes"].items():
        body.append([n, "dry-run", f"{row['dry-run']['submit_s']:.2f}", "0", "-", "-", "-", "-"])
        for name in (k for k in row if k not in ("dry-run", "naive_submit_s")):
            sent, calls = row[name], row[name].get("status_calls", {})
            naive = row.get("naive_submit_s") if name == "sge" else None
            body.append(
                [
                    n,
                    name,
                    f"{sent['submit_s']:.2f}",
                    str(sum(sent["calls"].get(c, 0) for c in ("qsub", "sbatch"))),
                    f"{naive:.2f}" if naive else "-",
                    f"{naive / sent['submit_s']:.1f}" if naive else "-",
                    f"{sent.get('status_refresh_s', float('nan')):.3f}",
                    " + ".join(f"{v} {k}" for k, v in calls.items() if v) or "0",
                ]
            )
    return "\n".join(
        [
            f"Clusters: {', '.join(d['clusters']) or 'none (dry-run only)'}. `submit` sends the grid through "
            "xrayhpc.cluster.submit (one array job per resource request, held); `one qsub each` sends the same "
            "number of held jobs one qsub call apiece, as the course's scripts did; ratio = one qsub each / submit. "
            "`status refresh` is one `collect` of every result folder: one batched query per scheduler. "
            f"Slurm's arrays stop at {SLURM_MAX:,} tasks (its default MaxArraySize).",
            "",
            markdown(header, body, "rlrrrrrl"),
        ]
    )
