"""Benchmarks, measured side by side in one run and written to results/bench/ (JSON + Markdown).

    python -m xrayhpc.bench [--quick] [--epochs N] [--data DIR] [--out DIR]

Dispatch: scheduler calls and wall time of one submit and of one status refresh for grids of 1 to
1000 experiments (dry-run, and on the local Grid Engine with jobs held and then deleted).
Report: time to build the report from 10 to 1000 result folders.

Worker: Task 1 of jobs/report.toml on the real data (else synthetic images, and it says so), CPU,
`weights = "none"`: our worker against the course template's pipeline (xrayhpc.template), same
epochs and batch size, augmentation off and on; each run is a fresh process with a cold image
cache, timed end to end, with its peak memory. The floor: one backbone pass over every image at
this machine's measured float32 matmul rate.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from xrayhpc import report
from xrayhpc.errors import UserError, cli
from xrayhpc.experiment import Experiment, load_grid
from xrayhpc.results import read_metrics, write_atomic, write_json

ROOT = Path(__file__).resolve().parent.parent
REPORT_GRID = ROOT / "jobs" / "report.toml"


def run_child(args: list[str], env: dict[str, str], log: Path) -> dict[str, float]:
    """Run a process to the end; its wall time and its own peak RSS (from wait4)."""
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise UserError(f"benchmark run failed ({' '.join(args[:4])} ...); see {log}")
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def matmul_gflops() -> float:
    """float32 matmul rate of this machine through TensorFlow (best of a few)."""
    import tensorflow as tf

    a = tf.random.normal((2048, 2048))
    b = tf.random.normal((2048, 2048))
    tf.matmul(a, b).numpy()
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(5):
            c = tf.matmul(a, b)
        c.numpy()
        best = max(best, 5 * 2 * 2048**3 / (time.perf_counter() - t) / 1e9)
    return round(best, 1)


def task1(data: Path, epochs: int, augment: bool) -> Experiment:
    overrides = {"weights": "none", "epochs": epochs, "augment": augment, "data": str(data)}
    return next(e for e in load_grid(REPORT_GRID, overrides) if e.id == "task1-vgg16-cpu")


def bench_worker(data: Path, epochs: int, workdir: Path, augment_modes: tuple[bool, ...] = (False, True)) -> dict[str, Any]:
    from xrayhpc.models import build_backbone, forward_flops

    import keras

    flops = forward_flops(build_backbone("vgg16", 224, "none"))
    keras.backend.clear_session()
    rate = matmul_gflops()
    images = sum(1 for _ in (data / "two").rglob("*") if _.is_file())
    runs: dict[str, Any] = {}
    for augment in augment_modes:
        label = "augment on" if augment else "augment off"
        exp = task1(data, epochs, augment)
        spec = workdir / f"spec-{int(augment)}.json"
        spec.write_text(json.dumps(exp.settings()))
        print(f"bench: our worker, Task 1, {epochs} epochs, {label} ...", flush=True)
        env = {"XRAYHPC_CACHE": str(workdir / f"cache-{int(augment)}")}
        ours = run_child([sys.executable, "-m", "xrayhpc.worker", "--spec", str(spec), "--results", str(workdir / "ours")],
                         env, workdir / f"ours-{int(augment)}.log")
        metrics = read_metrics(workdir / "ours" / exp.id)
        ours.update(phases=metrics["timing"], accuracy=metrics["test"]["accuracy"], loss=metrics["test"]["loss"])
        print(f"bench: the course template, {label} ...", flush=True)
        out = workdir / f"template-{int(augment)}.json"
        args = [sys.executable, "-m", "xrayhpc.template", str(data / "two"), str(out),
                "--epochs", str(epochs), "--batch-size", str(exp.batch_size)]
        template = run_child(args + ([] if augment else ["--no-augment"]), {}, workdir / f"template-{int(augment)}.log")
        result = json.loads(out.read_text())
        template.update(phases=result["timing"], accuracy=result["test"]["accuracy"], loss=result["test"]["loss"])
        counts = {split: sum(n.values()) for split, n in metrics["counts"].items()}
        ours["backbone_passes"] = backbone_passes(counts, epochs, augment, template=False)
        template["backbone_passes"] = backbone_passes(result["images"], epochs, augment, template=True)
        for run in (ours, template):
            run["floor_s"] = round(run["backbone_passes"] * flops / (rate * 1e9), 1)
            run["over_floor"] = round(run["wall_s"] / run["floor_s"], 2)
        runs[label] = {"ours": ours, "template": template,
                       "speedup": round(template["wall_s"] / ours["wall_s"], 2)}
    floor_s = images * flops / (rate * 1e9)
    fast = runs.get("augment off", {}).get("ours")
    return {
        "experiment": "task1-vgg16-cpu (jobs/report.toml) with weights=none",
        "epochs": epochs,
        "batch_size": task1(data, epochs, False).batch_size,
        "images": images,
        "vgg16_gflop_per_image": round(flops / 1e9, 2),
        "matmul_gflops": rate,
        "floor_s": round(floor_s, 1),
        "fast_path_over_floor": round(fast["wall_s"] / floor_s, 2) if fast else None,
        "fast_path_features_over_floor": round(fast["phases"]["features"] / floor_s, 2) if fast else None,
        "runs": runs,
    }


def backbone_passes(counts: dict[str, int], epochs: int, augment: bool, template: bool) -> int:
    """Images the frozen backbone must see: the roofline's work for one run.

    The template runs train+validation through it every epoch, then the test set and, for the
    t-SNE, the training folder again. Ours runs each image once without augmentation; with it,
    the fresh train transforms every epoch, plus the untransformed train images for the t-SNE.
    """
    train, val, test = counts["train"], counts["val"], counts["test"]
    if template:
        return epochs * (train + val) + test + train + val
    return train + val + test + (epochs * train if augment else 0)


def worker_table(w: dict[str, Any]) -> str:
    header = ["augmentation", "pipeline", "wall s", "train s", "s/epoch", "peak MB", "test acc",
              "backbone passes", "floor s", "wall/floor", "speedup"]
    body = []
    for label, run in w["runs"].items():
        for name in ("template", "ours"):
            r = run[name]
            body.append([
                label, name, f"{r['wall_s']:.1f}", f"{r['phases']['train']:.1f}", f"{r['phases']['seconds_per_epoch']:.2f}",
                f"{r['peak_rss_mb']:.0f}", f"{r['accuracy']:.3f}", str(r["backbone_passes"]), f"{r['floor_s']:.1f}",
                f"{r['over_floor']:.2f}", str(run["speedup"]) if name == "ours" else "",
            ])
    lines = [
        f"Task 1, frozen VGG16, {w['epochs']} epochs, batch {w['batch_size']}, {w['images']} images, CPU.",
        "",
        report.markdown(header, body, "llrrrrrrrrr"),
        "",
        f"Roofline: a run's floor is its backbone passes x {w['vgg16_gflop_per_image']} GFLOP at the measured "
        f"{w['matmul_gflops']} GFLOP/s float32 matmul rate; wall/floor says how close it comes.",
    ]
    if w["fast_path_over_floor"] is None:
        return "\n".join(lines)
    lines += [
        "",
        f"Floor: one VGG16 pass ({w['vgg16_gflop_per_image']} GFLOP per 224x224 image) over the "
        f"{w['images']} images at the measured {w['matmul_gflops']} GFLOP/s float32 matmul rate = "
        f"{w['floor_s']} s. The fast path's wall time is {w['fast_path_over_floor']}x the floor "
        f"(its backbone phase {w['fast_path_features_over_floor']}x).",
    ]
    return "\n".join(lines)


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
    path.write_text(f'[[experiment]]\ntask = "binary"\nbackbone = "vgg16"\ndevice = "cpu"\n'
                    f'weights = "none"\nepochs = 1\nseed = [{seeds}]\n')
    return path


def bench_dispatch(sizes: list[int], workdir: Path, data: Path) -> dict[str, Any]:
    """Scheduler calls and wall time of one submit and one status refresh, per grid size.

    Against the local cluster the jobs are submitted on hold (-h) and deleted once counted.
    """
    from xrayhpc import submit
    from xrayhpc.sge import SgeExecutor
    from xrayhpc.state import collect

    calls = shim_scheduler(workdir / "shims")
    os.environ["PATH"] = f"{calls.parent}{os.pathsep}{os.environ['PATH']}"
    profile = workdir / "held.toml"
    profile.write_text((ROOT / "qsub" / "local.toml").read_text().replace("setup = []", 'setup = []\nextra_directives = ["-h"]'))
    have_sge = SgeExecutor.affinity() > 0 and subprocess.run(["qstat"], capture_output=True).returncode == 0
    out: dict[str, Any] = {"cluster": "local Grid Engine" if have_sge else None, "sizes": {}}
    for n in sizes:
        grid = grid_of(n, workdir)
        row: dict[str, Any] = {}
        for executor in ("dry-run", "sge") if have_sge else ("dry-run",):
            results = workdir / f"results-{executor}-{n}"
            argv = ["--grid", str(grid), "--executor", executor, "--profile", str(profile),
                    "--results", str(results), "--data", str(data)]
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
                rows, _ = collect(results)  # what `xrayhpc.status` does for one refresh
                row["status_refresh_s"] = round(time.perf_counter() - t, 3)
                row["status_calls"] = count_calls(calls)
                row["states_seen"] = sorted({r.state for r in rows})
                ids = {r.job.split(".")[0] for r in rows}
                subprocess.run(["qdel", *sorted(ids)], capture_output=True)
                count_calls(calls)
        out["sizes"][str(n)] = row
        print(f"bench: dispatch {n}: {row}", flush=True)
    return out


def dispatch_table(d: dict[str, Any]) -> str:
    header = ["experiments", "dry-run submit s", "sge submit s", "qsub calls", "status refresh s", "qstat+qacct calls"]
    body = []
    for n, row in d["sizes"].items():
        sge = row.get("sge", {})
        status = row.get("status_calls", {})
        body.append([
            n, f"{row['dry-run']['submit_s']:.2f}", f"{sge.get('submit_s', float('nan')):.2f}",
            str(sge.get("calls", {}).get("qsub", "-")), f"{row.get('status_refresh_s', float('nan')):.3f}",
            str(status.get("qstat", 0) + status.get("qacct", 0)) if status else "-",
        ])
    return "\n".join([f"Cluster: {d['cluster'] or 'none (dry-run only)'}.", "", report.markdown(header, body, "rrrrrr")])


def synthetic_result(root: Path, exp: Experiment, total: float, correct: int, count: int) -> dict[str, Any]:
    """A metrics.json as the worker writes it, with chosen numbers (report benchmark and tests)."""
    from xrayhpc.results import SCHEMA_VERSION

    classes = ["covid", "normal"] if exp.task == "binary" else ["covid", "normal", "pneumonia_bac", "pneumonia_vir"]
    metrics = {
        "schema_version": SCHEMA_VERSION, "id": exp.id,
        "experiment": {**exp.settings(), "id": exp.id, "fingerprint": exp.fingerprint},
        "classes": classes, "epochs_run": exp.epochs, "best_epoch": exp.epochs, "history": [],
        "test": {"loss": 0.31, "accuracy": correct / count, "correct": correct, "count": count, "macro_f1": 0.8,
                 "roc_auc": 0.9, "per_class": {c: {"precision": 0.8, "recall": 0.5 + i / 10, "f1": 0.7, "support": 9}
                                               for i, c in enumerate(classes)},
                 "confusion": [[0] * len(classes)] * len(classes), "predictions": []},
        "timing": {"load": 1.0, "features": total * 0.2, "train": total * 0.7, "evaluate": 0.5, "tsne": 1.5,
                   "total": total, "seconds_per_epoch": total * 0.7 / exp.epochs,
                   "train_images_per_second": 104 * exp.epochs / (total * 0.7)},
        "environment": {"host": "scc-x01", "gpu_name": "Tesla V100" if exp.device == "gpu" else None,
                        "cpu_model": "Xeon Gold", "slots": 4, "cpu_count": 28},
    }
    write_json(root / exp.id / "metrics.json", metrics)
    return metrics


def bench_report(sizes: list[int], workdir: Path) -> dict[str, Any]:
    """Time to build the report (tables, timing chart, markdown, HTML) from N result folders."""
    out: dict[str, Any] = {"sizes": {}}
    for n in sizes:
        root = workdir / f"results-{n}"
        for i in range(n):
            device = ("gpu", "cpu")[i % 2]
            exp = Experiment("binary" if i % 3 else "multiclass", "vgg16", device, tag=f"r{i // 2}")
            synthetic_result(root, exp, total=100.0 + i, correct=12 + i % 6, count=18)
        with contextlib.redirect_stdout(io.StringIO()):
            t = time.perf_counter()
            report.main(["--results", str(root), "--quiet"])
            out["sizes"][str(n)] = {"build_s": round(time.perf_counter() - t, 3),
                                    "html_kb": round((root / "report.html").stat().st_size / 1024, 1)}
        print(f"bench: report {n}: {out['sizes'][str(n)]}", flush=True)
    return out


def report_table(r: dict[str, Any]) -> str:
    body = [[n, f"{row['build_s']:.2f}", f"{row['html_kb']:.0f}"] for n, row in r["sizes"].items()]
    return report.markdown(["result folders", "build s", "report.html KB"], body, "rrr")


def find_data(given: str | None) -> tuple[Path, str]:
    """The real data when it can be found, else a synthetic set made for the run."""
    for candidate in (given, os.environ.get("XRAYHPC_DATA"), str(ROOT.parent / "shared" / "data" / "covid-xray")):
        if candidate and (Path(candidate) / "two").is_dir():
            return Path(candidate).resolve(), f"the data in {Path(candidate).name}/"
    from xrayhpc.synthetic import make_dataset

    return make_dataset(Path(tempfile.mkdtemp(prefix="xrayhpc-bench-data-"))), "synthetic data (no real data found)"


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xrayhpc.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few epochs instead of the report's 40")
    parser.add_argument("--epochs", type=int, help="epochs for the worker benchmark (default: 40, quick: 3)")
    parser.add_argument("--data", help="data root with two/ (default: $XRAYHPC_DATA, ../shared/data/covid-xray)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench")
    parser.add_argument("--only", choices=("worker", "dispatch", "report"), help="run one part only")
    parser.add_argument("--augment", choices=("off", "on", "both"), default="both",
                        help="worker benchmark: augmentation off (fast path), on, or both (default)")
    args = parser.parse_args(argv)
    epochs = args.epochs or (3 if args.quick else 40)
    data, kind = find_data(args.data)
    print(f"bench: {kind} ({data})")
    command = "python -m xrayhpc.bench " + " ".join(argv if argv is not None else sys.argv[1:])
    header = {"command": command, "data": kind, "host": platform.node(), "when": time.strftime("%Y-%m-%d %H:%M")}
    parts = {
        "worker": ("Worker benchmark", lambda tmp: bench_worker(
            data, epochs, tmp, {"off": (False,), "on": (True,), "both": (False, True)}[args.augment]), worker_table),
        "dispatch": ("Dispatch and status benchmark", lambda tmp: bench_dispatch([1, 10, 100, 1000], tmp, data), dispatch_table),
        "report": ("Report benchmark", lambda tmp: bench_report([10, 100, 1000], tmp), report_table),
    }
    for name, (title, run, table) in parts.items():
        if args.only and args.only != name:
            continue
        with tempfile.TemporaryDirectory(prefix=f"xrayhpc-bench-{name}-") as tmp:
            figures = run(Path(tmp))
        write_json(args.out / f"{name}.json", {**header, **figures})
        text = f"# {title}\n\n`{command}` on {kind}, {header['when']}\n\n{table(figures)}\n"
        write_atomic(args.out / f"{name}.md", lambda f, text=text: f.write(text.encode()))
        print(text, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
