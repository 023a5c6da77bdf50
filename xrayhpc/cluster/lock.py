"""One dispatcher at a time per results folder, so two `make submit-all` never send a job twice.

An advisory lock (flock) on `<results>/.submit.lock`: the kernel drops it when its holder exits,
however it exits, so a crashed dispatcher never leaves a stale lock. The file names the holder for
the one that waits.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from xrayhpc import safefiles
from xrayhpc.errors import UserError

NAME = ".submit.lock"


@contextmanager
def results_lock(root: Path, wait_s: float, say: Callable[[str], None]) -> Iterator[None]:
    """Hold the lock for the block; wait up to `wait_s` for another holder, then give up in one line."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / NAME
    fd = _open(path)
    try:
        if not _try(fd):
            holder = _holder(path)
            say(f"waiting for another submit-all on {root} ({holder}); up to {wait_s:g} s")
            end = time.monotonic() + wait_s
            while not _try(fd):
                if time.monotonic() >= end:
                    raise UserError(
                        f"{path}: another submit-all ({holder}) still holds the results folder after "
                        f"{wait_s:g} s; let it finish, or wait longer with --wait SECONDS"
                    )
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _open(path: Path) -> int:
    """The lock file, never through a link (a planted link to your thesis would be truncated) and
    only a plain file of one name (not a hard link to another)."""
    try:
        fd = safefiles.open_regular(path, os.O_RDWR | os.O_CREAT)
    except safefiles.UnsafeFile as err:
        raise UserError(f"{err}: remove it, then submit again") from None
    if os.fstat(fd).st_nlink != 1:
        os.close(fd)
        raise UserError(f"{path}: is not a plain file of its own (a hard link?); it is left alone: remove it")
    return fd


def _try(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(path: Path) -> str:
    try:
        return safefiles.read_text(path, 200).strip().splitlines()[0][:120] or "holder unknown"
    except (OSError, IndexError):
        return "holder unknown"
