"""Device and threads: chosen before Keras starts its backend, and recorded truthfully.

A CPU run must never be recorded as a GPU run, or the timing report lies: `gpu` fails unless the
backend sees a GPU, and `cpu` hides every GPU. When a GPU run finds none, the refusal says which of
three causes holds (a build without CUDA, no GPU allocated, a GPU too old for the build), since each
has another fix. Thread pools follow XRAYHPC_SLOTS, which each job script sets from its scheduler's
own count (SCC kills jobs that use more cores than they asked for).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from xrayhpc.errors import UserError
from xrayhpc.schema import Environment

GPU_INSTALL = "make install GPU=1 (pip install -e '.[gpu]') in the environment the jobs use"
# jax[cuda12]'s wheels need compute capability 5.2 or newer (JAX's installation guide).
JAX_MIN_COMPUTE = 5.2
# NVIDIA's CUDA wheels that tensorflow[and-cuda] and jax[cuda12] bring; one is enough to tell.
CUDA_WHEELS = ("nvidia-cudnn-cu12", "nvidia-cuda-runtime-cu12")


class DeviceError(UserError):
    """The device asked for is not what this machine can give."""


def slots() -> int | None:
    """Cores granted by the scheduler, if any: XRAYHPC_SLOTS, which every job script sets from its
    scheduler's own count (a job script of your own: export XRAYHPC_SLOTS from it)."""
    value = os.environ.get("XRAYHPC_SLOTS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def backend_name() -> str:
    """Keras's backend; an empty KERAS_BACKEND (as a scheduler may pass an unset one) means the default."""
    return os.environ.get("KERAS_BACKEND") or "tensorflow"


@contextlib.contextmanager
def quiet_start() -> Iterator[None]:
    """Keep the backend's start-up notices off the terminal and the log.

    TensorFlow's C++ runtime writes them straight to file descriptor 2 before any log level
    applies (CPU features, oneDNN, CUDA drivers, which differ by machine). Should the start fail,
    what it wrote is shown with the error.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def start_backend() -> None:
    """Import the backend quietly and silence its Python-side warnings (retracing notices)."""
    with quiet_start():
        if backend_name() == "tensorflow":
            import tensorflow as tf

            tf.get_logger().setLevel("ERROR")
            _tensorflow_threads(tf)
            tf.config.list_physical_devices()
        else:
            import jax

            jax.devices()
        import keras  # noqa: F401


def _backend_started() -> bool:
    return "tensorflow" in sys.modules or "jax" in sys.modules


def configure(device: str) -> None:
    """Hide GPUs for `cpu` and size thread pools from the slots, before the backend starts."""
    n = slots()
    if n:
        for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(n)
        os.environ["TF_NUM_INTEROP_THREADS"] = str(min(n, 2))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if device == "cpu":
        if not _backend_started():
            os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
            os.environ["JAX_PLATFORMS"] = "cpu"
        elif "tensorflow" in sys.modules and backend_name() == "tensorflow":
            import tensorflow as tf

            tf.config.set_visible_devices([], "GPU")


def _tensorflow_threads(tf: object) -> None:
    """Thread pools from the slots; TensorFlow accepts this only before its runtime starts."""
    n = slots()
    if not n:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)  # type: ignore[attr-defined]
        tf.config.threading.set_inter_op_parallelism_threads(min(n, 2))  # type: ignore[attr-defined]
    except RuntimeError:  # already started in this process: the environment variables stand
        pass


def gpu_names() -> list[str]:
    """GPUs the Keras backend can use."""
    start_backend()
    if backend_name() == "jax":
        import jax

        return [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    import tensorflow as tf

    names = []
    for gpu in tf.config.get_visible_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        names.append(details.get("device_name", gpu.name))
    return names


@dataclass(frozen=True)
class GpuFacts:
    """What decides whether a GPU run can start here, gathered without training anything."""

    backend: str
    built_with_cuda: bool
    cuda_libraries: bool
    min_compute: float | None
    visible: list[str] = field(default_factory=list)
    physical: list[tuple[str, float | None]] = field(default_factory=list)
    cuda_visible_devices: str | None = None
    host: str = ""

    @property
    def cuda_ready(self) -> bool:
        """This install can drive a GPU at all (built with CUDA and its libraries present)."""
        return self.built_with_cuda and self.cuda_libraries


def tensorflow_build() -> tuple[bool, float | None]:
    """(built with CUDA, lowest compute capability of the build), from TensorFlow's build info."""
    start_backend()
    import tensorflow as tf

    info = tf.sysconfig.get_build_info()
    archs = [int(m.group(1)) for a in info.get("cuda_compute_capabilities", []) if (m := re.search(r"(\d+)$", a))]
    return bool(info.get("is_cuda_build")), (min(archs) / 10 if archs else None)


def cuda_wheels() -> bool:
    """NVIDIA's CUDA libraries are installed as wheels (the `gpu` extra), or the system has cuDNN."""
    for name in CUDA_WHEELS:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            importlib.metadata.version(name)
            return True
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return "libcudnn.so" in subprocess.run([ldconfig, "-p"], capture_output=True, text=True, timeout=10).stdout
    return False


def physical_gpus() -> list[tuple[str, float | None]]:
    """The GPUs the NVIDIA driver reports on this host (name, compute capability); none without it."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.splitlines():
        name, _, cap = line.rpartition(",")
        if name.strip():
            gpus.append((name.strip(), float(cap) if re.fullmatch(r"\s*\d+(\.\d+)?\s*", cap) else None))
    return gpus


def gpu_facts() -> GpuFacts:
    """The facts `diagnose` reads, from the backend, the installed packages and the driver."""
    backend = backend_name()
    if backend == "tensorflow":
        built, minimum = tensorflow_build()
    else:
        built, minimum = importlib.util.find_spec("jax_cuda12_plugin") is not None, JAX_MIN_COMPUTE
    return GpuFacts(
        backend,
        built,
        cuda_wheels(),
        minimum,
        gpu_names(),
        physical_gpus(),
        os.environ.get("CUDA_VISIBLE_DEVICES"),
        socket.gethostname(),
    )


def diagnose(f: GpuFacts) -> str | None:
    """Why the backend sees no GPU, in one line with the fix; None when it sees one."""
    if f.visible:
        return None
    where = f"the {f.backend} backend sees no GPU on {f.host}"
    if not f.built_with_cuda:
        return f"{where}: this {f.backend} was built without CUDA; run {GPU_INSTALL}"
    if not f.cuda_libraries:
        return f"{where}: NVIDIA's CUDA libraries are not installed beside it; run {GPU_INSTALL}"
    if not f.physical or f.cuda_visible_devices in ("", "-1", "NoDevFiles"):
        return (
            f"{where}: no GPU was allocated to this job (CUDA_VISIBLE_DEVICES="
            f"{f.cuda_visible_devices if f.cuda_visible_devices is not None else 'unset'}, "
            f"{len(f.physical)} GPU(s) reported by the driver); submit with a GPU request (-l gpus=1; "
            'device = "gpu" asks for it through the profile\'s [gpu] table)'
        )
    old = [(n, c) for n, c in f.physical if c is not None and f.min_compute is not None and c < f.min_compute]
    if old:
        name, cap = old[0]
        return (
            f"{where}: its GPU {name} has compute capability {cap:.1f}, older than this build supports "
            f"(>= {f.min_compute:.1f}); ask for newer GPUs with -l gpu_c={f.min_compute:.1f} (the profile's [gpu] gpu_c)"
        )
    name, cap = f.physical[0]
    return (
        f"{where}: the driver reports {name} (compute capability {cap if cap is not None else 'unknown'}) but the "
        "backend cannot use it; check `nvidia-smi` and run `python -m xrayhpc.doctor` on the node"
    )


def check(device: str) -> str:
    """The device the run will really use, as recorded; `gpu` with no GPU visible is an error."""
    gpus = gpu_names()
    if device == "gpu":
        if not gpus:
            raise DeviceError(
                f'device = "gpu" but {diagnose(gpu_facts())}. Refusing to run on the CPU and '
                'record it as a GPU run (or set device = "cpu")'
            )
        return f"gpu: {gpus[0]}"
    if gpus:
        raise DeviceError(f'device = "cpu" but the backend still sees {gpus}')
    return f"cpu: {cpu_model()}"


# CPU flags of bfloat16 arithmetic units: x86's AVX512_BF16 and AMX, Arm's BF16.
BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}
BF16_MIN_COMPUTE = 8.0  # NVIDIA's Ampere and newer


def _cpuinfo(*names: str) -> str | None:
    """The value of the first /proc/cpuinfo line whose name starts with one of `names` (Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(names):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags() -> set[str]:
    return set((_cpuinfo("flags", "Features") or "").split())


def bfloat16_problem(used: str) -> str | None:
    """Why the device a run uses has no bfloat16 units, or None when it has them."""
    if used.startswith("gpu"):
        old = [(n, c) for n, c in physical_gpus() if c is not None and c < BF16_MIN_COMPUTE]
        if not old:
            return None
        name, cap = old[0]
        return (
            f"its GPU {name} (compute capability {cap:.1f}) has no bfloat16 units "
            f"(compute capability {BF16_MIN_COMPUTE:.1f} and newer have them)"
        )
    if cpu_flags() & BF16_FLAGS:
        return None
    return f"this CPU ({cpu_model()}) has no bfloat16 units (AVX512_BF16 or AMX on x86, BF16 on Arm)"


def cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def environment(device: str, used: str, backend: bool = True) -> Environment:
    """Where and how the run happened, for metrics.json and the timing report (`backend`: with
    Keras's and the backend's versions; a run that used neither leaves them out)."""
    env: dict[str, Any] = {
        "host": socket.gethostname(),
        "scheduler_job_id": os.environ.get("XRAYHPC_SCHEDULER_JOB") or None,
        "scheduler_task_id": _task_id(),
        "slots": slots(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "device_requested": device,
        "device_used": used,
        "gpu_name": used.split(": ", 1)[1] if used.startswith("gpu") else None,
    }
    if not backend:
        return Environment(**env)
    import keras

    env["keras"] = keras.__version__
    env["backend"] = backend_name()
    if backend_name() == "tensorflow":
        import tensorflow as tf

        env["tensorflow"] = tf.__version__
    else:
        import jax

        env["jax"] = jax.__version__
    return Environment(**env)


def _task_id() -> str | None:
    """The array task as the scheduler counts it (XRAYHPC_TASK_ID, set by the job script)."""
    return os.environ.get("XRAYHPC_TASK_ID") or None
