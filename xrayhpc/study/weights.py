"""Fetch the ImageNet weight files a grid needs, on a machine with internet (an SCC login node).

    python -m xrayhpc.weights --grid jobs/report.toml [--base-url URL] [--timeout SECONDS]

Compute nodes may have no internet, and a job that finds no weights stops at once. This puts each
file where Keras and the worker look ($KERAS_HOME/models, default ~/.keras/models) under Keras's
own name. A file is downloaded to a temporary name, hash-checked, then renamed, so a broken
download never takes the place of a good file. A file already there and valid is not fetched
again; one with the wrong hash is named and left alone (Keras itself deletes such a file when its
own re-download fails).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from xrayhpc.backbones import BACKBONES, WEIGHTS_URL, keras_models_dir
from xrayhpc.errors import UserError, cli
from xrayhpc.experiment import Experiment, load_grid, parse_overrides
from xrayhpc.schema import write_atomic

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightFile:
    """One file Keras loads for `weights = "imagenet"`, and the experiments that need it."""

    name: str
    url: str
    md5: str | None
    experiments: tuple[str, ...]


def needed(experiments: list[Experiment], base_url: str = WEIGHTS_URL) -> list[WeightFile]:
    """The ImageNet files of every experiment with `weights = "imagenet"`, each once."""
    found: dict[str, tuple[str, str | None, list[str]]] = {}
    for exp in experiments:
        if exp.weights != "imagenet" or exp.backbone not in BACKBONES:
            continue
        spec = BACKBONES[exp.backbone]
        name = spec.weights_file(exp.image_size)
        found.setdefault(name, (spec.weights_url(exp.image_size, base_url), spec.md5, []))[2].append(exp.id)
    return [WeightFile(name, url, md5, tuple(ids)) for name, (url, md5, ids) in found.items()]


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def problem(path: Path, weights: WeightFile) -> str | None:
    """Why the file at `path` is not the one Keras expects, or None when it is."""
    if not path.is_file():
        return f"{weights.name} is not in {path.parent}"
    if weights.md5 is not None:
        got = file_md5(path)
        return None if got == weights.md5 else f"{path} has md5 {got}, Keras expects {weights.md5}"
    with open(path, "rb") as f:  # Keras publishes no hash for this file: it must at least be HDF5
        return None if f.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE else f"{path} is not an HDF5 file"


def download(weights: WeightFile, dest: Path, timeout: float, progress: Callable[[int, int | None], None]) -> int:
    """Fetch into `dest` whole, or not at all; returns the bytes written.

    `timeout` bounds the connection and every read, so a server that accepts and never answers
    ends the download instead of hanging it.
    """
    digest = hashlib.md5(usedforsecurity=False)
    size = 0

    def write(f: object) -> None:
        nonlocal size
        with urllib.request.urlopen(weights.url, timeout=timeout) as response:
            total = response.headers.get("Content-Length")
            while block := response.read(CHUNK):
                f.write(block)  # type: ignore[attr-defined]
                digest.update(block)
                size += len(block)
                progress(size, int(total) if total else None)
        if weights.md5 is not None and digest.hexdigest() != weights.md5:
            raise UserError(
                f"{weights.url} sent a file with md5 {digest.hexdigest()}, Keras expects {weights.md5}; "
                "nothing was written (is --base-url right?)"
            )

    try:
        write_atomic(dest, write)
    except urllib.error.HTTPError as err:
        raise UserError(f"{weights.url}: the server answered {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        if isinstance(reason, TimeoutError):
            raise UserError(f"{weights.url}: no answer within {timeout:g} s; try again, or raise --timeout") from None
        raise UserError(
            f"{weights.url}: cannot download ({reason}); this machine may have no internet: run this on a login node"
        ) from None
    return size


def fetch_all(
    files: list[WeightFile],
    folder: Path,
    timeout: float,
    say: Callable[[str], None],
    progress: Callable[[WeightFile], Callable[[int, int | None], None]],
) -> int:
    """Each file: kept when valid, fetched when absent, named when wrong. Returns the failures."""
    failures = 0
    for weights in files:
        path = folder / weights.name
        if path.exists():
            issue = problem(path, weights)
            if issue is None:
                say(f"✓ {weights.name}: already there and valid")
            else:
                failures += 1
                say(f"✗ {issue}: left as it is; move it away and run again to fetch a good copy")
            continue
        try:
            size = download(weights, path, timeout, progress(weights))
        except UserError as err:
            failures += 1
            say(f"✗ {weights.name}: {err}")
            continue
        check = "md5 checked" if weights.md5 else "HDF5, Keras publishes no hash"
        say(f"✓ {weights.name}: fetched, {size / 1e6:.1f} MB ({check})")
    return failures


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xrayhpc.weights", description=__doc__.split("\n")[0])
    parser.add_argument("--grid", default="jobs/report.toml", help="grid file or name (default: jobs/report.toml)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting in every experiment"
    )
    parser.add_argument(
        "--base-url",
        default=os.environ.get("XRAYHPC_WEIGHTS_URL") or WEIGHTS_URL,
        help="where the files are (default: $XRAYHPC_WEIGHTS_URL, else Keras's own)",
    )
    parser.add_argument(
        "--timeout", type=float, default=60, metavar="SECONDS", help="give up on a server silent this long (default 60)"
    )
    args = parser.parse_args(argv)
    files = needed(load_grid(Path(args.grid), parse_overrides(args.set)), args.base_url)
    folder = keras_models_dir()
    if not files:
        print(f'{args.grid}: no experiment asks for weights = "imagenet"; nothing to fetch')
        return 0
    print(f"{len(files)} file(s) for {args.grid} into {folder}")
    from rich.console import Console
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    console = Console(highlight=False, soft_wrap=True)
    with Progress(
        *Progress.get_default_columns(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        disable=not console.is_terminal,
        transient=True,
    ) as bar:

        def progress(weights: WeightFile) -> Callable[[int, int | None], None]:
            task = bar.add_task(weights.name, total=None)
            return lambda done, total: bar.update(task, completed=done, total=total)

        failures = fetch_all(files, folder, args.timeout, lambda line: console.print(line, markup=False), progress)
    if failures:
        print(f"{failures} of {len(files)} file(s) not in place", file=sys.stderr)
    return 1 if failures else 0
