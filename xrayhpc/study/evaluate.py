"""Test metrics from class probabilities: loss, accuracy, confusion, per-class scores, ROC-AUC."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

from xrayhpc.schema import Scores

EPSILON = 1e-7  # Keras clips probabilities the same way before taking logs


def image_losses(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each image's cross-entropy, as Keras takes it (the binary loss for two classes)."""
    p = np.clip(probs, EPSILON, 1 - EPSILON)
    if probs.shape[1] == 2:
        pos = p[:, 1]
        return -(labels * np.log(pos) + (1 - labels) * np.log(1 - pos))
    return -np.log(p[np.arange(len(labels)), labels])


def test_metrics(probs: np.ndarray, labels: np.ndarray, classes: list[str]) -> Scores:
    """Everything the report compares, computed once here from the saved predictions."""
    k = len(classes)
    loss = np.mean(image_losses(probs, labels))
    predicted = probs.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=list(range(k)), zero_division=0
    )
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(classes)
    }
    return Scores(
        loss=float(loss),
        accuracy=float(np.mean(predicted == labels)),
        correct=int(np.sum(predicted == labels)),
        count=len(labels),
        macro_f1=float(np.mean(f1)),
        roc_auc=_roc_auc(probs, labels, k),
        per_class=per_class,
        confusion=confusion_matrix(labels, predicted, labels=list(range(k))).tolist(),
        predictions=[int(v) for v in predicted],
        labels=[int(v) for v in labels],
    )


def _roc_auc(probs: np.ndarray, labels: np.ndarray, k: int) -> float | None:
    """Macro one-vs-rest AUC; None when a class is absent from the test labels."""
    if len(np.unique(labels)) < k:
        return None
    if k == 2:
        return float(roc_auc_score(labels, probs[:, 1]))
    return float(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
