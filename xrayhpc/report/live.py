"""The dashboard's page while jobs run: how far the grid is, each running experiment's curves so
far, each failure with its reason and the end of its log, then the report as it stands."""

from __future__ import annotations

import html
import math
import time
from pathlib import Path
from typing import Any

from xrayhpc.cluster.state import PROBLEMS, STATES, Row, duration
from xrayhpc.render import Markup, html_table, one_line
from xrayhpc.report.writers import Section, html_page, sections_html
from xrayhpc.safefiles import tail_lines
from xrayhpc.schema import LOG, PROGRESS, Progress, check

LOG_LINES = 8  # of a failed run's worker.log, under its reason
CURVES = (("loss", ("loss", "val_loss")), ("accuracy", ("accuracy", "val_accuracy")))
MAX_EPOCHS_DRAWN = 1000  # a progress.json others could write may hold any number


def counts(rows: list[Row]) -> str:
    """ "12 of 40 done, 3 running, 5 queued, 1 failed, 19 not submitted": every state there is."""
    done = sum(r.state == "done" for r in rows)
    rest = [f"{sum(r.state == s for r in rows)} {s}" for s in STATES[1:] if any(r.state == s for r in rows)]
    return ", ".join([f"{done} of {len(rows)} done", *rest])


def live_page(
    root: Path, rows: list[Row], warning: str, sections: list[Section], skipped: list[str], reload_s: float
) -> str:
    """The whole page, reloading itself every `reload_s`; its images are linked, not inlined."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    body = [
        "<h1>xrayhpc: while the jobs run</h1>",
        f"<p><b>{html.escape(counts(rows))}</b> &middot; updated {stamp}, again every {reload_s:g} s; "
        "the self-contained report is written when every experiment has ended.</p>",
    ]
    if warning:
        body.append(f'<p class="warn">{html.escape(warning)}</p>')
    running = [r for r in rows if r.state == "running"]
    if running:
        body += ["<h2>Running</h2>", running_table(root, running)]
    failed = [r for r in rows if r.state in PROBLEMS]
    if failed:
        body += ["<h2>Failed</h2>", *(failure(root, r) for r in failed)]
    body += sections_html(sections, skipped, linked_from=root)
    return html_page(f"xrayhpc: {counts(rows)}", body, reload_s)


def running_table(root: Path, rows: list[Row]) -> str:
    """One row per running experiment: epoch k of N, elapsed and remaining time, the last epoch's
    figures and the curves so far (drawn in the page: nothing to fetch, nothing to break)."""
    header = [
        "experiment",
        "job",
        "epoch",
        "elapsed",
        "left",
        "host",
        "last epoch",
        "curves (training solid, validation dashed)",
    ]
    body = []
    for r in rows:
        history = epochs_so_far(root / r.folder, r) if r.folder else []
        last = history[-1] if history else {}
        body.append(
            [
                r.id,
                f"{r.executor} {r.job}".strip(),
                f"{r.epoch} of {r.epochs}" if r.epochs else "",
                duration(r.elapsed_s),
                duration(r.remaining_s),
                r.host,
                " ".join(f"{k} {v:.3f}" for k, v in last.items() if k != "seconds" and _finite(v)),
                Markup(curves_svg(history, r.epochs)),
            ]
        )
    return html_table(header, body)


def epochs_so_far(folder: Path, row: Row) -> list[dict[str, Any]]:
    """The running worker's per-epoch records from progress.json (those it reports for this epoch)."""
    progress, _ = check(Progress, folder / PROGRESS)
    if progress is None or progress.epoch != row.epoch or progress.state != "running":
        return []
    return [h for h in progress.history[-MAX_EPOCHS_DRAWN:] if isinstance(h, dict)]


def failure(root: Path, row: Row) -> str:
    """A failed experiment: its state and reason, and the last lines of its own worker.log."""
    head = f'<p class="fail"><b>{html.escape(row.id)}</b> {html.escape(row.state)}: {html.escape(row.reason)}</p>'
    try:
        lines = tail_lines(root / row.folder / LOG, LOG_LINES) if row.folder else []
    except OSError:  # no log (it never started), or a link in its place: the reason says enough
        return head
    return head + f"<pre>{html.escape(chr(10).join(one_line(line) for line in lines))}</pre>"


def _finite(value: Any) -> bool:
    """A number to draw: not a bool, a NaN, an infinity or an integer too large for a float."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def curves_svg(history: list[dict[str, Any]], epochs: int, width: int = 150, height: int = 70) -> str:
    """Loss and accuracy so far, training solid and validation dashed, over all `epochs` (so the
    width still to go shows); an epoch whose value is missing or not finite leaves a gap."""
    panels = []
    span = max(epochs, len(history), 2) - 1
    for i, (name, keys) in enumerate(CURVES):
        values = [h.get(k) for h in history for k in keys if _finite(h.get(k))]
        if not values:
            continue
        low, high = min(values), max(values)
        scale = (high - low) or 1.0
        x0 = i * (width + 10)
        lines = []
        for key, dash in zip(keys, ("", " stroke-dasharray='3 2'"), strict=True):
            points = " ".join(
                f"{x0 + 2 + (width - 4) * e / span:.1f},{4 + (height - 18) * (high - h[key]) / scale:.1f}"
                for e, h in enumerate(history)
                if _finite(h.get(key))
            )
            colour = "#ff7f0e" if key.startswith("val_") else "#1f77b4"
            if points:
                lines.append(f"<polyline fill='none' stroke='{colour}' stroke-width='1.5'{dash} points='{points}'/>")
        panels.append(
            f"<rect x='{x0}' y='0' width='{width}' height='{height}' fill='#fafafa' stroke='#ddd'/>{''.join(lines)}"
            f"<text x='{x0 + 3}' y='{height - 3}' font-size='9'>{name} {low:.3g}-{high:.3g}</text>"
        )
    if not panels:
        return ""
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{2 * width + 10}' height='{height}' "
        f"role='img' aria-label='training curves so far'>{''.join(panels)}</svg>"
    )
