"""Reading Slurm's answers: squeue and sacct output as the local Slurm 22.05 wrote it (tests/data),
and the profile's [slurm] table as the sbatch script gets it. The live tests are in
test_schedulers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT
from xrayhpc.cluster.profile import load_profile
from xrayhpc.cluster.scheduler import Usage
from xrayhpc.cluster.slurm import SCHEDULER, job_info, memory_bytes, read_sacct, read_squeue, seconds
from xrayhpc.errors import UserError

DATA = Path(__file__).parent / "data"


def test_squeue_lists_each_task_with_submitits_id_and_why_it_waits() -> None:
    listed = read_squeue((DATA / "squeue.txt").read_text())
    assert set(listed) == {"6_0", "6_1", "6_2", "7", "8"}
    assert listed["6_0"]["State"] == "RUNNING" and listed["6_0"]["NodeList"] == "vm"
    held = job_info(listed["7"])
    assert held.state == "PENDING" and held.held
    assert job_info(listed["6_1"]).reason == "" and not job_info(listed["6_1"]).held  # waiting its turn


def test_sacct_gives_end_states_usage_and_the_steps_peak_memory() -> None:
    records = read_sacct((DATA / "sacct.txt").read_text())
    assert set(records) == {"6_0", "6_1", "6_2", "7", "8"}  # steps (.batch) fold into their job
    done, failed, cancelled = job_info(records["6_0"]), job_info(records["6_1"]), job_info(records["8"])
    assert done.state == "COMPLETED" and failed.state == "FAILED" and cancelled.state == "CANCELLED"
    assert failed.reason == "exit code 3:0 (FAILED)"
    assert "scancel" in cancelled.reason and cancelled.host == ""
    assert done.usage == Usage(wall_s=3.0, cpu_s=0.197, max_memory_mb=round(3056 / 1024, 1), slots=1, limit_s=60.0)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1-02:03:04", 93784.0),
        ("02:03:04", 7384.0),
        ("03:04", 184.0),
        ("00:00.197", 0.197),
        ("UNLIMITED", None),
        ("", None),
    ],
)
def test_slurm_durations(text: str, value: float | None) -> None:
    assert seconds(text) == value


def test_slurm_memory() -> None:
    assert memory_bytes("3056K") == 3056 * 1024 and memory_bytes("1.5G") == 1.5 * 1024**3 and memory_bytes("") is None


def test_the_slurm_table_shapes_the_request_and_flat_keys_still_read(tmp_path: Path) -> None:
    profile = tmp_path / "site.toml"
    profile.write_text(
        'project = "ms542"\npartition = "old"\ntime = "02:00:00"\n[gpu]\ngpus = 2\ncores = 3\n'
        '[slurm]\npartition = "gpu"\nqos = "short"\nconstraint = "ib"\ngpu_constraint = "a100|h100"\n'
    )
    params = SCHEDULER.parameters(load_profile(profile), "gpu")
    assert params["partition"] == "gpu" and params["account"] == "ms542" and params["qos"] == "short"
    assert params["gres"] == "gpu:2" and params["constraint"] == "ib&(a100|h100)" and params["time"] == 120
    cpu = SCHEDULER.parameters(load_profile(profile), "cpu")
    assert "gres" not in cpu and cpu["constraint"] == "ib"
    flat = tmp_path / "flat.toml"
    flat.write_text('project = "ms542"\npartition = "old"\n')
    assert SCHEDULER.parameters(load_profile(flat), "cpu")["partition"] == "old"


@pytest.mark.parametrize(
    ("line", "said"),
    [('[slurm]\ngres = "gpu:1 --wrap=x"', "`gres`"), ('[slurm]\nlicenses = "x"', "unknown key `licenses`"),
     ("slurm = 3", "must be a table")],
)  # fmt: skip
def test_a_bad_slurm_table_is_refused_in_one_line(tmp_path: Path, line: str, said: str) -> None:
    profile = tmp_path / "site.toml"
    profile.write_text(line + "\n")
    with pytest.raises(UserError, match=said):
        load_profile(profile)


def test_the_sbatch_script_hands_the_worker_neutral_variables(tmp_path: Path) -> None:
    executor = SCHEDULER.executor(tmp_path / "%j", "cpu", load_profile(ROOT / "qsub" / "local.toml"), "x")
    text = executor.script(3)
    assert "#SBATCH --array=0-2%3" in text and "-m xrayhpc.cluster.jobstart" in text
    assert 'XRAYHPC_SLOTS="${SLURM_CPUS_PER_TASK:-1}"' in text and "export SUBMITIT_JOB_ID=" in text


def test_a_state_squeue_names_that_we_do_not_know_is_still_live() -> None:
    listed = read_squeue("9|SOMETHING_NEW|vm|None\n")
    assert job_info(listed["9"]).live


def test_extra_directives_may_not_override_what_xrayhpc_sets(tmp_path: Path) -> None:
    profile = tmp_path / "site.toml"
    profile.write_text('[slurm]\nextra_directives = ["--time=9999"]\n')
    with pytest.raises(UserError, match="--time is set by xrayhpc; set time in the profile"):
        SCHEDULER.parameters(load_profile(profile), "cpu")


def test_a_dry_run_renders_the_sbatch_script_where_slurm_is_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no srun, no sbatch
    executor = SCHEDULER.executor(tmp_path / "%j", "gpu", load_profile(ROOT / "qsub" / "local.toml"), "x")
    assert "#SBATCH --gres=gpu:1" in executor.script(1) and not SCHEDULER.installed()
