from __future__ import annotations

from pathlib import Path

import pytest

from xrayhpc.errors import UserError
from xrayhpc.experiment import Experiment, load_grid, parse_overrides, select

ROOT = Path(__file__).resolve().parent.parent


def grid(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(text)
    return path


def test_report_grid_reproduces_the_report(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XRAYHPC_DATA", "/data/covid")
    exps = {e.id: e for e in load_grid(ROOT / "jobs" / "report.toml")}
    study = ["task1-vgg16-cpu", "task1-vgg16-gpu", "task2-mobilenet-gpu", "task2-vgg16-gpu"]
    controls = [f"{s}-random" for s in study] + ["task1-metadata-cpu", "task2-metadata-cpu"]
    normalised = [f"{s}-normalised" for s in study if s.endswith("-gpu")]
    assert sorted(exps) == sorted(study + controls + normalised)
    for twin in study:  # each control differs from its study run in the weights alone
        assert {**exps[f"{twin}-random"].settings(), "weights": "imagenet", "tag": ""} == exps[twin].settings()
    for twin in normalised:  # and each normalised twin in its input alone
        settings = {**exps[twin].settings(), "normalise": False, "tag": ""}
        assert settings == exps[twin.removesuffix("-normalised")].settings()
    t1 = exps["task1-vgg16-cpu"]
    assert (t1.epochs, t1.batch_size, t1.learning_rate, t1.trainable_backbone) == (40, 5, 5e-4, False)
    assert t1.data_dir == Path("/data/covid/two")
    mobilenet = exps["task2-mobilenet-gpu"]
    assert mobilenet.trainable_backbone and mobilenet.dropouts == (0.5, 0.25) and mobilenet.batch_size == 10
    assert exps["task2-vgg16-gpu"].data_dir == Path("/data/covid/all")
    # the two devices differ only in the device, and so in the fingerprint
    assert exps["task1-vgg16-gpu"].fingerprint != t1.fingerprint


def test_smoke_grid_loads() -> None:
    ids = [e.id for e in load_grid(ROOT / "jobs" / "smoke.toml")]
    assert "task1-vgg16-cpu" in ids and "task1-vgg16-gpu" in ids and "task2-mobilenet-cpu" in ids


def test_lists_expand_into_a_product_with_distinct_ids(tmp_path: Path) -> None:
    exps = load_grid(
        grid(
            tmp_path,
            """
[[experiment]]
task = "binary"
backbone = ["vgg16", "mobilenet"]
device = "cpu"
learning_rate = [1e-3, 1e-4]
head_units = [[256], [128]]
dropouts = [0.5]
""",
        )
    )
    ids = [e.id for e in exps]
    assert len(ids) == 8 == len(set(ids))
    assert "task1-mobilenet-cpu-learning_rate0.0001-head_units128" in ids
    # a flat list for a list-valued setting is the value itself, not an axis
    assert all(e.dropouts == (0.5,) for e in exps)


def test_fingerprint_is_stable_and_follows_every_setting() -> None:
    a = Experiment("binary", "vgg16", "cpu")
    assert a.fingerprint == Experiment("binary", "vgg16", "cpu").fingerprint
    assert a.fingerprint != Experiment("binary", "vgg16", "cpu", epochs=41).fingerprint
    assert a.fingerprint != Experiment("binary", "vgg16", "cpu", data="/elsewhere").fingerprint
    assert Experiment.from_settings(a.settings()).fingerprint == a.fingerprint


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[experiment]]\ntask = "binary"\nbackbone = \n', "line 3"),
        (
            "[[experiment]]\ntask='binary'\nbackbone='vgg16'\ndevice='cpu'\nepoch=3\n",
            "unknown key `epoch`; the keys are: task, backbone, device, data, epochs",
        ),
        (
            "[[experiment]]\ntask='binary'\nbackbone='vgg16'\ndevice='cpu'\nepochs='ten'\n",
            "`epochs` must be an integer, got 'ten'",
        ),
        (
            "[[experiment]]\ntask='binary'\nbackbone='vgg16'\ndevice='cpu'\nepochs=0\n",
            "`epochs` = 0 is not allowed; it must be from 1 to 100000",
        ),
        (
            "[[experiment]]\ntask='binary'\nbackbone='vgg16'\ndevice='cpu'\nbatch_size=0\n",
            "`batch_size` = 0 is not allowed",
        ),
        (
            "[[experiment]]\ntask='binary'\nbackbone='alexnet'\ndevice='cpu'\n",
            "`backbone` = 'alexnet' is not allowed; use one of vgg16, vgg19, resnet50",
        ),
        (
            "[[experiment]]\ntask='ternary'\nbackbone='vgg16'\ndevice='cpu'\n",
            "`task` = 'ternary' is not allowed; use one of binary, multiclass",
        ),
        ("[[experiment]]\ntask='binary'\nbackbone='vgg16'\ndevice='tpu'\n", "`device` = 'tpu'"),
        (
            "[[experiment]]\ntask='binary'\nbackbone='inception_v3'\ndevice='cpu'\nimage_size=64\n",
            "inception_v3 needs at least 75",
        ),
        (
            "[[experiment]]\ntask='binary'\nbackbone='vgg16'\ndevice='cpu'\nhead_units=[256,256]\n",
            "give one rate per head layer (2)",
        ),
        ("[[experiment]]\ntask='binary'\nbackbone='vgg16'\ndevice='cpu'\nweights='missing.h5'\n", "`weights` = "),
        ("[[experiment]]\ntask='binary'\nbackbone='vgg16'\n", "`device` is missing"),
        (
            "[[experiment]]\ntask='binary'\nbackbone='vgg16'\ndevice='cpu'\n[[experiment]]\n"
            "task='binary'\nbackbone='vgg16'\ndevice='cpu'\n",
            "experiment 2: id `task1-vgg16-cpu` is also made by",
        ),
        ("title = 'x'\n", "unknown top-level key `title`"),
        ("", "no [[experiment]] tables"),
    ],
)
def test_bad_grids_name_the_file_and_the_fix(tmp_path: Path, text: str, expected: str) -> None:
    path = grid(tmp_path, text)
    with pytest.raises(UserError) as err:
        load_grid(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_missing_grid_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such grid file"):
        load_grid(tmp_path / "nope.toml")


def test_data_root_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = grid(tmp_path, "data = 'xray'\n[[experiment]]\ntask='binary'\nbackbone='vgg16'\ndevice='cpu'\n")
    assert load_grid(path)[0].data == str(tmp_path / "xray")
    monkeypatch.setenv("XRAYHPC_DATA", str(tmp_path / "env"))
    assert load_grid(path)[0].data == str(tmp_path / "env")


def test_overrides_replace_grid_values(tmp_path: Path) -> None:
    overrides = parse_overrides(["weights=none", "epochs=2", "augment=false"])
    assert overrides == {"weights": "none", "epochs": 2, "augment": False}
    exps = load_grid(ROOT / "jobs" / "report.toml", overrides)
    assert {(e.weights, e.epochs, e.augment) for e in exps} == {("none", 2, False)}
    with pytest.raises(UserError, match="key among"):
        parse_overrides(["epoch=2"])


def test_select_by_pattern() -> None:
    exps = load_grid(ROOT / "jobs" / "report.toml")
    assert [e.id for e in select(exps, "*-cpu")] == ["task1-vgg16-cpu", "task1-metadata-cpu", "task2-metadata-cpu"]
    assert len(select(exps, "task2")) == 7 and len(select(exps, "*-random")) == 4


@pytest.mark.parametrize("tag", ["../../../tmp/escaped", "a/b", "with space", "$(touch x)", "`id`", "-dash", ".hidden"])
def test_unsafe_tags_are_refused_in_one_line(tmp_path: Path, tag: str) -> None:
    path = grid(tmp_path, f'[[experiment]]\ntask = "binary"\nbackbone = "vgg16"\ndevice = "cpu"\ntag = "{tag}"\n')
    with pytest.raises(
        UserError, match=r"`tag` = .* is not allowed; it names a folder and a job: use at most 64 of letters, digits"
    ):
        load_grid(path)


def test_varying_values_become_safe_parts_of_the_id(tmp_path: Path) -> None:
    weights = tmp_path / "my weights (v2).h5"
    weights.write_bytes(b"")
    exps = load_grid(
        grid(
            tmp_path,
            f"""
[[experiment]]
task = "binary"
backbone = "vgg16"
device = "cpu"
tag = "run-1.b"
weights = ["none", "{weights}"]
""",
        )
    )
    assert [e.id for e in exps] == [
        "task1-vgg16-cpu-run-1.b-weightsnone",
        "task1-vgg16-cpu-run-1.b-weightsmy_weights__v2_",
    ]


def test_seeds_grid_is_the_reports_experiments_with_five_seeds() -> None:
    report = {
        (e.task, e.backbone): e.settings()
        for e in load_grid(ROOT / "jobs" / "report.toml")
        if e.device == "gpu" and e.weights == "imagenet" and not e.normalise
    }
    seeds = load_grid(ROOT / "jobs" / "seeds.toml")
    assert len(seeds) == 15
    for exp in seeds:
        assert {**exp.settings(), "seed": 0} == report[(exp.task, exp.backbone)]
        assert exp.id.endswith(f"-seed{exp.seed}")
    assert sorted({e.seed for e in seeds}) == [0, 1, 2, 3, 4]
