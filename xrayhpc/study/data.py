"""The dataset: class folders, the course template's split, and images decoded once and cached.

Layout under a task folder (`two/` or `all/`): `train/<class>/*` and `test/<class>/*`. Classes are
the sorted folder names, as Keras's flow_from_directory sees them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from xrayhpc.datadigest import IMAGE_SUFFIXES, cache_dir
from xrayhpc.errors import UserError
from xrayhpc.experiment import Experiment
from xrayhpc.safefiles import write_atomic
from xrayhpc.study import regions

# flow_from_directory's list, compared in lower case as Keras does
RESAMPLE = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR}
CACHE_VERSION = 1


@dataclass
class Split:
    """Images of one split as uint8 (N, size, size, 3), their class indices and file names."""

    images: np.ndarray
    labels: np.ndarray
    files: list[str]

    def __len__(self) -> int:
        return len(self.files)


@dataclass
class Dataset:
    classes: list[str]
    train: Split
    val: Split
    test: Split
    skipped: list[dict[str, str]] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per class and split, as metrics.json records them."""
        return {
            name: {c: int(np.sum(split.labels == i)) for i, c in enumerate(self.classes)}
            for name, split in (("train", self.train), ("val", self.val), ("test", self.test))
        }


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES))


def _class_files(split_dir: Path, classes: list[str] | None) -> dict[str, list[Path]]:
    if not split_dir.is_dir():
        raise UserError(f"{split_dir}: folder not found; a task folder needs train/ and test/")
    found = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    if classes is None:
        if not found:
            raise UserError(f"{split_dir}: no class folders; put each class's images in a folder")
        classes = found
    elif found != classes:
        raise UserError(
            f"{split_dir}: class folders {found} differ from train/'s {classes}; both splits need the same classes"
        )
    files = {}
    for name in classes:
        images = list_images(split_dir / name)
        if not images:
            raise UserError(f"{split_dir / name}: no images (looked for {', '.join(IMAGE_SUFFIXES)})")
        files[name] = images
    return files


def decode(path: Path, size: int, interpolation: str, colour: str = "rgb") -> np.ndarray:
    """One file -> (size, size, 3) uint8, as Keras's load_img makes it (convert, then resize).

    `grey` takes every image to one channel first, so colour (which tells the sources of this
    dataset apart) carries nothing; the three channels are then equal.
    """
    with Image.open(path) as img:
        img.load()
        mode = "L" if colour == "grey" else "RGB"
        one = img if img.mode == mode else img.convert(mode)
        return np.asarray(one.convert("RGB").resize((size, size), RESAMPLE[interpolation]), dtype=np.uint8)


# What a file that cannot be decoded raises: it is skipped and named, never fatal.
UNREADABLE = (OSError, ValueError, Image.DecompressionBombError)


def files_key(header: str, files: list[Path]) -> str:
    """A cache key for what is derived from `files` in the way `header` names: a changed, moved or
    touched file (path, size, modification time) makes another key."""
    h = hashlib.sha256(header.encode())
    for path in files:
        st = path.stat()
        h.update(f"\n{path.resolve()} {st.st_size} {st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def decode_all(
    files: list[Path],
    size: int,
    interpolation: str,
    threads: int,
    log: Callable[[str], None] = print,
    colour: str = "rgb",
    normalise: bool = False,
) -> tuple[np.ndarray, dict[str, str]]:
    """Decode every file once, cached on disk; unreadable files are reported, not fatal.

    `normalise` takes every decoded image through regions.normalise (grey, equalised), cached apart."""
    header = f"v{CACHE_VERSION} {size} {interpolation}{'' if colour == 'rgb' else ' ' + colour}"
    header += " normalised" if normalise else ""
    path = cache_dir() / f"images-{files_key(header, files)}.npz"
    if path.is_file():
        with np.load(path) as cached:
            bad = json.loads(str(cached["bad"]))
            return cached["images"], bad
    out = np.zeros((len(files), size, size, 3), dtype=np.uint8)
    bad: dict[str, str] = {}

    def one(i: int) -> None:
        try:
            out[i] = decode(files[i], size, interpolation, colour)
        except UNREADABLE as err:
            bad[str(files[i])] = f"{type(err).__name__}: {err}"

    log(f"decoding {len(files)} images to {size}x{size}{', normalised' if normalise else ''} (cached for later runs)")
    with ThreadPoolExecutor(max(1, threads)) as pool:
        list(pool.map(one, range(len(files))))
    if normalise:
        out = regions.normalise(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: np.savez(f, images=out, bad=json.dumps(bad)))
    return out, bad


@dataclass(frozen=True)
class Files:
    """A task folder's image files per class, before anything is decoded."""

    classes: list[str]
    train: dict[str, list[Path]]
    test: dict[str, list[Path]]

    def splits(self, validation_split: float) -> dict[str, dict[str, list[Path]]]:
        """train, val and test, each class's files in name order: the first `validation_split` of a
        class's training files is validation, as Keras's flow_from_directory(validation_split) takes it."""
        cut = {c: int(validation_split * len(f)) for c, f in self.train.items()}
        return {
            "train": {c: f[cut[c] :] for c, f in self.train.items()},
            "val": {c: f[: cut[c]] for c, f in self.train.items()},
            "test": dict(self.test),
        }

    def counts(self, validation_split: float) -> dict[str, dict[str, int]]:
        """Images per class and split as the run will see them (unreadable ones not yet known)."""
        return {s: {c: len(f) for c, f in per_class.items()} for s, per_class in self.splits(validation_split).items()}


def discover(task_dir: Path) -> Files:
    """The class folders and image files, or one line saying what is missing (no decoding)."""
    task_dir = Path(task_dir)
    if not task_dir.is_dir():
        raise UserError(
            f"data folder {task_dir} not found; point XRAYHPC_DATA (or `data` in the grid) at the "
            "folder that holds two/ and all/"
        )
    train = _class_files(task_dir / "train", None)
    return Files(list(train), train, _class_files(task_dir / "test", list(train)))


def experiment_data(exp: Experiment, log: Callable[[str], None] = print) -> Dataset:
    """`exp`'s task folder as its settings decode it, with as many threads as the job's slots."""
    from xrayhpc.study.device import slots

    return load_dataset(
        exp.data_dir,
        exp.image_size,
        exp.interpolation,
        exp.validation_split,
        threads=slots() or os.cpu_count() or 1,
        log=log,
        colour=exp.colour,
        normalise=exp.normalise,
    )


def load_dataset(
    task_dir: Path,
    image_size: int,
    interpolation: str,
    validation_split: float,
    threads: int = 1,
    log: Callable[[str], None] = print,
    colour: str = "rgb",
    normalise: bool = False,
) -> Dataset:
    """Discover, decode (once) and split; the first `validation_split` of each class is validation."""
    task_dir = Path(task_dir)
    found = discover(task_dir)
    classes = found.classes
    every = [p for files in (found.train, found.test) for c in classes for p in files[c]]
    images, bad = decode_all(every, image_size, interpolation, threads, log, colour, normalise)
    for file, reason in bad.items():
        log(f"skipping unreadable image {file}: {reason}")
    index = {str(p): i for i, p in enumerate(every)}

    def split(files: dict[str, list[Path]]) -> Split:
        picked = [(p, label) for label, name in enumerate(classes) for p in files[name] if str(p) not in bad]
        return Split(
            images[[index[str(p)] for p, _ in picked]],
            np.asarray([label for _, label in picked], dtype=np.int64),
            [str(p.relative_to(task_dir)) for p, _ in picked],
        )

    skipped = [{"file": str(Path(f).relative_to(task_dir)), "reason": r} for f, r in bad.items()]
    splits = found.splits(validation_split)
    return Dataset(
        classes,
        train=split(splits["train"]),
        val=split(splits["val"]),
        test=split(splits["test"]),
        skipped=skipped,
    )
