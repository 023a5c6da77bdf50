from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import python_c
from xrayhpc.study.augment import Augmentation, augment


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


def test_the_device_path_applies_the_same_transforms() -> None:
    """Fed the same draws, TensorFlow's warp and scipy's agree but for bilinear sampling at the border."""
    pytest.importorskip("tensorflow")
    from xrayhpc.study.augment import augment_on_device

    rng = np.random.default_rng(1)
    smooth = np.kron(rng.integers(0, 255, (6, 8, 8, 3)), np.ones((1, 8, 8, 1))).astype(np.uint8)  # 64 px, 8 px blocks
    for seed in range(3):
        cpu = augment(smooth, seed)
        device = np.asarray(augment_on_device(smooth, seed))
        assert device.shape == cpu.shape and device.dtype == np.float32
        diff = np.abs(device - cpu)
        assert np.median(diff) < 0.5 and np.mean(diff) < 3.0, (seed, np.median(diff), np.mean(diff))
        # scipy blends the last pixel before the fill with the fill value, TensorFlow fills it: the two
        # differ on a one-pixel band where the picture meets the fill (about 2% of a 64 px image)
        assert np.mean(diff > 20) < 0.04
    other = np.asarray(augment_on_device(smooth, 99))
    assert np.mean(np.abs(other - augment(smooth, 0))) > 20  # another seed is another transform


@pytest.mark.slow
def test_the_jax_warp_applies_the_same_transforms_in_batches() -> None:
    """Under JAX the warp is one XLA program per batch shape; the same bounds against scipy hold."""
    pytest.importorskip("jax")
    code = (
        "import numpy as np\nfrom xrayhpc.study.augment import augment, augment_on_device\n"
        "rng = np.random.default_rng(1)\n"
        "smooth = np.kron(rng.integers(0, 255, (6, 8, 8, 3)), np.ones((1, 8, 8, 1))).astype(np.uint8)\n"
        "whole, batched = augment_on_device(smooth, 4), augment_on_device(smooth, 4, batch=4)\n"
        "diff = np.abs(whole - augment(smooth, 4))\n"
        "print(np.allclose(whole, batched, atol=1e-3), np.median(diff) < 0.5, np.mean(diff) < 3.0, np.mean(diff > 20) < 0.04)\n"
    )
    out = python_c(code, {"KERAS_BACKEND": "jax"}, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True"] * 4


def test_a_gpu_run_feeds_the_model_device_transforms(synthetic: Path) -> None:
    """The head-only path of a GPU experiment trains on the device's transforms, warped, preprocessed
    and passed through the backbone in one compiled call (the same features as the three steps apart,
    to float32 rounding); a CPU one on scipy's."""
    pytest.importorskip("tensorflow")
    from xrayhpc.experiment import Experiment
    from xrayhpc.study import training
    from xrayhpc.study.augment import augment_on_device
    from xrayhpc.study.data import load_dataset

    data = load_dataset(synthetic / "two", 32, "nearest", 0.2, log=lambda _: None)
    settings = dict(task="binary", backbone="vgg16", data=str(synthetic), image_size=32, weights="none", augment=True)
    for device, augmented in (("gpu", augment_on_device), ("cpu", augment)):
        exp = Experiment(device=device, **settings)
        models = training.build(exp, 2)
        feed = training.Feed(exp, data, models, {"features": 0.0, "augment": 0.0}, None)
        expected = training.backbone_features(exp, models, np.asarray(augmented(data.train.images, exp.seed * 100_003)))
        assert training.augments_on_device(exp) == (device == "gpu")
        got = feed.train(0)
        assert (feed.fused is not None) == (device == "gpu")
        if device == "gpu":
            assert np.allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
        else:
            assert np.array_equal(got, expected)
