"""`python -m xrayhpc.report`, `make report`: the files and the tables; `--watch`, `make dashboard`:
the page kept current while the jobs run."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from xrayhpc.cluster.state import grid_fingerprints
from xrayhpc.errors import UserError, cli
from xrayhpc.report.build import build
from xrayhpc.report.watch import Dashboard, watch
from xrayhpc.report.writers import print_tables, to_html, to_markdown
from xrayhpc.schema import parses_kept, results_root, write_atomic

WATCH_S = 30.0  # --watch without a number


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xrayhpc.report", description=__doc__.split("\n")[0])
    parser.add_argument("--results", help="results root (default: $XRAYHPC_RESULTS or ./results)")
    parser.add_argument("--quiet", action="store_true", help="write the files, print only where they are")
    parser.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=WATCH_S,
        metavar="SECONDS",
        help=f"rewrite report.html every SECONDS (default {WATCH_S:g}) until every experiment has ended, "
        "then write the report",
    )
    parser.add_argument("--grid", help="with --watch: this grid's experiments (default: every result folder)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="as given to submit")
    parser.add_argument("--only", help="with --watch: only experiments whose id matches this pattern")
    parser.add_argument("--data", help="data root, as given to submit (default: $XRAYHPC_DATA, the grid's)")
    args = parser.parse_args(argv)
    root = results_root(args.results)
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 160
    if args.watch is not None:
        if args.watch < 1:
            raise UserError(f"--watch {args.watch:g}: refresh at most once a second; give SECONDS >= 1")
        expected = grid_fingerprints(args.grid, args.set, args.data, args.only) if args.grid else None
        _watch(root, expected, args.watch, console)
    elif args.grid or args.only:
        raise UserError("--grid and --only choose what --watch follows; the report covers every result folder")
    if not root.is_dir():
        raise UserError(f"{root}: no results folder; run some experiments first (make demo, make submit-all)")
    sections, skipped, warning = build(root)
    write_atomic(root / "report.md", lambda f: f.write(to_markdown(sections, skipped, root).encode()))
    write_atomic(root / "report.html", lambda f: f.write(to_html(sections, skipped).encode()))
    if not args.quiet:
        print_tables(sections, skipped, warning, console)
    console.print(f"wrote {root / 'report.md'} and {root / 'report.html'}", markup=False)
    return 0


def _watch(root: Path, expected: dict[str, tuple[str, ...]] | None, every_s: float, console: Console) -> None:
    """Follow the jobs; a Ctrl-C stops following, and the report below still replaces the live page
    (which would otherwise reload a stale state for ever)."""
    if expected is None and not root.is_dir():
        raise UserError(f"{root}: no results folder yet; submit something first (make submit-all) or pass --grid")
    root.mkdir(parents=True, exist_ok=True)
    console.print(f"following {root / 'report.html'} every {every_s:g} s (Ctrl-C stops)", markup=False)
    try:
        with parses_kept():
            watch(Dashboard(root, expected, every_s), lambda line: console.print(line, markup=False))
    except KeyboardInterrupt:
        console.print("stopped following; writing the report as it stands", markup=False)
