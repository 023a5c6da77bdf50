"""`python -m xrayhpc.report --watch`, `make dashboard`: results/report.html kept current while jobs
run, until every experiment has ended; then the self-contained report.

Each refresh asks each scheduler once, as `status` does, and not again about a job whose
accounting it has read; record files are read again only when they changed, and charts are drawn
again only when their figures did.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from xrayhpc.cluster.state import ENDED, Ended, Row, collect
from xrayhpc.report.build import build
from xrayhpc.report.live import counts, live_page
from xrayhpc.schema import write_atomic


@dataclass
class Dashboard:
    """One results root watched: what the refreshes keep between them."""

    root: Path
    expected: dict[str, tuple[str, ...]] | None  # the grid's experiments, or every result folder
    reload_s: float
    ended: Ended = field(default_factory=dict)  # the accounting of jobs that ended, read once

    def refresh(self) -> list[Row]:
        """Rewrite the live page once; the rows it shows."""
        rows, warning = collect(self.root, self.expected, self.ended)
        sections, skipped, _ = build(self.root, (rows, warning))
        page = live_page(self.root, rows, warning, sections, skipped, self.reload_s)
        write_atomic(self.root / "report.html", lambda f: f.write(page.encode()))
        return rows


def watch(board: Dashboard, say: Callable[[str], None]) -> None:
    """Refresh every `reload_s` seconds until every experiment has ended (or Ctrl-C); the caller
    then writes the self-contained report in the live page's place. Ended means so on two
    refreshes in a row (a grid run in turn by one worker has a moment between two experiments when
    none runs), and a grid nothing of which is submitted yet is waited for."""
    ended_before = False
    while True:
        begin = time.perf_counter()
        rows = board.refresh()
        took = time.perf_counter() - begin
        submitted = any(r.state != "not submitted" for r in rows)
        ended = submitted and all(r.state in ENDED for r in rows)
        if ended and ended_before:
            say(f"{time.strftime('%H:%M:%S')} {counts(rows)}: every experiment has ended")
            return
        ended_before = ended
        waiting = "" if submitted else "; waiting for its jobs to be submitted"
        say(f"{time.strftime('%H:%M:%S')} {counts(rows)}{waiting} (page rewritten in {took:.2f} s)")
        time.sleep(max(0.0, board.reload_s - took))
