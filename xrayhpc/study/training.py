"""Build the model and train it, one epoch at a time, with the best-validation checkpoint.

Two paths give the same model. The plain path trains backbone+head on images, as the course
template does. With a frozen backbone the head-only path runs the backbone in large batches (once,
or once per epoch when augmenting) and trains the head on the features: the batches, their order,
the dropout masks and the initial weights are the same, so only float rounding differs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from xrayhpc.experiment import Experiment
from xrayhpc.signals import WARNING_SIGNALS, Held, handled
from xrayhpc.study.augment import TEMPLATE, augment, augment_on_device, device_draws, warp
from xrayhpc.study.checkpoint import Checkpoint, TrainState
from xrayhpc.study.data import Dataset
from xrayhpc.study.models import FEATURE_LAYER, build_backbone, build_head, preprocess

BACKBONE_BATCH = 32


@dataclass
class Models:
    backbone: keras.Model
    head: keras.Model
    full: keras.Model


@dataclass
class Training:
    """What training produced: per-epoch history, the epoch kept, and where the time went."""

    history: list[dict[str, float]]
    best_epoch: int
    seconds: dict[str, float] = field(default_factory=dict)
    runs: int = 1
    resumed_from: int = 0
    devices: list[str] = field(default_factory=list)  # each run's device (checkpoint.TrainState)


EpochHook = Callable[[int, list[dict[str, float]]], None]  # the epoch done, every epoch's record so far


def build(exp: Experiment, classes: int) -> Models:
    """Backbone, head and the two joined, with initial weights fixed by the seed (the backbone in
    the experiment's precision, the head in float32)."""
    keras.utils.set_random_seed(exp.seed)
    backbone = build_backbone(exp.backbone, exp.image_size, exp.weights, exp.precision)
    backbone.trainable = exp.trainable_backbone
    backbone.compile(jit_compile=compiled(exp, exp.backbone_jit_compile))  # what its predict_on_batch() runs with
    keras.utils.set_random_seed(exp.seed)
    head = build_head(backbone.output_shape[1:], exp.head_units, exp.dropouts, classes, exp.seed)
    inputs = keras.Input((exp.image_size, exp.image_size, 3))
    full = keras.Model(inputs, head(backbone(inputs)), name=f"{exp.backbone}_study")
    return Models(backbone, head, full)


def compiled(exp: Experiment, tensorflow_choice: bool) -> bool:
    """Whether Keras compiles the steps: on TensorFlow as measured there (Experiment.jit_compile);
    under JAX always, unless `xla = "off"` says otherwise, since Keras's JAX trainer without
    jit_compile runs each step op by op (keras/src/backend/jax/trainer.py)."""
    return tensorflow_choice if keras.backend.backend() == "tensorflow" else exp.xla != "off"


def equal_batch(n: int, most: int) -> int:
    """The size of equal batches of at most `most` that cover n items in the fewest batches."""
    return -(-n // -(-n // most))


def run_batched(model: keras.Model, x: np.ndarray, batch: int = BACKBONE_BATCH) -> np.ndarray:
    """Inference in fixed-size batches (predict() on small arrays stalls intermittently).

    The last batch is padded to full size so the compiled function is traced once.
    """
    n = len(x)
    if n == 0:
        return np.zeros((0, *model.output_shape[1:]), dtype=np.float32)
    batch = equal_batch(n, batch)  # the least padding
    out = []
    for i in range(0, n, batch):
        chunk = x[i : i + batch]
        if len(chunk) < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - len(chunk), *x.shape[1:]), x.dtype)])
        out.append(keras.ops.convert_to_numpy(model.predict_on_batch(chunk)).astype(np.float32))
    return np.concatenate(out)[:n]


def targets(labels: np.ndarray, classes: int) -> np.ndarray:
    if classes == 2:
        return labels.astype(np.float32).reshape(-1, 1)
    return np.eye(classes, dtype=np.float32)[labels]


def _inputs(exp: Experiment, images: np.ndarray) -> np.ndarray:
    return preprocess(exp.backbone, exp.preprocessing, images)


def feature_model(models: Models) -> keras.Model:
    """Backbone features -> the head's feature layer (what t-SNE draws)."""
    return keras.Model(models.head.inputs, models.head.get_layer(FEATURE_LAYER).output)


def backbone_features(exp: Experiment, models: Models, images: np.ndarray) -> np.ndarray:
    return run_batched(models.backbone, _inputs(exp, images))


def backbone_features_of(exp: Experiment, models: Models, sets: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Several image sets in one pass: one compiled batch shape, the least padding."""
    out = backbone_features(exp, models, np.concatenate(list(sets.values())))
    ends = np.cumsum([len(v) for v in sets.values()])
    return dict(zip(sets, np.split(out, ends[:-1]), strict=True))


def trained_variables(exp: Experiment, models: Models) -> list[Any]:
    """What training changes: the head's variables, or all of them when the backbone trains too."""
    return (models.full if exp.trainable_backbone else models.head).variables


def train(
    exp: Experiment,
    data: Dataset,
    models: Models,
    on_epoch: EpochHook,
    cached_features: dict[str, np.ndarray] | None = None,
    checkpoint: Checkpoint | None = None,
) -> Training:
    """Train for exp.epochs epochs; keep the best-validation weights when asked.

    `cached_features` (head-only path) holds the backbone's output for `train` and `val` when the
    caller computed it already; with augmentation the train features are recomputed each epoch.
    With a `checkpoint`, training resumes from its saved epoch and saves as it goes; the
    scheduler's wall-time warning is held until the epoch ends and the state is saved.
    """
    model = models.head if exp.head_only else models.full
    model.compile(
        optimizer=keras.optimizers.Adam(exp.learning_rate),
        loss="binary_crossentropy" if len(data.classes) == 2 else "categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=compiled(exp, exp.jit_compile),
    )
    state = TrainState(seconds={"features": 0.0, "augment": 0.0, "fit": 0.0})
    if checkpoint:
        model.optimizer.build(model.trainable_variables)
        checkpoint.attach(trained_variables(exp, models), model.optimizer.variables)
        state = checkpoint.load() or state
    if state.epoch >= exp.epochs:
        return _finish(model, state)
    feed = Feed(exp, data, models, state.seconds, cached_features)
    head_steps = (
        HeadSteps(model, exp.jit_compile) if exp.head_only and keras.backend.backend() == "tensorflow" else None
    )
    with Held(handled(WARNING_SIGNALS) if checkpoint else []) as warning:
        for epoch in range(state.epoch, exp.epochs):
            record = _fit_epoch(exp, model, head_steps, feed, epoch)
            _keep(exp, state, model, record)
            if checkpoint:
                checkpoint.save(state, force=warning.pending is not None or state.epoch == exp.epochs)
            on_epoch(epoch + 1, state.history)
            if checkpoint and warning.pending is not None:
                checkpoint.log(
                    f"wall-time warning: state saved at epoch {state.epoch}; the job hands over to be requeued"
                )
                break  # leaving the block hands the warning to the scheduler's handler: requeue
    return _finish(model, state)


class Feed:
    """What the model trains on: images, or a frozen backbone's features of them, cached wherever
    nothing changes them from one epoch to the next; the seconds it spends go to `seconds`."""

    def __init__(
        self,
        exp: Experiment,
        data: Dataset,
        models: Models,
        seconds: dict[str, float],
        cached: dict[str, np.ndarray] | None,
    ) -> None:
        self.exp, self.data, self.models, self.seconds = exp, data, models, seconds
        self.cached = dict(cached or {})
        classes = len(data.classes)
        self.y = targets(data.train.labels, classes)
        self.val = None
        if len(data.val):
            if "val" not in self.cached:
                self.cached["val"] = self.inputs(data.val.images)
            self.val = (self.cached["val"], targets(data.val.labels, classes))
        if not exp.augment and "train" not in self.cached:
            self.cached["train"] = self.inputs(data.train.images)
        fuse = exp.head_only and augments_on_device(exp) and keras.backend.backend() == "tensorflow"
        self.fused = DeviceFeatures(exp, models, data.train.images) if fuse else None

    def inputs(self, images: np.ndarray) -> np.ndarray:
        if not self.exp.head_only:
            return _inputs(self.exp, images)
        start = time.perf_counter()
        out = backbone_features(self.exp, self.models, images)
        self.seconds["features"] += time.perf_counter() - start
        return out

    def train(self, epoch: int) -> np.ndarray:
        """This epoch's training inputs: fresh transforms when augmenting."""
        if not self.exp.augment:
            return self.cached["train"]
        start = time.perf_counter()
        seed = self.exp.seed * 100_003 + epoch
        if self.fused:
            out = self.fused(seed)
            self.seconds["features"] += time.perf_counter() - start  # the transforms run inside
            return out
        if augments_on_device(self.exp):
            images = self.data.train.images
            images = augment_on_device(images, seed, batch=equal_batch(len(images), BACKBONE_BATCH))
        else:
            images = augment(self.data.train.images, seed=seed)
        self.seconds["augment"] += time.perf_counter() - start
        return self.inputs(images)


class DeviceFeatures:
    """A frozen backbone's features of fresh transforms, for a GPU job: the training images go to the
    device once, and each batch is one compiled call that warps, preprocesses and runs the backbone,
    so only features come back to the host (not 224 px images there and back each epoch)."""

    def __init__(self, exp: Experiment, models: Models, images: np.ndarray) -> None:
        import tensorflow as tf

        # tf.identity under the device copies the images there once (tf.constant stays in host memory)
        with tf.device("/GPU:0" if tf.config.list_logical_devices("GPU") else "/CPU:0"):
            self.images = tf.identity(images)
        backbone, cval = models.backbone, float(TEMPLATE.cval)

        def features(batch: Any, transforms: Any, extras: Any) -> Any:
            return backbone(
                preprocess(exp.backbone, exp.preprocessing, warp(batch, transforms, extras, cval)), training=False
            )

        # without XLA: TensorFlow's projective warp has no XLA kernel (the backbone runs on cuDNN as it is)
        self.step = tf.function(features, jit_compile=False, reduce_retracing=True)

    def __call__(self, seed: int) -> np.ndarray:
        n, h, w = self.images.shape[:3]
        transforms, extras = device_draws(n, h, w, seed)
        batch = equal_batch(n, BACKBONE_BATCH)  # at most two shapes are compiled
        out = [
            self.step(self.images[i : i + batch], transforms[i : i + batch], extras[i : i + batch])
            for i in range(0, n, batch)
        ]
        return np.concatenate([keras.ops.convert_to_numpy(o).astype(np.float32) for o in out])


def augments_on_device(exp: Experiment) -> bool:
    """A GPU run transforms its images on the GPU: scipy's one CPU thread would be the whole job
    beside a GPU that runs VGG16 at thousands of images a second (under JAX one XLA program per
    batch; scipy again with `xla = "off"`). CPU runs keep scipy, which was faster there than either
    backend's warp (results/bench/jax.md)."""
    if not exp.augment or exp.device != "gpu":
        return False
    return keras.backend.backend() == "tensorflow" or exp.xla != "off"


def _fit_epoch(
    exp: Experiment, model: keras.Model, head_steps: HeadSteps | None, feed: Feed, epoch: int
) -> dict[str, float]:
    """One epoch in the seed's batch order; the epoch's metrics and seconds."""
    start = time.perf_counter()
    x = feed.train(epoch)
    order = np.random.default_rng([exp.seed, epoch]).permutation(len(x))
    t = time.perf_counter()
    if head_steps:
        record = head_steps.epoch(x[order], feed.y[order], exp.batch_size, feed.val)
    else:
        fit = model.fit(
            x[order],
            feed.y[order],
            batch_size=exp.batch_size,
            epochs=1,
            shuffle=False,
            validation_data=feed.val,
            verbose=0,
        )
        record = {k: float(v[-1]) for k, v in fit.history.items()}
    feed.seconds["fit"] += time.perf_counter() - t
    record["seconds"] = time.perf_counter() - start
    return record


def _keep(exp: Experiment, state: TrainState, model: keras.Model, record: dict[str, float]) -> None:
    """The epoch into the history, and its weights when they are the best by the checkpoint's measure."""
    state.history.append(record)
    state.epoch += 1
    if exp.checkpoint != "last":
        value = (-1.0 if exp.checkpoint == "val_loss" else 1.0) * record[exp.checkpoint]
        if state.best_value is None or value > state.best_value:
            state.best_epoch, state.best_value = state.epoch, value
            state.best_weights = model.get_weights()


class HeadSteps:
    """The head's training and validation steps as compiled TensorFlow functions, one batch a call.

    They do what fit() does with the compiled model, loss and optimizer (the same batches, dropout
    masks, optimizer state and the same history), without fit()'s per-epoch and per-step
    machinery: 40 epochs of the Task 1 head took half the time of fit()'s on this CPU.
    """

    def __init__(self, model: keras.Model, jit_compile: bool) -> None:
        import tensorflow as tf

        loss = keras.losses.get(model.loss)
        binary = model.output_shape[-1] == 1
        variables = model.trainable_variables
        if not model.optimizer.built:  # its variables must exist before the step is traced
            model.optimizer.build(variables)

        def scores(y: Any, p: Any) -> tuple[Any, Any]:
            """Summed loss and correct predictions of a batch (Keras's `accuracy` for this loss)."""
            hits = tf.equal(y, tf.cast(p > 0.5, y.dtype)) if binary else tf.equal(tf.argmax(y, -1), tf.argmax(p, -1))
            return tf.reduce_sum(loss(y, p)), tf.reduce_sum(tf.cast(hits, tf.float32))

        def train_step(x: Any, y: Any) -> tuple[Any, Any]:
            with tf.GradientTape() as tape:
                p = model(x, training=True)
                mean = tf.reduce_mean(loss(y, p))
            model.optimizer.apply(tape.gradient(mean, variables), variables)
            return scores(y, p)

        self.train_step = tf.function(train_step, jit_compile=jit_compile)
        self.test_step = tf.function(lambda x, y: scores(y, model(x, training=False)), jit_compile=jit_compile)

    def _run(
        self, step: Callable[[Any, Any], tuple[Any, Any]], x: np.ndarray, y: np.ndarray, batch: int
    ) -> tuple[float, float]:
        """(accuracy, mean loss) over every sample, as fit()'s batch-size-weighted means."""
        sums = np.array([[float(v) for v in step(x[i : i + batch], y[i : i + batch])] for i in range(0, len(x), batch)])
        total, correct = sums.sum(axis=0)
        return float(correct / len(x)), float(total / len(x))

    def epoch(
        self, x: np.ndarray, y: np.ndarray, batch: int, val: tuple[np.ndarray, np.ndarray] | None
    ) -> dict[str, float]:
        """One epoch over (x, y) in order, then validation: fit()'s history record."""
        record = dict(zip(("accuracy", "loss"), self._run(self.train_step, x, y, batch), strict=True))
        if val is not None:
            record.update(zip(("val_accuracy", "val_loss"), self._run(self.test_step, *val, batch), strict=True))
        return record


def _finish(model: keras.Model, state: TrainState) -> Training:
    if state.best_weights is not None:
        model.set_weights(state.best_weights)
    return Training(
        state.history,
        state.best_epoch or len(state.history),
        state.seconds,
        state.runs,
        state.resumed_from,
        state.devices,
    )


def predict(exp: Experiment, models: Models, images: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
    """Class probabilities, shape (N, classes) also for the binary sigmoid."""
    if exp.head_only:
        if features is None:
            features = backbone_features(exp, models, images)
        out = run_batched(models.head, features)
    else:
        out = run_batched(models.full, _inputs(exp, images))
    return np.concatenate([1 - out, out], axis=1) if out.shape[1] == 1 else out


def describe(models: Models) -> dict[str, Any]:
    return {
        "backbone_parameters": int(models.backbone.count_params()),
        "head_parameters": int(models.head.count_params()),
        "trainable_parameters": int(sum(np.prod(w.shape) for w in models.full.trainable_weights)),
    }
