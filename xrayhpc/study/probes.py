"""What a trained model looks at: Grad-CAM's share in a region, and the test set again with parts
of each image taken away.

An accuracy cannot say whether it comes from the lungs: on this dataset the file's source already
tells the classes apart. The probes can: a model that keeps its accuracy with the centre (or the
lungs) hidden is using something else, and the sentence each probe record carries says which part.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xrayhpc.errors import UserError
from xrayhpc.experiment import TASKS, Experiment
from xrayhpc.schema import Probes, ProbeScore, RegionShare, write_atomic
from xrayhpc.stats import summary, wilson
from xrayhpc.study import gradcam, plots
from xrayhpc.study.data import Dataset
from xrayhpc.study.evaluate import image_losses
from xrayhpc.study.regions import Regions, hide, normalise
from xrayhpc.study.regions import regions as regions_of

GRADCAM_MAPS = "gradcam.npz"
GRADCAM_PNG = "gradcam.png"

Predict = Callable[[np.ndarray], np.ndarray]  # uint8 images -> class probabilities (N, classes)


@dataclass
class Looked:
    """A probe run's record, and the Grad-CAM maps behind it (feature-map size, and image size)."""

    record: Probes
    cams: np.ndarray
    upsampled: np.ndarray
    explained: np.ndarray  # the class each map explains: the predicted one
    probs: np.ndarray  # the original test images' class probabilities
    regions: Regions


def _paired(base: np.ndarray, probed: np.ndarray, low: float, high: float) -> tuple[float, float | None, float | None]:
    """(mean of probed - base, and its 95% t-interval clipped to [low, high]); no interval under 2 images."""
    d = probed.astype(np.float64) - base.astype(np.float64)
    if len(d) < 2:
        return (float(d.mean()) if len(d) else 0.0), None, None
    s = summary(list(d))
    clip = lambda v: float(min(high, max(low, v)))  # noqa: E731
    return float(s.mean), clip(s.low), clip(s.high)


def _score(
    key: str, shown: str, probs: np.ndarray, labels: np.ndarray, base: tuple[np.ndarray, np.ndarray]
) -> ProbeScore:
    hits, losses = (probs.argmax(1) == labels), image_losses(probs, labels)
    change, low, high = _paired(base[0], hits, -1.0, 1.0)
    loss_change, loss_low, loss_high = _paired(base[1], losses, -1e6, 1e6)
    return ProbeScore(
        probe=key,
        shown=shown,
        accuracy=float(hits.mean()) if len(hits) else 0.0,
        loss=float(losses.mean()) if len(losses) else 0.0,
        accuracy_change=change,
        accuracy_low=low,
        accuracy_high=high,
        loss_change=loss_change,
        loss_low=loss_low,
        loss_high=loss_high,
    )


def _share(label: str, values: np.ndarray) -> RegionShare:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return RegionShare(label, 0, None, None, None)
    s = summary(list(values.astype(np.float64)))
    low, high = (None, None) if len(values) < 2 else (max(0.0, s.low), min(1.0, s.high))
    return RegionShare(label, len(values), float(s.mean), low, high)


def _falls(score: ProbeScore) -> bool:
    """The accuracy falls beyond its noise: the paired interval of the change lies below zero."""
    return score.accuracy_high is not None and score.accuracy_high < 0


def _pct(v: float | None) -> str:
    return "?" if v is None else f"{v:.0%}"


def verdicts(
    accuracy: float,
    correct: int,
    count: int,
    chance: float,
    scores: dict[str, ProbeScore],
    share: RegionShare,
    area: float,
    region: str,
    outside: str,
) -> tuple[str, str, str]:
    """(what the probes say, what Grad-CAM's share says, the sentence): each verdict is the region's
    name, the rest's, `both`, `neither`, or `chance` for a model no better than the majority class."""
    if wilson(correct, count)[0] <= chance:
        sentence = (
            f"at {accuracy:.2f} on the original images it is not clearly better than the majority class "
            f"({chance:.2f}): there is nothing to probe"
        )
        return "chance", "chance", sentence
    hidden, only = _falls(scores["hidden"]), _falls(scores["only"])
    verdict = {(True, False): region, (False, True): outside, (True, True): "both"}.get((hidden, only), "neither")
    said = {
        region: f"it uses the {region}, not the {outside}",
        outside: f"it uses the {outside}, not the {region}",
        "both": f"it needs the {region} and the {outside} alike",
        "neither": f"hiding either leaves it within its noise: the {region} alone or the {outside} alone suffices",
    }[verdict]
    looks = "neither"
    if share.low is not None and share.high is not None:
        looks = region if share.low > area else outside if share.high < area else "neither"
    normalised = scores["normalised"]
    sentence = (
        f"accuracy {accuracy:.2f}; with the {region} hidden {scores['hidden'].change()}, with only the {region} shown "
        f"{scores['only'].change()}: {said}. Grad-CAM puts {_pct(share.share)} "
        f"({_pct(share.low)} to {_pct(share.high)}) of its mass in the {region}, which is {area:.0%} of the image"
        + (" (more than its area)" if looks == region else " (less than its area)" if looks == outside else "")
        + f". Normalised (grey, equalised) {normalised.change()}"
        + (": the file's colour or contrast carried part of it" if _falls(normalised) else "")
        + "."
    )
    return verdict, looks, sentence


def finite(probs: np.ndarray, ident: str) -> np.ndarray:
    """`probs`, or UserError where the model gave NaN or infinity (its weights are damaged)."""
    if not np.isfinite(probs).all():
        raise UserError(f"{ident}: the model's predictions are not finite (NaN or inf): its weights are damaged")
    return probs


def probe(
    predict: Predict,
    probs: np.ndarray,
    explain: Callable[[np.ndarray, np.ndarray], np.ndarray],
    images: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    regions: Regions,
    ident: tuple[str, str],
    log: Callable[[str], None] = print,
) -> Looked:
    """Grad-CAM of every test image (`explain(images, classes)`) and the three probes beside the
    original's `probs`; `ident` is the run's (id, fingerprint)."""
    start = time.perf_counter()
    explained = finite(probs, ident[0]).argmax(1)  # each map explains the predicted class
    base = (explained == labels, image_losses(probs, labels))
    log(f"Grad-CAM of {len(images)} test images")
    cams = explain(images, explained)
    up = gradcam.upsampled(cams, images.shape[1])
    per_image = gradcam.shares(up, regions.inside)
    region, outside = regions.name, regions.outside
    probes = {
        "hidden": (f"{region} hidden", hide(images, regions.inside)),
        "only": (f"only the {region} shown", hide(images, ~regions.inside)),
        "normalised": ("normalised (grey, equalised)", normalise(images)),
    }
    scores = {}
    for key, (shown, probed) in probes.items():
        log(f"probe: the test set, {shown}")
        scores[key] = _score(key, shown, finite(predict(probed), ident[0]), labels, base)
    shares = [_share("all", per_image)] + [_share(c, per_image[labels == i]) for i, c in enumerate(classes)]
    chance = float(np.bincount(labels, minlength=len(classes)).max() / max(1, len(labels)))
    accuracy = float(base[0].mean()) if len(labels) else 0.0
    verdict, looks, sentence = verdicts(
        accuracy, int(base[0].sum()), len(labels), chance, scores, shares[0], regions.area, region, outside
    )
    record = Probes(
        id=ident[0],
        fingerprint=ident[1],
        region=region,
        outside=outside,
        area=regions.area,
        images=len(labels),
        accuracy=accuracy,
        loss=float(base[1].mean()) if len(labels) else 0.0,
        chance=chance,
        probes=list(scores.values()),
        shares=shares,
        verdict=verdict,
        gradcam_verdict=looks,
        sentence=sentence,
        seconds=round(time.perf_counter() - start, 3),
    )
    log(f"what it looks at: {sentence}")
    return Looked(record, cams, up, explained, probs, regions)


def run(
    exp: Experiment,
    models: Any,
    data: Dataset,
    log: Callable[[str], None],
    probs: np.ndarray | None = None,
    ident: tuple[str, str] | None = None,
) -> Looked:
    """Grad-CAM and the probes of a trained model on its test set (the test probabilities where the
    caller has them already); `ident` is the run's (id, fingerprint), the experiment's by default."""
    from xrayhpc.study import training
    from xrayhpc.study.models import preprocess

    test = data.test
    probs = training.predict(exp, models, test.images) if probs is None else probs

    def explain(images: np.ndarray, classes: np.ndarray) -> np.ndarray:
        inputs = preprocess(exp.backbone, exp.preprocessing, images)
        return gradcam.maps(models.backbone, models.head, inputs, classes)

    return probe(
        lambda images: training.predict(exp, models, images),
        probs,
        explain,
        test.images,
        test.labels,
        data.classes,
        regions_of(test.files, exp.image_size, exp.masks, TASKS[exp.task]),
        ident or (exp.id, exp.fingerprint),
        log,
    )


def write(folder: Path, exp: Experiment, looked: Looked, data: Dataset) -> None:
    """gradcam.npz (the maps, files, classes), gradcam.png, then probes.json, each whole."""
    test = data.test
    confidence = looked.probs.max(axis=1)

    def npz(f: Any) -> None:
        np.savez_compressed(
            f,
            maps=looked.cams,
            files=np.array(test.files, dtype=str),
            labels=test.labels,
            predicted=looked.explained,
            confidence=confidence.astype(np.float32),
            classes=np.array(data.classes, dtype=str),
        )

    write_atomic(folder / GRADCAM_MAPS, npz)
    wrong = looked.explained != test.labels
    order = np.argsort(~wrong, kind="stable")
    captions = [
        f"{data.classes[t]} as {data.classes[p]} {c:.2f}"
        for t, p, c in zip(test.labels, looked.explained, confidence, strict=True)
    ]
    plots.gradcam_png(
        test.images,
        looked.upsampled,
        looked.regions.inside,
        captions,
        order,
        f"{exp.id}: Grad-CAM of the predicted class; white: the {looked.regions.name}",
        folder / GRADCAM_PNG,
    )
    looked.record.write(folder)
