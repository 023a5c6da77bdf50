"""`make gpu-carry`: what the lent GPU machine lacks, in one folder, checked here."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from xrayhpc.bench import carry
from xrayhpc.errors import cli
from xrayhpc.study.data import decode, list_images

SOURCE = carry.default_data()  # as the bench finds the real data: $XRAYHPC_DATA, else beside the checkout
REAL = SOURCE if (SOURCE / "two").is_dir() else None
needs_real = pytest.mark.skipif(REAL is None, reason=f"no real data at {SOURCE} (set XRAYHPC_DATA)")


def refusals(err: str) -> list[str]:
    """stderr without the progress lines: what a person is told went wrong."""
    return [line for line in err.splitlines() if not line.startswith("gpu-carry:")]


def test_the_carried_wheels_are_what_the_device_lacks_at_our_versions() -> None:
    packages = carry.carried_packages()
    assert {"keras", "namex", "optree", "submitit", "imagehash", "pywavelets", "tensorboardx", "nvidia-ml-py"} <= set(
        packages
    )
    assert not {"tensorflow", "jax", "jaxlib", "numpy", "scipy", "pillow", "h5py", "rich"} & set(packages)
    for name, version in packages.items():
        assert version == importlib.metadata.version(name)


def test_the_walk_follows_markers_and_stops_at_what_the_device_has() -> None:
    graph = {
        "keras": ["numpy", "namex", "optree>=0.1"],
        "optree": ["typing-extensions>=4", 'newer-only; python_version >= "3.13"', 'linter; extra == "lint"'],
        "tensorflow": ["wrapt"],
        "jax": ["opt-einsum"],
    }
    found = carry.carried_packages(
        ["tensorflow>=2.17", "keras>=3", "jax", 'old-only; python_version < "3.10"'],
        requires=lambda name: graph.get(name),
        version=lambda name: "1.0",
    )
    assert found == {"keras": "1.0", "namex": "1.0", "optree": "1.0"}


def test_missing_data_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert carry.main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    monkeypatch.setenv("XRAYHPC_DATA", str(tmp_path / "elsewhere"))
    assert carry.main(["--out", str(tmp_path / "out")]) == 2
    given, default = capsys.readouterr().err.splitlines()
    assert "nowhere" in given and "--data" in given and "XRAYHPC_DATA" in given
    assert "elsewhere" in default
    assert not (tmp_path / "out").exists()


def test_going_over_the_size_limit_is_refused_in_one_line_and_keeps_the_earlier_folder(
    synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)
    (out / carry.MARKER).write_text("an earlier carry")
    assert cli(carry.make)(str(synthetic), out, limit=10_000, packages={}) == 2
    (line,) = refusals(capsys.readouterr().err)
    assert line.startswith("error: ") and "MiB" in line and "exceed" in line and "10,000 bytes" in line
    assert (out / carry.MARKER).read_text() == "an earlier carry"


def test_a_folder_that_is_not_a_carry_folder_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(carry.UserError, match="not a gpu-carry folder"):
        carry.clearable(tmp_path)
    carry.clearable(tmp_path / "new")  # absent: fine


def test_a_failed_pip_download_names_the_package_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(args: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        assert "keras==3.15.1" in args and "--only-binary=:all:" in args and "manylinux2014_x86_64" in args
        err = "WARNING: Retrying...\nERROR: No matching distribution found for keras==3.15.1\n"
        return subprocess.CompletedProcess(args, 1, "", err)

    monkeypatch.setattr(carry.subprocess, "run", refused)
    assert cli(carry.download)("keras", "3.15.1", tmp_path) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "keras==3.15.1" in line and "registry must be reachable" in line and "No matching distribution" in line


def test_the_copy_keeps_the_layout_and_decodes_to_the_originals(synthetic: Path, tmp_path: Path) -> None:
    images, skipped = carry.copy_data(synthetic, tmp_path / "data", 224, "nearest", "rgb")
    originals = sorted(p.relative_to(synthetic) for p in synthetic.glob("*/*/*") if p.is_dir())
    assert sorted(p.relative_to(tmp_path / "data") for p in (tmp_path / "data").glob("*/*/*")) == originals
    assert images == sum(len(list_images(synthetic / f)) for f in originals) and not skipped
    for folder in originals:
        files, copies = list_images(synthetic / folder), list_images(tmp_path / "data" / folder)
        assert [c.name for c in copies] == [f"{f.stem}.png" for f in files]  # same stems, same order
        for original, copy in zip(files, copies, strict=True):
            assert np.array_equal(decode(copy, 224, "nearest"), decode(original, 224, "nearest"))
            assert np.array_equal(decode(copy, 224, "nearest", "grey"), decode(original, 224, "nearest", "grey"))
            with Image.open(copy) as img:
                assert (img.format, img.mode, img.size) == ("PNG", "L", (224, 224))  # the synthetic set is grey


@pytest.mark.slow
@needs_real
def test_the_copy_of_the_real_data_decodes_to_the_originals(tmp_path: Path) -> None:
    size, interpolation, colour = carry.grid_settings(REAL)
    assert (size, interpolation, colour) == (224, "nearest", "rgb")
    files = [f for folder in sorted(REAL.glob("*/*/*")) if folder.is_dir() for f in list_images(folder)]
    chosen = files[::60] + [next(f for f in files if f.suffix == ".png")]  # grey and RGB JPEGs, an RGBA PNG
    modes = set()
    for i, original in enumerate(chosen):
        copy = tmp_path / f"{i}-{original.stem}.png"
        carry.carry_image(original, copy, size, interpolation, colour)
        assert np.array_equal(decode(copy, size, interpolation), decode(original, size, interpolation))
        assert np.array_equal(decode(copy, size, interpolation, "grey"), decode(original, size, interpolation, "grey"))
        with Image.open(original) as img:
            modes.add(img.mode)
    assert {"L", "RGB", "RGBA"} <= modes


def fake_wheel(folder: Path, name: str = "carried_demo", version: str = "0.1") -> Path:
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": "ANSWER = 42\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{dist}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{dist}/RECORD"])
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        for member, text in files.items():
            whl.writestr(member, text)
    return path


def test_install_puts_the_wheels_where_the_printed_path_finds_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "wheels").mkdir()
    fake_wheel(tmp_path / "wheels")
    (tmp_path / carry.MARKER).write_text("finished")
    assert carry.main(["install", "--out", str(tmp_path)]) == 0
    exports = capsys.readouterr().out
    shown = subprocess.run(
        ["bash", "-c", f'{exports}\npython -c "import carried_demo; print(carried_demo.ANSWER)"'],
        capture_output=True,
        text=True,
        env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"},
        check=True,
    )
    assert shown.stdout.split() == ["42"]


def test_install_refuses_a_half_made_folder_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "wheels").mkdir()
    fake_wheel(tmp_path / "wheels")
    assert carry.main(["install", "--out", str(tmp_path)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert carry.MARKER in line and "make gpu-carry" in line
    assert not (tmp_path / "site").exists()


def test_the_module_needs_only_the_standard_library() -> None:
    """The device has no Keras or TensorFlow: `install` must start with site-packages out of reach."""
    code = "import sys, xrayhpc.bench.carry; print(sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names) - {'xrayhpc', '__main__', '__mp_main__'}))"
    loaded = subprocess.run(
        [sys.executable, "-S", "-c", code], cwd=ROOT, capture_output=True, text=True, env={}, check=True
    )
    assert loaded.stdout.strip() == "[]"
