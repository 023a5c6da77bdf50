"""Our worker against the course template, side by side, with the roofline, and over seeds; and its scaling."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from xrayhpc import stats
from xrayhpc.bench.runs import ROOT, data_view, roofline, run_child
from xrayhpc.experiment import Experiment, load_grid
from xrayhpc.render import markdown
from xrayhpc.schema import PHASES, Metrics, read_metrics

REPORT_GRID = ROOT / "jobs" / "report.toml"


def report_experiment(task: str, backbone: str, data: Path, **settings: Any) -> Experiment:
    """The report grid's experiment for (task, backbone), without ImageNet weights, on the CPU unless
    `settings` names the device."""
    exp = next(
        e
        for e in load_grid(REPORT_GRID, {"weights": "none", "data": str(data)})
        if e.task == task and e.backbone == backbone
    )
    return dataclasses.replace(exp, **{"device": "cpu", **settings})


def template_args(exp: Experiment, out: Path, seeded: bool = False) -> list[str]:
    """The course template's command line for the same experiment (`seeded`: with its seed too)."""
    args = [
        sys.executable,
        "-m",
        "xrayhpc.bench.template",
        str(exp.data_dir),
        str(out),
        "--epochs",
        str(exp.epochs),
        "--batch-size",
        str(exp.batch_size),
        "--image-size",
        str(exp.image_size),
        "--learning-rate",
        str(exp.learning_rate),
        "--backbone",
        exp.backbone,
        "--checkpoint",
        exp.checkpoint,
        "--head-units",
        *map(str, exp.head_units),
        "--dropouts",
        *map(str, exp.dropouts),
    ]
    args += ["--seed", str(exp.seed)] if seeded else []
    return args + ["--trainable"] * exp.trainable_backbone + ["--no-augment"] * (not exp.augment)


def significant(value: float, digits: int = 4) -> float:
    """`value` to `digits` significant digits: a figure of any size keeps its meaning (never 0.0)."""
    return float(f"{value:.{digits}g}")


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


def run_worker(
    exp: Experiment, workdir: Path, name: str, env: dict[str, str] | None = None
) -> tuple[dict[str, Any], Metrics | None]:
    """Our worker on one experiment as a fresh process with a cold image cache (and `env`, such as
    another KERAS_BACKEND): the run's wall time and peak memory, and the metrics.json it wrote."""
    spec = workdir / f"spec-{name}.json"
    spec.write_text(json.dumps(exp.settings()))
    run = run_child(
        [sys.executable, "-m", "xrayhpc.worker", "--spec", str(spec), "--results", str(workdir / f"ours-{name}")],
        {"XRAYHPC_CACHE": str(workdir / f"cache-{name}"), **(env or {})},
        workdir / f"ours-{name}.log",
    )
    return run, read_metrics(workdir / f"ours-{name}" / exp.id)


def compare(cases: dict[str, Experiment], workdir: Path) -> dict[str, Any]:
    """Each experiment by our worker and by the course template, one after the other, each timed end to
    end in a fresh process with its peak memory."""
    rate, passes = roofline([(exp.backbone, exp.image_size) for exp in cases.values()])
    runs: dict[str, Any] = {}
    for n, ((label, exp), flops) in enumerate(zip(cases.items(), passes, strict=True)):
        print(f"bench: {label}: our worker, {exp.epochs} epochs ...", flush=True)
        ours, metrics = run_worker(exp, workdir, str(n))
        counts = metrics.images
        ours.update(
            phases=dataclasses.asdict(metrics.timing),
            accuracy=metrics.test.accuracy,
            loss=metrics.test.loss,
            backbone_passes=backbone_passes(counts, exp, template=False),
        )
        print(f"bench: {label}: the course template ...", flush=True)
        out = workdir / f"template-{n}.json"
        template = run_child(template_args(exp, out), {}, workdir / f"template-{n}.log")
        result = json.loads(out.read_text())
        template.update(
            phases=result["timing"],
            accuracy=result["test"]["accuracy"],
            loss=result["test"]["loss"],
            backbone_passes=backbone_passes(result["images"], exp, template=True),
        )
        for run in (ours, template):  # the ratio from the unrounded floor: a small run's is well under 0.1 s
            floor_s = run["backbone_passes"] * flops / (rate * 1e9)
            run["floor_s"] = significant(floor_s)
            run["over_floor"] = round(run["wall_s"] / floor_s, 2)
        runs[label] = {
            "experiment": exp.id,
            "backbone": exp.backbone,
            "trainable_backbone": exp.trainable_backbone,
            "augment": exp.augment,
            "epochs": exp.epochs,
            "batch_size": exp.batch_size,
            "images": counts,
            "gflop_per_image": round(flops / 1e9, 2),
            "ours": ours,
            "template": template,
            "speedup": round(template["wall_s"] / ours["wall_s"], 2),
        }
    out = {"matmul_gflops": rate, "runs": runs}
    fast = next((r for r in runs.values() if not r["augment"] and not r["trainable_backbone"]), None)
    if fast:  # the fast path against one backbone pass over every image
        floor_s = sum(fast["images"].values()) * fast["gflop_per_image"] / rate
        out["fast_path"] = {
            "experiment": fast["experiment"],
            "floor_s": significant(floor_s),
            "over_floor": round(fast["ours"]["wall_s"] / floor_s, 2),
            "features_over_floor": round(fast["ours"]["phases"]["features"] / floor_s, 2),
        }
    return out


def task1_cases(data: Path, epochs: int, augment: tuple[bool, ...]) -> dict[str, Experiment]:
    return {
        f"augment {'on' if a else 'off'}": report_experiment("binary", "vgg16", data, epochs=epochs, augment=a)
        for a in augment
    }


def task2_cases(data: Path, epochs: int) -> dict[str, Experiment]:
    return {
        "VGG16 frozen": report_experiment("multiclass", "vgg16", data, epochs=epochs, augment=False),
        "MobileNet trained": report_experiment("multiclass", "mobilenet", data, epochs=epochs, augment=False),
    }


def worker_table(w: dict[str, Any]) -> str:
    header = [
        "run",
        "pipeline",
        "wall s",
        "train s",
        "s/epoch",
        "peak MB",
        "test acc",
        "backbone passes",
        "floor s",
        "wall/floor",
        "speedup",
    ]
    body = []
    lines = []
    for label, run in w["runs"].items():
        images = ", ".join(f"{k} {v}" for k, v in run["images"].items())
        kind = "trained" if run["trainable_backbone"] else "frozen"
        lines.append(
            f"- {label}: {run['experiment']} ({run['backbone']} {kind}, {run['gflop_per_image']} GFLOP "
            f"per image), {run['epochs']} epochs, batch {run['batch_size']}, augmentation "
            f"{'on' if run['augment'] else 'off'}; images {images}"
        )
        for name in ("template", "ours"):
            r = run[name]
            body.append(
                [
                    label,
                    name,
                    f"{r['wall_s']:.1f}",
                    f"{r['phases']['train']:.1f}",
                    f"{r['phases']['seconds_per_epoch']:.2f}",
                    f"{r['peak_rss_mb']:.0f}",
                    f"{r['accuracy']:.3f}",
                    str(r["backbone_passes"]),
                    f"{r['floor_s']:.3g}",
                    f"{r['over_floor']:.2f}",
                    str(run["speedup"]) if name == "ours" else "",
                ]
            )
    lines += [
        "",
        markdown(header, body, "llrrrrrrrrr"),
        "",
        f"Roofline: a run's floor is its backbone passes (a training step counts 3) at the measured "
        f"{w['matmul_gflops']} GFLOP/s float32 matmul rate; wall/floor says how close it comes.",
    ]
    if "fast_path" in w:
        f = w["fast_path"]
        lines += [
            "",
            f"The fast path ({f['experiment']}, augmentation off) against one backbone pass over every "
            f"image, {f['floor_s']} s: {f['over_floor']}x end to end, its backbone phase {f['features_over_floor']}x.",
        ]
    return "\n".join(lines + ["", "Where our time goes (seconds):", "", phases_table(w)])


def phases_table(w: dict[str, Any]) -> str:
    body = []
    for label, run in w["runs"].items():
        p = run["ours"]["phases"]
        inside = ", ".join(f"{k} {v:.1f}" for k, v in p.get("train_breakdown", {}).items() if v)
        body.append([label, *(f"{p[k]:.1f}" for k in (*PHASES, "total")), inside])
    return markdown(["run", *PHASES, "total", "inside train"], body, "lrrrrrrl")


def bench_scaling(data: Path, epochs: int, workdir: Path, factors: tuple[int, ...] = (1, 2, 4)) -> dict[str, Any]:
    """Our worker's fast path (Task 1, augmentation off) on the data repeated x1, x2, x4."""
    out: dict[str, Any] = {"epochs": epochs, "factors": {}}
    for k in factors:
        view = data_view(data, workdir / f"data-x{k}", repeat=k)
        exp = report_experiment("binary", "vgg16", view, epochs=epochs, augment=False)
        print(f"bench: scaling x{k} ...", flush=True)
        run, metrics = run_worker(exp, workdir, f"x{k}")
        run.update(images=sum(metrics.images.values()), phases=dataclasses.asdict(metrics.timing))
        out["factors"][str(k)] = run
    return out


def scaling_table(s: dict[str, Any]) -> str:
    base = s["factors"]["1"]
    body = [
        [
            f"x{k}",
            str(r["images"]),
            f"{r['wall_s']:.1f}",
            f"{r['phases']['features']:.1f}",
            f"{r['phases']['train']:.1f}",
            f"{r['peak_rss_mb']:.0f}",
            f"{r['wall_s'] / base['wall_s']:.2f}",
            f"{r['wall_s'] / r['images']:.3f}",
        ]
        for k, r in s["factors"].items()
    ]
    return "\n".join(
        [
            f"Our worker's fast path (Task 1, frozen VGG16, augmentation off, {s['epochs']} epochs), the data repeated.",
            "",
            markdown(
                ["data", "images", "wall s", "features s", "train s", "peak MB", "wall vs x1", "s per image"],
                body,
                "lrrrrrrr",
            ),
        ]
    )


def bench_seeds(exp: Experiment, seeds: int, workdir: Path) -> dict[str, Any]:
    """Our worker and the course template, each seeded, over seeds 0 to `seeds` - 1: test accuracy
    and loss of each, and the difference of their means with its Welch interval (a seed of ours and
    the template's seed of the same number draw different streams: the runs are not paired)."""
    runs: dict[str, list[dict[str, float]]] = {"ours": [], "template": []}
    for seed in range(seeds):
        one = dataclasses.replace(exp, seed=seed)
        print(f"bench: seeds: seed {seed}: our worker, {exp.epochs} epochs ...", flush=True)
        wall, metrics = run_worker(one, workdir, f"seed{seed}")
        runs["ours"].append({"seed": seed, "accuracy": metrics.test.accuracy, "loss": metrics.test.loss,
                             "wall_s": wall["wall_s"]})  # fmt: skip
        print(f"bench: seeds: seed {seed}: the course template ...", flush=True)
        out = workdir / f"template-seed{seed}.json"
        wall = run_child(template_args(one, out, seeded=True), {}, workdir / f"template-seed{seed}.log")
        result = json.loads(out.read_text())["test"]
        runs["template"].append({"seed": seed, "accuracy": result["accuracy"], "loss": result["loss"],
                                 "wall_s": wall["wall_s"]})  # fmt: skip
    summary = {}
    for key in ("accuracy", "loss"):
        ours, template = ([r[key] for r in runs[name]] for name in ("ours", "template"))
        summary[key] = {"ours": dataclasses.asdict(stats.summary(ours)), "template": dataclasses.asdict(stats.summary(template)),
                        "difference": dataclasses.asdict(stats.welch(ours, template))}  # fmt: skip
    return {
        "experiment": exp.id,
        "epochs": exp.epochs,
        "augment": exp.augment,
        "seeds": seeds,
        "runs": runs,
        "summary": summary,
    }


def seeds_table(s: dict[str, Any]) -> str:
    header = ["seed", "ours acc", "template acc", "ours loss", "template loss"]
    ours, template = s["runs"]["ours"], s["runs"]["template"]
    body = [
        [str(o["seed"]), f"{o['accuracy']:.3f}", f"{t['accuracy']:.3f}", f"{o['loss']:.3f}", f"{t['loss']:.3f}"]
        for o, t in zip(ours, template, strict=True)
    ]
    lines = [
        f"{s['experiment']}, {s['epochs']} epochs, augmentation {'on' if s['augment'] else 'off'}, random weights, "
        f"CPU; each pipeline seeded (ours: `seed`; the template: `--seed`, Keras's and its generators')",
        "",
        markdown(header, body, "lrrrr"),
        "",
    ]
    for key in ("accuracy", "loss"):
        o, t, d = (s["summary"][key][k] for k in ("ours", "template", "difference"))
        lines.append(
            f"- test {key}: ours {o['mean']:.3f} ± {o['sd']:.3f}, the template {t['mean']:.3f} ± {t['sd']:.3f} "
            f"(mean ± sd over {o['n']} seeds); ours − template {d['mean']:+.3f}, 95% Welch interval "
            f"{d['low']:+.3f} to {d['high']:+.3f}"
            + (": holds 0, no evidence that they differ" if d["low"] <= 0 <= d["high"] else "")
        )
    return "\n".join(lines)
