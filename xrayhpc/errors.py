"""User mistakes become one clear line and exit status 2, never a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable


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

    return wrapped
