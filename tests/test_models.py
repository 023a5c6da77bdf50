from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from xrayhpc.backbones import BACKBONES, keras_models_dir
from xrayhpc.errors import UserError
from xrayhpc.study.models import FEATURE_LAYER, build_backbone, build_head


def test_head_is_the_reports_with_a_named_feature_layer() -> None:
    head = build_head((2, 2, 512), (256, 256), (0.5, 0.25), classes=4, seed=0)
    names = [type(layer).__name__ for layer in head.layers]
    assert names == ["Flatten", "Dense", "Dropout", "Dense", "Dropout", "Dense"]
    assert head.layers[1].name == FEATURE_LAYER
    assert head.output_shape == (None, 4)
    assert build_head((2, 2, 512), (256,), (0.5,), classes=2, seed=0).output_shape == (None, 1)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_builds_without_weights(name: str) -> None:
    size = max(BACKBONES[name].min_size, 32)
    model = build_backbone(name, size, "none")
    assert model.output_shape[0] is None and len(model.output_shape) == 4


def _legacy_h5(model, path: Path) -> None:
    """Write weights the way the ImageNet files are stored (Keras 2 HDF5 layout)."""
    from keras.src.legacy.saving import legacy_h5_format

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


def test_imagenet_weights_load_from_a_pre_placed_file() -> None:
    """A file in $KERAS_HOME/models is used as it is: no md5 check, no download, not deleted."""
    source = build_backbone("vgg16", 32, "none")
    file = keras_models_dir() / BACKBONES["vgg16"].weights_file(32)
    _legacy_h5(source, file)
    loaded = build_backbone("vgg16", 32, "imagenet")
    for a, b in zip(source.get_weights(), loaded.get_weights(), strict=True):
        assert np.array_equal(a, b)
    assert file.is_file()


def test_weights_from_a_path() -> None:
    source = build_backbone("mobilenet", 32, "none")
    file = keras_models_dir().parent / "mine.weights.h5"
    file.parent.mkdir(parents=True, exist_ok=True)
    source.save_weights(file)
    loaded = build_backbone("mobilenet", 32, str(file))
    assert np.array_equal(source.get_weights()[0], loaded.get_weights()[0])


def test_missing_imagenet_weights_name_the_file_and_the_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    import keras.src.utils.file_utils as file_utils

    def offline(*args: object, **kwargs: object) -> None:
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3]")

    monkeypatch.setattr(file_utils, "get_file", offline)  # no network in tests, whatever the host has
    with pytest.raises(UserError) as err:
        build_backbone("mobilenet", 224, "imagenet")
    message = str(err.value)
    assert "mobilenet_1_0_224_tf_no_top.h5" in message
    assert str(keras_models_dir()) in message
    assert 'weights = "none"' in message


@pytest.mark.parametrize("classes", [2, 4])
def test_the_compiled_head_steps_train_exactly_as_keras_fit(classes: int) -> None:
    """The head-only path's own epoch loop gives fit()'s history and weights: the same batches (a
    shorter last one included), dropout masks, optimizer state and batch-weighted metrics."""
    import keras

    from xrayhpc.study.training import HeadSteps

    def head() -> keras.Model:
        keras.utils.set_random_seed(0)
        model = build_head((3, 3, 8), (16, 16), (0.5, 0.25), classes, 0)
        loss = "binary_crossentropy" if classes == 2 else "categorical_crossentropy"
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, metrics=["accuracy"], jit_compile=True)
        return model

    rng = np.random.default_rng(1)
    x = rng.standard_normal((23, 3, 3, 8)).astype(np.float32)
    labels = rng.integers(0, classes, 23)
    y = labels.reshape(-1, 1).astype(np.float32) if classes == 2 else np.eye(classes, dtype=np.float32)[labels]
    by_fit, by_steps = head(), head()
    steps = HeadSteps(by_steps, jit_compile=True)
    for _ in range(3):
        fitted = by_fit.fit(x, y, batch_size=5, epochs=1, shuffle=False, validation_data=(x[:7], y[:7]), verbose=0)
        record = steps.epoch(x, y, 5, (x[:7], y[:7]))
        assert record == pytest.approx({k: v[-1] for k, v in fitted.history.items()}, rel=1e-6)
    for a, b in zip(by_fit.get_weights(), by_steps.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
