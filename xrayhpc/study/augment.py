"""The course template's augmentation, as Keras's ImageDataGenerator draws and applies it.

rotation 50 degrees, width and height shifts 0.2, shear 0.25 degrees, zoom 0.1, channel shift 20,
both flips, fill constant 0. Applied to uint8 images before scaling, as the generator does.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class Draw:
    """One image's random transform: the warp (output -> input coordinates, rows then columns), the
    channel shift, and the flips. Drawn in the generator's order, so both paths apply the same one."""

    matrix: np.ndarray
    channel_shift: float
    flip_columns: bool
    flip_rows: bool


def draw(rng: np.random.Generator, aug: Augmentation, h: int, w: int) -> Draw:
    m = _matrix(rng, aug, h, w)
    shift = rng.uniform(-aug.channel_shift, aug.channel_shift)
    return Draw(m, shift, bool(aug.flips and rng.random() < 0.5), bool(aug.flips and rng.random() < 0.5))


def augment_one(image: np.ndarray, d: Draw, aug: Augmentation = TEMPLATE) -> np.ndarray:
    """One transform of one (H, W, 3) image on the CPU (scipy); returns float32 on the 0-255 scale."""
    # A grey X-ray has three equal channels: transform one and repeat it (the same numbers, a third of the work).
    channels = 1 if (image[..., 1:] == image[..., :1]).all() else image.shape[2]
    x = image[..., :channels].astype(np.float32)
    out = np.stack(
        [
            ndimage.affine_transform(
                x[..., c], d.matrix[:2, :2], d.matrix[:2, 2], order=1, mode="constant", cval=aug.cval
            )
            for c in range(channels)
        ],
        axis=-1,
    )
    out = np.broadcast_to(out, image.shape)
    out = np.clip(out + d.channel_shift, out.min(), out.max())
    if d.flip_columns:
        out = out[:, ::-1]
    if d.flip_rows:
        out = out[::-1]
    return out


def draws(n: int, h: int, w: int, seed: int, aug: Augmentation = TEMPLATE) -> list[Draw]:
    """A fresh random transform for each of n images, reproducible from the seed."""
    rng = np.random.default_rng(seed)
    return [draw(rng, aug, h, w) for _ in range(n)]


def augment(images: np.ndarray, seed: int, aug: Augmentation = TEMPLATE) -> np.ndarray:
    """A fresh random transform of every image on the CPU, reproducible from the seed."""
    h, w = images.shape[1:3]
    return np.stack(
        [augment_one(img, d, aug) for img, d in zip(images, draws(len(images), h, w, seed, aug), strict=True)]
    ).astype(np.float32)


def device_draws(n: int, h: int, w: int, seed: int, aug: Augmentation = TEMPLATE) -> tuple[np.ndarray, np.ndarray]:
    """The draws of `draws`, as `warp` takes them: TensorFlow's 8-number transforms and, per image,
    (channel shift, flip columns, flip rows)."""
    ds = draws(n, h, w, seed, aug)
    # scipy maps output (row, col) to input by `matrix`; TensorFlow's transform maps output (x=col, y=row).
    transforms = np.array(
        [
            [d.matrix[1, 1], d.matrix[1, 0], d.matrix[1, 2], d.matrix[0, 1], d.matrix[0, 0], d.matrix[0, 2], 0, 0]
            for d in ds
        ],
        dtype=np.float32,
    )
    extras = np.array([[d.channel_shift, d.flip_columns, d.flip_rows] for d in ds], dtype=np.float32)
    return transforms, extras


def augment_on_device(
    images: np.ndarray, seed: int, aug: Augmentation = TEMPLATE, batch: int | None = None
) -> np.ndarray:
    """The same transforms as `augment`, drawn from the same seed, applied by the backend where it
    runs (a GPU job's GPU; under JAX, XLA on any device): one projective warp per image, then the
    channel shift and flips, `batch` images at a time (Keras's JAX warp holds several copies of
    its input's coordinates: a whole training set at once would take gigabytes).

    Bilinear sampling at the border differs from scipy's by a little (tests/test_augment.py bounds
    it); everything drawn is the same. Returns float32 on the 0-255 scale.
    """
    import keras

    n = len(images)
    transforms, extras = device_draws(n, *images.shape[1:3], seed, aug)
    step = batch or n
    warped = [
        _compiled_warp()(
            keras.ops.convert_to_tensor(images[i : i + step]),
            transforms[i : i + step],
            extras[i : i + step],
            float(aug.cval),
        )
        for i in range(0, n, step)
    ]
    return np.concatenate([keras.ops.convert_to_numpy(w) for w in warped])


def warp(images: Any, transforms: Any, extras: Any, cval: float) -> Any:
    """`augment_on_device`'s operations, in Keras's ops (TensorFlow's ImageProjectiveTransformV3 on
    that backend), to be traced inside a larger compiled function."""
    from keras import ops

    x = ops.cast(images, "float32")
    out = ops.image.affine_transform(
        x, transforms, interpolation="bilinear", fill_mode="constant", fill_value=cval, data_format="channels_last"
    )
    low = ops.min(out, axis=(1, 2, 3), keepdims=True)
    high = ops.max(out, axis=(1, 2, 3), keepdims=True)
    out = ops.clip(out + extras[:, 0, None, None, None], low, high)
    out = ops.where(extras[:, 1, None, None, None] > 0, ops.flip(out, axis=2), out)
    return ops.where(extras[:, 2, None, None, None] > 0, ops.flip(out, axis=1), out)


@functools.cache
def _compiled_warp() -> Any:
    """Under JAX, one XLA program per batch shape; TensorFlow's warp has no XLA kernel, so a graph there."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(warp, static_argnums=3)
    import tensorflow as tf

    return tf.function(warp, jit_compile=False, reduce_retracing=True)
