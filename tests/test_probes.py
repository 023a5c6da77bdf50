"""What the models look at: the regions, the probes and their sentence, Grad-CAM on both backends,
the probe command on a finished run, and the report's section in a browser."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import browser
from xrayhpc.errors import UserError
from xrayhpc.experiment import Experiment
from xrayhpc.schema import PROBES, WEIGHTS, ProbeScore, RegionShare, check_probes
from xrayhpc.study import gradcam
from xrayhpc.study.regions import centre, hide, lung_masks, normalise, regions
from xrayhpc.study.synthetic import make_marked

GRID = """
[defaults]
weights = "none"
image_size = 128
augment = false
preprocessing = "backbone"
epochs = {epochs}
batch_size = 10
learning_rate = 2e-4
head_units = [64]
dropouts = [0.2]

[[experiment]]
task = "binary"
backbone = "vgg16"
device = "cpu"
"""


def train(tmp_path: Path, data: Path, backend: str, epochs: int = 25) -> Path:
    """The worker on `data` under `backend`; the result folder."""
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID.format(epochs=epochs))
    results = tmp_path / "results"
    env = {**os.environ, "KERAS_BACKEND": backend, "XRAYHPC_CACHE": str(tmp_path / "cache")}
    args = ["-m", "xrayhpc.worker", "--grid", str(grid), "--data", str(data), "--results", str(results)]
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return results / "task1-vgg16-cpu"


def test_hiding_fills_with_each_images_mean_and_normalising_leaves_one_grey() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 20, 20, 3), dtype=np.uint8)
    inside = np.broadcast_to(centre(20), (3, 20, 20))
    hidden = hide(images, inside)
    mean = np.round(images.reshape(3, -1, 3).mean(1)).astype(np.uint8)
    assert (hidden[:, 10, 10] == mean).all() and (hidden[:, 0, 0] == images[:, 0, 0]).all()
    shown = hide(images, ~inside)
    assert (shown[:, 10, 10] == images[:, 10, 10]).all() and (shown[:, 0, 0] == mean).all()
    flat = normalise(images)
    assert (flat[..., 0] == flat[..., 1]).all() and (flat[..., 1] == flat[..., 2]).all()
    assert flat.reshape(3, -1).min(1).tolist() == [0, 0, 0] and flat.reshape(3, -1).max(1).tolist() == [255] * 3
    assert abs(float(centre(100).mean()) - 0.36) < 0.01  # the centre is 60% of the side


def test_lung_masks_are_read_beside_the_images_and_a_missing_one_is_named(tmp_path: Path) -> None:
    masks = tmp_path / "masks"
    (masks / "two" / "test" / "covid").mkdir(parents=True)
    mask = np.zeros((40, 40), dtype=np.uint8)
    mask[10:30, 5:20] = 255
    Image.fromarray(mask).save(masks / "two" / "test" / "covid" / "a.png")
    got = regions(["test/covid/a.jpeg"], 20, str(masks), "two")
    assert got.name == "lung field" and got.inside.shape == (1, 20, 20) and 0.15 < got.area < 0.25
    with pytest.raises(UserError, match=r"no mask .*b\.png for test/covid/b\.jpeg"):
        lung_masks(masks / "two", ["test/covid/b.jpeg"], 20)


def score(key: str, change: float, low: float, high: float) -> ProbeScore:
    return ProbeScore(key, key, 1 + change, 0.1, change, low, high, 0.0, -0.1, 0.1)


@pytest.mark.parametrize(
    ("hidden", "only", "said"),
    [((0, 0, 0), (-0.5, -0.7, -0.3), "border"), ((-0.5, -0.7, -0.3), (0, 0, 0), "centre"),
     ((-0.4, -0.6, -0.2), (-0.4, -0.6, -0.2), "both"), ((-0.1, -0.3, 0.1), (0, -0.1, 0.1), "neither")],
)  # fmt: skip
def test_the_sentence_names_the_part_whose_loss_costs_accuracy(hidden: tuple, only: tuple, said: str) -> None:
    from xrayhpc.study.probes import verdicts

    scores = {"hidden": score("hidden", *hidden), "only": score("only", *only), "normalised": score("n", 0, 0, 0)}
    share = RegionShare("all", 30, 0.5, 0.45, 0.55)
    verdict, looks, sentence = verdicts(1.0, 30, 30, 0.5, scores, share, 0.36, "centre", "border")
    assert verdict == said and looks == "centre"  # 45-55% of the mass in 36% of the image
    assert sentence.startswith("accuracy 1.00; with the centre hidden")
    chance, _, why = verdicts(0.6, 18, 30, 0.5, scores, share, 0.36, "centre", "border")
    assert chance == "chance" and "nothing to probe" in why  # 18 of 30: not clearly above 0.5


def test_masks_and_normalise_are_checked_and_enter_the_fingerprint_only_when_set(tmp_path: Path) -> None:
    base = {"task": "binary", "backbone": "vgg16", "device": "cpu"}
    plain = Experiment.from_settings(base)
    assert Experiment.from_settings({**base, "normalise": False}).fingerprint == plain.fingerprint
    assert Experiment.from_settings({**base, "normalise": True}).fingerprint != plain.fingerprint
    with pytest.raises(UserError, match="`masks` = .* give the folder of lung masks"):
        Experiment.from_settings({**base, "masks": str(tmp_path / "none")})
    with pytest.raises(UserError, match="no pixels to probe"):
        Experiment.from_settings({**base, "backbone": "metadata", "masks": str(tmp_path)})


def quadrants(maps: np.ndarray) -> tuple[float, float]:
    """The mean map's mass in the top-left and the bottom-right quarter."""
    mean = maps.mean(0)
    h, w = mean.shape
    return float(mean[: h // 2, : w // 2].sum()), float(mean[h // 2 :, w // 2 :].sum())


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
@pytest.mark.parametrize("where", ["border", "centre"])
def test_a_model_of_a_planted_mark_is_caught_looking_at_it(where: str, backend: str, tmp_path: Path) -> None:
    """The class is planted only in a corner mark of the border band, or only at the centre: the
    probes say which, by a paired interval far from zero; Grad-CAM points at each class's corner, or
    peaks in the centre."""
    folder = train(tmp_path, make_marked(tmp_path / "data", where), backend)
    probes, problem = check_probes(folder)
    assert probes is not None, problem
    scores = {s.probe: s for s in probes.probes}
    assert probes.accuracy >= 0.9 and probes.verdict == where, probes.sentence
    cut, kept = ("only", "hidden") if where == "border" else ("hidden", "only")
    assert scores[cut].accuracy_high is not None and scores[cut].accuracy_high < -0.2, probes.sentence
    assert scores[kept].accuracy >= 0.85, probes.sentence
    maps = np.load(folder / "gradcam.npz")
    labels = maps["labels"]
    if where == "border":  # covid's mark top left, normal's bottom right
        covid, normal = quadrants(maps["maps"][labels == 0]), quadrants(maps["maps"][labels == 1])
        assert covid[0] > 1.3 * covid[1] and normal[1] > 1.3 * normal[0], (covid, normal)
    else:  # the mean map peaks in the centre (its share against the area varies with the backend's init)
        mean = gradcam.upsampled(maps["maps"].mean(0, keepdims=True), 128)[0]
        assert centre(128)[np.unravel_index(mean.argmax(), mean.shape)], np.round(maps["maps"].mean(0), 1)
    assert (folder / "gradcam.png").is_file() and (folder / "tsne-test-source.png").is_file()
    log = (folder / "worker.log").read_text()
    assert "probe: the test set, centre hidden" in log and "what it looks at:" in log
    assert json.loads((folder / "metrics.json").read_text())["timing"]["probe"] > 0


BROKEN_IMAGES = """<script>addEventListener("load", () => {
  const all = [...document.images], bad = all.filter(i => !i.complete || i.naturalWidth === 0);
  document.title = `xrayhpc report: ${all.length} images, ${bad.length} broken`;
});</script>"""


@pytest.mark.slow
def test_the_probe_command_probes_a_finished_run_once_and_the_report_shows_it(tmp_path: Path) -> None:
    """probes.json gone: `python -m xrayhpc.probe` writes it again from the kept weights, without
    training; a second call leaves it alone; a link in place of the weights is named in one line;
    the report's section and its Grad-CAM image load in a browser."""
    folder = train(tmp_path, make_marked(tmp_path / "data", "border", train=6, test=3), "tensorflow", epochs=2)
    first = json.loads((folder / PROBES).read_text())
    (folder / PROBES).unlink()
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "XRAYHPC_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "xrayhpc.probe", "--results", str(folder.parent)]
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0 and "task1-vgg16-cpu: probing" in out.stdout, out.stdout + out.stderr[-2000:]
    again = json.loads((folder / PROBES).read_text())
    assert (again["accuracy"], again["verdict"], again["fingerprint"]) == (
        first["accuracy"], first["verdict"], first["fingerprint"]
    )  # fmt: skip
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert second.returncode == 0 and "probed already" in second.stdout, second.stdout + second.stderr[-2000:]
    weights = folder / WEIGHTS
    weights.rename(tmp_path / "elsewhere.h5")
    weights.symlink_to(tmp_path / "elsewhere.h5")
    planted = subprocess.run([*command, "--again"], capture_output=True, text=True, env=env, timeout=600)
    errors = [line for line in planted.stdout.splitlines() if line.startswith("error:")]
    assert planted.returncode == 1 and len(errors) == 1 and str(weights) in errors[0], planted.stdout
    assert "Traceback" not in planted.stdout + planted.stderr

    from xrayhpc.report.build import build
    from xrayhpc.report.writers import to_html

    sections, skipped, _ = build(folder.parent)
    [looks] = [s for s in sections if s.title.endswith("what the models look at")]
    assert looks.table is not None and looks.table[1][0][0] == "task1-vgg16-cpu"
    assert first["sentence"] in looks.text
    [gallery] = [s for s in sections if s.title == "Gallery: task1-vgg16-cpu"]
    assert any(path.name == "gradcam.png" for path, _ in gallery.images or [])
    page = tmp_path / "report.html"
    page.write_text(to_html(sections, skipped).replace("</head>", f"{BROKEN_IMAGES}</head>"))
    flags = [*browser(tmp_path / "profile"), "--virtual-time-budget=5000", "--window-size=1400,2400"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    shown = sum(len(s.images or []) for s in sections)
    assert f"<title>xrayhpc report: {shown} images, 0 broken</title>" in dom.stdout, (
        dom.stdout[:300] + dom.stderr[-500:]
    )
    assert "what the models look at" in dom.stdout


def test_status_says_a_run_is_probing_and_for_how_long(tmp_path: Path) -> None:
    import socket
    import time

    from xrayhpc.cluster.state import collect
    from xrayhpc.schema import Progress

    folder = tmp_path / "results" / "task1-vgg16-cpu"
    now = time.time()
    Progress(state="running", epoch=40, epochs=40, started=now - 100, host=socket.gethostname(), pid=os.getpid(),
             id="task1-vgg16-cpu", phase="probing", updated=now - 7).write(folder)  # fmt: skip
    [row] = collect(tmp_path / "results")[0]
    assert row.state == "running" and row.reason.startswith("probing for ") and row.reason.endswith(" s")
    assert int(row.reason.split()[2]) >= 7


def planted_probes(root: Path, **edits: object) -> Path:
    """A finished run's folder with a probes.json that passes the record check, `edits` applied."""
    from xrayhpc.bench.report_build import synthetic_result

    metrics = synthetic_result(root, Experiment("binary", "vgg16", "cpu", data="/data"), 10.0, 15, 18)
    folder = root / metrics.id
    record = {
        "id": metrics.id, "fingerprint": metrics.experiment["fingerprint"], "region": "centre",
        "outside": "border", "area": 0.36, "images": 18, "accuracy": 0.8, "loss": 0.4, "chance": 0.5,
        "probes": [dict(score(k, 0, 0, 0).__dict__) for k in ("hidden", "only", "normalised")],
        "shares": [{"label": "all", "images": 18, "share": 0.4, "low": 0.3, "high": 0.5}],
        "verdict": "neither", "gradcam_verdict": "neither", "sentence": "accuracy 0.80; fine.",
        "seconds": 1.0, "schema_version": 1, **edits,
    }  # fmt: skip
    (folder / PROBES).write_text(json.dumps(record))
    return folder


@pytest.mark.parametrize(
    ("edits", "said"),
    [({"probes": []}, "its probes"), ({"shares": []}, "its shares"),
     ({"sentence": "x\n\n## Fake\n<img src=x onerror=alert(1)>"}, "its sentence"),
     ({"verdict": "\x1b[2Jlungs"}, "its verdicts"), ({"region": "lungs", "outside": "border"}, "its region"),
     ({"shares": [{"label": "all", "images": 18, "share": 0.4, "low": 0.3, "high": None}]}, "one end"),
     ({"accuracy": 1e15}, "out of range"), ({"schema_version": 7}, "newer xrayhpc")],
)  # fmt: skip
def test_a_planted_or_damaged_probes_file_is_named_in_one_line_and_left_out(
    tmp_path: Path, edits: dict, said: str
) -> None:
    from xrayhpc.report.build import build
    from xrayhpc.report.writers import to_markdown

    folder = planted_probes(tmp_path / "results", **edits)
    probes, problem = check_probes(folder)
    assert probes is None and said in problem and "\n" not in problem
    sections, notes, _ = build(tmp_path / "results")
    assert any(str(folder / PROBES) in n for n in notes)
    assert not any(s.title.endswith("what the models look at") for s in sections)
    assert "Fake" not in to_markdown(sections, notes, tmp_path / "results")


def test_the_probe_command_leaves_another_users_runs_and_probed_runs_alone(tmp_path: Path) -> None:
    """Another user's metrics.json names the files the command would read: never followed. A run probed
    already is said so, without building a model or reading its data (/data is not there)."""
    folder = planted_probes(tmp_path / "results")
    command = [sys.executable, "-m", "xrayhpc.probe", "--results", str(tmp_path / "results")]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "task1-vgg16-cpu: probed already" in out.stdout, out.stdout + out.stderr
    if os.getuid() != 0:
        pytest.skip("making a file another user's needs root")
    os.chown(folder / "metrics.json", 65534, -1)
    out = subprocess.run([*command, "--again"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "not to you" in out.stdout and "not probed" in out.stdout, out.stdout + out.stderr
    assert "no finished image experiment" in out.stderr and "Traceback" not in out.stderr


def test_a_weights_file_of_another_user_or_of_nan_is_refused_in_one_line(tmp_path: Path) -> None:
    from xrayhpc.safefiles import UnsafeFile, read_own_bytes
    from xrayhpc.study.probes import finite

    with pytest.raises(UserError, match="predictions are not finite"):
        finite(np.array([[0.5, np.nan]]), "task1-vgg16-cpu")
    planted = tmp_path / WEIGHTS
    planted.write_bytes(b"\x89HDF")
    assert read_own_bytes(planted) == b"\x89HDF"
    if os.getuid() != 0:
        pytest.skip("making a file another user's needs root")
    os.chown(planted, 65534, -1)
    with pytest.raises(UnsafeFile, match="belongs to .*, not to you"):
        read_own_bytes(planted)
