"""Where every job stands: `python -m xrayhpc.status`, `make status`.

    python -m xrayhpc.status [--grid jobs/report.toml] [--data DIR] [--only PATTERN] [--state STATE]
                             [--watch] [--json] [--results DIR]

One row per experiment: job, state, epoch k of N, elapsed and remaining time, host, test accuracy
once done, and for a failure the reason and the log. `--state done` adds what each job used (the
scheduler's accounting: wall clock, CPU time, memory, CPU use against the slots, the time limit) with a hint
where it asked for far more. A result file that cannot be read shows as `unreadable`, naming the
file and why. One scheduler refresh per table, however many jobs. Exit status 1 when anything
failed, was deleted, is lost or unreadable.
"""

from __future__ import annotations

import argparse
import json
import time
from fnmatch import fnmatch

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from xrayhpc.cluster.state import (
    ENDED,
    PROBLEMS,
    STATES,
    USAGE,
    Row,
    collect,
    duration,
    grid_fingerprints,
    usage_cells,
)
from xrayhpc.errors import UserError, cli
from xrayhpc.render import aligned
from xrayhpc.schema import results_root

COLOURS = {
    "done": "green",
    "running": "cyan",
    "queued": "yellow",
    "failed": "red",
    "error": "red",
    "deleted": "magenta",
    "lost": "red",
    "unreadable": "red",
    "not submitted": "dim",
}


def tries(r: Row) -> str:
    """ " (attempt 2, requeued 1x, run 3)": submissions, requeues at the wall-time warning, worker starts."""
    parts = [f"attempt {r.attempt}"] if r.attempt > 1 else []
    parts += [f"requeued {r.requeues}x"] if r.requeues else []
    parts += [f"run {r.runs}"] if r.runs > 1 else []
    return f" ({', '.join(parts)})" if parts else ""


def table(rows: list[Row], warning: str, used: bool = False) -> Group | Table:
    t = Table(show_edge=False, pad_edge=False)
    for name in (
        "experiment",
        "job",
        "state",
        "epoch",
        "",
        "elapsed",
        "left",
        "host",
        "test acc",
        *(USAGE if used else ()),
        "reason / log",
    ):
        t.add_column(name, no_wrap=name not in ("reason / log",))
    for r in rows:
        bar = ProgressBar(total=max(r.epochs, 1), completed=r.epoch, width=12) if r.epochs else Text("")
        why = r.reason + (f"  [{r.log}]" if r.reason and r.log else "")
        if used and r.hint():
            why = f"{why}; {r.hint()}" if why else r.hint()
        job = f"{r.executor} {r.job}".strip() + tries(r)
        t.add_row(  # Text, not markup: a log path in brackets is not a style
            Text(r.id),
            Text(job),
            Text(r.state, style=COLOURS.get(r.state, "")),
            Text(f"{r.epoch}/{r.epochs}" if r.epochs else ""),
            bar,
            Text(duration(r.elapsed_s)),
            Text(duration(r.remaining_s)),
            Text(r.host),
            Text(f"{r.accuracy:.3f}" if r.accuracy is not None else ""),
            *(Text(c) for c in (usage_cells(r.usage, r.gpu_use) if used else [])),
            Text(why),
        )
    counts = ", ".join(f"{sum(r.state == s for r in rows)} {s}" for s in STATES if any(r.state == s for r in rows))
    parts: list[Table | Text] = [t, Text(counts or "no experiments")]
    if warning:
        parts.insert(0, Text(f"warning: {warning}", style="yellow"))
    return Group(*parts)


def plain(rows: list[Row], warning: str, used: bool = False) -> str:
    """Aligned columns without colour, for logs and pipes; the reason, log and hint follow each row whole."""
    header = ["experiment", "state", "job", "epoch", "elapsed", "left", "host", "test acc", *(USAGE if used else [])]
    body = [
        [
            r.id,
            r.state,
            f"{r.executor} {r.job}".strip() + tries(r),
            f"{r.epoch}/{r.epochs}" if r.epochs else "",
            duration(r.elapsed_s),
            duration(r.remaining_s),
            r.host,
            f"{r.accuracy:.3f}" if r.accuracy is not None else "",
            *(usage_cells(r.usage, r.gpu_use) if used else []),
        ]
        for r in rows
    ]
    notes = [
        (f"reason: {r.reason}" + (f"  log: {r.log}" if r.log else "") if r.reason else "")
        + (f"  hint: {r.hint()}" if used and r.hint() else "")
        for r in rows
    ]
    lines = [f"warning: {warning}"] if warning else []
    return "\n".join([*lines, aligned(header, body, [n.strip() for n in notes])])


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xrayhpc.status", description=__doc__.split("\n")[0])
    parser.add_argument("--grid", help="the experiments of this grid (default: every result folder)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="as given to submit")
    parser.add_argument("--only", help="only experiments whose id matches this pattern")
    parser.add_argument("--state", choices=STATES, action="append", help="only rows in this state (repeatable)")
    parser.add_argument("--watch", action="store_true", help="refresh in place until every job has ended")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between refreshes with --watch")
    parser.add_argument("--json", action="store_true", help="the rows as JSON, for scripts")
    parser.add_argument("--results", help="results root (default: $XRAYHPC_RESULTS or ./results)")
    parser.add_argument(
        "--data", help="data root holding two/ and all/, as given to submit (default: $XRAYHPC_DATA, the grid's)"
    )
    args = parser.parse_args(argv)
    root = results_root(args.results)
    expected = grid_fingerprints(args.grid, args.set, args.data, args.only) if args.grid else None
    if expected is None and not root.is_dir():
        raise UserError(f"{root}: no results folder yet; submit something first (make submit-all) or pass --results")

    def rows_now() -> tuple[list[Row], str]:
        rows, warning = collect(root, expected)
        if args.only and expected is None:
            rows = [r for r in rows if args.only in r.id or fnmatch(r.id, args.only)]
        if args.state:
            rows = [r for r in rows if r.state in args.state]
        return rows, warning

    rows, warning = rows_now()
    used = args.state == ["done"]  # what each ended job used, to right-size the next request
    console = Console(highlight=False)
    if args.json:
        print(json.dumps({"warning": warning or None, "rows": [r.as_dict() for r in rows]}, indent=2))
    elif args.watch and console.is_terminal:
        with Live(table(rows, warning), console=console, refresh_per_second=2) as live:
            while not all(r.state in ENDED for r in rows):
                time.sleep(args.interval)
                rows, warning = rows_now()
                live.update(table(rows, warning))
    elif args.watch:
        while True:
            print(plain(rows, warning), flush=True)
            if all(r.state in ENDED for r in rows):
                break
            time.sleep(args.interval)
            rows, warning = rows_now()
            print()
    elif console.is_terminal:
        console.print(table(rows, warning, used))
    else:
        print(plain(rows, warning, used))
    return 1 if any(r.state in PROBLEMS for r in rows) else 0
