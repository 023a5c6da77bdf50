"""Building the report from 10 to 1000 result folders of made-up metrics."""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path
from typing import Any

from xrayhpc.experiment import Experiment
from xrayhpc.render import markdown
from xrayhpc.report.cli import main as report_main
from xrayhpc.schema import Environment, Metrics, Scores, Timing


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
            report_main(["--results", str(root), "--quiet"])
            out["sizes"][str(n)] = {
                "build_s": round(time.perf_counter() - t, 3),
                "html_kb": round((root / "report.html").stat().st_size / 1024, 1),
            }
        print(f"bench: report {n}: {out['sizes'][str(n)]}", flush=True)
    return out


def report_table(r: dict[str, Any]) -> str:
    body = [[n, f"{row['build_s']:.2f}", f"{row['html_kb']:.0f}"] for n, row in r["sizes"].items()]
    return markdown(["result folders", "build s", "report.html KB"], body, "rrr")
