"""Where in an image a model may look, and the images with a part of them taken away.

Without the user's lung masks the regions are named for what they are, not for anatomy: the image's
centre and its border band, where the labels, arrows and captions of the covid figures sit. A fixed
lung prior would be wrong more often for one class than another, since those figures are framed
every which way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from xrayhpc.errors import UserError

BORDER = 0.2  # the border band's width on each side, a share of the image's side: the centre is 36% of it
GREY = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # PIL's "L": ITU-R 601 luma


@dataclass(frozen=True)
class Regions:
    """One region per image (True inside), its name and the name of the rest."""

    inside: np.ndarray  # bool (N, size, size)
    name: str  # "centre" or "lung field"
    outside: str  # "border" or "outside the lungs"

    @property
    def area(self) -> float:
        """The share of the image the region covers, on average: what a model that looked
        everywhere alike would put inside it."""
        return float(self.inside.mean()) if self.inside.size else 0.0


def centre(size: int) -> np.ndarray:
    """The centre square, inside a band BORDER of the side wide: bool (size, size)."""
    band = int(round(BORDER * size))
    inside = np.zeros((size, size), dtype=bool)
    inside[band : size - band, band : size - band] = True
    return inside


def mask_path(masks: Path, file: str) -> Path:
    """The mask of `file` (relative to the task folder `masks` stands for): the same relative path,
    `.png` in place of the image's extension."""
    return (Path(masks) / file).with_suffix(".png")


def lung_masks(masks: Path, files: list[str], size: int) -> np.ndarray:
    """The user's lung masks of `files`, resized as the images are: bool (N, size, size).

    Any non-zero pixel is lung. A missing, unreadable or empty mask is one line naming it.
    """
    out = np.zeros((len(files), size, size), dtype=bool)
    for i, file in enumerate(files):
        path = mask_path(masks, file)
        try:
            with Image.open(path) as img:
                grey = img.convert("L").resize((size, size), Image.Resampling.NEAREST)
        except FileNotFoundError:
            raise UserError(
                f"masks = {str(masks)!r}: no mask {path} for {file}; give every test image a PNG mask "
                "at the same relative path, or leave `masks` unset to use the centre and border"
            ) from None
        except Exception as err:  # PIL raises many kinds (SyntaxError among them) for a damaged PNG
            raise UserError(f"masks = {str(masks)!r}: cannot read {path}: {type(err).__name__}: {err}") from None
        out[i] = np.asarray(grey) > 0
        if not out[i].any():
            raise UserError(f"masks = {str(masks)!r}: {path} is empty (no lung pixel); check the mask")
    return out


def regions(files: list[str], size: int, masks: str = "", task: str = "") -> Regions:
    """The lung fields from `masks` (a folder laid out as the data root: the mask of
    `two/test/covid/a.jpeg` is `two/test/covid/a.png` there; `task` is `two` or `all`), else the centre."""
    if masks:
        return Regions(lung_masks(Path(masks) / task, files, size), "lung field", "outside the lungs")
    return Regions(np.broadcast_to(centre(size), (len(files), size, size)), "centre", "border")


def hide(images: np.ndarray, where: np.ndarray) -> np.ndarray:
    """`images` (uint8 N, H, W, 3) with the pixels where `where` (bool N, H, W) is True filled by
    each image's own mean colour: what was there is gone, and no new edge or level is added."""
    mean = images.reshape(len(images), -1, images.shape[-1]).mean(axis=1)
    filled = np.broadcast_to(np.round(mean).astype(np.uint8)[:, None, None, :], images.shape)
    return np.where(where[..., None], filled, images)


def normalise(images: np.ndarray) -> np.ndarray:
    """Grey, each image's histogram equalised, the three channels equal: what a file's colour mode,
    contrast and brightness told a model is gone (the size is already the same for every image)."""
    if len(images) == 0:
        return images.copy()
    grey = np.clip(np.round(images.astype(np.float32) @ GREY), 0, 255).astype(np.uint8)
    out = np.empty_like(grey)
    for i, one in enumerate(grey):
        counts = np.bincount(one.ravel(), minlength=256)
        cdf = np.cumsum(counts)
        low = cdf[counts > 0][0]  # the darkest level present goes to 0
        span = max(int(cdf[-1] - low), 1)
        table = np.clip(np.round((cdf - low) / span * 255), 0, 255).astype(np.uint8)
        out[i] = table[one]
    return np.repeat(out[..., None], 3, axis=-1)
