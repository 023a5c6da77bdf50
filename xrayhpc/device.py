"""Device and threads: chosen before Keras starts its backend, and recorded truthfully.

A CPU run must never be recorded as a GPU run, or the timing report lies: `gpu` fails unless the
backend sees a GPU, and `cpu` hides every GPU. Thread pools follow NSLOTS (SCC kills jobs that use
more cores than they asked for).
"""

from __future__ import annotations

import os
import platform
import socket
import sys
from typing import Any

from xrayhpc.errors import UserError


class DeviceError(UserError):
    """The device asked for is not what this machine can give."""


def slots() -> int | None:
    """Cores granted by the scheduler (SGE's NSLOTS, Slurm's SLURM_CPUS_PER_TASK), if any."""
    for name in ("NSLOTS", "SLURM_CPUS_PER_TASK"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def backend_name() -> str:
    return os.environ.get("KERAS_BACKEND", "tensorflow")


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
    if backend_name() == "jax":
        import jax

        return [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    import tensorflow as tf

    _tensorflow_threads(tf)
    names = []
    for gpu in tf.config.get_visible_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        names.append(details.get("device_name", gpu.name))
    return names


def check(device: str) -> str:
    """The device the run will really use, as recorded; `gpu` with no GPU visible is an error."""
    gpus = gpu_names()
    if device == "gpu":
        if not gpus:
            raise DeviceError(
                f"device = \"gpu\" but the {backend_name()} backend sees no GPU on {socket.gethostname()} "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); "
                "refusing to run on the CPU and record it as a GPU run. Submit with a GPU request "
                "(-l gpus=1) or set device = \"cpu\""
            )
        return f"gpu: {gpus[0]}"
    if gpus:
        raise DeviceError(f"device = \"cpu\" but the backend still sees {gpus}")
    return f"cpu: {cpu_model()}"


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: str, used: str) -> dict[str, Any]:
    """Where and how the run happened, for metrics.json and the timing report."""
    import keras

    env: dict[str, Any] = {
        "host": socket.gethostname(),
        "scheduler_job_id": os.environ.get("JOB_ID") or os.environ.get("SLURM_JOB_ID"),
        "scheduler_task_id": _task_id(),
        "slots": slots(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": backend_name(),
        "device_requested": device,
        "device_used": used,
        "gpu_name": used.split(": ", 1)[1] if used.startswith("gpu") else None,
    }
    if backend_name() == "tensorflow":
        import tensorflow as tf

        env["tensorflow"] = tf.__version__
    else:
        import jax

        env["jax"] = jax.__version__
    return env


def _task_id() -> str | None:
    for name in ("SGE_TASK_ID", "SLURM_ARRAY_TASK_ID"):
        value = os.environ.get(name)
        if value and value != "undefined":
            return value
    return None
