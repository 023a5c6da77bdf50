"""User mistakes become one clear line and exit status 2, never a traceback."""

from __future__ import annotations

import errno
import functools
import sys
from collections.abc import Callable

# What a person can do about the file-system errors a command meets most (a full /projectnb quota).
FIXES = {
    errno.ENOSPC: "free some space or write elsewhere (--results)",
    errno.EDQUOT: "the quota is full: free some space (SCC: `pquota`) or write elsewhere (--results)",
    errno.EROFS: "that file system is read-only here: write elsewhere (--results)",
    errno.EACCES: "you may not write there: check its owner and mode, or write elsewhere (--results)",
    errno.EPERM: "you may not change it: check its owner and mode",
}


class UserError(Exception):
    """Something the user can fix: the message names the file, the field and the fix."""


def cli(main: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a command's main so a UserError prints one line to stderr and exits 2."""

    @functools.wraps(main)
    def wrapped(*args: object, **kwargs: object) -> int:
        try:
            return main(*args, **kwargs) or 0
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except OSError as err:  # a full disk, a read-only folder, a refused link: the path and why
            print(f"error: {os_error(err)}", file=sys.stderr)
            return 1

    return wrapped


def said_errors(stderr: str) -> list[str]:
    """The one-line errors a command of ours (wrapped in `cli`) printed, as `cli` printed them."""
    return [line.removeprefix("error: ") for line in stderr.splitlines() if line.startswith("error: ")]


def os_error(err: OSError) -> str:
    """One line: the path, the reason and, where there is one, the fix."""
    if not err.filename:
        return str(err)
    fix = FIXES.get(err.errno or 0)
    return f"{err.filename}: {err.strerror or err}" + (f"; {fix}" if fix else "")
