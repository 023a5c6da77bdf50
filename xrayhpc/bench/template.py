"""The course template's pipeline, kept as the benchmark's baseline (Task 1 and Task 2).

As the class notebooks run it: ImageDataGenerator reads and decodes the files every epoch (one
generator with validation_split=0.2, so validation is augmented too), the frozen backbone is re-run
over every image every epoch through model.fit, the CPU is forced, the best-validation weights are
kept with a ModelCheckpoint file, the test set is evaluated one image at a time, and the t-SNE
features come from a generator over the training folder.

    python -m xrayhpc.bench.template DATA_TASK_DIR OUT_JSON --epochs 40 --batch-size 5 [--no-augment]
        [--backbone mobilenet --trainable --head-units 256 256 --dropouts 0.5 0.25 --checkpoint val_accuracy]
        [--seed N]

Unseeded as the notebooks are (their generators' order fixed at 42), unless --seed: then Keras's
seed (weights, dropout) and the generators' (order, augmentation) both follow it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # the template forces the CPU
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run(
    data: Path,
    epochs: int,
    batch_size: int,
    augment: bool,
    image_size: int,
    learning_rate: float,
    backbone: str = "vgg16",
    trainable: bool = False,
    head_units: tuple[int, ...] = (256,),
    dropouts: tuple[float, ...] = (0.5,),
    checkpoint: str = "last",
    seed: int | None = None,
) -> dict:
    start = time.perf_counter()
    import numpy as np
    from sklearn.manifold import TSNE
    from tensorflow import keras
    from tensorflow.keras.preprocessing.image import ImageDataGenerator

    if seed is not None:
        keras.utils.set_random_seed(seed)
    order = 42 if seed is None else seed
    size = (image_size, image_size)
    classes = sorted(p.name for p in (data / "train").iterdir() if p.is_dir())
    mode = "binary" if len(classes) == 2 else "categorical"
    transforms = (
        dict(
            rotation_range=50,
            width_shift_range=0.2,
            height_shift_range=0.2,
            shear_range=0.25,
            zoom_range=0.1,
            channel_shift_range=20,
            horizontal_flip=True,
            vertical_flip=True,
            fill_mode="constant",
        )
        if augment
        else {}
    )
    gen = ImageDataGenerator(rescale=1.0 / 255, validation_split=0.2, **transforms)
    train, val = (
        gen.flow_from_directory(
            data / "train",
            target_size=size,
            batch_size=batch_size,
            class_mode=mode,
            subset=subset,
            shuffle=True,
            seed=order,
        )
        for subset in ("training", "validation")
    )
    constructor = {"vgg16": keras.applications.VGG16, "mobilenet": keras.applications.MobileNet}[backbone]
    base = constructor(weights=None, include_top=False, input_shape=(*size, 3))
    base.trainable = trainable
    head: list = [base, keras.layers.Flatten()]
    for i, (units, rate) in enumerate(zip(head_units, dropouts, strict=True)):
        head += [
            keras.layers.Dense(units, activation="relu", name="dense_feature" if i == 0 else None),
            keras.layers.Dropout(rate),
        ]
    head.append(
        keras.layers.Dense(1, activation="sigmoid")
        if mode == "binary"
        else keras.layers.Dense(len(classes), activation="softmax")
    )
    model = keras.Sequential(head)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=f"{mode}_crossentropy", metrics=["accuracy"])
    with tempfile.TemporaryDirectory() as tmp:
        best = Path(tmp) / "best.weights.h5"
        callbacks = (
            []
            if checkpoint == "last"
            else [
                keras.callbacks.ModelCheckpoint(best, monitor=checkpoint, save_best_only=True, save_weights_only=True)
            ]
        )
        t = time.perf_counter()
        model.fit(train, validation_data=val, epochs=epochs, verbose=0, callbacks=callbacks)
        if callbacks:
            model.load_weights(best)
        train_s = time.perf_counter() - t

    t = time.perf_counter()
    test = ImageDataGenerator(rescale=1.0 / 255).flow_from_directory(
        data / "test", target_size=size, batch_size=1, class_mode=mode, shuffle=True, seed=order
    )
    loss, accuracy = model.evaluate(test, steps=len(test), verbose=0)
    evaluate_s = time.perf_counter() - t

    t = time.perf_counter()
    features = keras.Model(model.inputs, model.get_layer("dense_feature").output)
    folder = ImageDataGenerator(rescale=1.0 / 255).flow_from_directory(
        data / "train", target_size=size, batch_size=1, class_mode=mode, shuffle=False
    )
    points = np.concatenate([features.predict_on_batch(folder[i][0]) for i in range(len(folder))])
    TSNE(2, perplexity=min(30.0, (len(points) - 1) / 3), init="pca").fit_transform(points)
    tsne_s = time.perf_counter() - t
    return {
        "test": {"accuracy": float(accuracy), "loss": float(loss)},
        "timing": {
            "train": train_s,
            "evaluate": evaluate_s,
            "tsne": tsne_s,
            "total": time.perf_counter() - start,
            "seconds_per_epoch": train_s / epochs,
        },
        "images": {"train": train.samples, "val": val.samples, "test": test.samples},
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m xrayhpc.bench.template", description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path, help="the task folder (two/ or all/)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--backbone", choices=("vgg16", "mobilenet"), default="vgg16")
    parser.add_argument("--trainable", action="store_true", help="train the backbone too")
    parser.add_argument("--head-units", type=int, nargs="+", default=[256])
    parser.add_argument("--dropouts", type=float, nargs="+", default=[0.5])
    parser.add_argument("--checkpoint", choices=("last", "val_accuracy", "val_loss"), default="last")
    parser.add_argument("--seed", type=int, help="seed Keras and the generators (default: the notebooks' way)")
    args = parser.parse_args()
    result = run(
        args.data,
        args.epochs,
        args.batch_size,
        not args.no_augment,
        args.image_size,
        args.learning_rate,
        args.backbone,
        args.trainable,
        tuple(args.head_units),
        tuple(args.dropouts),
        args.checkpoint,
        args.seed,
    )
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
