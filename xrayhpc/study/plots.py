"""The PNGs of a result folder: t-SNE of the feature layer (by class and by file source), training
curves, confusion matrix, Grad-CAM over the test images."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits

from xrayhpc.schema import write_atomic


def _save(fig: plt.Figure, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    write_atomic(path, lambda f: f.write(buf.getvalue()))


def tsne_points(features: np.ndarray, seed: int) -> np.ndarray | None:
    """2-D t-SNE, or None when there is nothing to embed (under 3 points, or constant features:
    an untrained or collapsed layer, where sklearn's PCA start divides by zero).

    Perplexity shrinks for small sets: it must stay below the point count. One thread: at these
    sizes (hundreds of points) OpenMP's spinning threads lose whole time slices at every barrier
    when another process shares a core. Measured here, 129 points: 0.4-0.7 s with one thread, alone
    or beside a busy loop; with two, 0.5-3.6 s alone and 0.9-12.7 s beside it.
    """
    n = len(features)
    x = features.reshape(n, -1).astype(np.float64)
    if n < 3 or not np.isfinite(x).all() or np.ptp(x, axis=0).max() == 0:
        return None
    perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
    with threadpool_limits(limits=1):
        return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def tsne_png(
    points: np.ndarray | None, labels: np.ndarray, classes: list[str], title: str, path: Path, legend: str = "class"
) -> None:
    """The points, one colour per entry of `classes` (`labels` index it): the classes, or the files' sources."""
    fig, ax = plt.subplots(figsize=(6, 5))
    colours = plt.get_cmap("tab10")
    if points is None:
        ax.text(
            0.5,
            0.5,
            "the feature layer's output is constant\n(or too few images): nothing to embed",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        points = np.full((len(labels), 2), np.nan)
    for i, name in enumerate(classes):
        mask = labels == i
        ax.scatter(points[mask, 0], points[mask, 1], s=18, color=colours(i), label=f"{name} ({mask.sum()})")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(title=legend, loc="best", fontsize=8)
    _save(fig, path)


def curves_png(history: list[dict[str, float]], best_epoch: int, title: str, path: Path) -> None:
    epochs = np.arange(1, len(history) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for prefix, style in (("", "-"), ("val_", "--")):
            key = prefix + metric
            if history and key in history[0]:
                ax.plot(epochs, [h[key] for h in history], style, label="validation" if prefix else "training")
        if best_epoch < len(history):
            ax.axvline(best_epoch, color="grey", lw=0.8, ls=":", label=f"kept: epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    _save(fig, path)


def confusion_png(matrix: list[list[int]], classes: list[str], title: str, path: Path) -> None:
    m = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(1.2 * len(classes) + 2.5, 1.2 * len(classes) + 2))
    ax.imshow(m, cmap="Blues")
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > m.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    _save(fig, path)


GRADCAM_TILES = 48  # a grid of at most this many test images, the wrong predictions first


def gradcam_png(
    images: np.ndarray,
    cams: np.ndarray,
    inside: np.ndarray,
    captions: list[str],
    order: np.ndarray,
    title: str,
    path: Path,
) -> None:
    """Test images with their Grad-CAM maps (`cams` at the images' size) over them and the region's
    outline, in `order`, each with its caption under it."""
    shown = order[:GRADCAM_TILES]
    cols = min(8, max(1, len(shown)))
    rows = max(1, -(-len(shown) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.2 * rows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), shown, strict=False):
        ax.imshow(images[i])
        ax.imshow(cams[i], cmap="jet", alpha=0.4, vmin=0, vmax=max(float(cams[i].max()), 1e-9))
        ax.contour(inside[i].astype(float), levels=[0.5], colors="white", linewidths=0.8)
        ax.set_title(captions[i], fontsize=6.5)
    more = f" ({len(shown)} of {len(order)} shown, wrong first)" if len(order) > len(shown) else " (wrong first)"
    fig.suptitle(title + more, fontsize=9)
    _save(fig, path)
