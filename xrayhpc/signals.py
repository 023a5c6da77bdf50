"""Hold a signal until a safe point, so that what it interrupts is never left half done.

The dispatcher holds Ctrl-C while a job is sent and recorded (a job the scheduler accepted is
always recorded); the worker holds the scheduler's wall-time warning until the epoch ends and its
state is saved. On leaving the block the held signal is delivered to the handler it was meant for.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterable, Iterator
from types import FrameType, TracebackType

# What schedulers send before the wall-time limit (SGE's s_rt: USR1; Slurm's --signal: USR2).
WARNING_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)


class Held:
    """Inside `with Held(signals):` those signals are noted, not acted on; `pending` says if one came."""

    def __init__(self, signums: Iterable[int]) -> None:
        self.signums = list(signums)
        self.pending: int | None = None
        self._old: dict[int, signal.Handlers | object] = {}

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self.pending = self.pending or signum

    def __enter__(self) -> Held:
        if threading.current_thread() is not threading.main_thread():
            return self  # only the main thread receives signals
        for signum in self.signums:
            self._old[signum] = signal.signal(signum, self._note)
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        for signum, handler in self._old.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        if self.pending is not None and kind is None:
            signal.raise_signal(self.pending)


def handled(signums: Iterable[int]) -> list[int]:
    """Those of `signums` that have a Python handler (submitit installs one for its warning signal)."""
    return [s for s in signums if callable(signal.getsignal(s))]


@contextlib.contextmanager
def blocked_in_children(signums: Iterable[int]) -> Iterator[None]:
    """Processes started inside the block start with these signals blocked (a mask outlives exec),
    so they never see them unless they unblock them; this thread gets any that came on leaving."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, set(signums))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
