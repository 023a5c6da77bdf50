"""The study's answer from the result folders: `python -m xrayhpc.report`, `make report`.

Writes results/report.md, a self-contained results/report.html (images inlined) and
results/timing.png, and prints the tables. Experiments still running or failed are listed with
their state; a damaged metrics.json or one of an unknown schema is named in one line and left out.
"""

from __future__ import annotations

import argparse
import base64
import functools
import html
import io
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from xrayhpc import sitefiles
from xrayhpc.audit import tables as audit_tables
from xrayhpc.controls import Arm, role, sentence
from xrayhpc.errors import UserError, cli
from xrayhpc.experiment import FIELDS, TASK_LABELS, load_grid
from xrayhpc.results import AUDIT, METRICS, PHASES, SCHEMA_VERSION, read_json, results_root, write_atomic
from xrayhpc.state import USAGE, Row, collect, experiment_folders, usage_cells
from xrayhpc.stats import Summary, paired, summary, wilson

# The report the study was made from: (task, backbone) -> (test accuracy, test loss)
PUBLISHED = {
    ("binary", "vgg16"): (0.944, 0.3084),
    ("multiclass", "vgg16"): (0.66, 0.79),
    ("multiclass", "mobilenet"): (0.75, 0.69),
}
# A published figure stands beside a run only when these settings equal the report's own, as the
# packaged jobs/report.toml holds them; otherwise the row names what differs.
COMPARED = (
    "weights",
    "image_size",
    "epochs",
    "batch_size",
    "learning_rate",
    "head_units",
    "dropouts",
    "trainable_backbone",
    "augment",
    "preprocessing",
    "checkpoint",
    "validation_split",
    "colour",
    "precision",
)
# Runs that differ only in these are repeats of one configuration.
NOT_CONFIGURATION = ("seed", "fingerprint", "id")
CHART_PAIRS = 30  # more bars than this are unreadable; the table lists every pair
IMAGES = (
    ("tsne-train.png", "t-SNE, training folder"),
    ("tsne-test.png", "t-SNE, test set"),
    ("curves.png", "training curves"),
    ("confusion.png", "test confusion matrix"),
)


@dataclass
class Result:
    folder: Path
    metrics: dict[str, Any]

    @property
    def exp(self) -> dict[str, Any]:
        return self.metrics["experiment"]

    @property
    def id(self) -> str:
        return self.metrics["id"]


def load_results(root: Path) -> tuple[list[Result], dict[str, str]]:
    """Complete results, and {folder name: one line} for each metrics.json that had to be left out."""
    results: list[Result] = []
    skipped: dict[str, str] = {}
    for folder in experiment_folders(root):
        path = folder / METRICS
        if not path.exists():
            continue
        data = read_json(path)
        if not isinstance(data, dict):
            skipped[folder.name] = f"{path}: damaged (not readable JSON), left out"
        elif data.get("schema_version") != SCHEMA_VERSION:
            skipped[folder.name] = (
                f"{path}: schema_version {data.get('schema_version')!r} is not {SCHEMA_VERSION}, left out"
            )
        else:
            try:
                data["test"]["accuracy"], data["experiment"]["task"], data["timing"]["total"]
            except (KeyError, TypeError):
                skipped[folder.name] = f"{path}: incomplete (missing test, experiment or timing), left out"
                continue
            results.append(Result(folder, data))
    return results, skipped


@functools.lru_cache
def _report_settings() -> dict[tuple[str, str], dict[str, Any]]:
    """(task, backbone) -> the report's settings, from the packaged jobs/report.toml."""
    experiments = load_grid(sitefiles.packaged("jobs", "report.toml"))
    return {(e.task, e.backbone): e.settings() for e in experiments if role(e.settings()) == "study"}


def reference(exp: dict[str, Any]) -> tuple[tuple[float, float] | None, list[str]]:
    """The published (accuracy, loss) when `exp` ran with the report's settings, else what differs."""
    published = PUBLISHED.get((exp["task"], exp["backbone"]))
    theirs = _report_settings().get((exp["task"], exp["backbone"]))
    if published is None or theirs is None:
        return None, []
    ours = {k: exp.get(k, FIELDS[k].default) for k in COMPARED}  # a setting newer than the result: its default
    differs = [f"{k} {_setting(ours[k])} (report: {_setting(theirs[k])})" for k in COMPARED if ours[k] != theirs[k]]
    return (None, differs) if differs else (published, [])


def _setting(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def comparison_rows(results: list[Result], task: str) -> list[dict[str, Any]]:
    """One row per run of the task: the study's runs first, then their controls."""
    rows = []
    for r in sorted((r for r in results if r.exp["task"] == task), key=lambda r: (role(r.exp) != "study", r.id)):
        test = r.metrics["test"]
        low, high = wilson(test["correct"], test["count"])
        published, differs = reference(r.exp)
        facts = r.exp["backbone"] == "metadata"
        rows.append(
            {
                "id": r.id,
                "role": role(r.exp),
                "backbone": r.exp["backbone"],
                "backbone_mode": ("file facts" if facts else "trained" if r.exp["trainable_backbone"] else "frozen")
                + (f", {r.exp['precision']}" if r.exp.get("precision", "float32") != "float32" else ""),
                "augment": "–" if facts else "on" if r.exp["augment"] else "off",
                "weights": "–" if facts else r.exp["weights"] if r.exp["weights"] in ("imagenet", "none") else "file",
                "device": r.exp["device"],
                "accuracy": test["accuracy"],
                "ci": (low, high),
                "loss": test["loss"],
                "macro_f1": test["macro_f1"],
                "roc_auc": test["roc_auc"],
                "recall": {c: v["recall"] for c, v in test["per_class"].items()},
                "epochs": r.metrics["epochs_run"],
                "best_epoch": r.metrics["best_epoch"],
                "published": published,
                "differs": differs,
                "diff": (test["accuracy"] - published[0], test["loss"] - published[1]) if published else None,
            }
        )
    return rows


@dataclass
class Group:
    """Runs of one configuration that differ only in their seed."""

    label: str
    task: str
    members: list[Result]

    def values(self, key: str) -> dict[int, float]:
        return {r.exp["seed"]: r.metrics["test"][key] for r in self.members}

    def summary(self, key: str) -> Summary:
        return summary(list(self.values(key).values()))


def seed_groups(results: list[Result]) -> list[Group]:
    """Every configuration that ran with two or more seeds."""
    by_key: dict[tuple[Any, ...], list[Result]] = {}
    for r in results:
        key = tuple(sorted((k, str(v)) for k, v in r.exp.items() if k not in NOT_CONFIGURATION))
        by_key.setdefault(key, []).append(r)
    groups = []
    for members in by_key.values():
        if len({r.exp["seed"] for r in members}) >= 2:
            members = sorted(members, key=lambda r: r.exp["seed"])
            label = re.sub(r"-seed-?\d+", "", members[0].id)
            groups.append(Group(label, members[0].exp["task"], members))
    return sorted(groups, key=lambda g: g.label)


def _pm(s: Summary) -> str:
    return f"{s.mean:.3f} ± {s.sd:.3f}"


def group_table(groups: list[Group]) -> tuple[list[str], list[list[str]]]:
    header = [
        "configuration",
        "n",
        "seeds",
        "test acc mean ± sd",
        "95% CI of mean",
        "range",
        "test loss mean ± sd",
        "macro F1 mean ± sd",
        "report acc / loss",
    ]
    body = []
    for g in groups:
        acc = g.summary("accuracy")
        published, differs = reference(g.members[0].exp)
        body.append(
            [
                g.label,
                str(acc.n),
                ",".join(str(s) for s in g.values("accuracy")),
                _pm(acc),
                f"{max(0.0, acc.low):.3f}–{min(1.0, acc.high):.3f}",
                f"{acc.lowest:.3f}–{acc.highest:.3f}",
                _pm(g.summary("loss")),
                _pm(g.summary("macro_f1")),
                f"{published[0]:g} / {published[1]:g}" if published else ("differs" if differs else "–"),
            ]
        )
    return header, body


def paired_rows(groups: list[Group]) -> list[tuple[str, Summary, Summary]]:
    """A − B in accuracy and loss over the seeds both ran, for configurations of one task."""
    out = []
    for i, a in enumerate(groups):
        for b in groups[i + 1 :]:
            differ = {
                k
                for k in a.members[0].exp
                if k not in NOT_CONFIGURATION and a.members[0].exp[k] != b.members[0].exp.get(k)
            }
            if a.task != b.task or differ == {"device"}:
                continue
            acc, loss = paired(a.values("accuracy"), b.values("accuracy")), paired(a.values("loss"), b.values("loss"))
            if acc is not None and loss is not None:
                out.append((f"{a.label} − {b.label}", acc, loss))
    return out


def paired_table(rows: list[tuple[str, Summary, Summary]]) -> tuple[list[str], list[list[str]]]:
    header = [
        "comparison",
        "seeds in common",
        "Δ test acc mean ± sd",
        "95% CI (paired)",
        "Δ test loss mean ± sd",
        "95% CI (paired)",
    ]
    return header, [
        [
            label,
            str(acc.n),
            _pm(acc),
            f"{acc.low:+.3f} to {acc.high:+.3f}",
            _pm(loss),
            f"{loss.low:+.3f} to {loss.high:+.3f}",
        ]
        for label, acc, loss in rows
    ]


def device_pairs(results: list[Result]) -> tuple[list[tuple[Result, Result]], list[Result]]:
    """Experiments equal in every setting but the device; the rest ran on one device only."""

    def key(r: Result) -> tuple[Any, ...]:
        return tuple(sorted((k, str(v)) for k, v in r.exp.items() if k not in ("device", "fingerprint", "id")))

    by_key: dict[tuple[Any, ...], dict[str, Result]] = {}
    for r in results:
        by_key.setdefault(key(r), {})[r.exp["device"]] = r
    pairs = [(d["gpu"], d["cpu"]) for d in by_key.values() if "gpu" in d and "cpu" in d]
    single = [r for d in by_key.values() if not ("gpu" in d and "cpu" in d) for r in d.values()]
    return pairs, sorted(single, key=lambda r: r.id)


def _hardware(r: Result) -> str:
    env = r.metrics["environment"]
    where = env.get("gpu_name") or env.get("cpu_model") or "?"
    return f"{where}, {env.get('slots') or env.get('cpu_count')} slot(s), {env.get('host', '?')}"


def timing_rows(pairs: list[tuple[Result, Result]]) -> list[dict[str, Any]]:
    rows = []
    for gpu, cpu in sorted(pairs, key=lambda p: p[0].id):
        g, c = gpu.metrics["timing"], cpu.metrics["timing"]
        rows.append(
            {
                "experiment": gpu.id.replace("-gpu", ""),
                "gpu": g,
                "cpu": c,
                "speedup": c["total"] / g["total"] if g["total"] else float("nan"),
                "gpu_hardware": _hardware(gpu),
                "cpu_hardware": _hardware(cpu),
            }
        )
    return rows


def timing_png(rows: list[dict[str, Any]], path: Path) -> bool:
    """Phases side by side, GPU and CPU, one pair of bars per experiment (the first CHART_PAIRS)."""
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = rows[:CHART_PAIRS]
    bars = [(row, device) for row in rows for device in ("gpu", "cpu")]
    x = np.array([i + 0.5 * (i // 2) for i in range(len(bars))])
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(bars) + 2), 4.5))
    bottom = np.zeros(len(bars))
    colours = plt.get_cmap("tab10")
    for i, phase in enumerate(PHASES):
        values = np.array([row[device].get(phase, 0.0) for row, device in bars])
        ax.bar(x, values, bottom=bottom, color=colours(i), label=phase)
        bottom += values
    for xi, top, (row, device) in zip(x, bottom, bars, strict=True):
        ax.text(xi, top, f"{row[device]['total']:.0f} s total", ha="center", va="bottom", fontsize=8)
    ax.margins(y=0.12)
    ax.set_xticks(x, [f"{row['experiment']}\n{device}" for row, device in bars], fontsize=8)
    ax.set_ylabel("wall time (s)")
    ax.set_title("GPU versus CPU: time per phase")
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    write_atomic(path, lambda f: f.write(buf.getvalue()))
    return True


def accuracy_png(results: list[Result], groups: list[Group], path: Path) -> bool:
    """Test accuracy per experiment (Wilson interval) or per seed group (t-interval of the mean),
    with the published figure as a marker where the settings are the report's."""
    grouped = {r.id for g in groups for r in g.members}
    points: list[tuple[str, float, float, float, tuple[float, float] | None]] = []
    for r in sorted(results, key=lambda r: (r.exp["task"], r.id)):
        if r.id not in grouped:
            test = r.metrics["test"]
            low, high = wilson(test["correct"], test["count"])
            points.append((r.id, test["accuracy"], low, high, reference(r.exp)[0]))
    for g in groups:
        s = g.summary("accuracy")
        points.append(
            (f"{g.label} (n={s.n})", s.mean, max(0.0, s.low), min(1.0, s.high), reference(g.members[0].exp)[0])
        )
    if not points:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = points[: CHART_PAIRS * 2]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.4 * len(points)))
    y = list(range(len(points)))[::-1]
    for yi, (_, value, low, high, published) in zip(y, points, strict=True):
        ax.errorbar(value, yi, xerr=[[value - low], [high - value]], fmt="o", color="tab:blue", capsize=3)
        if published:
            ax.plot(published[0], yi, marker="x", color="tab:red", markersize=9, linestyle="none")
    if any(p[4] for p in points):
        ax.plot([], [], marker="x", color="tab:red", linestyle="none", label="published (same settings)")
    ax.errorbar([], [], xerr=[], fmt="o", color="tab:blue", label="ours, 95% interval")
    ax.set_yticks(y, [p[0] for p in points], fontsize=8)
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("test accuracy")
    ax.set_title("Test accuracy with its 95% interval")
    ax.legend(fontsize=8, loc="lower left")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    write_atomic(path, lambda f: f.write(buf.getvalue()))
    return True


def _f(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def comparison_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    classes = sorted({c for r in rows for c in r["recall"]})
    header = [
        "experiment",
        "role",
        "backbone",
        "augment",
        "weights",
        "device",
        "test acc (95% CI)",
        "test loss",
        "macro F1",
        "ROC-AUC",
        *[f"recall {c}" for c in classes],
        "epochs",
        "best",
        "report acc / loss",
        "Δ acc / loss",
    ]
    body = []
    for r in rows:
        low, high = r["ci"]
        body.append(
            [
                r["id"],
                r["role"],
                f"{r['backbone']} ({r['backbone_mode']})",
                r["augment"],
                r["weights"],
                r["device"],
                f"{r['accuracy']:.3f} ({low:.2f}–{high:.2f})",
                _f(r["loss"]),
                _f(r["macro_f1"]),
                _f(r["roc_auc"]),
                *[_f(r["recall"].get(c)) for c in classes],
                str(r["epochs"]),
                str(r["best_epoch"]),
                f"{r['published'][0]:g} / {r['published'][1]:g}" if r["published"] else "–",
                f"{r['diff'][0]:+.3f} / {r['diff'][1]:+.3f}"
                if r["diff"]
                else "not comparable: " + "; ".join(r["differs"])
                if r["differs"]
                else "–",
            ]
        )
    return header, body


def timing_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = [
        "experiment",
        "device",
        "total s",
        *[f"{p} s" for p in PHASES],
        "s/epoch",
        "images/s",
        "speedup",
        "hardware",
    ]
    body = []
    for r in rows:
        for device in ("gpu", "cpu"):
            t = r[device]
            body.append(
                [
                    r["experiment"],
                    device,
                    _f(t["total"], 1),
                    *[_f(t.get(p), 1) for p in PHASES],
                    _f(t["seconds_per_epoch"], 2),
                    _f(t["train_images_per_second"], 1),
                    f"{r['speedup']:.2f}x" if device == "gpu" else "",
                    r[f"{device}_hardware"],
                ]
            )
    return header, body


def usage_table(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    return ["experiment", "job", *USAGE, "hint"], [
        [r.id, f"{r.executor} {r.job}".strip(), *usage_cells(r.usage), r.usage.hint() if r.usage else ""] for r in rows
    ]


def state_table(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    return ["experiment", "state", "job", "epoch", "reason"], [
        [r.id, r.state, f"{r.executor} {r.job}".strip(), f"{r.epoch}/{r.epochs}" if r.epochs else "", r.reason]
        for r in rows
    ]


def markdown(header: list[str], body: list[list[str]], align: str = "") -> str:
    """A Markdown table; `align` has one letter per column, `r` for right-aligned (default: left)."""

    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    rule = ["---:" if a == "r" else "---" for a in align.ljust(len(header), "l")]
    lines = ["| " + " | ".join(header) + " |", "|" + "".join(f"{r}|" for r in rule)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def html_table(header: list[str], body: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


@dataclass
class Section:
    title: str
    text: str = ""
    table: tuple[list[str], list[list[str]]] | None = None
    images: list[tuple[Path, str]] | None = None


def build(root: Path) -> tuple[list[Section], list[str], str]:
    """Everything the report says, once, for every output format."""
    results, skipped = load_results(root)
    rows, warning = collect(root)
    done = {r.id for r in results}
    sections: list[Section] = []
    groups = seed_groups(results)
    for task, label in TASK_LABELS.items():
        table = comparison_rows(results, task)
        title = "Task 1: covid vs normal" if task == "binary" else "Task 2: four classes"
        if table:
            said = sentence(
                title, arms([r for r in results if r.exp["task"] == task], [g for g in groups if g.task == task])
            )
            sections.append(
                Section(
                    f"{title} ({label})",
                    (f"{said} " if said else "") + "Accuracy with its 95% Wilson "
                    "interval: with 18 or 36 test images a few points of difference are within noise. "
                    "Controls (random weights, file facts) follow the study's runs. The report's figures "
                    "stand beside a run only when its settings are the report's; otherwise the row "
                    "says which differ.",
                    comparison_table(table),
                )
            )
        mine = [g for g in groups if g.task == task]
        if mine:
            sections.append(
                Section(
                    f"{title}: over seeds",
                    "Configurations run with several seeds: mean, standard "
                    "deviation, the 95% t-interval of the mean, and the range.",
                    group_table(mine),
                )
            )
        pairs = paired_rows(mine)
        if pairs:
            sections.append(
                Section(
                    f"{title}: paired comparisons",
                    "A − B over the seeds both ran: the mean "
                    "difference and its 95% paired t-interval; an interval that holds 0 is no "
                    "evidence either way.",
                    paired_table(pairs),
                )
            )
    accuracy_chart = root / "accuracy.png"
    if accuracy_png(results, groups, accuracy_chart):
        sections.append(
            Section("Accuracy at a glance", "", None, [(accuracy_chart, "test accuracy with its 95% interval")])
        )
    pairs, single = device_pairs(results)
    trows = timing_rows(pairs)
    chart = root / "timing.png"
    has_chart = timing_png(trows, chart)
    text = (
        "Experiments that ran on both devices with the same settings. Speedup = CPU total / GPU total."
        if trows
        else "No experiment has run on both devices yet."
    )
    if len(trows) > CHART_PAIRS:
        text += f" The chart shows the first {CHART_PAIRS} of {len(trows)} pairs."
    if single:
        text += " Ran on one device only: " + ", ".join(f"{r.id}" for r in single) + "."
    sections.append(
        Section(
            "GPU versus CPU",
            text,
            timing_table(trows) if trows else None,
            [(chart, "time per phase")] if has_chart else None,
        )
    )
    used = [r for r in rows if r.usage is not None]
    if used:
        sections.append(
            Section(
                "What the jobs used",
                "Grid Engine's accounting of each ended job against its "
                "request: right-size `cores` and `time` in the profile from these.",
                usage_table(used),
            )
        )
    pending = [r for r in rows if r.id not in done and r.id not in skipped]
    if pending:
        sections.append(
            Section("Not finished", "Experiments without a complete result, with their state.", state_table(pending))
        )
    sections += audit_sections(results)
    for r in sorted(results, key=lambda r: r.id):
        images = [(r.folder / name, f"{r.id}: {caption}") for name, caption in IMAGES if (r.folder / name).exists()]
        if images:
            note = r.metrics.get("tsne")
            sections.append(
                Section(f"Gallery: {r.id}", f"t-SNE {note}." if isinstance(note, str) else "", None, images)
            )
    return sections, list(skipped.values()), warning


def arms(results: list[Result], groups: list[Group]) -> list[Arm]:
    """Each configuration once: a seed group as one arm, every other run as its own."""
    grouped = {r.id for g in groups for r in g.members}
    return [Arm(g.label, [r.metrics for r in g.members]) for g in groups] + [
        Arm(r.id, [r.metrics]) for r in results if r.id not in grouped
    ]


def audit_sections(results: list[Result]) -> list[Section]:
    """What the files say, from each metadata baseline's audit of its task folder."""
    out = []
    for r in sorted(results, key=lambda r: r.id):
        audit = read_json(r.folder / AUDIT) if r.exp["backbone"] == "metadata" else None
        if isinstance(audit, dict):
            text = (
                f"From {r.id}: formats, colour modes, images whose channels differ by more than "
                f"{audit['colour_levels']:g} levels, sizes; duplicates by identical bytes or perceptual hashes."
            )
            for i, (title, header, body) in enumerate(audit_tables(audit)):
                out.append(Section(f"Dataset audit, {title}", "" if i else text, (header, body)))
    return out


def to_markdown(sections: list[Section], skipped: list[str], root: Path) -> str:
    out = ["# xrayhpc report", ""]
    out += [f"> {line}" for line in skipped] + ([""] if skipped else [])
    for s in sections:
        out += [f"## {s.title}", ""]
        if s.text:
            out += [s.text, ""]
        if s.table:
            out += [markdown(*s.table), ""]
        for path, caption in s.images or []:
            out += [f"![{caption}]({path.relative_to(root)})", ""]
    return "\n".join(out)


def to_html(sections: list[Section], skipped: list[str]) -> str:
    """One file, images inlined: it opens from anywhere, mailed or copied off the cluster."""
    body = ["<h1>xrayhpc report</h1>"]
    body += [f'<p class="warn">{html.escape(line)}</p>' for line in skipped]
    for s in sections:
        body.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.text:
            body.append(f"<p>{html.escape(s.text)}</p>")
        if s.table:
            body.append(html_table(*s.table))
        if s.images:
            figures = "".join(
                f'<figure><img alt="{html.escape(c)}" src="data:image/png;base64,'
                f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{html.escape(c)}</figcaption></figure>'
                for p, c in s.images
            )
            body.append(f'<div class="gallery">{figures}</div>')
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}th{background:#eee}"
        ".gallery{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}img{max-width:420px}.warn{color:#a60}"
    )
    # the title reports broken images once the page has loaded (read by the headless-browser test)
    check = (
        "<script>window.addEventListener('load',()=>{const i=[...document.images];"
        "const bad=i.filter(x=>!x.complete||x.naturalWidth===0).length;"
        "document.title=`xrayhpc report: ${i.length} images, ${bad} broken`;});</script>"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>xrayhpc report</title>"
        f"<style>{style}</style>{check}</head><body>{''.join(body)}</body></html>"
    )


# the terminal gets the columns that decide; the files have them all
TERMINAL_COLUMNS = {
    "experiment",
    "role",
    "device",
    "test acc (95% CI)",
    "test loss",
    "macro F1",
    "ROC-AUC",
    "epochs",
    "best",
    "Δ acc / loss",
    "state",
    "job",
    "epoch",
    "reason",
    "total s",
    "train s",
    "s/epoch",
    "speedup",
    "configuration",
    "n",
    "test acc mean ± sd",
    "95% CI of mean",
    "comparison",
    "Δ test acc mean ± sd",
    "95% CI (paired)",
}


def print_tables(sections: list[Section], skipped: list[str], warning: str, console: Console) -> None:
    for line in ([warning] if warning else []) + skipped:
        console.print(Text(f"warning: {line}", style="yellow"))
    for s in sections:
        if not s.table:
            continue
        header, body = s.table
        keep = [i for i, h in enumerate(header) if h in TERMINAL_COLUMNS]
        if not keep:  # the dataset audit: too wide for a terminal (python -m xrayhpc.audit prints it)
            continue
        table = Table(title=s.title, show_edge=False)
        for i in keep:
            table.add_column(header[i], overflow="fold")
        for row in body:
            table.add_row(*(Text(row[i]) for i in keep))
        console.print(table)


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xrayhpc.report", description=__doc__.split("\n")[0])
    parser.add_argument("--results", help="results root (default: $XRAYHPC_RESULTS or ./results)")
    parser.add_argument("--quiet", action="store_true", help="write the files, print only where they are")
    args = parser.parse_args(argv)
    root = results_root(args.results)
    if not root.is_dir():
        raise UserError(f"{root}: no results folder; run some experiments first (make demo, make submit-all)")
    sections, skipped, warning = build(root)
    write_atomic(root / "report.md", lambda f: f.write(to_markdown(sections, skipped, root).encode()))
    write_atomic(root / "report.html", lambda f: f.write(to_html(sections, skipped).encode()))
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 160
    if not args.quiet:
        print_tables(sections, skipped, warning, console)
    console.print(f"wrote {root / 'report.md'} and {root / 'report.html'}", markup=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
