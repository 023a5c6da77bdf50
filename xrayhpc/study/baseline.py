"""The metadata-only control (`backbone = "metadata"`): a random forest on file facts, no anatomy.

On the course's data the classes came from different sources, so how an image is stored (colour
mode, format, size, bytes) tells them apart. This model sees only that: the same split as every
experiment (the first `validation_split` of each class is validation), the same test set, the same
result folder. An accuracy a network reaches and this reaches too says nothing about lungs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from xrayhpc.experiment import Experiment
from xrayhpc.study.audit import FileFacts, task_facts
from xrayhpc.study.data import discover

MODES = ("L", "RGB", "RGBA", "P")
FORMATS = ("JPEG", "PNG")
FEATURES = (
    "width",
    "height",
    "aspect",
    "kilobytes",
    "channel_difference",
    *(f"mode {m}" for m in MODES),
    *(f"format {f}" for f in FORMATS),
)
TREES = 300


def features(facts: list[FileFacts]) -> np.ndarray:
    return np.array(
        [
            [
                f.width,
                f.height,
                f.width / f.height,
                f.bytes / 1024,
                f.channel_difference,
                *(f.mode == m for m in MODES),
                *(f.format == k for k in FORMATS),
            ]
            for f in facts
        ],
        dtype=np.float64,
    )


@dataclass
class Baseline:
    """What the worker records: the splits' labels, the model's class probabilities, and the file
    facts it learned from (the audit beside the result reads them too)."""

    classes: list[str]
    counts: dict[str, dict[str, int]]
    skipped: list[dict[str, str]]
    labels: dict[str, np.ndarray]
    probs: dict[str, np.ndarray]
    importances: dict[str, float]
    facts: list[FileFacts]


def splits(
    exp: Experiment, facts: list[FileFacts]
) -> tuple[list[str], dict[str, list[FileFacts]], list[dict[str, str]]]:
    """Classes and the file facts of train, val and test, split as the image experiments split."""
    found = discover(exp.data_dir)
    by_file = {f.file: f for f in facts}
    out: dict[str, list[FileFacts]] = {}
    skipped = []
    for split, per_class in found.splits(exp.validation_split).items():
        names = [str(p.relative_to(exp.data_dir)) for paths in per_class.values() for p in paths]
        out[split] = [by_file[n] for n in names if n in by_file]
        skipped += [{"file": n, "reason": "unreadable"} for n in names if n not in by_file]
    return found.classes, out, skipped


def fit(exp: Experiment) -> Baseline:
    """Train on the train split; class probabilities for validation and test."""
    from sklearn.ensemble import RandomForestClassifier

    facts = task_facts(exp.data_dir)
    classes, sets, skipped = splits(exp, facts)
    labels = {name: np.array([classes.index(f.label) for f in facts], dtype=np.int64) for name, facts in sets.items()}
    model = RandomForestClassifier(n_estimators=TREES, random_state=exp.seed, n_jobs=1)
    model.fit(features(sets["train"]), labels["train"])

    def probabilities(facts: list[FileFacts]) -> np.ndarray:
        full = np.zeros((len(facts), len(classes)))
        if facts:
            full[:, model.classes_] = model.predict_proba(features(facts))
        return full

    counts = {name: {c: int(np.sum(labels[name] == i)) for i, c in enumerate(classes)} for name in sets}
    return Baseline(
        classes,
        counts,
        skipped,
        labels,
        {name: probabilities(f) for name, f in sets.items() if name != "train"},
        {name: round(float(v), 4) for name, v in zip(FEATURES, model.feature_importances_, strict=True)},
        facts,
    )


def describe() -> dict[str, Any]:
    return {"kind": "metadata", "model": f"random forest, {TREES} trees (scikit-learn)", "features": list(FEATURES)}
