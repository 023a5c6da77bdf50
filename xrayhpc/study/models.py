"""Backbones from keras.applications, their ImageNet weight files, and the study's head.

Keras is imported inside the functions: the grid, the dispatcher and the status table only need
the names, and the worker must choose its device before the backend starts.
"""

from __future__ import annotations

import importlib
import socket
from typing import TYPE_CHECKING, Any

from xrayhpc.backbones import BACKBONES, keras_models_dir
from xrayhpc.errors import UserError

if TYPE_CHECKING:
    import keras

FEATURE_LAYER = "features"
DOWNLOAD_TIMEOUT_S = 60


def resolve_weights(name: str, weights: str, image_size: int) -> str | None:
    """Turn the experiment's `weights` into what keras.applications takes.

    A pre-placed ImageNet file is passed as a path: Keras would otherwise check its md5, try to
    download it again and delete it when that fails.
    """
    if weights == "none":
        return None
    if weights != "imagenet":
        return weights
    spec = BACKBONES[name]
    cached = keras_models_dir() / spec.weights_file(image_size)
    if cached.is_file():
        return str(cached)
    return "imagenet"


def _missing_weights(name: str, image_size: int, err: BaseException) -> UserError:
    spec = BACKBONES[name]
    file = spec.weights_file(image_size)
    return UserError(
        f'weights = "imagenet" for {name}: {file} is not in {keras_models_dir()} and could not '
        f"be downloaded ({type(err).__name__}: {str(err).splitlines()[0][:120]}); on a machine "
        "with internet (an SCC login node) run `make weights GRID=<your grid>` (python -m xrayhpc.weights), "
        f"or fetch {spec.weights_url(image_size)} into that folder yourself (KERAS_HOME moves it), "
        'or use weights = "none" or a file path'
    )


def build_backbone(name: str, image_size: int, weights: str, precision: str = "float32") -> keras.Model:
    """The backbone without its top, loading ImageNet weights or failing with the fix.

    `precision = "bfloat16"` builds it under Keras's mixed_bfloat16 policy (float32 weights,
    bfloat16 arithmetic, also when it trains); what is built after it stays float32.
    """
    import keras

    spec = BACKBONES[name]
    module = importlib.import_module(f"keras.applications.{spec.module}")
    constructor = getattr(module, spec.constructor)
    source = resolve_weights(name, weights, image_size)
    # Keras downloads have no timeout of their own: a silent server would hang the job.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    try:
        return constructor(include_top=False, weights=source, input_shape=(image_size, image_size, 3))
    except Exception as err:  # Keras raises a bare Exception for a failed fetch
        if source == "imagenet":
            raise _missing_weights(name, image_size, err) from None
        if source is not None:
            raise UserError(f"weights = {source!r}: cannot be loaded into {name}: {err}") from None
        raise
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
        socket.setdefaulttimeout(previous)


def preprocess(name: str, mode: str, images: Any) -> Any:
    """uint8 images -> the model's float input: the template's 1/255, or the backbone's own. Also
    takes a float32 tensor of images inside a compiled function (a GPU job's fused feature step)."""
    import numpy as np

    x = images.astype(np.float32) if isinstance(images, np.ndarray) else images
    if mode == "rescale":
        return x / np.float32(255.0)
    module = importlib.import_module(f"keras.applications.{BACKBONES[name].module}")
    return module.preprocess_input(x)


def build_head(
    input_shape: tuple[int, ...],
    units: tuple[int, ...],
    dropouts: tuple[float, ...],
    classes: int,
    seed: int,
) -> keras.Model:
    """Flatten, then Dense+Dropout per layer, then sigmoid (2 classes) or softmax.

    The first Dense layer is named `features`: t-SNE is drawn from it.
    """
    import keras

    layers: list[Any] = [keras.Input(input_shape), keras.layers.Flatten()]
    for i, (width, rate) in enumerate(zip(units, dropouts, strict=True)):
        layers.append(keras.layers.Dense(width, activation="relu", name=FEATURE_LAYER if i == 0 else None))
        layers.append(keras.layers.Dropout(rate, seed=seed + i))
    if classes == 2:
        layers.append(keras.layers.Dense(1, activation="sigmoid"))
    else:
        layers.append(keras.layers.Dense(classes, activation="softmax"))
    return keras.Sequential(layers, name="head")


def forward_flops(model: keras.Model) -> int:
    """Floating-point operations of one forward pass of one image (2 per multiply-add)."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            _, h, w, _ = layer.output.shape
            kh, kw = layer.kernel_size
            total += 2 * h * w * kh * kw * layer.input.shape[-1] * layer.depth_multiplier
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            total += 2 * h * w * kh * kw * layer.input.shape[-1] * c_out // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return int(total)
