"""Benchmarks, measured side by side in one run and written to results/bench/ (JSON + Markdown).

    python -m xrayhpc.bench [--quick] [--only PART ...] [--epochs N] [--data DIR] [--out DIR]

worker, task2: the experiments of jobs/report.toml on the real data (else synthetic images, and it
says so), CPU, `weights = "none"`: our worker against the course template's pipeline
(xrayhpc.template) with the same settings. Task 1 with augmentation off and on; Task 2's VGG16 and
MobileNet with it off. Each run is a fresh process with a cold image cache, timed end to end, with
its peak memory, test accuracy and its roofline: the backbone passes it needs at this machine's
measured float32 matmul rate.
scaling: our worker's fast path on the data repeated x1, x2, x4.
dispatch: scheduler calls and wall time of one submit and of one status refresh for grids of 1 to
1000 experiments (dry-run, and on the local Grid Engine with jobs held and then deleted), against
one qsub per experiment.
report: time to build the report from 10 to 1000 result folders.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import math
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
PARTS = ("worker", "task2", "scaling", "dispatch", "report")
# Task 1 runs the report's 40 epochs; Task 2 (100 in the report) and the scaling runs take fewer, or
# the template's Task 2 VGG16 alone would need hours here (~90 s an epoch on 2 cores).
FULL_EPOCHS = {"worker": 40, "task2": 5, "scaling": 3}
QUICK_EPOCHS = 2
QUICK_FRACTION = 0.25


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


def report_experiment(task: str, backbone: str, data: Path, **settings: Any) -> Experiment:
    """The report grid's experiment for (task, backbone), on the CPU, without ImageNet weights."""
    exp = next(e for e in load_grid(REPORT_GRID, {"weights": "none", "data": str(data)})
               if e.task == task and e.backbone == backbone)
    return dataclasses.replace(exp, device="cpu", **settings)


def template_args(exp: Experiment, out: Path) -> list[str]:
    """The course template's command line for the same experiment."""
    args = [sys.executable, "-m", "xrayhpc.template", str(exp.data_dir), str(out),
            "--epochs", str(exp.epochs), "--batch-size", str(exp.batch_size), "--image-size", str(exp.image_size),
            "--learning-rate", str(exp.learning_rate), "--backbone", exp.backbone, "--checkpoint", exp.checkpoint,
            "--head-units", *map(str, exp.head_units), "--dropouts", *map(str, exp.dropouts)]
    return args + ["--trainable"] * exp.trainable_backbone + ["--no-augment"] * (not exp.augment)


def backbone_passes(counts: dict[str, int], exp: Experiment, template: bool) -> int:
    """Forward passes of the backbone a run needs (a training step counts 3): the roofline's work.

    The template runs train+validation through it every epoch, then the test set and, for the
    t-SNE, the training folder again; so does our plain path (trainable backbone), which also runs
    the test set twice. Our head-only path runs each image once without augmentation; with it, the
    fresh train transforms every epoch and the untransformed train images for the t-SNE.
    """
    train, val, test = counts["train"], counts["val"], counts["test"]
    step = 3 if exp.trainable_backbone else 1
    if template:
        return exp.epochs * (step * train + val) + test + train + val
    if not exp.head_only:
        return exp.epochs * (step * train + val) + 2 * test + train + val
    return train + val + test + (exp.epochs * train if exp.augment else 0)


def compare(cases: dict[str, Experiment], workdir: Path) -> dict[str, Any]:
    """Each experiment by our worker and by the course template, one after the other.

    Each run is a fresh process with a cold image cache, timed end to end, with its peak memory.
    """
    from xrayhpc.models import build_backbone, forward_flops

    import keras

    rate = matmul_gflops()
    runs: dict[str, Any] = {}
    for n, (label, exp) in enumerate(cases.items()):
        flops = forward_flops(build_backbone(exp.backbone, exp.image_size, "none"))
        keras.backend.clear_session()
        spec = workdir / f"spec-{n}.json"
        spec.write_text(json.dumps(exp.settings()))
        print(f"bench: {label}: our worker, {exp.epochs} epochs ...", flush=True)
        env = {"XRAYHPC_CACHE": str(workdir / f"cache-{n}")}
        ours = run_child([sys.executable, "-m", "xrayhpc.worker", "--spec", str(spec), "--results", str(workdir / f"ours-{n}")],
                         env, workdir / f"ours-{n}.log")
        metrics = read_metrics(workdir / f"ours-{n}" / exp.id)
        counts = {split: sum(c.values()) for split, c in metrics["counts"].items()}
        ours.update(phases=metrics["timing"], accuracy=metrics["test"]["accuracy"], loss=metrics["test"]["loss"],
                    backbone_passes=backbone_passes(counts, exp, template=False))
        print(f"bench: {label}: the course template ...", flush=True)
        out = workdir / f"template-{n}.json"
        template = run_child(template_args(exp, out), {}, workdir / f"template-{n}.log")
        result = json.loads(out.read_text())
        template.update(phases=result["timing"], accuracy=result["test"]["accuracy"], loss=result["test"]["loss"],
                        backbone_passes=backbone_passes(result["images"], exp, template=True))
        for run in (ours, template):
            run["floor_s"] = round(run["backbone_passes"] * flops / (rate * 1e9), 1)
            run["over_floor"] = round(run["wall_s"] / run["floor_s"], 2)
        runs[label] = {
            "experiment": exp.id, "backbone": exp.backbone, "trainable_backbone": exp.trainable_backbone,
            "augment": exp.augment, "epochs": exp.epochs, "batch_size": exp.batch_size, "images": counts,
            "gflop_per_image": round(flops / 1e9, 2), "ours": ours, "template": template,
            "speedup": round(template["wall_s"] / ours["wall_s"], 2),
        }
    out = {"matmul_gflops": rate, "runs": runs}
    fast = next((r for r in runs.values() if not r["augment"] and not r["trainable_backbone"]), None)
    if fast:  # the fast path against one backbone pass over every image
        floor_s = sum(fast["images"].values()) * fast["gflop_per_image"] / rate
        out["fast_path"] = {"experiment": fast["experiment"], "floor_s": round(floor_s, 1),
                            "over_floor": round(fast["ours"]["wall_s"] / floor_s, 2),
                            "features_over_floor": round(fast["ours"]["phases"]["features"] / floor_s, 2)}
    return out


def task1_cases(data: Path, epochs: int, augment: tuple[bool, ...]) -> dict[str, Experiment]:
    return {f"augment {'on' if a else 'off'}": report_experiment("binary", "vgg16", data, epochs=epochs, augment=a)
            for a in augment}


def task2_cases(data: Path, epochs: int) -> dict[str, Experiment]:
    return {
        "VGG16 frozen": report_experiment("multiclass", "vgg16", data, epochs=epochs, augment=False),
        "MobileNet trained": report_experiment("multiclass", "mobilenet", data, epochs=epochs, augment=False),
    }


def worker_table(w: dict[str, Any]) -> str:
    header = ["run", "pipeline", "wall s", "train s", "s/epoch", "peak MB", "test acc",
              "backbone passes", "floor s", "wall/floor", "speedup"]
    body = []
    lines = []
    for label, run in w["runs"].items():
        images = ", ".join(f"{k} {v}" for k, v in run["images"].items())
        kind = "trained" if run["trainable_backbone"] else "frozen"
        lines.append(f"- {label}: {run['experiment']} ({run['backbone']} {kind}, {run['gflop_per_image']} GFLOP "
                     f"per image), {run['epochs']} epochs, batch {run['batch_size']}, augmentation "
                     f"{'on' if run['augment'] else 'off'}; images {images}")
        for name in ("template", "ours"):
            r = run[name]
            body.append([
                label, name, f"{r['wall_s']:.1f}", f"{r['phases']['train']:.1f}", f"{r['phases']['seconds_per_epoch']:.2f}",
                f"{r['peak_rss_mb']:.0f}", f"{r['accuracy']:.3f}", str(r["backbone_passes"]), f"{r['floor_s']:.1f}",
                f"{r['over_floor']:.2f}", str(run["speedup"]) if name == "ours" else "",
            ])
    lines += [
        "",
        report.markdown(header, body, "llrrrrrrrrr"),
        "",
        f"Roofline: a run's floor is its backbone passes (a training step counts 3) at the measured "
        f"{w['matmul_gflops']} GFLOP/s float32 matmul rate; wall/floor says how close it comes.",
    ]
    if "fast_path" in w:
        f = w["fast_path"]
        lines += ["", f"The fast path ({f['experiment']}, augmentation off) against one backbone pass over every "
                  f"image, {f['floor_s']} s: {f['over_floor']}x end to end, its backbone phase {f['features_over_floor']}x."]
    return "\n".join(lines + ["", "Where our time goes (seconds):", "", phases_table(w)])


PHASES = ("load", "features", "train", "evaluate", "tsne", "total")


def phases_table(w: dict[str, Any]) -> str:
    body = []
    for label, run in w["runs"].items():
        p = run["ours"]["phases"]
        inside = ", ".join(f"{k} {v:.1f}" for k, v in p.get("train_breakdown", {}).items() if v)
        body.append([label, *(f"{p[k]:.1f}" for k in PHASES), inside])
    return report.markdown(["run", *PHASES, "inside train"], body, "lrrrrrrl")


def data_view(source: Path, out: Path, fraction: float = 1.0, repeat: int = 1) -> Path:
    """Links to the first `fraction` of each class folder's images, each `repeat` times.

    The quick benchmark's smaller set, and the scaling runs' x2 and x4 (repeated data).
    """
    from xrayhpc.data import list_images

    for folder in sorted(p for p in source.glob("*/*/*") if p.is_dir()):
        files = list_images(folder)
        files = files[:max(2, math.ceil(len(files) * fraction))]
        target = out / folder.relative_to(source)
        target.mkdir(parents=True, exist_ok=True)
        for k in range(repeat):
            for f in files:
                (target / f"r{k}-{f.name}").symlink_to(f.resolve())
    return out


def bench_scaling(data: Path, epochs: int, workdir: Path, factors: tuple[int, ...] = (1, 2, 4)) -> dict[str, Any]:
    """Our worker's fast path (Task 1, augmentation off) on the data repeated x1, x2, x4."""
    out: dict[str, Any] = {"epochs": epochs, "factors": {}}
    for k in factors:
        view = data_view(data, workdir / f"data-x{k}", repeat=k)
        exp = report_experiment("binary", "vgg16", view, epochs=epochs, augment=False)
        spec = workdir / f"spec-x{k}.json"
        spec.write_text(json.dumps(exp.settings()))
        print(f"bench: scaling x{k} ...", flush=True)
        run = run_child([sys.executable, "-m", "xrayhpc.worker", "--spec", str(spec), "--results", str(workdir / f"out-x{k}")],
                        {"XRAYHPC_CACHE": str(workdir / f"cache-x{k}")}, workdir / f"x{k}.log")
        metrics = read_metrics(workdir / f"out-x{k}" / exp.id)
        run.update(images=sum(sum(c.values()) for c in metrics["counts"].values()), phases=metrics["timing"])
        out["factors"][str(k)] = run
    return out


def scaling_table(s: dict[str, Any]) -> str:
    base = s["factors"]["1"]
    body = [[f"x{k}", str(r["images"]), f"{r['wall_s']:.1f}", f"{r['phases']['features']:.1f}", f"{r['phases']['train']:.1f}",
             f"{r['peak_rss_mb']:.0f}", f"{r['wall_s'] / base['wall_s']:.2f}", f"{r['wall_s'] / r['images']:.3f}"]
            for k, r in s["factors"].items()]
    return "\n".join([
        f"Our worker's fast path (Task 1, frozen VGG16, augmentation off, {s['epochs']} epochs), the data repeated.",
        "", report.markdown(["data", "images", "wall s", "features s", "train s", "peak MB", "wall vs x1", "s per image"],
                            body, "lrrrrrrr")])


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


def naive_submit(n: int, workdir: Path) -> float:
    """Seconds to send n jobs the way the course did: one qsub per experiment (held, then deleted)."""
    script = workdir / "one-job.sh"
    script.write_text("#!/bin/sh\ntrue\n")
    start = time.perf_counter()
    ids = [subprocess.run(["qsub", "-h", "-terse", "-P", "xrayhpc-test", "-o", "/dev/null", "-e", "/dev/null", str(script)],
                          capture_output=True, text=True, check=True).stdout.strip() for _ in range(n)]
    wall = time.perf_counter() - start
    subprocess.run(["qdel", *ids], capture_output=True)
    return round(wall, 3)


def bench_dispatch(sizes: list[int], workdir: Path, data: Path, naive_max: int = 1000) -> dict[str, Any]:
    """Scheduler calls and wall time of one submit and one status refresh, per grid size.

    Against the local cluster the jobs are submitted on hold (-h) and deleted once counted, and
    the same number of jobs is sent one qsub each, as the course did, up to `naive_max`.
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
                if n <= naive_max:
                    row["naive_submit_s"] = naive_submit(n, workdir)
        out["sizes"][str(n)] = row
        print(f"bench: dispatch {n}: {row}", flush=True)
    return out


def dispatch_table(d: dict[str, Any]) -> str:
    header = ["experiments", "dry-run submit s", "sge submit s", "qsub calls", "one qsub each s", "ratio",
              "status refresh s", "qstat+qacct calls"]
    body = []
    for n, row in d["sizes"].items():
        sge = row.get("sge", {})
        status = row.get("status_calls", {})
        naive = row.get("naive_submit_s")
        body.append([
            n, f"{row['dry-run']['submit_s']:.2f}", f"{sge.get('submit_s', float('nan')):.2f}",
            str(sge.get("calls", {}).get("qsub", "-")), f"{naive:.2f}" if naive else "-",
            f"{naive / sge['submit_s']:.1f}" if naive and sge else "-", f"{row.get('status_refresh_s', float('nan')):.3f}",
            str(status.get("qstat", 0) + status.get("qacct", 0)) if status else "-",
        ])
    return "\n".join([
        f"Cluster: {d['cluster'] or 'none (dry-run only)'}. `sge submit` sends the grid through xrayhpc.submit "
        "(one array job per resource request); `one qsub each` sends the same number of held jobs one qsub call "
        "apiece, as the course's scripts did; ratio = one qsub each / sge submit.",
        "", report.markdown(header, body, "rrrrrrrr")])


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
    parser.add_argument("--quick", action="store_true",
                        help=f"a quarter of each class folder and {QUICK_EPOCHS} epochs: every part in a few minutes")
    parser.add_argument("--epochs", type=int, help=f"epochs for Task 1 (default {FULL_EPOCHS['worker']}, quick {QUICK_EPOCHS})")
    parser.add_argument("--data", help="data root with two/ and all/ (default: $XRAYHPC_DATA, ../shared/data/covid-xray)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench")
    parser.add_argument("--only", nargs="+", choices=PARTS, metavar="PART", help=f"run these parts only: {', '.join(PARTS)}")
    parser.add_argument("--augment", choices=("off", "on", "both"), default="both",
                        help="Task 1: augmentation off (the fast path), on, or both (default)")
    args = parser.parse_args(argv)
    epochs = dict(FULL_EPOCHS) if not args.quick else dict.fromkeys(FULL_EPOCHS, QUICK_EPOCHS)
    if args.epochs:
        epochs["worker"] = args.epochs
    source, kind = find_data(args.data)
    command = "python -m xrayhpc.bench " + " ".join(argv if argv is not None else sys.argv[1:])
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="xrayhpc-bench-") as views:
        data = data_view(source, Path(views), fraction=QUICK_FRACTION) if args.quick else source
        if args.quick:
            kind += f", the first {QUICK_FRACTION:.0%} of each class folder"
        print(f"bench: {kind} ({source})", flush=True)
        header = {"command": command, "data": kind, "host": platform.node(), "when": time.strftime("%Y-%m-%d %H:%M")}
        augment = {"off": (False,), "on": (True,), "both": (False, True)}[args.augment]
        parts = {
            "worker": ("Worker benchmark: Task 1", lambda tmp: compare(task1_cases(data, epochs["worker"], augment), tmp),
                       worker_table),
            "task2": ("Worker benchmark: Task 2", lambda tmp: compare(task2_cases(data, epochs["task2"]), tmp), worker_table),
            "scaling": ("Worker scaling", lambda tmp: bench_scaling(data, epochs["scaling"], tmp), scaling_table),
            "dispatch": ("Dispatch and status benchmark",
                         lambda tmp: bench_dispatch([1, 10, 100, 1000], tmp, data, 100 if args.quick else 1000), dispatch_table),
            "report": ("Report benchmark", lambda tmp: bench_report([10, 100, 1000], tmp), report_table),
        }
        for name, (title, run, table) in parts.items():
            if args.only and name not in args.only:
                continue
            t = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix=f"xrayhpc-bench-{name}-") as tmp:
                figures = run(Path(tmp))
            took = round(time.perf_counter() - t, 1)
            write_json(args.out / f"{name}.json", {**header, "took_s": took, **figures})
            text = f"# {title}\n\n`{command}` on {kind}, {header['when']}, {took:.0f} s\n\n{table(figures)}\n"
            write_atomic(args.out / f"{name}.md", lambda f, text=text: f.write(text.encode()))
            print(text, flush=True)
    print(f"bench: done in {time.perf_counter() - start:.0f} s; figures in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
