"""A small synthetic chest-X-ray-like dataset, laid out as the real one (two/ and all/).

For the demo and the tests: no download, a few seconds to make, classes that a model can tell
apart (opacities differ by class), and the real data's awkward mix of grayscale JPEG, RGB and RGBA
PNG at varied sizes.

    python -m xrayhpc.synthetic OUT [--train 20] [--test 10]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from xrayhpc.errors import cli

CLASSES = ("covid", "normal", "pneumonia_bac", "pneumonia_vir")
BINARY = ("covid", "normal")


def xray(cls: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """A grayscale chest-like picture: body, two dark lungs, ribs, and the class's opacities."""
    y, x = np.mgrid[0:size, 0:size] / size
    img = 0.55 + 0.1 * rng.standard_normal() * 0.2 - 0.25 * ((x - 0.5) ** 2 + (y - 0.5) ** 2)
    for cx in (0.32, 0.68):
        lung = ((x - cx) / 0.15) ** 2 + ((y - 0.5) / 0.3) ** 2 < 1
        img = np.where(lung, img - 0.35, img)
    img += 0.05 * (np.sin(y * 60 + rng.uniform(0, 6)) > 0.7)
    # (count, radius, height band, sides): covid's patches lie low in both lungs, bacterial pneumonia
    # is one dense patch in one lung, viral pneumonia many small spots high in both; each class's
    # opacities differ in size, number and place, so they stay apart at 64 px.
    spots = {
        "covid": (4, 0.09, (0.55, 0.75), (0.32, 0.68)),
        "pneumonia_bac": (1, 0.16, (0.35, 0.65), (0.32,)),
        "pneumonia_vir": (14, 0.04, (0.25, 0.5), (0.32, 0.68)),
    }
    if cls in spots:
        count, radius, (top, bottom), sides = spots[cls]
        for _ in range(count):
            px, py = rng.choice(sides) + rng.uniform(-0.08, 0.08), rng.uniform(top, bottom)
            img += 0.4 * np.exp(-(((x - px) ** 2 + (y - py) ** 2) / radius**2))
    img += 0.04 * rng.standard_normal(img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def save(gray: np.ndarray, path: Path, i: int) -> None:
    """Rotate through the real data's formats: grayscale JPEG, RGB JPEG, RGB PNG, RGBA PNG."""
    kind = i % 4
    if kind == 0:
        Image.fromarray(gray, "L").save(path.with_suffix(".jpeg"), quality=90)
    elif kind == 1:
        Image.fromarray(np.stack([gray] * 3, -1), "RGB").save(path.with_suffix(".jpg"), quality=90)
    elif kind == 2:
        Image.fromarray(np.stack([gray] * 3, -1), "RGB").save(path.with_suffix(".png"))
    else:
        alpha = np.full_like(gray, 255)
        Image.fromarray(np.stack([gray] * 3 + [alpha], -1), "RGBA").save(path.with_suffix(".png"))


def make_dataset(out: Path, train: int = 20, test: int = 10, seed: int = 0) -> Path:
    """Write out/all and out/two (two/ is the covid and normal subset, as in the real data)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", train), ("test", test)):
        for cls in CLASSES:
            for i in range(n):
                size = int(rng.integers(96, 200))
                gray = xray(cls, rng, size)
                for tree in ("all", "two") if cls in BINARY else ("all",):
                    folder = out / tree / split / cls
                    folder.mkdir(parents=True, exist_ok=True)
                    save(gray, folder / f"{cls}-{i:03d}", i)
    return out


def marked(where: str, cls: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """A grey picture whose class is told only by a mark, a patch of fine checks on smooth shading:
    in a corner of the border band (covid top left, normal bottom right) for `where = "border"`, or
    at the centre (covid checks, normal stripes) for `"centre"`. For the probes' tests: the fine
    pattern is what any convolution, trained or random, answers most."""
    y, x = np.mgrid[0:size, 0:size] / size
    img = np.full((size, size), 0.5)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.15, 0.35)
        img += rng.uniform(-0.2, 0.2) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / r**2)
    rows, cols = np.mgrid[0:size, 0:size] // 2
    checks = ((rows + cols) % 2).astype(float)
    if where == "border":
        side = max(4, size // 10)  # inside the band (regions.BORDER of the side), off the very edge
        at = int(rng.integers(size // 32, max(size // 32 + 1, size // 5 - side)))
        top = at if cls == "covid" else size - at - side
        img[top : top + side, top : top + side] = checks[:side, :side]
    else:
        side = size // 5
        at = size // 2 - side // 2 + int(rng.integers(-size // 16, size // 16 + 1))
        pattern = checks if cls == "covid" else (rows % 2).astype(float)
        img[at : at + side, at : at + side] = pattern[:side, :side]
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def make_marked(out: Path, where: str, size: int = 128, train: int = 30, test: int = 15, seed: int = 0) -> Path:
    """out/two, covid and normal told apart only by a mark (`marked`), grey PNGs of `size` px."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", train), ("test", test)):
        for cls in BINARY:
            folder = out / "two" / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(marked(where, cls, rng, size), "L").save(folder / f"{cls}-{i:03d}.png")
    return out


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xrayhpc.synthetic", description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=20, help="training images per class")
    parser.add_argument("--test", type=int, default=10, help="test images per class")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    make_dataset(args.out, args.train, args.test, args.seed)
    print(f"synthetic dataset in {args.out} ({args.train} train + {args.test} test images per class)")
    return 0
