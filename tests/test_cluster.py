"""Against the real single-host Grid Engine (qsub/testcluster/up.sh): jobs go out and come back.

Skipped where Grid Engine is not installed, unless XRAYHPC_REQUIRE_CLUSTER=1 (CI), which makes a
missing or silent cluster a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cloudpickle
import pytest
import submitit

from conftest import ROOT
from test_doctor import smoke_cpu
from xrayhpc.cluster.sge import SgeExecutor, SgeInfoWatcher
from xrayhpc.schema import read_json, read_metrics, read_record

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.usefixtures("sge_cluster")]
LOCAL = (ROOT / "qsub" / "local.toml").read_text()


def profile(tmp: Path, name: str = "test", **edits: str) -> Path:
    """The local profile with lines replaced or added (key = TOML value)."""
    text = LOCAL
    for key, value in edits.items():
        if f"\n{key} = " in text:
            text = "\n".join(f"{key} = {value}" if line.startswith(f"{key} = ") else line for line in text.splitlines())
        else:
            text = f"{key} = {value}\n" + text
    path = tmp / f"{name}.toml"
    path.write_text(text)
    return path


def submit_args(results: Path, data: Path, prof: Path | None, *extra: str, executor: str = "sge") -> list[str]:
    """`python -m xrayhpc.submit` for the smoke grid, one epoch at 32 px unless `extra` says otherwise."""
    where = ["--profile", str(prof)] if prof else []
    return [sys.executable, "-m", "xrayhpc.submit", "--grid", "jobs/smoke.toml", "--executor", executor, *where,
            "--results", str(results), "--data", str(data), "--set", "epochs=1", "--set", "image_size=32", *extra]  # fmt: skip


def submit(
    results: Path, data: Path, prof: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        submit_args(results, data, prof, *extra),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def wait(check: Callable[[], bool], timeout: float = 300, every: float = 0.5) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if check():
            return
        time.sleep(every)
    raise AssertionError("timed out")


def watch(
    job_ids: list[str], until_done: bool = True, timeout: float = 300, folders: dict[str, Path] | None = None
) -> dict[str, list[str]]:
    """Every state each job went through, refreshed through one watcher (given a job's folder, it
    follows the job's continuation past its wall-time limit)."""
    watcher = SgeInfoWatcher()
    for j in job_ids:
        watcher.register_job(j, folder=(folders or {}).get(j))
    seen: dict[str, list[str]] = {j: [] for j in job_ids}

    def step() -> bool:
        watcher.update()
        for j in job_ids:
            state = watcher.get_state(j, mode="cache")
            if not seen[j] or seen[j][-1] != state:
                seen[j].append(state)
        return all(watcher.is_done(j, mode="cache") for j in job_ids) or not until_done

    wait(step, timeout)
    return seen


@pytest.fixture(scope="module")
def smoke(
    tmp_path_factory: pytest.TempPathFactory, synthetic: Path, sge_cluster: None
) -> tuple[Path, dict[str, list[str]], Path]:
    """The smoke grid's CPU experiments, submitted held, released, watched to the end."""
    tmp = tmp_path_factory.mktemp("smoke")
    results = tmp / "results"
    prof = profile(tmp, extra_directives='["-h"]')
    out = submit(results, synthetic, prof, "--only", "*-cpu")
    assert out.returncode == 0, out.stderr + out.stdout
    records = {e: read_record(results / e) for e in ("task1-vgg16-cpu", "task2-mobilenet-cpu")}
    ids = [r.job_id for r in records.values()]
    held = watch(ids, until_done=False)
    array = {i.split("_")[0] for i in ids}
    assert len(array) == 1, "one array job for one resource group"
    subprocess.run(["qrls", array.pop()], check=True, capture_output=True)
    seen = watch(ids)
    return results, {j: held[j] + seen[j] for j in ids}, prof


def test_cpu_experiments_run_as_one_array_and_finish(smoke: tuple[Path, dict[str, list[str]], Path]) -> None:
    results, seen, _ = smoke
    for states in seen.values():
        assert states[0] == "PENDING"
        assert "RUNNING" in states
        assert states[-1] == "COMPLETED"
    for exp in ("task1-vgg16-cpu", "task2-mobilenet-cpu"):
        metrics = read_metrics(results / exp)
        assert metrics is not None, exp
        record = read_record(results / exp)
        assert metrics.environment.scheduler_job_id == record.job_id.split("_")[0]
        assert metrics.environment.scheduler_task_id == str(record.task_index + 1)
        assert Path(record.script).is_file() and "#$ -t 1-2" in Path(record.script).read_text()


def test_second_submit_sends_nothing_then_only_what_was_deleted(
    smoke: tuple[Path, dict[str, list[str]], Path], synthetic: Path
) -> None:
    results, _, prof = smoke
    again = submit(results, synthetic, prof, "--only", "*-cpu")
    assert again.returncode == 0 and "0 submitted, 2 already done" in again.stdout
    shutil.rmtree(results / "task2-mobilenet-cpu")
    third = submit(results, synthetic, profile(results.parent, "plain"), "--only", "*-cpu")
    assert "1 submitted, 1 already done" in third.stdout
    record = read_record(results / "task2-mobilenet-cpu")
    assert record is not None and "_" not in record.job_id  # one job, not an array
    assert read_record(results / "task1-vgg16-cpu").attempt == 1
    watch([record.job_id])


def test_gpu_job_on_a_host_without_gpu_fails_with_the_workers_reason(tmp_path: Path, synthetic: Path) -> None:
    results = tmp_path / "results"
    out = submit(results, synthetic, profile(tmp_path), "--only", "*-gpu")
    assert out.returncode == 0, out.stderr
    record = read_record(results / "task1-vgg16-gpu")
    script = Path(record.script).read_text()
    assert "#$ -l gpus=1" in script and "#$ -l gpu_c=6.0" in script
    seen = watch([record.job_id])
    assert seen[record.job_id][-1] == "FAILED"
    progress = read_json(results / "task1-vgg16-gpu" / "progress.json")
    assert progress["state"] == "failed" and "Refusing to run on the CPU" in progress["error"]
    assert not (results / "task1-vgg16-gpu" / "metrics.json").exists()


def one_line_error(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


def test_impossible_gpu_request_is_refused_at_submission(tmp_path: Path, synthetic: Path) -> None:
    prof = profile(tmp_path)
    prof.write_text(prof.read_text().replace("gpu_c = 6.0", "gpu_c = 9.0"))
    out = submit(tmp_path / "r", synthetic, prof, "--only", "*-gpu")
    line = one_line_error(out)
    assert "qsub refused the gpu jobs" in line and "no suitable queues" in line
    assert not (tmp_path / "r" / "task1-vgg16-gpu" / "job.json").exists()


def test_unknown_project_gives_qsubs_message_and_no_record(tmp_path: Path, synthetic: Path) -> None:
    out = submit(tmp_path / "r", synthetic, profile(tmp_path, project='"nosuchproject"'), "--only", "*-cpu")
    line = one_line_error(out)
    assert 'the requested project "nosuchproject" does not exist' in line
    assert not list((tmp_path / "r").glob("*/job.json"))


def test_grid_engine_down_gives_qsubs_message_and_no_record(tmp_path: Path, synthetic: Path) -> None:
    out = submit(tmp_path / "r", synthetic, profile(tmp_path), "--only", "*-cpu", env={"SGE_QMASTER_PORT": "1"})
    line = one_line_error(out)
    assert "qsub refused" in line and "unable to" in line
    assert not list((tmp_path / "r").glob("*/job.json"))


class Resumable(submitit.helpers.Checkpointable):
    """Sleeps past s_rt on its first run; the checkpoint marks it resumed, so the second run ends."""

    def __init__(self) -> None:
        self.resumed = False

    def __call__(self) -> tuple[str, str]:
        if not self.resumed:
            time.sleep(300)
        return ("resumed" if self.resumed else "first", os.environ.get("XRAYHPC_SCHEDULER_JOB", ""))

    def checkpoint(self, *args: object, **kwargs: object) -> submitit.helpers.DelayedSubmission:
        self.resumed = True
        return super().checkpoint(*args, **kwargs)


def test_warned_job_checkpoints_and_continues_as_a_new_job(tmp_path: Path) -> None:
    """s_rt sends SIGUSR1; submitit checkpoints; the job submits its continuation (a new job with a
    whole h_rt of its own, keeping the first job's files) and the watcher follows it to the end."""
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    executor = SgeExecutor(tmp_path / "%j")
    executor.update_parameters(time=0.5, signal_delay_s=20, project="xrayhpc-test")
    job = executor.submit(Resumable())
    assert "#$ -l s_rt=00:00:15" in Path(job.paths.submission_file).read_text()
    seen = watch([job.job_id], timeout=240, folders={job.job_id: job.paths.folder})
    continued = (job.paths.folder / "continued_as").read_text().strip()
    assert continued != job.job_id and job.result() == ("resumed", continued)
    log = job.paths.stdout.read_text()
    assert f"continues as job {continued}" in log and log.count("with 1 slot(s)") == 2
    assert seen[job.job_id][-1] == "COMPLETED"


def crash_in_native_code() -> None:
    os.abort()


def test_a_native_crash_leaves_the_python_stack_in_the_jobs_stderr(tmp_path: Path) -> None:
    """A worker killed by a native fault (TensorFlow, a C extension) says where Python was when it died."""
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    executor = SgeExecutor(tmp_path / "%j")
    executor.update_parameters(project="xrayhpc-test")
    job = executor.submit(crash_in_native_code)
    assert watch([job.job_id])[job.job_id][-1] == "FAILED"
    err = job.paths.stderr.read_text()
    assert "Fatal Python error: Aborted" in err and "in crash_in_native_code" in err, err


def test_jobs_receive_the_profiles_variables_and_no_empty_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`env` passes what is set where qsub runs; an unset name is left out (qsub -v would make it empty)."""
    monkeypatch.setenv("XRAYHPC_TEST_PASSED", "a value, with a comma")
    monkeypatch.delenv("XRAYHPC_TEST_UNSET", raising=False)
    executor = SgeExecutor(tmp_path / "%j")
    executor.update_parameters(project="xrayhpc-test", env=["XRAYHPC_TEST_PASSED", "XRAYHPC_TEST_UNSET"])
    job = executor.submit(os.environ.get, "XRAYHPC_TEST_PASSED")
    unset = executor.submit(lambda: "XRAYHPC_TEST_UNSET" in os.environ)
    assert "#$ -v XRAYHPC_TEST_PASSED\n" in Path(job.paths.submission_file).read_text()
    watch([job.job_id, unset.job_id])
    assert job.result() == "a value, with a comma" and unset.result() is False


def doctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xrayhpc.doctor", *args], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


def test_doctor_on_a_cpu_node_answers_through_grid_engine(tmp_path: Path, synthetic: Path) -> None:
    out = doctor(*smoke_cpu(synthetic, "--executor", "sge", "--on-node", "cpu", "--results", str(tmp_path)))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "· node      answered by job" in out.stdout and "can start on a cpu node" in out.stdout
    assert "✓ data" in out.stdout.split("answered by job")[1]  # the data as the node sees it


def test_doctor_on_a_gpu_node_says_why_the_backend_sees_no_gpu(tmp_path: Path, synthetic: Path) -> None:
    """The test cluster's GPUs are fake: the node-side check must find none and say which cause holds."""
    out = doctor(
        "--grid",
        "jobs/smoke.toml",
        "--data",
        str(synthetic),
        "--profile",
        "local",
        "--executor",
        "sge",
        "--on-node",
        "gpu",
        "--results",
        str(tmp_path),
    )
    assert out.returncode == 1, out.stdout + out.stderr
    node = out.stdout.split("answered by job")[1]
    assert "✗ gpu       GPUs the backend uses: none" in node and "fix: the tensorflow backend sees no GPU" in node
    assert "would fail: task1-vgg16-gpu" in out.stdout


def test_paths_with_spaces_go_through_qsub_and_run_to_the_end(tmp_path: Path, synthetic: Path) -> None:
    """A results folder and a data folder whose paths hold spaces: quoted in the script and its directives."""
    spaced = tmp_path / "my project" / "results dir"
    data = tmp_path / "the data"
    shutil.copytree(synthetic, data)
    out = submit(spaced, data, profile(tmp_path), "--only", "task1-vgg16-cpu")
    assert out.returncode == 0, out.stdout + out.stderr
    record = read_record(spaced / "task1-vgg16-cpu")
    assert f'-o "{spaced}/.jobs/' in Path(record.script).read_text()
    seen = watch([record.job_id])
    assert seen[record.job_id][-1] == "COMPLETED", seen
    assert read_metrics(spaced / "task1-vgg16-cpu").experiment["data"] == str(data)


def test_the_metadata_baseline_runs_through_grid_engine(tmp_path: Path, synthetic: Path) -> None:
    grid = tmp_path / "controls.toml"
    grid.write_text('[[experiment]]\ntask = ["binary", "multiclass"]\nbackbone = "metadata"\ndevice = "cpu"\n')
    results = tmp_path / "results"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "xrayhpc.submit",
            "--grid",
            str(grid),
            "--executor",
            "sge",
            "--profile",
            str(profile(tmp_path)),
            "--results",
            str(results),
            "--data",
            str(synthetic),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    records = [read_record(results / eid) for eid in ("task1-metadata-cpu", "task2-metadata-cpu")]
    seen = watch([r.job_id for r in records])
    assert all(states[-1] == "COMPLETED" for states in seen.values()), seen
    for eid in ("task1-metadata-cpu", "task2-metadata-cpu"):
        metrics = read_metrics(results / eid)
        assert metrics.path == "metadata" and (results / eid / "audit.json").is_file()
