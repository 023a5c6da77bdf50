"""The weights fetcher against a local HTTP server serving files the test makes (no internet here)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from xrayhpc import backbones
from xrayhpc.study import models, weights
from xrayhpc.study.weights import HDF5_SIGNATURE

VGG = backbones.BACKBONES["vgg16"].weights_file(224)
MOBILENET = backbones.BACKBONES["mobilenet"].weights_file(224)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Serves tmp/served/<folder>/<file> like Keras's bucket; the registry expects these files' md5."""
    served = tmp_path / "served"
    files = {VGG: HDF5_SIGNATURE + os.urandom(300_000), MOBILENET: HDF5_SIGNATURE + os.urandom(1000)}
    for name, blob in files.items():
        folder = served / ("vgg16" if name == VGG else "mobilenet")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(blob)
    vgg = backbones.BACKBONES["vgg16"]
    monkeypatch.setitem(
        backbones.BACKBONES,
        "vgg16",
        backbones.Backbone(
            vgg.module, vgg.constructor, vgg.notop_file, vgg.folder, hashlib.md5(files[VGG]).hexdigest()
        ),
    )
    handler = functools.partial(QuietHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", files
    httpd.shutdown()
    httpd.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def fetch(base: str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = weights.main(["--grid", "jobs/report.toml", "--base-url", base, *extra])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_fetches_every_file_the_grid_needs_then_skips_them(
    server: tuple[str, dict[str, bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    base, files = server
    code, out = fetch(base, capsys)
    folder = backbones.keras_models_dir()
    assert code == 0, out
    assert {p.name for p in folder.iterdir()} == {VGG, MOBILENET}  # no temporary file left
    assert all((folder / name).read_bytes() == blob for name, blob in files.items())
    assert f"✓ {VGG}: fetched" in out and "md5 checked" in out and "Keras publishes no hash" in out
    before = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    code, out = fetch(base, capsys)
    assert code == 0 and out.count("already there and valid") == 2
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_a_file_with_the_wrong_hash_is_named_and_kept(
    server: tuple[str, dict[str, bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    base, _ = server
    folder = backbones.keras_models_dir()
    folder.mkdir(parents=True)
    other = b"another file of the same name"
    (folder / VGG).write_bytes(other)
    code, out = fetch(base, capsys)
    assert code == 1
    assert f"✗ {folder / VGG} has md5 {hashlib.md5(other).hexdigest()}" in out and "left as it is" in out
    assert (folder / VGG).read_bytes() == other
    assert (folder / MOBILENET).is_file()  # the other file still came


def test_a_download_with_the_wrong_hash_is_not_kept(
    server: tuple[str, dict[str, bytes]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, _ = server
    (tmp_path / "served" / "vgg16" / VGG).write_bytes(b"corrupted in transit")
    code, out = fetch(base, capsys)
    assert code == 1 and "sent a file with md5" in out and "nothing was written" in out
    assert not (backbones.keras_models_dir() / VGG).exists()


def test_a_silent_server_times_out(capsys: pytest.CaptureFixture[str]) -> None:
    """A server that accepts connections and never answers ends the download after --timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        code, out = fetch(f"http://127.0.0.1:{silent.getsockname()[1]}", capsys, "--timeout", "0.5")
    assert code == 1 and "no answer within 0.5 s" in out
    assert not backbones.keras_models_dir().exists() or not any(backbones.keras_models_dir().iterdir())


def test_a_grid_without_imagenet_weights_needs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert weights.main(["--grid", "jobs/smoke.toml"]) == 0
    assert "nothing to fetch" in capsys.readouterr().out


def test_the_worker_finds_a_fetched_file_under_keras_name(
    server: tuple[str, dict[str, bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    base, _ = server
    fetch(base, capsys)
    assert models.resolve_weights("vgg16", "imagenet", 224) == str(backbones.keras_models_dir() / VGG)
