from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xrayhpc.errors import UserError
from xrayhpc.study import data
from xrayhpc.study.data import load_dataset
from xrayhpc.study.synthetic import make_dataset


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "d", train=10, test=2)


def test_classes_split_and_decode_like_flow_from_directory(tree: Path) -> None:
    ds = load_dataset(tree / "all", 32, "nearest", 0.2)
    assert ds.classes == ["covid", "normal", "pneumonia_bac", "pneumonia_vir"]
    # Keras takes the first int(0.2 * n) files of each class, by name, as validation
    assert ds.counts()["val"] == dict.fromkeys(ds.classes, 2)
    assert ds.counts()["train"] == dict.fromkeys(ds.classes, 8)
    assert ds.val.files[:2] == ["train/covid/covid-000.jpeg", "train/covid/covid-001.jpg"]
    assert ds.train.images.shape == (32, 32, 32, 3) and ds.train.images.dtype == np.uint8
    # grayscale JPEG and RGBA PNG both come out as three equal channels
    rgba = ds.train.files.index("train/covid/covid-003.png")
    assert np.array_equal(ds.train.images[rgba][..., 0], ds.train.images[rgba][..., 2])


def test_decoded_images_are_cached_and_the_key_follows_the_files(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_dataset(tree / "two", 32, "nearest", 0.2)
    calls = []
    monkeypatch.setattr(data, "decode", lambda *a: calls.append(a) or np.zeros((32, 32, 3), np.uint8))
    again = load_dataset(tree / "two", 32, "nearest", 0.2)
    assert calls == [] and np.array_equal(first.train.images, again.train.images)
    load_dataset(tree / "two", 48, "nearest", 0.2)  # another size is another cache entry
    assert len(calls) == 24
    calls.clear()
    Image.new("L", (40, 40), 200).save(tree / "two" / "train" / "normal" / "normal-000.jpeg")
    load_dataset(tree / "two", 32, "nearest", 0.2)  # a changed file invalidates the entry
    assert len(calls) == 24


def test_unreadable_images_are_skipped_and_listed(tree: Path) -> None:
    good = tree / "two" / "train" / "covid" / "covid-004.jpeg"
    truncated = good.with_name("covid-900.jpeg")
    truncated.write_bytes(good.read_bytes()[:300])
    (good.with_name("covid-901.png")).write_text("not an image")
    logged: list[str] = []
    ds = load_dataset(tree / "two", 32, "nearest", 0.2, log=logged.append)
    skipped = {s["file"] for s in ds.skipped}
    assert skipped == {"train/covid/covid-900.jpeg", "train/covid/covid-901.png"}
    assert not skipped & set(ds.train.files)
    assert any("covid-900.jpeg" in line and "skipping" in line for line in logged)


def test_missing_data_folder_says_where_to_point(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="XRAYHPC_DATA"):
        load_dataset(tmp_path / "nowhere" / "two", 32, "nearest", 0.2)


def test_empty_class_folder_is_named(tree: Path) -> None:
    folder = tree / "two" / "test" / "normal"
    shutil.rmtree(folder)
    folder.mkdir()
    with pytest.raises(UserError, match=r"test/normal: no images"):
        load_dataset(tree / "two", 32, "nearest", 0.2)


def test_class_folders_must_match_between_splits(tree: Path) -> None:
    shutil.rmtree(tree / "two" / "test" / "normal")
    with pytest.raises(UserError, match="differ from train"):
        load_dataset(tree / "two", 32, "nearest", 0.2)


def test_empty_data_folder(tmp_path: Path) -> None:
    (tmp_path / "two" / "train").mkdir(parents=True)
    with pytest.raises(UserError, match="no class folders"):
        load_dataset(tmp_path / "two", 32, "nearest", 0.2)


def test_grey_takes_the_colour_cue_away(tmp_path: Path) -> None:
    """A colour figure and its grey version: told apart under `rgb`, the same under `grey`."""
    rng = np.random.default_rng(0)
    colour = Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8), "RGB")
    colour.save(tmp_path / "colour.png")
    colour.convert("L").save(tmp_path / "grey.png")
    as_rgb = [data.decode(tmp_path / f, 32, "nearest") for f in ("colour.png", "grey.png")]
    as_grey = [data.decode(tmp_path / f, 32, "nearest", "grey") for f in ("colour.png", "grey.png")]
    assert not np.array_equal(*as_rgb)
    assert np.array_equal(*as_grey) and np.array_equal(as_grey[0][..., 0], as_grey[0][..., 2])


def test_grey_and_colour_are_cached_apart(tree: Path) -> None:
    rgb = load_dataset(tree / "two", 32, "nearest", 0.2)
    grey = load_dataset(tree / "two", 32, "nearest", 0.2, colour="grey")
    assert len(list(data.cache_dir().glob("images-*.npz"))) == 2
    assert np.array_equal(grey.train.images[..., 0], grey.train.images[..., 1])
    assert rgb.train.images.shape == grey.train.images.shape
