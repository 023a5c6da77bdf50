"""The study's answer from the result folders: `python -m xrayhpc.report`, `make report`.

Writes results/report.md, a self-contained results/report.html (images inlined) and
results/timing.png, and prints the tables. Experiments still running or failed are listed with
their state; a damaged metrics.json or one of an unknown schema is named in one line and left out.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from xrayhpc.errors import UserError, cli
from xrayhpc.experiment import TASK_LABELS
from xrayhpc.results import METRICS, SCHEMA_VERSION, read_json, results_root, write_atomic
from xrayhpc.state import Row, collect, experiment_folders

# The report the study was made from: (task, backbone) -> (test accuracy, test loss)
PUBLISHED = {("binary", "vgg16"): (0.944, 0.3084), ("multiclass", "vgg16"): (0.66, 0.79),
             ("multiclass", "mobilenet"): (0.75, 0.69)}
PHASES = ("load", "features", "train", "evaluate", "tsne")
CHART_PAIRS = 30  # more bars than this are unreadable; the table lists every pair
IMAGES = (("tsne-train.png", "t-SNE, training folder"), ("tsne-test.png", "t-SNE, test set"),
          ("curves.png", "training curves"), ("confusion.png", "test confusion matrix"))


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of an accuracy: honest for 18 or 36 test images."""
    if n == 0:
        return (0.0, 1.0)
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


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
            skipped[folder.name] = f"{path}: schema_version {data.get('schema_version')!r} is not {SCHEMA_VERSION}, left out"
        else:
            try:
                data["test"]["accuracy"], data["experiment"]["task"], data["timing"]["total"]
            except (KeyError, TypeError):
                skipped[folder.name] = f"{path}: incomplete (missing test, experiment or timing), left out"
                continue
            results.append(Result(folder, data))
    return results, skipped


def comparison_rows(results: list[Result], task: str) -> list[dict[str, Any]]:
    rows = []
    for r in sorted((r for r in results if r.exp["task"] == task), key=lambda r: r.id):
        test = r.metrics["test"]
        low, high = wilson(test["correct"], test["count"])
        published = PUBLISHED.get((task, r.exp["backbone"]))
        rows.append({
            "id": r.id, "backbone": r.exp["backbone"],
            "backbone_mode": "trained" if r.exp["trainable_backbone"] else "frozen",
            "augment": "on" if r.exp["augment"] else "off", "weights": r.exp["weights"] if r.exp["weights"] in ("imagenet", "none") else "file",
            "device": r.exp["device"], "accuracy": test["accuracy"], "ci": (low, high), "loss": test["loss"],
            "macro_f1": test["macro_f1"], "roc_auc": test["roc_auc"],
            "recall": {c: v["recall"] for c, v in test["per_class"].items()},
            "epochs": r.metrics["epochs_run"], "best_epoch": r.metrics["best_epoch"],
            "published": published,
            "diff": (test["accuracy"] - published[0], test["loss"] - published[1]) if published else None,
        })
    return rows


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
        rows.append({
            "experiment": gpu.id.replace("-gpu", ""), "gpu": g, "cpu": c,
            "speedup": c["total"] / g["total"] if g["total"] else float("nan"),
            "gpu_hardware": _hardware(gpu), "cpu_hardware": _hardware(cpu),
        })
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


def _f(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def comparison_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    classes = sorted({c for r in rows for c in r["recall"]})
    header = ["experiment", "backbone", "augment", "weights", "device", "test acc (95% CI)", "test loss",
              "macro F1", "ROC-AUC", *[f"recall {c}" for c in classes], "epochs", "best", "report acc / loss", "Δ acc / loss"]
    body = []
    for r in rows:
        low, high = r["ci"]
        body.append([
            r["id"], f"{r['backbone']} ({r['backbone_mode']})", r["augment"], r["weights"], r["device"],
            f"{r['accuracy']:.3f} ({low:.2f}–{high:.2f})", _f(r["loss"]), _f(r["macro_f1"]), _f(r["roc_auc"]),
            *[_f(r["recall"].get(c)) for c in classes], str(r["epochs"]), str(r["best_epoch"]),
            f"{r['published'][0]:g} / {r['published'][1]:g}" if r["published"] else "–",
            f"{r['diff'][0]:+.3f} / {r['diff'][1]:+.3f}" if r["diff"] else "–",
        ])
    return header, body


def timing_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["experiment", "device", "total s", *[f"{p} s" for p in PHASES], "s/epoch", "images/s", "speedup", "hardware"]
    body = []
    for r in rows:
        for device in ("gpu", "cpu"):
            t = r[device]
            body.append([r["experiment"], device, _f(t["total"], 1), *[_f(t.get(p), 1) for p in PHASES],
                         _f(t["seconds_per_epoch"], 2), _f(t["train_images_per_second"], 1),
                         f"{r['speedup']:.2f}x" if device == "gpu" else "", r[f"{device}_hardware"]])
    return header, body


def state_table(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    return ["experiment", "state", "job", "epoch", "reason"], [
        [r.id, r.state, f"{r.executor} {r.job}".strip(), f"{r.epoch}/{r.epochs}" if r.epochs else "", r.reason] for r in rows
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
    for task, label in TASK_LABELS.items():
        table = comparison_rows(results, task)
        title = "Task 1: covid vs normal" if task == "binary" else "Task 2: four classes"
        if table:
            sections.append(Section(f"{title} ({label})", "Accuracy with its 95% Wilson interval: with 18 or 36 "
                                    "test images a few points of difference are within noise.", comparison_table(table)))
    pairs, single = device_pairs(results)
    trows = timing_rows(pairs)
    chart = root / "timing.png"
    has_chart = timing_png(trows, chart)
    text = ("Experiments that ran on both devices with the same settings. Speedup = CPU total / GPU total."
            if trows else "No experiment has run on both devices yet.")
    if len(trows) > CHART_PAIRS:
        text += f" The chart shows the first {CHART_PAIRS} of {len(trows)} pairs."
    if single:
        text += " Ran on one device only: " + ", ".join(f"{r.id}" for r in single) + "."
    sections.append(Section("GPU versus CPU", text, timing_table(trows) if trows else None,
                            [(chart, "time per phase")] if has_chart else None))
    pending = [r for r in rows if r.id not in done and r.id not in skipped]
    if pending:
        sections.append(Section("Not finished", "Experiments without a complete result, with their state.",
                                state_table(pending)))
    for r in sorted(results, key=lambda r: r.id):
        images = [(r.folder / name, f"{r.id}: {caption}") for name, caption in IMAGES if (r.folder / name).exists()]
        if images:
            sections.append(Section(f"Gallery: {r.id}", "", None, images))
    return sections, list(skipped.values()), warning


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
    style = ("body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}th{background:#eee}"
             ".gallery{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}img{max-width:420px}.warn{color:#a60}")
    # the title reports broken images once the page has loaded (read by the headless-browser test)
    check = ("<script>window.addEventListener('load',()=>{const i=[...document.images];"
             "const bad=i.filter(x=>!x.complete||x.naturalWidth===0).length;"
             "document.title=`xrayhpc report: ${i.length} images, ${bad} broken`;});</script>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>xrayhpc report</title>"
            f"<style>{style}</style>{check}</head><body>{''.join(body)}</body></html>")


# the terminal gets the columns that decide; the files have them all
TERMINAL_COLUMNS = {"experiment", "device", "test acc (95% CI)", "test loss", "macro F1", "ROC-AUC", "epochs",
                    "best", "Δ acc / loss", "state", "job", "epoch", "reason", "total s", "train s", "s/epoch", "speedup"}


def print_tables(sections: list[Section], skipped: list[str], warning: str, console: Console) -> None:
    for line in ([warning] if warning else []) + skipped:
        console.print(Text(f"warning: {line}", style="yellow"))
    for s in sections:
        if not s.table:
            continue
        header, body = s.table
        keep = [i for i, h in enumerate(header) if h in TERMINAL_COLUMNS]
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
