"""The backbones the study knows and where their ImageNet weight files come from: names and facts only.

Shared by the grid's validation, the weight fetcher, the doctor and the model builder, so that none
of the first three needs Keras or the study's code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications"


@dataclass(frozen=True)
class Backbone:
    """Where a backbone lives in keras.applications and where its ImageNet file comes from.

    `folder` is the file's folder under WEIGHTS_URL and `md5` the hash Keras checks (None where
    Keras checks none), both as in keras.applications' own sources.
    """

    module: str
    constructor: str
    notop_file: str
    folder: str
    md5: str | None = None
    min_size: int = 32

    def weights_file(self, image_size: int) -> str:
        return self.notop_file.format(size=image_size)

    def weights_url(self, image_size: int, base: str = WEIGHTS_URL) -> str:
        return f"{base.rstrip('/')}/{self.folder}/{self.weights_file(image_size)}"


BACKBONES: dict[str, Backbone] = {
    "vgg16": Backbone(
        "vgg16",
        "VGG16",
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "vgg16",
        "6d6bbae143d832006294945121d1f1fc",
    ),
    "vgg19": Backbone(
        "vgg19",
        "VGG19",
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "vgg19",
        "253f8cb515780f3b799900260a226db6",
    ),
    "resnet50": Backbone(
        "resnet50",
        "ResNet50",
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "resnet",
        "4d473c1dd8becc155b73f8504c6f6626",
    ),
    "inception_v3": Backbone(
        "inception_v3",
        "InceptionV3",
        "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "inception_v3",
        "bcbd6486424b2319ff4ef7d526e38f63",
        min_size=75,
    ),
    "mobilenet": Backbone("mobilenet", "MobileNet", "mobilenet_1_0_{size}_tf_no_top.h5", "mobilenet"),
    "mobilenet_v2": Backbone(
        "mobilenet_v2",
        "MobileNetV2",
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5",
        "mobilenet_v2",
    ),
}


def keras_models_dir() -> Path:
    """Where Keras keeps downloaded weights ($KERAS_HOME/models, else ~/.keras/models)."""
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser().resolve()  # yours to link
    return home / "models"
