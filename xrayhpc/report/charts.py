"""The report's charts: time per phase on each device, and accuracy with its interval."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from xrayhpc.report.compare import reference
from xrayhpc.report.controls import Arm
from xrayhpc.safefiles import is_regular
from xrayhpc.schema import PHASES, write_atomic

CHART_PAIRS = 30  # more bars than this are unreadable; the table lists every pair
_drawn: dict[Path, str] = {}  # what each chart file last drawn in this process shows


def _drawn_already(path: Path, shows: str) -> bool:
    """A chart of the same figures is there already (a dashboard redraws only what changed)."""
    return _drawn.get(path) == shows and is_regular(path)


def _save(fig: Any, path: Path, shows: str) -> None:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    write_atomic(path, lambda f: f.write(buf.getvalue()))
    _drawn[path] = shows


def timing_png(rows: list[dict[str, Any]], path: Path) -> bool:
    """Phases side by side, GPU and CPU, one pair of bars per experiment (the first CHART_PAIRS)."""
    if not rows:
        return False
    rows = rows[:CHART_PAIRS]
    shows = repr(rows)
    if _drawn_already(path, shows):
        return True
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    bars = [(row, device) for row in rows for device in ("gpu", "cpu")]
    x = np.array([i + 0.5 * (i // 2) for i in range(len(bars))])
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(bars) + 2), 4.5))
    bottom = np.zeros(len(bars))
    colours = plt.get_cmap("tab10")
    for i, phase in enumerate(PHASES):
        values = np.array([row[device].seconds(phase) for row, device in bars])
        ax.bar(x, values, bottom=bottom, color=colours(i), label=phase)
        bottom += values
    for xi, top, (row, device) in zip(x, bottom, bars, strict=True):
        ax.text(xi, top, f"{row[device].total:.0f} s total", ha="center", va="bottom", fontsize=8)
    marked = [(xi, row["published"][device]) for xi, (row, device) in zip(x, bars, strict=True) if row.get("published")]
    if marked:
        ax.scatter(
            *zip(*marked, strict=True), marker="_", s=500, color="black", zorder=3, label="published (same settings)"
        )
    ax.margins(y=0.12)
    ax.set_xticks(x, [f"{row['experiment']}\n{device}" for row, device in bars], fontsize=8)
    ax.set_ylabel("wall time (s)")
    ax.set_title("GPU versus CPU: time per phase")
    ax.legend(fontsize=8)
    _save(fig, path, shows)
    return True


def accuracy_png(arms: list[Arm], path: Path) -> bool:
    """Test accuracy per experiment (Wilson interval) or per seed group (t-interval of the mean),
    with the published figure as a marker where the settings are the report's."""
    points: list[tuple[str, float, float, float, tuple[float, float] | None]] = []
    for arm in sorted(arms, key=lambda a: (len(a.runs) > 1, a.runs[0].experiment["task"], a.label)):
        label = f"{arm.label} (n={len(arm.runs)})" if len(arm.runs) > 1 else arm.label
        points.append((label, arm.accuracy, *arm.interval(), reference(arm.runs[0].experiment)[0]))
    if not points:
        return False
    points = points[: CHART_PAIRS * 2]
    shows = repr(points)
    if _drawn_already(path, shows):
        return True
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.4 * len(points)))
    y = list(range(len(points)))[::-1]
    for yi, (_, value, low, high, published) in zip(y, points, strict=True):
        # an interval's end computed apart from the point may miss it by a rounding (Wilson's at 18 of 18)
        spread = [[max(0.0, value - low)], [max(0.0, high - value)]]
        ax.errorbar(value, yi, xerr=spread, fmt="o", color="tab:blue", capsize=3)
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
    _save(fig, path, shows)
    return True
