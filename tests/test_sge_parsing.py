"""The SGE plugin's parsers and script renderer, on real Grid Engine 8.1.9 output captured in tests/data."""

from __future__ import annotations

from pathlib import Path

import pytest
import submitit

from conftest import ROOT
from xrayhpc.cluster.sge import (
    SgeExecutor,
    SgeJobEnvironment,
    acct_state,
    parse_task_ids,
    read_error_reasons,
    read_qacct,
    read_qstat_xml,
    render_job_script,
)

DATA = Path(__file__).parent / "data"


def test_task_lists() -> None:
    assert parse_task_ids("3") == [3]
    assert parse_task_ids("1-4:1") == [1, 2, 3, 4]
    assert parse_task_ids("2,3") == [2, 3]
    assert parse_task_ids("1-9:4,12") == [1, 5, 9, 12]


def test_qstat_xml_running_pending_held_and_error() -> None:
    info = read_qstat_xml((DATA / "qstat.xml").read_bytes())
    assert info["8_0"]["State"] == "RUNNING" and info["8_0"]["NodeList"] == "vm"
    assert info["8_1"]["State"] == info["8_2"]["State"] == "PENDING"  # tasks 2,3 of array 8
    assert [info[f"9_{i}"]["SgeState"] for i in range(4)] == ["hqw"] * 4  # held array 9, tasks 1-4
    assert info["10"]["State"] == "ERROR" and info["10"]["SgeState"] == "Eqw"
    assert read_qstat_xml("") == {}


def test_error_reason_is_sges_own() -> None:
    reasons = read_error_reasons((DATA / "qstat-j-error.txt").read_text())
    assert reasons == {"10": 'error: can\'t open output file "/nonexistent/dir/out": No such file or directory'}


def test_qacct_records_map_to_submitit_states() -> None:
    info = read_qacct((DATA / "qacct.txt").read_text())
    assert info["5"]["State"] == "COMPLETED"  # not an array: taskid undefined
    assert info["6_1"]["State"] == "COMPLETED"  # array task 2
    assert info["7"]["State"] == "FAILED" and info["7"]["ExitCode"].startswith("1")
    assert info["8_0"]["State"] == "CANCELLED"  # qdel of a running task: failed 100, exit 137 (Killed)


@pytest.mark.parametrize(
    ("failed", "status", "state"),
    [
        ("0", "0", "COMPLETED"),
        ("0", "2", "FAILED"),
        ("37  : qmaster enforced h_rt limit", "137", "TIMEOUT"),
        ("100 : assumedly after job", "137 (Killed)", "CANCELLED"),
        ("27  : searching requested shell", "0", "NODE_FAIL"),
    ],
)
def test_accounting_states(failed: str, status: str, state: str) -> None:
    assert acct_state(failed, status) == state


def test_job_script_carries_the_requests(tmp_path: Path) -> None:
    text = render_job_script(
        "python -m x",
        tmp_path / "%j",
        job_name="xrayhpc-gpu",
        project="ms542",
        time=90,
        cores=4,
        gpus=1,
        gpu_c=3.5,
        gpu_type="V100",
        array_parallelism=2,
        map_count=5,
        setup=["module load python3"],
        extra_directives=["-m ea"],
    )
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash -l"
    for directive in (
        "-N xrayhpc-gpu",
        "-P ms542",
        "-l h_rt=01:30:00",
        "-l s_rt=01:28:00",
        "-pe omp 4",
        "-l gpus=1",
        "-l gpu_c=3.5",
        "-l gpu_type=V100",
        "-t 1-5",
        "-tc 2",
        "-m ea",
    ):
        assert f"#$ {directive}" in lines
    assert lines.index("module load python3") < lines.index("python -m x")
    assert "export SUBMITIT_EXECUTOR=sge" in lines


def test_scheduler_output_paths(tmp_path: Path) -> None:
    joined = render_job_script("true", tmp_path)
    assert f'#$ -o "{tmp_path}/sge-$JOB_ID.$TASK_ID.out"' in joined and "#$ -j y" in joined
    split = render_job_script("true", tmp_path, stdout="/logs/$JOB_ID.out", stderr="/logs/$JOB_ID.err")
    assert '#$ -o "/logs/$JOB_ID.out"' in split and '#$ -e "/logs/$JOB_ID.err"' in split and "-j y" not in split


def test_slurm_gets_the_same_request(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No Slurm here: submitit's own Slurm executor renders the script from the profile's request,
    and its jobs start through our checked entry point, not submitit's `_submit`."""
    from submitit.slurm.slurm import SlurmExecutor

    from xrayhpc.cluster.profile import load_profile
    from xrayhpc.cluster.submit import cluster_executor

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 2))
    ex = cluster_executor("slurm", "gpu", load_profile("scc", "ms542"), tmp_path / "%j", "xrayhpc-gpu")
    text = ex._make_submission_file_text(ex._submitit_command_str, "uid")
    assert "-m xrayhpc.cluster.jobstart" in text and "submitit.core._submit" not in text
    for line in (
        "#SBATCH --gres=gpu:1",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --time=720",
        "#SBATCH --account=ms542",
        "module load python3/3.12.4",
    ):
        assert line in text


def test_cpu_job_asks_for_no_gpu_and_one_core_needs_no_pe(tmp_path: Path) -> None:
    text = render_job_script("true", tmp_path, cores=1)
    assert "gpus" not in text and "-pe " not in text and "-t 1-" not in text


def test_bad_options_are_refused(tmp_path: Path) -> None:
    ex = SgeExecutor(tmp_path)
    with pytest.raises(ValueError, match="unknown SGE option"):
        ex.update_parameters(gpu_count=1)
    with pytest.raises(ValueError, match="cores must be at least 1"):
        ex.update_parameters(cores=0)


def test_autoexecutor_finds_the_plugin(tmp_path: Path) -> None:
    ex = submitit.AutoExecutor(tmp_path, cluster="sge")
    ex.update_parameters(timeout_min=30, cpus_per_task=2, gpus_per_node=1, sge_project="p1")
    script = ex._executor.script()
    assert "#$ -l h_rt=00:30:00" in script and "#$ -pe omp 2" in script and "#$ -l gpus=1" in script
    assert "#$ -P p1" in script


def test_qsub_terse_ids() -> None:
    assert SgeExecutor._get_job_id_from_submission_command(b"123\n") == "123"
    assert SgeExecutor._get_job_id_from_submission_command("4567.1-4:1\n") == "4567"


def test_job_environment_counts_tasks_from_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "sge")
    monkeypatch.setenv("JOB_ID", "77")
    monkeypatch.setenv("SGE_TASK_ID", "3")
    env = submitit.JobEnvironment()
    assert isinstance(env, SgeJobEnvironment)
    assert env.job_id == "77_2" and env.array_task_id == "2"
    monkeypatch.setenv("SGE_TASK_ID", "undefined")
    assert env.job_id == "77" and env.array_job_id is None


def test_profile_signal_delay_zero_means_no_warning(tmp_path: Path) -> None:
    from xrayhpc.cluster.profile import load_profile

    path = tmp_path / "p.toml"
    path.write_text((ROOT / "qsub" / "local.toml").read_text().replace("signal_delay_s = 60", "signal_delay_s = 0"))
    from xrayhpc.cluster.sge import SCHEDULER

    params = SCHEDULER.parameters(load_profile(path), "cpu")
    assert params["signal_delay_s"] == 0
    assert "#$ -l s_rt" not in render_job_script("true", tmp_path, **params)


def test_accounting_gives_what_a_job_used_against_what_it_asked() -> None:
    from xrayhpc.cluster.scheduler import Usage
    from xrayhpc.cluster.sge import usage

    info = read_qacct((DATA / "qacct.txt").read_text())["6_1"]
    used = usage(info)
    assert used == Usage(wall_s=43.0, cpu_s=30.205, max_memory_mb=round(1.032 * 1024, 1), slots=1, limit_s=1800.0)
    assert used.cpu_efficiency == pytest.approx(30.205 / 43)
    assert "ran 2% of its time limit" in used.hint() and "cores" not in used.hint()
    idle = Usage(wall_s=3600, cpu_s=3600 * 1.2, max_memory_mb=2000, slots=8, limit_s=4000)
    assert idle.hint() == "kept 1.2 of 8 cores busy: cores = 1 would do"
    assert usage({"JobID": "7", "State": "LOST"}) is None


@pytest.mark.parametrize(
    ("category", "seconds"),
    [
        ("-l gpu_c=3.5,gpus=1,h_rt=1800,s_rt=1740", 1800.0),
        ("-l h_rt=12:00:00 -pe omp 4", 43200.0),
        ("-l gpus=1 -pe omp 2", None),
        ("", None),
    ],
)
def test_requested_wall_time_from_the_category(category: str, seconds: float | None) -> None:
    from xrayhpc.cluster.sge import requested_seconds

    assert requested_seconds(category) == seconds


def test_a_continuation_keeps_the_first_jobs_id_and_only_its_task(tmp_path: Path) -> None:
    from xrayhpc.cluster.sge import CONTINUED, continuation_command, current_job

    assert continuation_command("/spool/job_scripts/7", "7", 3) == [
        "qsub", "-terse", "-v", "XRAYHPC_CONTINUES=7", "-t", "3", "/spool/job_scripts/7"
    ]  # fmt: skip
    assert continuation_command("", "7", None) == [] and continuation_command("/s", "7; rm", None) == []
    assert current_job("7_2", tmp_path) == "7_2"
    (tmp_path / CONTINUED).write_text("12_2\n")
    assert current_job("7_2", tmp_path) == "12_2"
    (tmp_path / CONTINUED).write_text("12_2; rm -rf ~\n")  # not an id: ignored
    assert current_job("7_2", tmp_path) == "7_2"
