"""What the files say before any model looks at a lung: `python -m xrayhpc.audit --data DIR`.

Per task folder, split and class: formats, colour modes, the images whose channels differ, sizes
and bytes; then exact duplicates (the same bytes) and near duplicates (perceptual hashes close)
within and across splits. On the course's data the covid images come from papers and websites
(mostly stored in colour) and the rest from one hospital archive (grey JPEG): the file facts alone
reach the published accuracy, so every accuracy needs these facts beside it. Facts are cached per
file, like the decoded images.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from xrayhpc.errors import UserError, cli
from xrayhpc.experiment import TASKS
from xrayhpc.render import terminal
from xrayhpc.schema import audit_tables, write_atomic
from xrayhpc.study.data import UNREADABLE, cache_dir, discover, files_key
from xrayhpc.study.device import slots

# A grey image saved as RGB JPEG gets small channel differences from compression; a colour figure
# differs by far more. Mean absolute difference between channels, in 0-255 levels.
COLOUR_LEVELS = 3.0
# Perceptual hashes (64 bits) at most this many bits apart are near duplicates (chest X-rays of
# different patients in the course data come within 6 bits; re-saved copies within 2).
NEAR_BITS = 4
FACTS_VERSION = 1
SAMPLE_PX = 256  # channel difference and hash from a reduced copy: the same for every file


@dataclass(frozen=True)
class FileFacts:
    """One image file as stored, no pixels of anatomy: what a metadata-only model may use."""

    file: str
    split: str
    label: str
    format: str
    mode: str
    width: int
    height: int
    bytes: int
    channel_difference: float
    sha256: str
    phash: str

    @property
    def coloured(self) -> bool:
        return self.channel_difference > COLOUR_LEVELS


def read_facts(path: Path, split: str, label: str, root: Path) -> FileFacts:
    blob = path.read_bytes()
    with Image.open(path) as img:
        fmt, mode, (width, height) = img.format or path.suffix.lstrip(".").upper(), img.mode, img.size
        img.draft("RGB", (SAMPLE_PX, SAMPLE_PX))  # JPEG decodes at a reduced scale: fast, and the same each time
        small = img.convert("RGB")
        small.thumbnail((SAMPLE_PX, SAMPLE_PX))
    import imagehash

    rgb = np.asarray(small, dtype=np.int16)
    spread = float(np.mean(np.abs(rgb[..., 0] - rgb[..., 1]) + np.abs(rgb[..., 1] - rgb[..., 2])) / 2)
    return FileFacts(
        str(path.relative_to(root)),
        split,
        label,
        fmt,
        mode,
        width,
        height,
        len(blob),
        round(spread, 3),
        hashlib.sha256(blob).hexdigest(),
        str(imagehash.phash(small.convert("L"))),
    )


def _facts_or_none(path: Path, split: str, label: str, root: Path) -> FileFacts | None:
    try:
        return read_facts(path, split, label, root)
    except UNREADABLE:
        return None  # unreadable: the worker skips it too, and names it


def task_facts(task_dir: Path, threads: int | None = None) -> list[FileFacts]:
    """Every readable image of a task folder, cached by path, size and modification time; as many
    threads as the scheduler granted cores (decoding holds no lock)."""
    found = discover(task_dir)
    files = [
        (p, split, label)
        for split, per_class in (("train", found.train), ("test", found.test))
        for label, paths in per_class.items()
        for p in paths
    ]
    key = files_key(f"facts v{FACTS_VERSION} {COLOUR_LEVELS} {SAMPLE_PX}", [p for p, _, _ in files])
    cached = cache_dir() / f"facts-{key}.json"
    if cached.is_file():
        return [FileFacts(**f) for f in json.loads(cached.read_text())]
    with ThreadPoolExecutor(threads or slots() or os.cpu_count() or 1) as pool:
        facts = [f for f in pool.map(lambda f: _facts_or_none(f[0], f[1], f[2], task_dir), files) if f is not None]
    text = json.dumps([asdict(f) for f in facts])
    write_atomic(cached, lambda f: f.write(text.encode()))
    return facts


def sources(task_dir: Path) -> dict[str, str]:
    """Each file's source as its facts tell it (`JPEG L, grey pixels`), by path in the task folder:
    what the t-SNE is coloured by beside the classes."""
    return {f.file: f"{f.format} {f.mode}, {'colour' if f.coloured else 'grey'} pixels" for f in task_facts(task_dir)}


def _count(values: list[str]) -> str:
    return ", ".join(f"{k} {n}" for k, n in sorted(Counter(values).items(), key=lambda kv: (-kv[1], kv[0])))


def _span(values: list[int]) -> str:
    return f"{min(values)}/{int(statistics.median(values))}/{max(values)}"


def summary_rows(facts: list[FileFacts]) -> list[dict[str, Any]]:
    """One row per split and class: the table that shows where the sources differ."""
    rows = []
    for split in ("train", "test"):
        for label in sorted({f.label for f in facts}):
            group = [f for f in facts if f.split == split and f.label == label]
            if group:
                rows.append(
                    {
                        "split": split,
                        "class": label,
                        "images": len(group),
                        "formats": _count([f.format for f in group]),
                        "modes": _count([f.mode for f in group]),
                        "coloured": sum(f.coloured for f in group),
                        "width": _span([f.width for f in group]),
                        "height": _span([f.height for f in group]),
                        "kb": _span([round(f.bytes / 1024) for f in group]),
                    }
                )
    return rows


def duplicates(facts: list[FileFacts]) -> list[dict[str, Any]]:
    """Pairs with the same bytes (exact) or perceptual hashes within NEAR_BITS (near)."""
    bits = np.array([[int(c, 16) >> s & 1 for c in f.phash for s in (3, 2, 1, 0)] for f in facts], dtype=np.uint8)
    pairs = []
    for i in range(len(facts)):
        distance = np.count_nonzero(bits[i + 1 :] != bits[i], axis=1)
        for j in np.flatnonzero(distance <= NEAR_BITS) + i + 1:
            a, b = facts[i], facts[j]
            exact = a.sha256 == b.sha256
            where = a.split if a.split == b.split else "across splits"
            pairs.append(
                {
                    "a": a.file,
                    "b": b.file,
                    "kind": "exact" if exact else "near",
                    "bits": int(distance[j - i - 1]),
                    "where": where,
                }
            )
    return pairs


def task_audit(task_dir: Path, facts: list[FileFacts] | None = None) -> dict[str, Any]:
    """One task folder's summary rows and duplicate pairs, with the thresholds used (from `facts`
    when the caller has read them already)."""
    facts = task_facts(task_dir) if facts is None else facts
    return {
        "folder": task_dir.name,
        "colour_levels": COLOUR_LEVELS,
        "near_bits": NEAR_BITS,
        "rows": summary_rows(facts),
        "duplicates": duplicates(facts),
    }


def audit(data_root: Path) -> dict[str, Any]:
    """The audit of every task folder present under the data root (two/, all/)."""
    out: dict[str, Any] = {"data": str(data_root), "tasks": {}}
    for folder in TASKS.values():
        if (data_root / folder).is_dir():
            out["tasks"][folder] = task_audit(data_root / folder)
    if not out["tasks"]:
        raise UserError(f"{data_root}: neither two/ nor all/ is here; give the folder that holds them (--data)")
    return out


@cli
def main(argv: list[str] | None = None) -> int:
    import os

    from rich.console import Console

    parser = argparse.ArgumentParser(prog="python -m xrayhpc.audit", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data",
        default=os.environ.get("XRAYHPC_DATA"),
        help="the folder that holds two/ and all/ (default: $XRAYHPC_DATA)",
    )
    parser.add_argument("--json", action="store_true", help="print the audit as JSON")
    args = parser.parse_args(argv)
    if not args.data:
        raise UserError(
            "no data folder: pass --data DIR or export XRAYHPC_DATA=DIR (the folder that holds two/ and all/)"
        )
    result = audit(Path(args.data).expanduser().resolve())
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    console = Console(highlight=False, soft_wrap=not Console().is_terminal)
    for title, header, body in (table for task in result["tasks"].values() for table in audit_tables(task)):
        console.print(terminal(header, body, title))
    return 0
