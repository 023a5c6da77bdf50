"""Every table of the report as (header, rows) of text; xrayhpc.render draws them."""

from __future__ import annotations

import math
from typing import Any

from xrayhpc.cluster.state import USAGE, Row, usage_cells
from xrayhpc.report.compare import Group, reference
from xrayhpc.schema import PHASES
from xrayhpc.stats import Summary


class FileOnly(str):
    """A column the report's files show and its terminal tables leave out (too wide or too detailed)."""


def _f(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _pm(s: Summary) -> str:
    return f"{s.mean:.3f} ± {s.sd:.3f}"


def comparison_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    classes = sorted({c for r in rows for c in r["recall"]})
    header = [
        "experiment",
        "role",
        FileOnly("backbone"),
        FileOnly("augment"),
        FileOnly("weights"),
        "device",
        "test acc (95% CI)",
        "test loss",
        "macro F1",
        "ROC-AUC",
        *[FileOnly(f"recall {c}") for c in classes],
        "epochs",
        "best",
        FileOnly("report acc / loss"),
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


def group_table(groups: list[Group]) -> tuple[list[str], list[list[str]]]:
    header = [
        "configuration",
        "n",
        FileOnly("seeds"),
        "test acc mean ± sd",
        "95% CI of mean",
        FileOnly("range"),
        FileOnly("test loss mean ± sd"),
        FileOnly("macro F1 mean ± sd"),
        FileOnly("report acc / loss"),
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


def paired_table(rows: list[tuple[str, Summary, Summary]]) -> tuple[list[str], list[list[str]]]:
    header = [
        "comparison",
        FileOnly("seeds in common"),
        "Δ test acc mean ± sd",
        "95% CI (paired)",
        FileOnly("Δ test loss mean ± sd"),
        FileOnly("95% CI (paired)"),
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


def timing_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = [
        "experiment",
        "device",
        "total s",
        "published s",
        *[f"{p} s" if p == "train" else FileOnly(f"{p} s") for p in PHASES],
        "s/epoch",
        FileOnly("images/s"),
        "speedup",
        FileOnly("hardware"),
    ]
    body = []
    for r in rows:
        for device in ("gpu", "cpu"):
            t = r[device]
            body.append(
                [
                    r["experiment"],
                    device,
                    _f(t.total, 1),
                    f"{r['published'][device]:.0f}" if r["published"] else "–",
                    *[_f(t.seconds(p), 1) for p in PHASES],
                    _f(t.seconds_per_epoch, 2),
                    _f(t.train_images_per_second, 1),
                    f"{r['speedup']:.2f}x" if device == "gpu" else "",
                    r[f"{device}_hardware"],
                ]
            )
    return header, body


def usage_table(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    return ["experiment", "job", *USAGE, "hint"], [
        [r.id, f"{r.executor} {r.job}".strip(), *usage_cells(r.usage, r.gpu_use), r.hint()] for r in rows
    ]


def state_table(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    return ["experiment", "state", "job", "epoch", "reason"], [
        [r.id, r.state, f"{r.executor} {r.job}".strip(), f"{r.epoch}/{r.epochs}" if r.epochs else "", r.reason]
        for r in rows
    ]


def looks_table(rows: list[tuple[str, str, float, Any]]) -> tuple[list[str], list[list[str]]]:
    """(id, role, test accuracy, probes.json) of each experiment: the probes beside the accuracy."""
    header = ["experiment", "role", "test acc", "region hidden", "only region", "normalised",
              "Grad-CAM in region (area)", "probes say", FileOnly("Grad-CAM says")]  # fmt: skip
    body = []
    for ident, role, accuracy, p in rows:
        scores = {s.probe: s for s in p.probes}
        share = p.shares[0]
        interval = f", {share.low:.0%}–{share.high:.0%}" if share.low is not None else ""
        body.append(
            [
                ident,
                role,
                f"{accuracy:.3f}",
                scores["hidden"].change(";"),
                scores["only"].change(";"),
                scores["normalised"].change(";"),
                f"{share.share:.0%}{interval} ({p.area:.0%}, {p.region})" if share.share is not None else "–",
                p.verdict,
                p.gradcam_verdict,
            ]
        )
    return header, body
