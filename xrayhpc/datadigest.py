"""A data folder by what it holds, not by the path it was reached by.

The same images reached through a symlink, another mount point of /projectnb or a copy are the
same data: an experiment's fingerprint takes this digest (every file's relative path, size and
content), so a finished run stays finished wherever the data is mounted. Hashing 141 MB takes a
moment; the digest is kept in the cache folder under the files' names, sizes, times and inodes, so
it is computed again only when a file changes, and once per process.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import stat
from pathlib import Path

from xrayhpc.safefiles import read_text, write_text

CHUNK = 1 << 20
# What the loader takes for an image (study/data.py): only these enter the digest, so a README, a
# thumbnail cache or a notebook checkpoint beside the images changes nothing.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff")


def cache_dir() -> Path:
    """Decoded images and digests live here: $XRAYHPC_CACHE, else $XDG_CACHE_HOME/xrayhpc,
    else ~/.cache/xrayhpc.

    Resolved once: a cache folder that is itself a link (to /projectnb, say) is yours to set.
    """
    if os.environ.get("XRAYHPC_CACHE"):
        return Path(os.environ["XRAYHPC_CACHE"]).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return (Path(base) / "xrayhpc").expanduser().resolve()


def _files(folder: Path) -> list[tuple[str, os.stat_result]]:
    """Every image under `folder` as the loader finds it (links followed, regular files only), by
    relative path, sorted: the same listing on any machine."""
    out = []
    for top, dirs, names in os.walk(folder, followlinks=True):
        dirs.sort()
        for name in names:
            path = Path(top) / name
            try:
                info = path.stat()
            except OSError:  # a dangling link: the loader skips it too
                continue
            if stat.S_ISREG(info.st_mode) and name.lower().endswith(IMAGE_SUFFIXES):
                out.append((path.relative_to(folder).as_posix(), info))
    return sorted(out, key=lambda item: item[0])


@functools.lru_cache(maxsize=64)
def data_digest(folder: str) -> str | None:
    """The content digest of the files under `folder`, or None when it is not there."""
    root = Path(folder)
    if not root.is_dir():
        return None
    files = _files(root)
    stamp = hashlib.sha256(
        "".join(f"{rel}\0{i.st_size}\0{i.st_mtime_ns}\0{i.st_ino}\0{i.st_dev}\n" for rel, i in files).encode()
        + str(root.resolve()).encode()
    ).hexdigest()[:24]
    cached = cache_dir() / f"digest-{stamp}.txt"
    try:
        return read_text(cached, 200).strip()
    except OSError:
        pass
    whole = hashlib.sha256()
    for rel, info in files:
        content = hashlib.sha256()
        with open(os.open(root / rel, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:  # swapped for a FIFO: no hang
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                continue
            while chunk := f.read(CHUNK):
                content.update(chunk)
        whole.update(f"{rel}\0{info.st_size}\0{content.hexdigest()}\n".encode())
    digest = whole.hexdigest()[:24]
    with contextlib.suppress(OSError):  # a read-only cache costs a recomputation next time, nothing else
        write_text(cached, digest + "\n")
    return digest
