"""Grid Engine: a submitit plugin laid out like submitit's own Slurm module, and xrayhpc's scheduler.

In reading order: the status watcher, the job, the job environment, the executor, the pure
function that renders the job script from qsub/job.sh.template, then `GridEngine`, what the rest of
xrayhpc asks of a scheduler. Registered under the entry-point group `submitit`, so
`submitit.AutoExecutor(folder, cluster="sge")` finds it.

A job continues past its wall-time limit as a fresh submission: Grid Engine's own requeue (exit 99)
keeps counting h_rt from the first start, so a rescheduled job is killed before its next warning.
At the warning the job checkpoints, submits its continuation from inside (its spooled script, with
its own full h_rt) and leaves the new id in `continued_as` in its job folder; the watcher follows
that redirect, so `job.result()` and status see one job.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import typing as tp
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from string import Template

from submitit.core import core, job_environment, utils

from xrayhpc import safefiles, sitefiles
from xrayhpc.cluster import jobstart, scheduler
from xrayhpc.cluster.profile import DEFAULT_ENV
from xrayhpc.cluster.scheduler import LIVE, JobInfo, Usage, script_path_problem

if tp.TYPE_CHECKING:
    from xrayhpc.cluster.profile import Profile
    from xrayhpc.schema import JobRecord

TEMPLATE = "job.sh.template"
# A job that left qstat may take a few seconds to reach the accounting file.
ACCOUNTING_LAG_S = 30.0
# In a job's folder: the submitit id of the job that continues it past its wall-time limit.
CONTINUED = "continued_as"
CONTINUED_ID = re.compile(r"\d{1,18}(_\d{1,9})?")


def parse_task_ids(tasks: str) -> list[int]:
    """SGE's task list ("3", "1-5:1", "1-9:2,12") -> 1-based task ids."""
    ids: list[int] = []
    for part in tasks.split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part.strip())
        if not m:
            continue
        lo = int(m.group(1))
        hi = int(m.group(2) or lo)
        ids.extend(range(lo, hi + 1, int(m.group(3) or 1)))
    return ids


def submitit_id(job: str, task: int | None) -> str:
    """SGE job and 1-based task -> submitit's id (`123` or `123_0`)."""
    return job if task is None else f"{job}_{task - 1}"


def qstat_state(code: str) -> str:
    """qstat's state letters -> submitit's state names; E (error, as in Eqw) comes first."""
    if "E" in code:
        return "ERROR"
    if "d" in code:
        return "COMPLETING"
    if "R" in code and "q" in code:
        return "REQUEUED"
    if code.startswith(("s", "S", "T")) or "s" in code or "S" in code:
        return "SUSPENDED"
    if "r" in code or "t" in code:
        return "RUNNING"
    return "PENDING"


def read_qstat_xml(text: str | bytes) -> dict[str, dict[str, str]]:
    """`qstat -xml` -> {submitit id: info}; pending array ranges are expanded."""
    out: dict[str, dict[str, str]] = {}
    if not text or not str(text).strip():
        return out
    root = ET.fromstring(text)
    for job in root.iter("job_list"):
        number = job.findtext("JB_job_number", "")
        code = job.findtext("state", "") or job.get("state", "")
        queue = job.findtext("queue_name", "") or ""
        info = {
            "JobID": number,
            "State": qstat_state(code),
            "SgeState": code,
            "NodeList": queue.split("@", 1)[1] if "@" in queue else "",
            "Name": job.findtext("JB_name", ""),
            "Slots": job.findtext("slots", ""),
            "Started": job.findtext("JAT_start_time", "") or "",
            "Submitted": job.findtext("JB_submission_time", "") or "",
        }
        tasks = job.findtext("tasks")
        for task in parse_task_ids(tasks) if tasks else [None]:
            out[submitit_id(number, task)] = dict(info)
    return out


def acct_state(failed: str, exit_status: str) -> str:
    """qacct's `failed` and `exit_status` -> submitit's state."""
    code = _leading_int(failed)
    status = _leading_int(exit_status)
    if code == 0 and status == 0:
        return "COMPLETED"
    if code == 37:  # qmaster enforced h_rt
        return "TIMEOUT"
    if code == 100 and status in (137, 143):  # qdel of a running job
        return "CANCELLED"
    if code in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 26, 27, 28, 29):  # could not start on the host
        return "NODE_FAIL"
    return "FAILED"


def read_error_reasons(text: str) -> dict[str, str]:
    """`qstat -j ID,...` -> {job number: its first `error reason` line, without the timestamp}."""
    out: dict[str, str] = {}
    job = ""
    for line in text.splitlines():
        if line.startswith("job_number:"):
            job = line.split(":", 1)[1].strip()
        elif line.startswith("error reason") and job and job not in out:
            reason = line.split(":", 1)[1].strip()
            out[job] = re.sub(r"^\d\d/\d\d/\d{4} [\d:]+ \[[\d:]+\]: ", "", reason)
    return out


def _leading_int(text: str) -> int:
    """qacct writes `100 : assumedly after job` and `137   (Killed)`: the number is what counts."""
    m = re.match(r"\s*(-?\d+)", text)
    return int(m.group(1)) if m else 0


UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def acct_seconds(text: str) -> float | None:
    """qacct's `43s`, `30.205s` (or a bare number) -> seconds."""
    m = re.fullmatch(r"\s*([\d.]+)s?\s*", text or "")
    return float(m.group(1)) if m else None


def acct_bytes(text: str) -> float | None:
    """qacct's `949.965MB`, `1.032GB`, `0.000B` -> bytes (powers of 1024, as Grid Engine prints them)."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?B)\s*", text or "")
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def requested_seconds(category: str, limit: str = "h_rt") -> float | None:
    """A time limit from qacct's `category` (`-l gpus=1,h_rt=1800,s_rt=1740 -pe omp 2`): seconds, or None."""
    m = re.search(rf"(?:^|[\s,]){limit}=([\d:]+)", category or "")
    if not m:
        return None
    parts = [int(x) for x in m.group(1).split(":")]
    return float(sum(v * 60**i for i, v in enumerate(reversed(parts))))


def read_qacct(text: str | bytes) -> dict[str, dict[str, str]]:
    """`qacct -j` records (separated by ===== lines) -> {submitit id: info}."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    out: dict[str, dict[str, str]] = {}
    for block in re.split(r"^=+\s*$", text, flags=re.M):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, _, value = line.partition(" ")
            if key:
                fields[key] = value.strip()
        if "jobnumber" not in fields:
            continue
        task = fields.get("taskid", "undefined")
        key = submitit_id(fields["jobnumber"], int(task) if task.isdigit() else None)
        out[key] = {
            "JobID": fields["jobnumber"],
            "State": acct_state(fields.get("failed", "0"), fields.get("exit_status", "0")),
            "NodeList": fields.get("hostname", ""),
            "Failed": fields.get("failed", ""),
            "ExitCode": fields.get("exit_status", ""),
            "Name": fields.get("jobname", ""),
            "Started": fields.get("start_time", ""),
            "Ended": fields.get("end_time", ""),
            "WallClock": fields.get("ru_wallclock", ""),
            "CpuTime": fields.get("cpu", ""),
            "MaxVmem": fields.get("maxvmem", ""),
            "Slots": fields.get("slots", ""),
            "Category": fields.get("category", ""),
        }
    return out


class SgeInfoWatcher(core.InfoWatcher):
    """One `qstat -xml` for every live job, then at most one `qacct` for the ones that left it.

    Asking for each job on its own would cost a scheduler call per job; on SCC the accounting file
    is large, so qacct is asked only about this user's jobs started since the oldest one missing.
    A job neither listed nor accounted for after ACCOUNTING_LAG_S is LOST (a pending job that was
    deleted leaves no record), so nothing waits on it forever.
    """

    def __init__(self, delay_s: int = 60) -> None:
        super().__init__(delay_s)
        self._seen: dict[str, float] = {}  # when each job was last listed (or registered)
        self._folders: dict[str, Path] = {}  # each job's submitit folder, where a continuation is noted
        self._continued: dict[str, str] = {}  # job -> the job that now carries its work
        self.last_error = ""
        self.listed = False  # the last update's qstat answered

    def register_job(self, job_id: str, since: float | None = None, folder: Path | None = None) -> None:
        """`since`: when the job was submitted, if known (a record read back from disk); `folder`:
        its submitit job folder, where it notes a continuation."""
        super().register_job(job_id)
        self._seen.setdefault(job_id, since or time.time())
        if folder is not None:
            self._folders[job_id] = Path(folder)

    def current(self, job_id: str) -> str:
        """The job carrying `job_id`'s work now: itself, or its latest continuation."""
        return self._continued.get(job_id, job_id)

    def get_info(self, job_id: str, mode: str = "standard") -> dict[str, str]:
        info = super().get_info(job_id, mode=mode)
        target = self._continued.get(job_id)
        return {**self._info_dict.get(target, {}), "ContinuedAs": target} if target else info

    def get_state(self, job_id: str, mode: str = "standard") -> str:
        info = self.get_info(job_id, mode=mode)
        return info.get("State") or "UNKNOWN"

    def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
        return read_qstat_xml(string)

    def _run(self, command: list[str]) -> bytes | None:
        self._num_calls += 1
        try:
            return subprocess.run(command, capture_output=True, check=True, timeout=60).stdout
        except (OSError, subprocess.SubprocessError) as err:
            stderr = getattr(err, "stderr", b"") or b""
            self.last_error = f"{' '.join(command[:2])}: {stderr.decode(errors='replace').strip() or err}"
            logging.getLogger("xrayhpc.cluster.sge").debug("%s; status may be out of date", self.last_error)
            return None

    def update(self) -> None:
        """Refresh every registered job that has not ended: one qstat, at most one qacct."""
        asked = self._registered - self._finished
        if not asked:
            return
        self.last_error = ""
        now = time.time()
        listed = self._run(["qstat", "-xml"])
        self.listed = listed is not None
        if listed is not None:
            current = read_qstat_xml(listed)
            self._info_dict.update(current)
            self._follow([j for j in asked if self.current(j) not in current], now)
            live = {self.current(j) for j in asked}
            for job_id in live & set(current):
                self._seen[job_id] = now
            errors = sorted({current[j]["JobID"] for j in live & set(current) if current[j]["State"] == "ERROR"})
            if errors:
                self._reasons(errors, live)
            gone = sorted(live - set(current))
            if gone:
                self._account(gone, now)
        self._last_status_check = now
        for job_id in asked:
            if self.is_done(job_id, mode="cache"):
                self._finished.add(job_id)

    def _follow(self, unlisted: list[str], now: float) -> None:
        """A job that left the queue may have continued as a new submission (each continuation notes
        the latest in the first job's folder): from now on it stands for that one."""
        for job_id in unlisted:
            folder = self._folders.get(job_id)
            target = read_continuation(folder)
            if target and target != job_id and target != self._continued.get(job_id):
                self._continued[job_id] = target
                self._seen[target] = continued_at(folder) or now  # so a vanished one becomes LOST

    def is_done(self, job_id: str, mode: str = "standard") -> bool:
        return self.get_state(job_id, mode=mode).upper() not in LIVE

    def _reasons(self, jobs: list[str], live: set[str]) -> None:
        """SGE's own words for jobs in an error state (Eqw): one `qstat -j` for all of them."""
        text = self._run(["qstat", "-j", ",".join(jobs)])
        reasons = read_error_reasons(text.decode(errors="replace")) if text else {}
        for job_id in live:
            info = self._info_dict.get(job_id, {})
            if info.get("State") == "ERROR" and info.get("JobID") in reasons:
                info["Reason"] = reasons[info["JobID"]]

    def _account(self, gone: list[str], now: float) -> None:
        since = min(self._seen.get(j, now) for j in gone) - 24 * 3600
        stamp = time.strftime("%y%m%d%H%M", time.localtime(since))
        owner = os.environ.get("USER") or _whoami()
        text = self._run(["qacct", "-o", owner, "-b", stamp, "-j"])
        records = read_qacct(text) if text else {}
        for job_id in gone:
            if job_id in records:
                self._info_dict[job_id] = records[job_id]
            elif now - self._seen.get(job_id, now) > ACCOUNTING_LAG_S:
                self._info_dict[job_id] = {"JobID": job_id, "State": "LOST"}
            else:
                self._info_dict.setdefault(job_id, {"JobID": job_id})["State"] = "COMPLETING"


def _whoami() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def current_job(job_id: str, folder: Path | None) -> str:
    """The job now carrying `job_id`'s work: its latest continuation, else itself."""
    return read_continuation(folder) or job_id


def continued_at(folder: Path | None) -> float | None:
    """When the latest continuation was noted (its file's time), if it was."""
    try:
        return (folder / CONTINUED).stat().st_mtime if folder else None
    except OSError:
        return None


def read_continuation(folder: Path | None) -> str:
    """The submitit id in a job folder's `continued_as` ("" when there is none or it is no id)."""
    if folder is None:
        return ""
    try:
        text = safefiles.read_text(folder / CONTINUED).strip()
    except OSError:
        return ""
    return text if CONTINUED_ID.fullmatch(text) else ""


class SgeJob(core.Job[core.R]):
    _cancel_command = "qdel"
    watcher = SgeInfoWatcher(delay_s=60)

    def _register_in_watcher(self) -> None:
        """With the job's folder, where a continuation past the wall-time limit is noted."""
        if not self._tasks[0]:
            self.watcher.register_job(self.job_id, folder=self.paths.folder)

    def cancel(self, check: bool = True) -> None:
        """qdel the job, or just this task of an array."""
        job, _, index = current_job(self.job_id, self.paths.folder).partition("_")
        command = ["qdel", job] + (["-t", str(int(index) + 1)] if index else [])
        (subprocess.check_call if check else subprocess.call)(command, stdout=subprocess.DEVNULL)


class SgeJobEnvironment(job_environment.JobEnvironment):
    _env = {
        "job_id": "JOB_ID",
        "num_tasks": "SUBMITIT_NUM_TASKS",  # one task per job: SGE has no srun
        "num_nodes": "SUBMITIT_NUM_NODES",
        "node": "SUBMITIT_NODE",
        "global_rank": "SUBMITIT_GLOBAL_RANK",
        "local_rank": "SUBMITIT_LOCAL_RANK",
    }

    @property
    def array_job_id(self) -> str | None:
        return os.environ.get("JOB_ID") if self.array_task_id is not None else None

    @property
    def array_task_id(self) -> str | None:
        """0-based, as submitit counts; SGE's SGE_TASK_ID is 1-based or "undefined"."""
        task = os.environ.get("SGE_TASK_ID", "undefined")
        return str(int(task) - 1) if task.isdigit() else None

    @property
    def job_id(self) -> str:
        """The job script's SUBMITIT_JOB_ID: a continuation keeps the first job's id, and its files."""
        return os.environ.get("SUBMITIT_JOB_ID") or super().job_id

    def _requeue(self, countdown: int) -> None:
        """Continue as a fresh submission with its own full h_rt, noted in `continued_as`; where this
        node may not submit, exit 99 (Grid Engine requeues, but keeps counting h_rt from the first
        start: the next `make submit-all` then resubmits what that run could not finish)."""
        log = logging.getLogger("submitit")
        first, _, index = self.job_id.partition("_")
        command = continuation_command(os.environ.get("JOB_SCRIPT", ""), first, int(index) + 1 if index else None)
        try:
            answer = subprocess.run(command, capture_output=True, text=True, timeout=120) if command else None
        except (OSError, subprocess.SubprocessError) as err:  # no qsub on the node, or it hung
            answer, why = None, str(err)
        else:
            why = answer.stderr.strip() if answer is not None else "no spooled job script (JOB_SCRIPT)"
        number = re.match(r"\s*(\d+)(?:\.\S+)?\s*$", answer.stdout) if answer and answer.returncode == 0 else None
        code = 0 if number else 99  # once a continuation is queued, this run must not be requeued too
        if number:
            target = submitit_id(number.group(1), int(index) + 1 if index else None)
            try:
                safefiles.write_text(self.paths.folder / CONTINUED, target + "\n")
            except OSError as err:  # the continuation runs; only the redirect is missing
                log.error(
                    "job %s continues as job %s, but %s could not be noted: %s", self.job_id, target, CONTINUED, err
                )
            log.info("job %s continues as job %s (%d timeouts left)", self.job_id, target, countdown)
        else:
            log.info("job %s cannot submit its continuation (%s): requeued by exit 99 (%d timeouts left)",
                     self.job_id, why or answer and answer.stdout.strip(), countdown)  # fmt: skip
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def continuation_command(script: str, first_job: str, task: int | None) -> list[str]:
    """qsub of the job's own spooled script as a new job that keeps the first job's submitit id
    (XRAYHPC_CONTINUES) and, for an array, only this task; [] without a script to send."""
    if not script or not first_job.isdigit():
        return []
    return ["qsub", "-terse", "-v", f"XRAYHPC_CONTINUES={first_job}", *(["-t", str(task)] if task else []), script]


class SgeExecutor(jobstart.CheckedStart, core.PicklingExecutor):
    """Grid Engine executor: each job is a script from qsub/job.sh.template, sent with `qsub`.

    A batch (`with executor.batch():`) is one array job (`qsub -t 1-N`). Options are the keyword
    parameters of `render_job_script`; submitit's generic ones map as: timeout_min -> time,
    cpus_per_task -> cores, gpus_per_node -> gpus, name -> job_name, mem_gb -> mem_per_core.
    """

    job_class = SgeJob

    def __init__(self, folder: str | Path, max_num_timeout: int = 3, python: str | None = None) -> None:
        super().__init__(folder, max_num_timeout=max_num_timeout)
        self.python = shlex.quote(sys.executable) if python is None else python

    @classmethod
    def _equivalence_dict(cls) -> core.EquivalenceDict:
        return {
            "name": "job_name",
            "timeout_min": "time",
            "cpus_per_task": "cores",
            "gpus_per_node": "gpus",
            "mem_gb": "mem_per_core",
        }

    @classmethod
    def _valid_parameters(cls) -> set[str]:
        return set(_default_parameters())

    def _internal_update_parameters(self, **kwargs: tp.Any) -> None:
        defaults = _default_parameters()
        unknown = sorted(set(kwargs) - set(defaults))
        if unknown:
            valid = ", ".join(f"{k} (default {v!r})" for k, v in sorted(defaults.items()))
            raise ValueError(f"unknown SGE option(s) {unknown}; valid: {valid}")
        render_job_script(command="true", folder=self.folder, **{**self.parameters, **kwargs})
        super()._internal_update_parameters(**kwargs)

    def script(self, count: int = 1) -> str:
        """The exact job script a submission of `count` jobs sends (what a dry run prints)."""
        params = dict(self.parameters)
        if count > 1:
            params["map_count"] = count
        return render_job_script(command=self._submitit_command_str, folder=self.folder, **params)

    def _make_submission_file_text(self, command: str, uid: str) -> str:
        return render_job_script(command=command, folder=self.folder, **self.parameters)

    def _num_tasks(self) -> int:
        return 1

    def _make_submission_command(self, submission_file_path: Path) -> list[str]:
        return submit_command(submission_file_path)

    @staticmethod
    def _get_job_id_from_submission_command(string: bytes | str) -> str:
        """`qsub -terse` prints `123` or, for an array, `123.1-4:1`."""
        if isinstance(string, bytes):
            string = string.decode(errors="replace")
        m = re.search(r"^\s*(\d+)(?:\.\S+)?\s*$", string, flags=re.M)
        if m is None:
            raise utils.FailedSubmissionError(f"could not read a job id from qsub's answer: {string!r}")
        return m.group(1)

    def _internal_process_submissions(
        self, delayed_submissions: list[utils.DelayedSubmission]
    ) -> list[core.Job[tp.Any]]:
        if len(delayed_submissions) == 1:
            return super()._internal_process_submissions(delayed_submissions)
        folder = utils.JobPaths.get_first_id_independent_folder(self.folder)
        folder.mkdir(parents=True, exist_ok=True)
        timeout_min = self.parameters.get("time", 60)
        pickles = []
        for delayed in delayed_submissions:
            path = folder / f"{uuid.uuid4().hex}.pkl"
            delayed.set_timeout(timeout_min, self.max_num_timeout)
            delayed.dump(path)
            pickles.append(path)
        array = SgeExecutor(self.folder, self.max_num_timeout, self.python)
        array.update_parameters(**self.parameters)
        array.parameters["map_count"] = len(delayed_submissions)
        try:
            first = array._submit_command(self._submitit_command_str)
        except BaseException:
            for path in pickles:
                path.unlink(missing_ok=True)
            raise
        jobs: list[core.Job[tp.Any]] = [
            SgeJob(folder=self.folder, job_id=f"{first.job_id}_{i}") for i in range(len(pickles))
        ]
        for job, path in zip(jobs, pickles, strict=True):
            job.paths.move_temporary_file(path, "submitted_pickle")
        return jobs

    @classmethod
    def affinity(cls) -> int:
        # qsub alone could be PBS; qconf is Grid Engine's own
        return 2 if shutil.which("qsub") and shutil.which("qconf") else -1


def submit_command(script: Path | str) -> list[str]:
    """qsub, printing only the job id, refusing requests that no queue can ever satisfy."""
    return ["qsub", "-terse", "-w", "e", str(script)]


@functools.lru_cache
def _default_parameters() -> dict[str, tp.Any]:
    spec = inspect.signature(render_job_script)
    return {
        name: p.default
        for name, p in spec.parameters.items()
        if p.default is not inspect.Parameter.empty and name not in ("map_count",)
    }


def _hms(minutes: float) -> str:
    """Grid Engine's time value (sge_types(1): hh:mm:ss, hours zero-padded), for -l h_rt and s_rt."""
    seconds = int(round(minutes * 60))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def render_job_script(
    command: str,
    folder: str | Path,
    job_name: str = "submitit",
    project: str | None = None,
    queue: str | None = None,
    time: float = 60,
    signal_delay_s: int = 120,
    cores: int = 1,
    parallel_environment: str = "omp",
    gpus: int | None = None,
    gpu_c: float | None = None,
    gpu_type: str | None = None,
    gpu_memory: str | None = None,
    mem_per_core: str | float | None = None,
    array_parallelism: int = 256,
    stdout: str | None = None,
    stderr: str | None = None,
    extra_directives: tp.Sequence[str] = (),
    env: tp.Sequence[str] = (),
    mail: str | None = None,
    mail_events: str = "ea",
    setup: tp.Sequence[str] = (),
    map_count: int | None = None,
) -> str:
    """The job script: `#$` directives from the options, then setup lines, then the command.

    `time` is the wall-time limit in minutes (h_rt); s_rt warns `signal_delay_s` earlier (0: no
    warning). `cores` above 1 asks for `-pe <parallel_environment> N` (NSLOTS in the job).
    `stdout`/`stderr` are where Grid Engine writes what the job prints before the worker starts
    (`-o`/`-e`, SGE's $JOB_ID and $TASK_ID allowed; default: beside the job's own logs, joined);
    the worker's output goes to submitit's log files. `env` names variables of the submitting shell
    that the job receives (`-v`); those unset here are left out, since Grid Engine would set them to
    the empty string. `mail` gets a message (`-M`) at `mail_events` (`-m`, default end and abort).
    `extra_directives` are further qsub options, one per line.
    """
    if time <= 0:
        raise ValueError(f"time must be a positive number of minutes, got {time}")
    if cores < 1:
        raise ValueError(f"cores must be at least 1, got {cores}")
    if gpus is not None and gpus < 0:
        raise ValueError(f"gpus must be 0 or more, got {gpus}")
    if problem := script_path_problem(folder):
        raise ValueError(problem)
    paths = utils.JobPaths(folder, job_id="${SUBMITIT_JOB_ID}", task_id=0)
    log_dir = utils.JobPaths.get_first_id_independent_folder(folder)
    lines = [f"-N {_job_name(job_name)}"]
    if project:
        lines.append(f"-P {project}")
    if queue:
        lines.append(f"-q {queue}")
    lines.append(f"-l h_rt={_hms(time)}")
    if signal_delay_s > 0:  # 0: no warning, h_rt kills outright
        soft = max(time * 60 - signal_delay_s, min(60, time * 30))
        lines.append(f"-l s_rt={_hms(soft / 60)}")
    if cores > 1:
        lines.append(f"-pe {parallel_environment} {cores}")
    if mem_per_core is not None:
        mem = f"{mem_per_core}G" if isinstance(mem_per_core, int | float) else mem_per_core
        lines.append(f"-l mem_per_core={mem}")
    if gpus:
        lines.append(f"-l gpus={gpus}")
        if gpu_c is not None:
            lines.append(f"-l gpu_c={float(gpu_c)!r}")  # 6.0, as SCC writes it
        if gpu_type:
            lines.append(f"-l gpu_type={gpu_type}")
        if gpu_memory:
            lines.append(f"-l gpu_memory={gpu_memory}")
    if map_count:
        lines.append(f"-t 1-{map_count}")
        lines.append(f"-tc {min(map_count, array_parallelism)}")
    lines.append(f"-o {_quoted(stdout or f'{log_dir}/sge-$JOB_ID.$TASK_ID.out')}")
    lines.append(f"-e {_quoted(stderr)}" if stderr else "-j y")
    passed, unset = passed_variables(env)
    if passed:
        lines.append(f"-v {','.join(passed)}")
    if mail:
        lines += [f"-M {mail}", f"-m {mail_events}"]
    lines += list(extra_directives)
    values = {
        "directives": "\n".join(
            [f"#$ {line}" for line in lines]
            + ([f"# not passed, unset where qsub ran: {', '.join(unset)}"] if unset else [])
        ),
        "private_folder": str(log_dir),
        "log_folder": str(paths.folder),
        "stdout": str(paths.stdout),
        "stderr": str(paths.stderr),
        "setup": "\n".join(["", "# setup", *setup, ""]) if setup else "",
        "command": command,
    }
    return Template(template_path().read_text()).substitute(values)


def template_path() -> Path:
    """qsub/job.sh.template: the working directory's, else the packaged one."""
    template = sitefiles.find("qsub", TEMPLATE)
    if template is None:
        raise FileNotFoundError(f"the job template {TEMPLATE} is neither in ./qsub nor in the installed package")
    return template


def passed_variables(names: tp.Sequence[str]) -> tuple[list[str], list[str]]:
    """(set here, so `-v` passes them; unset here, so left out: qsub would give the job empty ones)."""
    passed = [name for name in names if os.environ.get(name)]
    return passed, [name for name in names if name not in passed]


def _quoted(path: str) -> str:
    """A path as a `#$` directive takes it: in double quotes, so a space does not end it."""
    if '"' in path or "\n" in path:
        raise ValueError(f"a job's output path cannot hold a double quote or a newline: {path!r}")
    return f'"{path}"'


def _job_name(name: str) -> str:
    """SGE job names may not start with a digit or hold / : @ \\ * ?"""
    clean = re.sub(r"[/:@\\*?\s]", "_", name) or "job"
    return clean if not clean[0].isdigit() else f"j{clean}"


def usage(info: dict[str, str]) -> Usage | None:
    """From one qacct record (read_qacct); None where there is none."""
    wall, cpu = acct_seconds(info.get("WallClock", "")), acct_seconds(info.get("CpuTime", ""))
    if wall is None or cpu is None:
        return None
    memory = acct_bytes(info.get("MaxVmem", ""))
    slots = info.get("Slots", "")
    return Usage(
        wall,
        cpu,
        round(memory / 1024**2, 1) if memory is not None else None,
        int(slots) if slots.isdigit() else 1,
        requested_seconds(info.get("Category", "")),
    )


def job_info(info: dict[str, str]) -> JobInfo:
    """The watcher's record of one job, in the words every scheduler shares."""
    state = info.get("State") or "UNKNOWN"
    code = info.get("SgeState", "")
    reasons = {
        "ERROR": f"SGE error state {code or 'E'}: {info.get('Reason', 'see qstat -j')}",
        "REQUEUED": "requeued",
        "TIMEOUT": "killed by h_rt: the wall-time limit was reached",
        "CANCELLED": "deleted with qdel while running",
        "NODE_FAIL": f"host error: the job could not start on {info.get('NodeList') or 'its host'} "
        f"(failed {info.get('Failed', '?')})",
        "FAILED": f"exit status {info.get('ExitCode', '?')} (failed {info.get('Failed', '?')})",
    }
    return JobInfo(
        state=state,
        host=info.get("NodeList", ""),
        reason=reasons.get(state, ""),
        held="h" in code,
        usage=usage(info),
        current=display_id(info["ContinuedAs"]) if info.get("ContinuedAs") else "",
    )


def display_id(job_id: str) -> str:
    """`123.1` for the first task of array 123, as qdel and qstat -j take it."""
    job, sep, index = job_id.partition("_")
    return f"{job}.{int(index) + 1}" if sep else job_id


def record_folder(record: JobRecord) -> Path | None:
    """The submitit folder of a recorded job, where its continuation is noted (its log's folder)."""
    return Path(record.log).parent if record.log else None


class GridEngine(scheduler.Scheduler):
    name = "sge"
    title = "Grid Engine"
    submit_command = "qsub"
    cancel_command = "qdel"
    query_command = ("qstat",)
    executor_class = SgeExecutor
    requeue = "submits its continuation, a new job with its own h_rt"
    continues_by_submitting = True

    def installed(self) -> bool:
        return SgeExecutor.affinity() > 0

    def parameters(self, profile: Profile, device: str) -> dict[str, tp.Any]:
        """Keyword options for SgeExecutor.update_parameters for jobs of this device."""
        resources = dict(profile.devices.get(device, {}))
        if device != "gpu":
            for key in ("gpus", "gpu_c", "gpu_type", "gpu_memory"):
                resources.pop(key, None)
        site = profile.site
        return {
            "time": profile.minutes,
            "setup": list(site.get("setup", [])),
            "extra_directives": list(site.get("extra_directives", [])),
            "env": list(site.get("env", DEFAULT_ENV)),
            **{k: site[k] for k in ("project", "queue", "array_parallelism", "mail", "mail_events") if site.get(k)},
            **({"signal_delay_s": site["signal_delay_s"]} if "signal_delay_s" in site else {}),
            **resources,
        }

    def preview(self, executor: tp.Any, count: int, script: Path) -> tuple[str, list[str]]:
        return executor.script(count), submit_command(script)

    def watcher(self, records: dict[str, JobRecord]) -> SgeInfoWatcher:
        """One qstat (and at most one qacct) for every recorded job, following continuations."""
        watcher = SgeInfoWatcher()
        for record in records.values():
            watcher.register_job(record.job_id, since=record.submitted, folder=record_folder(record))
        return watcher

    def job_info(self, info: dict[str, str]) -> JobInfo:
        return job_info(info)

    def cancel(self, records: list[JobRecord]) -> str:
        """qdel of each job, or of its continuation where it continued past h_rt."""
        current = [current_job(r.job_id, record_folder(r)) for r in records]
        ok, said = scheduler.run(["qdel", *[self.display_id(j) for j in current]])
        return "" if ok else said

    def display_id(self, job_id: str) -> str:
        """`123.1` for the first task of array 123 (qdel and qstat -j take it so)."""
        job, sep, index = job_id.partition("_")
        return f"{job}.{int(index) + 1}" if sep else job_id

    def notes(self, profile: Profile) -> list[str]:
        passed, unset = passed_variables(self.parameters(profile, "cpu")["env"])
        if not (passed or unset):
            return []
        return [
            f"passed to jobs (-v): {', '.join(passed) or 'none set'}"
            + (f"; unset here: {', '.join(unset)}" if unset else "")
        ]

    def site_files(self) -> list[Path]:
        return [template_path()]

    def check_request(self, executor: tp.Any) -> str:
        """`qsub -w v`: Grid Engine says whether any queue could ever run the script, and submits nothing."""
        with scheduler.script_file(executor.script(1)) as path:
            ok, said = scheduler.run(["qsub", "-w", "v", str(path)])
        return "" if ok else said


SCHEDULER = GridEngine()
