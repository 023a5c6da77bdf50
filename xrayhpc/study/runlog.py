"""What a running worker tells a person: a rich progress bar on a terminal, plain lines in a log.

Every line also goes to the result folder's worker.log, so a batch job's story is in one place.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from xrayhpc.safefiles import open_append


class RunLog:
    def __init__(self, path: Path | None, title: str, tty: bool | None = None) -> None:
        self.path = path
        self.title = title
        self.tty = sys.stdout.isatty() if tty is None else tty
        self.start = time.perf_counter()
        self._file = None
        self._progress: Progress | None = None
        self._task = None

    def __enter__(self) -> RunLog:
        if self.path:
            self._file = open_append(self.path)
        if self.tty:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[last]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(),
                transient=False,
            )
            self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress:
            self._progress.stop()
        if self._file:
            self._file.close()

    def __call__(self, message: str) -> None:
        line = f"[{time.perf_counter() - self.start:7.1f}s] {self.title}: {message}"
        if self._file:
            self._file.write(time.strftime("%Y-%m-%d %H:%M:%S ") + line + "\n")
        if self._progress:
            self._progress.console.print(line, markup=False, highlight=False)
        else:
            print(line, flush=True)

    def epochs(self, total: int) -> None:
        if self._progress:
            self._task = self._progress.add_task(self.title, total=total, last="")

    def epoch(self, k: int, total: int, record: dict[str, float]) -> None:
        shown = " ".join(f"{name} {value:.4f}" for name, value in record.items() if name != "seconds")
        if self._progress and self._task is not None:
            self._progress.update(self._task, completed=k, last=shown)
            if self._file:
                self._file.write(f"epoch {k}/{total} {shown} ({record['seconds']:.1f}s)\n")
        else:
            self(f"epoch {k}/{total} {shown} ({record['seconds']:.1f}s)")
