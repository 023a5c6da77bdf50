"""`python -m xrayhpc.report`, `make report`: the files and the tables."""

from __future__ import annotations

import argparse

from rich.console import Console

from xrayhpc.errors import UserError, cli
from xrayhpc.report.build import build
from xrayhpc.report.writers import print_tables, to_html, to_markdown
from xrayhpc.schema import results_root, write_atomic


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
