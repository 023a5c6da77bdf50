from __future__ import annotations

import numpy as np

from xrayhpc.augment import Augmentation, augment


def images() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)


def test_same_seed_same_transforms_other_seed_others() -> None:
    x = images()
    a, b, c = augment(x, 1), augment(x, 1), augment(x, 2)
    assert a.shape == x.shape and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    assert not np.allclose(a, x)


def test_identity_settings_leave_images_alone() -> None:
    x = images()
    none = Augmentation(rotation=0, shift=0, shear=0, zoom=0, channel_shift=0, flips=False)
    assert np.allclose(augment(x, 0, none), x, atol=1e-3)


def test_rotation_fills_corners_with_the_constant() -> None:
    x = np.full((1, 32, 32, 3), 200, np.uint8)
    turned = Augmentation(rotation=45, shift=0, shear=0, zoom=0, channel_shift=0, flips=False)
    out = [augment(x, s, turned)[0] for s in range(8)]
    assert any(o[0, 0, 0] == 0 for o in out)  # a corner rotated in from outside is black
    assert all(o[16, 16, 0] == 200 for o in out)  # the centre stays


def test_a_grey_image_is_transformed_like_the_same_picture_in_colour() -> None:
    rng = np.random.default_rng(3)
    grey = np.repeat(rng.integers(0, 255, (1, 32, 32, 1), dtype=np.uint8), 3, axis=-1)
    colour = grey.copy()
    colour[0, 16, 16, 2] += 1  # no longer grey: each channel is transformed on its own
    a, b = augment(grey, 5)[0], augment(colour, 5)[0]
    assert np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 0], a[..., 2])
    assert np.allclose(a, b, atol=1.01) and not np.allclose(a, augment(grey, 6)[0], atol=1.01)
    colour[..., 2] = 255 - colour[..., 2]
    inverted = augment(colour, 5)[0]
    assert not np.allclose(inverted[..., 2], inverted[..., 0], atol=50)
