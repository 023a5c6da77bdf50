"""Grad-CAM: where in an image the evidence for a class lies, by the last convolutional layer.

As keras.io's "Grad-CAM class activation visualization": the gradient of the class's score with
respect to the last convolutional layer's output map, averaged over the map into one weight per
channel, the channels summed by those weights and only the positive part kept. That layer is the
backbone's last before its closing pooling (VGG16's block5_conv3: 8x8 at 128 px, where the pooled
output is 4x4 and a cell is wider than the border band). The score is the logit (before the sigmoid
or softmax), so a confident prediction, whose probability saturates at 1, still has a gradient.
The gradient goes through the backbone's tail and the head: TensorFlow's tape or jax.grad, by backend.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from PIL import Image

from xrayhpc.errors import UserError

BATCH = 32


POOLING = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)


def split(backbone: keras.Model) -> tuple[keras.Model, list[keras.layers.Layer]]:
    """(the backbone up to its last convolutional layer, the pooling layers after it)."""
    tail: list[keras.layers.Layer] = []
    layers = backbone.layers
    while layers and isinstance(layers[-1], POOLING):
        tail.insert(0, layers[-1])
        layers = layers[:-1]
    return keras.Model(backbone.inputs, layers[-1].output), tail


def _logits(tail: list[keras.layers.Layer], head: keras.Model, a: Any) -> Any:
    """The head's last layer without its activation: (N, 1) for the sigmoid, (N, classes) else."""
    x = a
    for layer in tail:
        x = layer(x)
    for layer in head.layers[:-1]:
        x = layer(x, training=False) if isinstance(layer, keras.layers.Dropout) else layer(x)
    last = head.layers[-1]
    return keras.ops.matmul(x, last.kernel) + last.bias


def _score(tail: list[keras.layers.Layer], head: keras.Model, a: Any, explained: Any) -> Any:
    """The summed scores of each image's explained class: the logit, or minus it for class 0 of the sigmoid."""
    z = keras.ops.cast(_logits(tail, head, a), "float32")
    if z.shape[-1] == 1:
        sign = keras.ops.cast(explained, z.dtype) * 2 - 1
        return keras.ops.sum(z[:, 0] * sign)
    picked = keras.ops.take_along_axis(z, keras.ops.expand_dims(explained, -1), axis=-1)
    return keras.ops.sum(picked)


def _gradient(tail: list[keras.layers.Layer], head: keras.Model, a: np.ndarray, explained: np.ndarray) -> np.ndarray:
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(a)
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = _score(tail, head, x, tf.convert_to_tensor(explained))
        return np.asarray(tape.gradient(score, x), dtype=np.float32)
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        grad = jax.grad(lambda x: _score(tail, head, x, jnp.asarray(explained)))
        return np.asarray(grad(jnp.asarray(a)), dtype=np.float32)
    raise UserError(f"Grad-CAM runs under KERAS_BACKEND=tensorflow or jax, not {backend}")


def maps(backbone: keras.Model, head: keras.Model, inputs: np.ndarray, explained: np.ndarray) -> np.ndarray:
    """Grad-CAM of each image's `explained` class from the model's preprocessed `inputs`: (N, h, w)
    float32 at the last convolutional layer's size, each map scaled to a peak of 1 (all zero where
    no evidence is positive)."""
    conv, tail = split(backbone)
    h, w = conv.output_shape[1:3]
    out = np.zeros((len(inputs), h, w), dtype=np.float32)
    for i in range(0, len(inputs), BATCH):
        a = np.asarray(keras.ops.convert_to_numpy(conv.predict_on_batch(inputs[i : i + BATCH])), dtype=np.float32)
        g = _gradient(tail, head, a, explained[i : i + BATCH].astype(np.int32))
        weights = g.mean(axis=(1, 2))  # one per channel
        out[i : i + BATCH] = np.maximum(np.einsum("nhwc,nc->nhw", a, weights), 0)
    peak = out.max(axis=(1, 2), keepdims=True)
    return np.divide(out, peak, out=np.zeros_like(out), where=peak > 0)


def upsampled(cams: np.ndarray, size: int) -> np.ndarray:
    """The maps at the image's size (bilinear), as they are drawn and as region shares are taken."""
    out = np.empty((len(cams), size, size), dtype=np.float32)
    for i, cam in enumerate(cams):
        out[i] = np.asarray(Image.fromarray(cam, "F").resize((size, size), Image.Resampling.BILINEAR))
    return np.clip(out, 0, None)


def shares(cams: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Per image, the share of its map's mass inside the region (NaN for an empty map)."""
    total = cams.sum(axis=(1, 2))
    within = (cams * inside).sum(axis=(1, 2))
    return np.divide(within, total, out=np.full_like(total, np.nan), where=total > 0)
