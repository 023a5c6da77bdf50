"""The course template's augmentation, as Keras's ImageDataGenerator draws and applies it.

rotation 50 degrees, width and height shifts 0.2, shear 0.25 degrees, zoom 0.1, channel shift 20,
both flips, fill constant 0. Applied to uint8 images before scaling, as the generator does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Augmentation:
    rotation: float = 50.0
    shift: float = 0.2
    shear: float = 0.25
    zoom: float = 0.1
    channel_shift: float = 20.0
    flips: bool = True
    cval: float = 0.0


TEMPLATE = Augmentation()


def _matrix(rng: np.random.Generator, aug: Augmentation, h: int, w: int) -> np.ndarray:
    """Rotation, shift, shear and zoom about the image centre, as one 3x3 matrix."""
    theta = np.deg2rad(rng.uniform(-aug.rotation, aug.rotation))
    tx = rng.uniform(-aug.shift, aug.shift) * h
    ty = rng.uniform(-aug.shift, aug.shift) * w
    shear = np.deg2rad(rng.uniform(-aug.shear, aug.shear))
    zx, zy = rng.uniform(1 - aug.zoom, 1 + aug.zoom, 2)
    rotate = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    shift = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
    skew = np.array([[1, -np.sin(shear), 0], [0, np.cos(shear), 0], [0, 0, 1]])
    scale = np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
    m = rotate @ shift @ skew @ scale
    cx, cy = h / 2 - 0.5, w / 2 - 0.5
    to_centre = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1]])
    back = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]])
    return to_centre @ m @ back


def augment_one(image: np.ndarray, rng: np.random.Generator, aug: Augmentation = TEMPLATE) -> np.ndarray:
    """One random transform of one (H, W, 3) image; returns float32 on the 0-255 scale."""
    h, w = image.shape[:2]
    m = _matrix(rng, aug, h, w)
    # A grey X-ray has three equal channels: transform one and repeat it (the same numbers, a third of the work).
    channels = 1 if (image[..., 1:] == image[..., :1]).all() else image.shape[2]
    x = image[..., :channels].astype(np.float32)
    out = np.stack(
        [
            ndimage.affine_transform(x[..., c], m[:2, :2], m[:2, 2], order=1, mode="constant", cval=aug.cval)
            for c in range(channels)
        ],
        axis=-1,
    )
    out = np.broadcast_to(out, image.shape)
    shift = rng.uniform(-aug.channel_shift, aug.channel_shift)
    out = np.clip(out + shift, out.min(), out.max())
    if aug.flips and rng.random() < 0.5:
        out = out[:, ::-1]
    if aug.flips and rng.random() < 0.5:
        out = out[::-1]
    return out


def augment(images: np.ndarray, seed: int, aug: Augmentation = TEMPLATE) -> np.ndarray:
    """A fresh random transform of every image, reproducible from the seed."""
    rng = np.random.default_rng(seed)
    return np.stack([augment_one(img, rng, aug) for img in images]).astype(np.float32)
