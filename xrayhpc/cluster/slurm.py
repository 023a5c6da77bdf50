"""Slurm: submitit's own Slurm executor with xrayhpc's checked job start, and xrayhpc's scheduler.

In reading order: the squeue/sacct readers, the status watcher, the executor, then `Slurm`, what
the rest of xrayhpc asks of a scheduler. Jobs are submitit's (`sbatch`, arrays, `scontrol requeue`
at the time-limit warning, which gives the job a new full time limit); what this module adds is
one squeue and one sacct per refresh for every recorded job, accounting into `Usage`, the profile's
[slurm] table, and the neutral variables the worker reads.
"""

from __future__ import annotations

import getpass
import re
import shutil
import subprocess
import time
import typing as tp
from pathlib import Path

from submitit.core import core
from submitit.slurm import slurm as submitit_slurm

from xrayhpc.cluster import jobstart, scheduler
from xrayhpc.cluster.scheduler import LIVE, JobInfo, Usage
from xrayhpc.errors import UserError

if tp.TYPE_CHECKING:
    from xrayhpc.cluster.profile import Profile
    from xrayhpc.schema import JobRecord

# A job that left squeue may take a moment to reach sacct (slurmdbd is fed asynchronously).
ACCOUNTING_LAG_S = 30.0
# Slurm's job states -> submitit's names (squeue and sacct use the same words).
STATES = {
    "PENDING": "PENDING",
    "REQUEUE_HOLD": "PENDING",
    "RESV_DEL_HOLD": "PENDING",
    "CONFIGURING": "RUNNING",
    "RUNNING": "RUNNING",
    "RESIZING": "RUNNING",
    "SIGNALING": "RUNNING",
    "COMPLETING": "COMPLETING",
    "STAGE_OUT": "COMPLETING",
    "SUSPENDED": "SUSPENDED",
    "STOPPED": "SUSPENDED",
    "REQUEUED": "REQUEUED",
    "REQUEUE_FED": "REQUEUED",
    "SPECIAL_EXIT": "ERROR",
    "COMPLETED": "COMPLETED",
    "FAILED": "FAILED",
    "TIMEOUT": "TIMEOUT",
    "DEADLINE": "TIMEOUT",
    "NODE_FAIL": "NODE_FAIL",
    "BOOT_FAIL": "NODE_FAIL",
    "OUT_OF_MEMORY": "OUT_OF_MEMORY",
    "CANCELLED": "CANCELLED",
    "REVOKED": "CANCELLED",
    "PREEMPTED": "FAILED",
}
# squeue's reasons for a pending job that say nothing beyond "waiting its turn"
ORDINARY_WAIT = ("None", "(null)", "Priority", "Resources", "BeginTime", "JobArrayTaskLimit")
SQUEUE_FORMAT = "%i|%T|%N|%r"
SACCT_FIELDS = ("JobID", "State", "ExitCode", "Elapsed", "TotalCPU", "MaxRSS", "AllocCPUS", "Timelimit", "NodeList", "Reason")  # fmt: skip
# What the worker reads, in words that hold for every scheduler (the sbatch script's setup lines).
NEUTRAL_SETUP = [
    'export XRAYHPC_SLOTS="${SLURM_CPUS_PER_TASK:-1}" XRAYHPC_SCHEDULER_JOB="$SLURM_JOB_ID"'
    ' XRAYHPC_TASK_ID="${SLURM_ARRAY_TASK_ID:-}"',
    'export SUBMITIT_JOB_ID="${SLURM_ARRAY_JOB_ID:+${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}}"',
    'export SUBMITIT_JOB_ID="${SUBMITIT_JOB_ID:-$SLURM_JOB_ID}"',
]


def state_name(text: str) -> str:
    """`CANCELLED by 0`, `RUNNING` -> submitit's state name."""
    word = (text or "").split(" ")[0].rstrip("+")
    return STATES.get(word, word or "UNKNOWN")


def read_squeue(text: str) -> dict[str, dict[str, str]]:
    """`squeue -h -r -o '%i|%T|%N|%r'` -> {submitit id: info}; `-r` lists each array task alone."""
    out: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 4 or not re.fullmatch(r"\d+(_\d+)?", parts[0]):
            continue  # a pending array's `12_[3-9]` appears as one line per task under -r
        job_id, state, nodes, reason = parts
        # squeue lists only jobs that have not ended: a state word it does not know is still live
        live = state_name(state) if state_name(state) in (*LIVE, "ERROR") else "UNKNOWN"
        out[job_id] = {"JobID": job_id, "State": live, "SlurmState": state, "NodeList": nodes,
                       "Reason": reason}  # fmt: skip
    return out


def read_sacct(text: str) -> dict[str, dict[str, str]]:
    """`sacct -P -n -o SACCT_FIELDS` -> {submitit id: info}; a step's peak memory goes to its job."""
    out: dict[str, dict[str, str]] = {}
    peaks: dict[str, float] = {}
    for line in text.splitlines():
        values = line.rstrip("\n").split("|")
        if len(values) != len(SACCT_FIELDS):
            continue
        fields = dict(zip(SACCT_FIELDS, values, strict=True))
        job_id, _, step = fields["JobID"].partition(".")
        memory = memory_bytes(fields["MaxRSS"])
        if memory is not None:
            peaks[job_id] = max(peaks.get(job_id, 0.0), memory)
        if step or not re.fullmatch(r"\d+(_\d+)?", job_id):
            continue
        out[job_id] = {**fields, "JobID": job_id, "State": state_name(fields["State"]), "SlurmState": fields["State"]}
    for job_id, info in out.items():
        if job_id in peaks:
            info["MaxRSS"] = str(peaks[job_id])
    return out


def seconds(text: str) -> float | None:
    """Slurm's durations: `1-02:03:04`, `02:03:04`, `03:04`, `00:04.512` -> seconds; None otherwise."""
    m = re.fullmatch(r"\s*(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)\s*", text or "")
    if not m:
        return None
    days, hours, minutes, secs = m.groups()
    return int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes) * 60 + float(secs)


def memory_bytes(text: str) -> float | None:
    """sacct's `3284K`, `1.5G`, or bytes as this module stores a peak -> bytes (powers of 1024)."""
    m = re.fullmatch(r"\s*([\d.]+)([KMGTP]?)\s*", text or "")
    if not m:
        return None
    return float(m.group(1)) * 1024 ** " KMGTP".index(m.group(2) or " ")


def usage(info: dict[str, str]) -> Usage | None:
    """From one sacct record (read_sacct); None for a job that has not run."""
    wall, cpu = seconds(info.get("Elapsed", "")), seconds(info.get("TotalCPU", ""))
    if wall is None or cpu is None or info.get("State") in LIVE:
        return None
    memory = memory_bytes(info.get("MaxRSS", ""))
    slots = info.get("AllocCPUS", "")
    return Usage(
        wall,
        cpu,
        round(memory / 1024**2, 1) if memory is not None else None,
        int(slots) if slots.isdigit() and int(slots) > 0 else 1,
        seconds(info.get("Timelimit", "")),
    )


def job_info(info: dict[str, str]) -> JobInfo:
    """The watcher's record of one job, in the words every scheduler shares."""
    state = info.get("State") or "UNKNOWN"
    raw, reason = info.get("SlurmState", ""), info.get("Reason", "")
    exit_code = info.get("ExitCode", "")
    reasons = {
        "PENDING": "" if reason in ORDINARY_WAIT else f"waiting: {reason}",
        "REQUEUED": "requeued",
        "ERROR": f"Slurm state {raw}: {reason or 'see scontrol show job'}",
        "TIMEOUT": "killed at its time limit (--time) before it finished",
        "CANCELLED": "cancelled with scancel" + (f" ({raw})" if raw.startswith("CANCELLED by") else ""),
        "NODE_FAIL": f"node failure on {info.get('NodeList') or 'its node'} ({raw})",
        "OUT_OF_MEMORY": "killed for using more memory than it asked for (OUT_OF_MEMORY)",
        "FAILED": f"exit code {exit_code or '?'} ({raw})",
    }
    return JobInfo(
        state=state,
        host=info.get("NodeList", "") if info.get("NodeList") not in ("None assigned", "(null)") else "",
        reason=reasons.get(state, ""),
        held=raw == "REQUEUE_HOLD" or reason.startswith("JobHeld"),
        usage=usage(info),
    )


class SlurmStateWatcher(core.InfoWatcher):
    """One `squeue` for every live job, then at most one `sacct` for the ones that left it.

    A job in neither after ACCOUNTING_LAG_S is LOST, so nothing waits on it forever.
    """

    def __init__(self, delay_s: int = 60) -> None:
        super().__init__(delay_s)
        self._seen: dict[str, float] = {}
        self.last_error = ""
        self.listed = False  # the last update's squeue answered

    def register_job(self, job_id: str, since: float | None = None) -> None:
        super().register_job(job_id)
        self._seen.setdefault(job_id, since or time.time())

    def _run(self, command: list[str]) -> str | None:
        self._num_calls += 1
        ok, said = scheduler.run(command)
        if not ok:
            self.last_error = said
            return None
        return said

    def update(self) -> None:
        asked = self._registered - self._finished
        if not asked:
            return
        self.last_error = ""
        now = time.time()
        listed = self._run(["squeue", "-h", "-a", "-r", "-u", getpass.getuser(), "-o", SQUEUE_FORMAT])
        self.listed = listed is not None
        if listed is not None:
            current = read_squeue(listed)
            self._info_dict.update(current)
            for job_id in asked & set(current):
                self._seen[job_id] = now
            gone = sorted(asked - set(current))
            if gone:
                self._account(gone, now)
        self._last_status_check = now
        for job_id in asked:
            if self.get_info(job_id, mode="cache").get("State", "UNKNOWN") not in LIVE:
                self._finished.add(job_id)

    def _account(self, gone: list[str], now: float) -> None:
        jobs = sorted({j.split("_")[0] for j in gone})
        answer = self._run(["sacct", "-P", "-n", "-o", ",".join(SACCT_FIELDS), "-j", ",".join(jobs)])
        records = read_sacct(answer) if answer else {}
        for job_id in gone:
            if answer is None:  # no accounting to ask: not known to have ended, so not lost either
                self._info_dict.setdefault(job_id, {"JobID": job_id})["State"] = "UNKNOWN"
            elif job_id in records and records[job_id]["State"] not in ("PENDING", "RUNNING"):
                self._info_dict[job_id] = records[job_id]
            elif job_id in records:  # sacct lags squeue: it still calls an ended job live
                self._info_dict[job_id] = {**records[job_id], "State": "COMPLETING"}
            elif now - self._seen.get(job_id, now) > ACCOUNTING_LAG_S:
                self._info_dict[job_id] = {"JobID": job_id, "State": "LOST"}
            else:
                self._info_dict.setdefault(job_id, {"JobID": job_id})["State"] = "COMPLETING"


class SlurmExecutor(jobstart.CheckedStart, submitit_slurm.SlurmExecutor):
    """submitit's Slurm executor, whose jobs start through xrayhpc's checked entry point (its arrays
    take this command too) and hand the worker the neutral variables."""

    @classmethod
    def affinity(cls) -> int:
        """Made only by xrayhpc, which checks that Slurm is installed before it submits: a dry run
        renders the script on any machine (submitit's own refuses to start without `srun`)."""
        return 2

    def script(self, count: int = 1) -> str:
        """The exact sbatch script a submission of `count` jobs sends (what a dry run prints)."""
        params = dict(self.parameters)
        if count > 1:
            params["map_count"] = count
        return submitit_slurm._make_sbatch_string(command=self._submitit_command_str, folder=self.folder, **params)


# sbatch options that submitit or a profile key sets: extra_directives may not override them
OWNED = {"output": "", "error": "", "signal": "signal_delay_s", "array": "array_parallelism", "open-mode": "",
         "export": "", "chdir": "", "partition": "[slurm] partition", "account": "[slurm] account",
         "qos": "[slurm] qos", "constraint": "[slurm] constraint", "gres": "[slurm] gres", "time": "time",
         "cpus-per-task": "[cpu]/[gpu] cores", "mem-per-cpu": "mem_per_core", "job-name": "", "wckey": "",
         "nodes": "", "gpus-per-node": "[slurm] gres"}  # fmt: skip


def _option(text: str) -> tuple[str, tp.Any]:
    """`--begin=now+1hour` -> ("begin", "now+1hour"); `--hold` -> ("hold", True)."""
    name, sep, value = text[2:].partition("=")
    if name.replace("_", "-") in OWNED:
        key = OWNED[name.replace("_", "-")]
        raise UserError(
            f"[slurm] extra_directives: --{name} is set by xrayhpc"
            + (f"; set {key} in the profile instead" if key else "; leave it out")
        )
    return name, value if sep else True


class Slurm(scheduler.Scheduler):
    name = "slurm"
    title = "Slurm"
    submit_command = "sbatch"
    cancel_command = "scancel"
    query_command = ("squeue", "--me")
    first_task = 0
    executor_class = SlurmExecutor
    requeue = "requeues itself (scontrol requeue) with a new --time"
    section: tp.ClassVar[dict[str, type]] = {
        "partition": str,
        "account": str,
        "qos": str,
        "constraint": str,
        "gpu_constraint": str,
        "gres": str,
        "extra_directives": list,
    }

    def installed(self) -> bool:
        return shutil.which("sbatch") is not None and shutil.which("squeue") is not None

    def parameters(self, profile: Profile, device: str) -> dict[str, tp.Any]:
        """submitit's Slurm parameters for jobs of this device: the [slurm] table first, then the
        flat keys earlier profiles used (`partition`, and `project` as the account)."""
        resources, own, site = profile.devices.get(device, {}), profile.section(self.name), profile.site
        params: dict[str, tp.Any] = {
            "time": max(1, round(profile.minutes)),
            "cpus_per_task": resources.get("cores", 1),
            "setup": NEUTRAL_SETUP + list(site.get("setup", [])),
            "array_parallelism": site.get("array_parallelism", 256),
        }
        if "signal_delay_s" in site:
            params["signal_delay_s"] = site["signal_delay_s"]
        if resources.get("mem_per_core"):
            params["mem_per_cpu"] = resources["mem_per_core"]
        for key, value in (("partition", own.get("partition") or site.get("partition")),
                           ("account", own.get("account") or site.get("project")),
                           ("qos", own.get("qos"))):  # fmt: skip
            if value:
                params[key] = value
        constraint = [own["constraint"]] if own.get("constraint") else []
        if device == "gpu":
            params["gres"] = own.get("gres") or f"gpu:{resources.get('gpus', 1)}"
            constraint += [own["gpu_constraint"]] if own.get("gpu_constraint") else []
        if constraint:
            params["constraint"] = "&".join(f"({c})" if "|" in c else c for c in constraint)
        if site.get("mail"):
            params["mail_user"] = site["mail"]
            params["mail_type"] = "END,FAIL"
        if own.get("extra_directives"):
            params["additional_parameters"] = dict(_option(o) for o in own["extra_directives"])
        return params

    def preview(self, executor: tp.Any, count: int, script: Path) -> tuple[str, list[str]]:
        return executor.script(count), ["sbatch", str(script)]

    def watcher(self, records: dict[str, JobRecord]) -> SlurmStateWatcher:
        """One squeue (and at most one sacct) for every recorded job."""
        watcher = SlurmStateWatcher()
        for record in records.values():
            watcher.register_job(record.job_id, since=record.submitted)
        return watcher

    def job_info(self, info: dict[str, str]) -> JobInfo:
        return job_info(info)

    def cancel(self, records: list[JobRecord]) -> str:
        ok, said = scheduler.run(["scancel", *[r.job_id for r in records]])
        return "" if ok else said

    def project_needed(self, profile: Profile) -> str | None:
        return None if profile.section(self.name).get("account") else super().project_needed(profile)

    def notes(self, profile: Profile) -> list[str]:
        return ["jobs receive the submitting shell's environment (sbatch's default, --export=ALL)"]

    def check_request(self, executor: tp.Any) -> str:
        """`sbatch --test-only`: Slurm says whether any partition could run the script, and queues nothing."""
        with scheduler.script_file(executor.script(1)) as path:
            try:
                done = subprocess.run(["sbatch", "--test-only", str(path)], capture_output=True, text=True, timeout=60)
            except (OSError, subprocess.SubprocessError) as err:
                return f"sbatch --test-only: {err}"
        # it answers on stderr either way: "Job ... to start at ..." or "allocation failure: ..."
        said = " ".join(line.strip() for line in done.stderr.splitlines() if line.strip())
        return "" if done.returncode == 0 else said[:400] or f"sbatch exited {done.returncode}"


SCHEDULER = Slurm()
