"""Building the report, and refreshing the live page, from 10 to 1000 result folders of made-up metrics."""

from __future__ import annotations

import contextlib
import io
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from xrayhpc.experiment import Experiment
from xrayhpc.render import markdown
from xrayhpc.report.cli import main as report_main
from xrayhpc.report.watch import Dashboard
from xrayhpc.schema import JOB, Environment, JobRecord, Metrics, Progress, Scores, Timing, parses_kept, write_json


def synthetic_result(root: Path, exp: Experiment, total: float, correct: int, count: int) -> Metrics:
    """A metrics.json as the worker writes it, with chosen numbers (report benchmark and tests)."""
    classes = ["covid", "normal"] if exp.task == "binary" else ["covid", "normal", "pneumonia_bac", "pneumonia_vir"]
    metrics = Metrics(
        id=exp.id,
        experiment={**exp.settings(), "id": exp.id, "fingerprint": exp.fingerprint},
        classes=classes,
        counts={
            "train": dict.fromkeys(classes, 40),
            "val": dict.fromkeys(classes, 10),
            "test": dict.fromkeys(classes, 9),
        },
        model={"backbone": exp.backbone},
        path="head-only",
        epochs_run=exp.epochs,
        best_epoch=exp.epochs,
        history=[],
        finished=0.0,
        test=Scores(
            loss=0.31,
            accuracy=correct / count,
            correct=correct,
            count=count,
            macro_f1=0.8,
            roc_auc=0.9,
            per_class={
                c: {"precision": 0.8, "recall": 0.5 + i / 10, "f1": 0.7, "support": 9} for i, c in enumerate(classes)
            },
            confusion=[[0] * len(classes)] * len(classes),
        ),
        timing=Timing(
            load=1.0,
            features=total * 0.2,
            train=total * 0.7,
            evaluate=0.5,
            tsne=1.5,
            total=total,
            seconds_per_epoch=total * 0.7 / exp.epochs,
            train_images_per_second=104 * exp.epochs / (total * 0.7),
        ),
        environment=Environment(
            host="scc-x01",
            gpu_name="Tesla V100" if exp.device == "gpu" else None,
            cpu_model="Xeon Gold",
            slots=4,
            cpu_count=28,
        ),
    )
    metrics.write(root / exp.id)
    return metrics


def history(epochs: int) -> list[dict[str, float]]:
    """Made-up per-epoch records, as progress.json and metrics.json hold them."""
    return [
        {
            "loss": 1 / (e + 1),
            "accuracy": e / epochs,
            "val_loss": 1.1 / (e + 1),
            "val_accuracy": e / epochs,
            "seconds": 2.0,
        }
        for e in range(epochs)
    ]


def result_folders(root: Path, n: int) -> list[Experiment]:
    """N experiments: nine in ten finished (metrics.json, progress.json with its history, job.json of
    a local run), the rest running at their 12th epoch of 40."""
    exps = []
    for i in range(n):
        device = ("gpu", "cpu")[i % 2]
        exp = Experiment("binary" if i % 3 else "multiclass", "vgg16", device, epochs=40, tag=f"r{i // 2}")
        folder = root / exp.id
        finished = i % 10 != 9
        if finished:
            synthetic_result(root, exp, total=100.0 + i, correct=12 + i % 6, count=18)
        folder.mkdir(parents=True, exist_ok=True)
        epoch = 40 if finished else 12
        Progress(
            "done" if finished else "running", epoch, 40, 0.0, "scc-x01", 4242, exp.id, exp.fingerprint,
            history=history(epoch),
        ).write(folder)  # fmt: skip
        write_json(folder / JOB, asdict(JobRecord("local", str(1000 + i), exp.fingerprint, "job.sh", "log", 0.0)))
        exps.append(exp)
    return exps


def bench_report(sizes: list[int], workdir: Path) -> dict[str, Any]:
    """Time to build the report (tables, charts, markdown, HTML) from N result folders, and one
    refresh of the live page (`report --watch`) over the same folders: the first, one where nothing
    changed (the median of three), and one after another experiment finished."""
    out: dict[str, Any] = {"sizes": {}}
    for n in sizes:
        root = workdir / f"results-{n}"
        exps = result_folders(root, n)
        with contextlib.redirect_stdout(io.StringIO()):
            t = time.perf_counter()
            report_main(["--results", str(root), "--quiet"])
            built = time.perf_counter() - t
        figures = {"build_s": round(built, 3), "html_kb": round((root / "report.html").stat().st_size / 1024, 1)}
        watched = workdir / f"watched-{n}"  # a copy: its charts are not yet drawn, its files not yet read
        shutil.copytree(root, watched, ignore=shutil.ignore_patterns("*.png", "report.*"))
        figures |= _watch(watched, exps)
        out["sizes"][str(n)] = figures
        print(f"bench: report {n}: {figures}", flush=True)
    return out


def _watch(root: Path, exps: list[Experiment]) -> dict[str, float]:
    board = Dashboard(root, {e.id: e.fingerprints for e in exps}, 30.0)
    with parses_kept():
        first = _timed(board.refresh)
        steady = sorted(_timed(board.refresh) for _ in range(3))[1]
        running = next(e for i, e in enumerate(exps) if i % 10 == 9) if len(exps) >= 10 else exps[0]
        synthetic_result(root, running, total=150.0, correct=14, count=18)
        one_more = _timed(board.refresh)
    return {
        "watch_first_s": round(first, 3),
        "watch_steady_s": round(steady, 3),
        "watch_one_more_s": round(one_more, 3),
        "live_kb": round((root / "report.html").stat().st_size / 1024, 1),
    }


def _timed(step: Any) -> float:
    t = time.perf_counter()
    step()
    return time.perf_counter() - t


def report_table(r: dict[str, Any]) -> str:
    body = [
        [
            n,
            f"{row['build_s']:.2f}",
            f"{row['html_kb']:.0f}",
            *(
                [f"{row['watch_first_s']:.2f}", f"{row['watch_steady_s']:.3f}", f"{row['watch_one_more_s']:.2f}"]
                if "watch_first_s" in row
                else ["-", "-", "-"]
            ),
            f"{row['live_kb']:.0f}" if "live_kb" in row else "-",
        ]
        for n, row in r["sizes"].items()
    ]
    header = [
        "result folders", "report s", "report.html KB", "watch: first refresh s", "refresh, nothing new s",
        "refresh, one more done s", "live page KB",
    ]  # fmt: skip
    note = (
        "Nine in ten folders finished, the rest running (progress.json with 12 epochs of history). "
        "`report s`: `python -m xrayhpc.report` once, every chart drawn. The watch (`report --watch`) "
        "keeps what it read: a refresh with nothing new reads only what changed and draws no chart; "
        "one more finished experiment redraws the charts its figures change.\n\n"
    )
    return note + markdown(header, body, "rrrrrrr")
