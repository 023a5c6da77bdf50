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
from xrayhpc.study import driver

GPU_INSTALL = "make install GPU=1 (pip install -e '.[gpu]') in the environment the jobs use"
# JAX's CUDA plugins and the oldest compute capability each drives (JAX's installation guide):
# CUDA 12's from 5.2, CUDA 13's (the lent H200 machines' JAX) from 7.5.
JAX_PLUGINS = {"jax_cuda13_plugin": 7.5, "jax_cuda12_plugin": 5.2}
JAX_MIN_COMPUTE = min(JAX_PLUGINS.values())
# NVIDIA's CUDA wheels that tensorflow[and-cuda], jax[cuda12] and jax[cuda13] bring; one is enough
# to tell (CUDA 13's runtime wheel has no suffix).
CUDA_WHEELS = ("nvidia-cudnn-cu12", "nvidia-cuda-runtime-cu12", "nvidia-cudnn-cu13", "nvidia-cuda-runtime")


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


# The device this process's backend was started for, when a `configured` call started it.
_started_for: str | None = None
# Op determinism, once switched on in a process, stays on there (TensorFlow has no switch back;
# XLA reads its flags when JAX starts): whether it is on, and whether JAX started with its flag.
_deterministic = False
_started_deterministic = False
DETERMINISTIC_XLA = "--xla_gpu_deterministic_ops=true"


def variables(device: str, deterministic: bool = False) -> dict[str, str]:
    """The environment a process running on `device` needs before its backend starts: thread
    pools from the slots, for `cpu` every GPU hidden, and XLA's deterministic GPU kernels when asked
    (JAX reads them when it starts)."""
    # CUDA numbers GPUs fastest first unless told otherwise; nvidia-smi and the schedulers, by PCI bus
    out = {
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        "CUDA_DEVICE_ORDER": os.environ.get("CUDA_DEVICE_ORDER", "PCI_BUS_ID"),
    }
    if deterministic:
        out["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {DETERMINISTIC_XLA}".strip()
    n = slots()
    if n:
        out.update(
            dict.fromkeys(
                ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), str(n)
            )
        )
        out["TF_NUM_INTEROP_THREADS"] = str(min(n, 2))
    if device == "cpu":
        out.update(CUDA_VISIBLE_DEVICES="-1", JAX_PLATFORMS="cpu")
    return out


@contextlib.contextmanager
def configured(device: str, deterministic: bool = False) -> Iterator[None]:
    """This process on `device` for the length of the call, its environment put back after.

    A backend picks its devices once, when it starts: TensorFlow refuses to hide a GPU it has
    seen ("Visible devices cannot be modified after being initialized"). So a process whose
    backend already runs on the other device is refused, in one line, rather than half-switched;
    `python -m xrayhpc.worker` runs each device in a process of its own. (Where the node has no
    GPU at all, hiding them changed nothing, and the GPU check says why there is none.)
    """
    global _started_for, _started_deterministic
    if _backend_started():
        _refuse_switch(device)
        yield
        return
    wanted = variables(device, deterministic)
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    _started_for, _started_deterministic = device, deterministic
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if not _backend_started():
            _started_for, _started_deterministic = None, False


def determinism(on: bool, used: str) -> dict[str, bool | None]:
    """Switch op determinism on when asked (and TF32 off with it), after the backend started; the
    state this process is in, for metrics.json (`tf32`: None on a CPU, which has no TF32 units).

    Off, the default: cuDNN picks its algorithms per process, some GPU kernels (MobileNet's
    backward convolutions among them) add in any order, and float32 matrix products use TF32 on
    Ampere and newer GPUs, so two runs, or a run and its resumption, agree only to rounding.
    """
    global _deterministic
    if backend_name() == "tensorflow":
        import tensorflow as tf

        if on:
            tf.config.experimental.enable_op_determinism()
            tf.config.experimental.enable_tensor_float_32_execution(False)
            _deterministic = True
        tf32 = tf.config.experimental.tensor_float_32_execution_enabled()
    else:
        import jax

        if on:
            jax.config.update("jax_default_matmul_precision", "highest")
        _deterministic = _started_deterministic and jax.config.jax_default_matmul_precision == "highest"
        tf32 = jax.config.jax_default_matmul_precision not in ("highest", "float32")
    return {"deterministic": _deterministic, "tf32": _has_tf32(used) and tf32}


def _has_tf32(used: str) -> bool | None:
    """Whether the device has TF32 units: a GPU of compute capability 8.0 or newer (None: a CPU)."""
    if not used.startswith("gpu"):
        return None
    gpus = physical_gpus()  # none reported: the setting stands as it is
    return not gpus or any(c is not None and c >= TF32_MIN_COMPUTE for _, c in gpus)


def _refuse_switch(device: str) -> None:
    fresh = "each device needs a process of its own (python -m xrayhpc.worker starts one per device)"
    if device == "gpu" and _started_for == "cpu" and driver.report().every:
        raise DeviceError(
            f'device = "gpu" but this process started its backend with the GPUs hidden, for a cpu run; {fresh}'
        )
    if device == "cpu" and (seen := gpu_names()):
        raise DeviceError(f'device = "cpu" but this process started its backend on {seen[0]}; {fresh}')


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
    driver_version: str | None = None
    driver_problem: str | None = None  # nvidia-smi failed: its words
    node_gpus: int = 0  # GPUs on the node, assigned to this job or not

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
    """The GPUs assigned to this process, as the NVIDIA driver reports them (name, compute capability)."""
    return [(g.name, g.compute) for g in driver.report().gpus]


def jax_plugin() -> str | None:
    """The CUDA plugin of the installed JAX (the newest CUDA's first), or None: a CPU-only JAX."""
    return next((name for name in JAX_PLUGINS if importlib.util.find_spec(name) is not None), None)


def gpu_facts() -> GpuFacts:
    """The facts `diagnose` reads, from the backend, the installed packages and the driver."""
    backend = backend_name()
    if backend == "tensorflow":
        built, minimum = tensorflow_build()
    else:
        plugin = jax_plugin()
        built, minimum = plugin is not None, JAX_PLUGINS.get(plugin or "", JAX_MIN_COMPUTE)
    said = driver.report()
    return GpuFacts(
        backend,
        built,
        cuda_wheels(),
        minimum,
        gpu_names(),
        [(g.name, g.compute) for g in said.gpus],
        os.environ.get("CUDA_VISIBLE_DEVICES"),
        socket.gethostname(),
        said.version,
        said.problem,
        said.every,
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
    if f.driver_problem:
        return (
            f"{where}: the NVIDIA driver did not answer ({f.driver_problem}); run `nvidia-smi` on the node, "
            "and tell the cluster's staff if it fails there too"
        )
    if not f.physical or f.cuda_visible_devices in driver.NONE_ASSIGNED:
        return (
            f"{where}: no GPU was allocated to this job (CUDA_VISIBLE_DEVICES="
            f"{f.cuda_visible_devices if f.cuda_visible_devices is not None else 'unset'}, "
            f"{f.node_gpus} GPU(s) on the node); submit with a GPU request (-l gpus=1; "
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
    if cap is None:
        return (
            f"{where}: the driver ({f.driver_version or 'version unknown'}) reports {name} but not its compute "
            "capability, as drivers of 470 and older do: too old for this build; ask for a node with a newer "
            "driver, or the cluster's staff for one"
        )
    return (
        f"{where}: the driver ({f.driver_version or 'version unknown'}) reports {name} (compute capability "
        f"{cap}) but the backend cannot use it; check `nvidia-smi` and run `python -m xrayhpc.doctor` on the node"
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
TF32_MIN_COMPUTE = 8.0


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


def bfloat16_refusal(precision: str, used: str) -> tuple[str, str] | None:
    """(what is wrong, the fix) for a run in `precision` on a device without bfloat16 units, else
    None: the worker's refusal and the doctor's finding say the same."""
    if precision != "bfloat16" or not (problem := bfloat16_problem(used)):
        return None
    return f'precision = "bfloat16" but {problem}', 'use precision = "float32"'


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


def environment(
    device: str,
    used: str,
    backend: bool = True,
    kernels: dict[str, Any] | None = None,
    numerics: dict[str, bool | None] | None = None,
) -> Environment:
    """Where and how the run happened, for metrics.json and the timing report (`backend`: with
    Keras's and the backend's versions; a run that used neither leaves them out; `kernels`: a GPU
    run's kernel check; `numerics`: its determinism and TF32 state)."""
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
        "kernel_check": kernels,
        **(numerics or {}),
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
