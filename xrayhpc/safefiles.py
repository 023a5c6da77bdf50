"""Files under a folder that others may write (a group's /projectnb under umask 002).

Every file the suite writes or reads under the results root goes through here, so that nothing a
co-worker plants there is followed or trusted:

- a file is opened relative to its folder's descriptor (`dir_fd`), and both are opened with
  O_NOFOLLOW: a link in place of the file, or of the folder it sits in, is refused, never followed
  (the results root itself is resolved once: link it wherever you like);
- writes go to a fresh temporary name in that folder, then are renamed over the target, so a
  reader never sees half a file and a planted file is replaced, not written through;
- reads take only regular files (never a FIFO that would block, or a device) and at most
  MAX_READ bytes;
- private folders (submitit's pickles) are the user's own, 0700, checked by owner and mode.

A refusal is an `UnsafeFile`, an OSError whose text is one line naming the path and why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from xrayhpc.errors import UserError

MAX_READ = 64 * 1024**2  # no record or image of ours comes near; a planted 10 GB file is refused
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeFile(OSError):
    """A path under the results root that is a link, not a regular file, or too large: left alone."""

    def __str__(self) -> str:
        return str(self.args[0])


def _refusal(path: Path, err: OSError) -> OSError:
    """ELOOP and ENOTDIR from O_NOFOLLOW mean a link (or a file) stands where a file or folder should."""
    if err.errno in (errno.ELOOP, errno.ENOTDIR):
        what = "a symbolic link" if path.is_symlink() else "not a folder"
        return UnsafeFile(f"{path}: is {what}; left alone")
    return err


@contextlib.contextmanager
def folder(path: Path) -> Iterator[int]:
    """The folder's descriptor, opened without following a link in its place."""
    try:
        fd = os.open(path, _FOLDER)
    except OSError as err:
        refusal = _refusal(Path(path), err)
        if refusal is err:
            raise
        raise refusal from None
    try:
        yield fd
    finally:
        os.close(fd)


def _open_in(path: Path, flags: int, fd: int, shown: Path | None = None) -> int:
    """`path.name` in the folder `fd`; an error names `shown` (the file meant), else `path`."""
    try:
        return os.open(path.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=fd)
    except OSError as err:
        refusal = _refusal(path, err)
        if refusal is err:
            raise OSError(err.errno, err.strerror, str(shown or path)) from None
        raise refusal from None


def write_atomic(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write through `write(file)` to a temporary name beside `path`, then rename over it.

    The file gets the permissions any new file gets under the user's umask (group-readable under
    umask 002, as on a shared /projectnb).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with folder(path.parent) as fd:
        tmp = f".{path.name}.{secrets.token_hex(6)}.tmp"
        out = _open_in(path.parent / tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, fd, shown=path)
        try:
            with os.fdopen(out, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path.name, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException as err:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=fd)
            if isinstance(err, OSError) and err.errno is not None and not err.filename:  # a full disk: which file
                raise OSError(err.errno, err.strerror, str(path)) from None
            raise


def write_text(path: Path, text: str) -> None:
    write_atomic(path, lambda f: f.write(text.encode()))


def open_regular(path: Path, flags: int) -> int:
    """A descriptor of `path` opened with `flags` through its folder, non-blocking so that a FIFO in
    its place cannot hang the open; UnsafeFile for a link or anything but a regular file."""
    path = Path(path)
    with folder(path.parent) as fd:
        opened = _open_in(path, flags | os.O_NONBLOCK, fd)
    if not stat.S_ISREG(os.fstat(opened).st_mode):
        os.close(opened)
        raise UnsafeFile(f"{path}: is not a regular file; left alone")
    return opened


def open_append(path: Path) -> IO[str]:
    """A log to append to, line-buffered: created if absent, refused if it is a link or not a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.set_blocking(out, True)
    return os.fdopen(out, "a", buffering=1)


def open_read(path: Path, limit: int = MAX_READ) -> IO[bytes]:
    """A regular file opened to read; UnsafeFile for a link, a FIFO, a device or a file over `limit`."""
    f = os.fdopen(open_regular(path, os.O_RDONLY), "rb")
    size = os.fstat(f.fileno()).st_size
    if size > limit:
        f.close()
        raise UnsafeFile(f"{path}: {size} bytes, more than any file of ours ({limit}); left alone")
    return f


def read_bytes(path: Path, limit: int = MAX_READ) -> bytes:
    """A regular file's bytes (see `open_read`)."""
    with open_read(path, limit) as f:
        return f.read(limit + 1)[:limit]


def read_own_bytes(path: Path, limit: int = MAX_READ) -> bytes:
    """A regular file's bytes, where it is this user's own: what another user wrote there (a weights
    file, say, that a library parses) is refused as UnsafeFile, naming its owner."""
    with open_read(path, limit) as f:
        owner = os.fstat(f.fileno()).st_uid
        if owner != os.getuid():
            raise UnsafeFile(f"{path}: belongs to {owner_name(owner)}, not to you ({user_name()}); left alone")
        return f.read(limit + 1)[:limit]


def foreign(path: Path) -> str:
    """ "" where `path` is a regular file of this user's; else one line saying whose it is, or what."""
    try:
        info = os.lstat(path)
    except OSError as err:
        return f"{path}: {err.strerror}"
    if not stat.S_ISREG(info.st_mode):
        return f"{path}: is not a regular file; left alone"
    if info.st_uid != os.getuid():
        return f"{path}: belongs to {owner_name(info.st_uid)}, not to you ({user_name()}); left alone"
    return ""


def read_text(path: Path, limit: int = MAX_READ) -> str:
    return read_bytes(path, limit).decode("utf-8", errors="replace")


def tail_lines(path: Path, count: int, window: int = 16 * 1024) -> list[str]:
    """The last `count` lines of a regular file, from at most its last `window` bytes (a log
    grows without bound); UnsafeFile for a link or anything but a regular file."""
    with os.fdopen(open_regular(path, os.O_RDONLY), "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - window))
        lines = f.read(window).decode("utf-8", errors="replace").splitlines()
    return lines[-count:]


def is_regular(path: Path) -> bool:
    """A regular file, not a link to one."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def is_folder(path: Path) -> bool:
    """A folder, not a link to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def user_name() -> str:
    """This process's user, from the password database (not $USER, which any shell can set)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def private_folder(base: Path) -> Path:
    """`base/<user>`, this user's own and 0700 whatever the umask: what no co-worker may write.

    Refused in one line when it, or `base` itself, is a link, or when it belongs to someone else
    (planted before our first use).
    """
    return _own(Path(base), user_name())


def own_folder(path: Path) -> Path:
    """`path` made (or kept) this user's own and 0700: a folder of pickles named by hand, such as
    submitit's `AutoExecutor("jobs/%j")`. The folders above it are the user's to link."""
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    return _own(path.parent.resolve(), path.name)


def _own(base: Path, name: str) -> Path:
    path = base / name
    base.mkdir(parents=True, exist_ok=True)
    with folder(base) as parent:  # `.jobs` itself a planted link: refused, not followed
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=parent)
        try:
            fd = os.open(name, _FOLDER, dir_fd=parent)
        except OSError as err:
            raise _refusal(path, err) from None
    try:
        info = os.fstat(fd)
        if info.st_uid != os.getuid():
            raise UserError(private_problem(info, path))
        if info.st_mode & 0o077:
            os.fchmod(fd, 0o700)  # ours, made by an older xrayhpc or under another umask
    finally:
        os.close(fd)
    return path


def make_private(path: Path) -> None:
    """chmod 0600 without following a link in the file's place."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)


def private_problem(info: os.stat_result, path: Path) -> str:
    """Why a folder or file of pickles cannot be trusted ("" when it can): another owner, or others
    may write it (one that others may only read, such as a submitit folder made by hand, is trusted;
    `private_folder` makes ours 0700)."""
    if info.st_uid != os.getuid():
        return (
            f"{path}: belongs to {owner_name(info.st_uid)}, not to you ({user_name()}); "
            "it is not used: remove it or ask its owner to"
        )
    if info.st_mode & 0o022:
        return f"{path}: mode {stat.filemode(info.st_mode)} lets others write it; it must be yours alone"
    return ""
