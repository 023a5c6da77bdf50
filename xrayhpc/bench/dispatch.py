"""Submitting and refreshing 1 to 10,000 experiments: seconds and scheduler calls, against one
qsub per experiment."""

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

SCHEDULER_COMMANDS = ("qsub", "qstat", "qacct", "qdel")


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


def bench_dispatch(sizes: list[int], workdir: Path, data: Path, naive_max: int = 1000) -> dict[str, Any]:
    """Scheduler calls and wall time of one submit and one status refresh, per grid size.

    Against the local cluster the jobs are submitted on hold (-h) and deleted once counted, and
    the same number of jobs is sent one qsub each, as the course did, up to `naive_max`.
    """
    from xrayhpc.cluster import submit
    from xrayhpc.cluster.sge import SgeExecutor
    from xrayhpc.cluster.state import collect

    calls = shim_scheduler(workdir / "shims")
    os.environ["PATH"] = f"{calls.parent}{os.pathsep}{os.environ['PATH']}"
    profile = workdir / "held.toml"
    profile.write_text(
        (ROOT / "qsub" / "local.toml").read_text().replace("setup = []", 'setup = []\nextra_directives = ["-h"]')
    )
    have_sge = SgeExecutor.affinity() > 0 and subprocess.run(["qstat"], capture_output=True).returncode == 0
    out: dict[str, Any] = {"cluster": "local Grid Engine" if have_sge else None, "sizes": {}}
    for n in sizes:
        grid = grid_of(n, workdir)
        row: dict[str, Any] = {}
        for executor in ("dry-run", "sge") if have_sge else ("dry-run",):
            results = workdir / f"results-{executor}-{n}"
            argv = [
                "--grid",
                str(grid),
                "--executor",
                executor,
                "--profile",
                str(profile),
                "--results",
                str(results),
                "--data",
                str(data),
            ]
            count_calls(calls)
            with contextlib.redirect_stdout(io.StringIO()):
                t = time.perf_counter()
                code = submit.main(argv)
                wall = time.perf_counter() - t
            if code:
                raise UserError(f"benchmark submission of {n} experiments failed")
            row[executor] = {"submit_s": round(wall, 3), "calls": count_calls(calls)}
            if executor == "sge":
                t = time.perf_counter()
                rows, _ = collect(results)  # what `xrayhpc.cluster.status` does for one refresh
                row["status_refresh_s"] = round(time.perf_counter() - t, 3)
                row["status_calls"] = count_calls(calls)
                row["states_seen"] = sorted({r.state for r in rows})
                ids = {r.job.split(".")[0] for r in rows}
                subprocess.run(["qdel", *sorted(ids)], capture_output=True)
                count_calls(calls)
                if n <= naive_max:
                    row["naive_submit_s"] = naive_submit(n, workdir, load_profile(profile).site.get("project"))
        out["sizes"][str(n)] = row
        print(f"bench: dispatch {n}: {row}", flush=True)
    return out


def dispatch_table(d: dict[str, Any]) -> str:
    header = [
        "experiments",
        "dry-run submit s",
        "sge submit s",
        "qsub calls",
        "one qsub each s",
        "ratio",
        "status refresh s",
        "qstat+qacct calls",
    ]
    body = []
    for n, row in d["sizes"].items():
        sge = row.get("sge", {})
        status = row.get("status_calls", {})
        naive = row.get("naive_submit_s")
        body.append(
            [
                n,
                f"{row['dry-run']['submit_s']:.2f}",
                f"{sge.get('submit_s', float('nan')):.2f}",
                str(sge.get("calls", {}).get("qsub", "-")),
                f"{naive:.2f}" if naive else "-",
                f"{naive / sge['submit_s']:.1f}" if naive and sge else "-",
                f"{row.get('status_refresh_s', float('nan')):.3f}",
                str(status.get("qstat", 0) + status.get("qacct", 0)) if status else "-",
            ]
        )
    return "\n".join(
        [
            f"Cluster: {d['cluster'] or 'none (dry-run only)'}. `sge submit` sends the grid through xrayhpc.cluster.submit "
            "(one array job per resource request); `one qsub each` sends the same number of held jobs one qsub call "
            "apiece, as the course's scripts did; ratio = one qsub each / sge submit.",
            "",
            markdown(header, body, "rrrrrrrr"),
        ]
    )
