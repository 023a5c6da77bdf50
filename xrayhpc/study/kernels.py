"""The kernel check: the operations a job will use, run once on its device before any training.

    python -m xrayhpc.study.kernels USED PRECISION     (what `isolated` runs; prints JSON)

A GPU the build has no machine code for still lists as a device; its kernels are compiled from the
build's PTX at first use, which fails (CUDA_ERROR_UNSUPPORTED_PTX_VERSION) under a driver older
than the build's CUDA, and otherwise costs compile time. Found in the first minute, that is a user
error with a fix (another GPU, another driver), not a crash an hour in that would be retried. The
check runs in a child process: a failed GPU kernel may abort its process rather than raise, and the
job must live on to say why.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from xrayhpc.errors import cli, said_errors
from xrayhpc.render import one_line
from xrayhpc.study import device, driver

FAILED = "the kernel check failed"
# What the cause of a failed kernel is, from the words the CUDA runtime uses for it.
PTX_WORDS = ("PTX", "no kernel image", "CUDA_ERROR_NO_BINARY_FOR_GPU", "INVALID_SOURCE")
TIMEOUT_S = 600  # compiling four operations' PTX takes seconds; a hung driver is not waited for


@dataclass(frozen=True)
class Build:
    """What the backend was built for: its CUDA and the compute capabilities it has code for."""

    cuda: str | None
    capabilities: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class KernelCheck:
    """Each operation's first and second run, in seconds, and what decides whether they can run."""

    used: str
    precision: str
    first_s: dict[str, float]
    second_s: dict[str, float]
    driver: str | None
    build: Build
    gpu_compute: float | None

    @property
    def compile_s(self) -> float:
        """First use beyond the second: what compiling (PTX, XLA, autotuning) cost."""
        return round(sum(max(0.0, self.first_s[k] - self.second_s[k]) for k in self.first_s), 3)

    def line(self) -> str:
        ops = ", ".join(f"{k} {self.second_s[k] * 1e3:.2f} ms" for k in self.second_s)
        said = f"kernel check on {self.used} ({self.precision}): {ops}; first use {self.compile_s:.2f} s more"
        return f"{said}; {facts(self)}" if self.used.startswith("gpu") else said

    def record(self) -> dict[str, Any]:
        """For metrics.json's environment."""
        return {
            "precision": self.precision,
            "first_s": self.first_s,
            "second_s": self.second_s,
            "compile_s": self.compile_s,
            "driver": self.driver,
            "build_cuda": self.build.cuda,
            "build_capabilities": self.build.capabilities,
            "gpu_compute": self.gpu_compute,
        }


def facts(check: KernelCheck) -> str:
    caps = ", ".join(check.build.capabilities) or "unknown"
    gpu = f"{check.gpu_compute:.1f}" if check.gpu_compute is not None else "unknown"
    return f"driver {check.driver or 'unknown'}, build CUDA {check.build.cuda or 'unknown'} for {caps}, GPU compute capability {gpu}"


def build() -> Build:
    """The backend's CUDA build, from TensorFlow's build information or JAX's CUDA plugin."""
    if device.backend_name() == "tensorflow":
        import tensorflow as tf

        info = tf.sysconfig.get_build_info()
        return Build(info.get("cuda_version"), list(info.get("cuda_compute_capabilities", [])))
    plugin = device.jax_plugin()
    if plugin is None:
        return Build(None)
    cuda = plugin.removeprefix("jax_cuda").removesuffix("_plugin")
    return Build(cuda, [f"compute capability >= {device.JAX_PLUGINS[plugin]:.1f}"])


def operations(precision: str) -> dict[str, Callable[[], Any]]:
    """A convolution, a matmul, the augmentation's projective warp and a reduction, in `precision`,
    through Keras's ops: on the backend's own kernels, as training calls them. Each moves its own
    inputs to the device, so even the first copy or cast fails inside its operation."""
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (8, 64, 64, 3)).astype("float32")
    kernel = rng.standard_normal((3, 3, 3, 16)).astype("float32")
    a = rng.standard_normal((256, 256)).astype("float32")
    warp = np.tile(np.array([[1, 0.1, -3, -0.1, 1, 2, 0, 0]], "float32"), (8, 1))
    ops = keras.ops

    def on_device(x: np.ndarray, dtype: str = precision) -> Any:
        return ops.cast(ops.convert_to_tensor(x), dtype)

    def value(t: Any) -> float:
        return float(ops.convert_to_numpy(ops.cast(ops.sum(t), "float32")))

    return {
        "conv": lambda: value(ops.conv(on_device(images), on_device(kernel), padding="same")),
        "matmul": lambda: value(ops.matmul(on_device(a), on_device(a))),
        "warp": lambda: value(ops.image.affine_transform(on_device(images, "float32"), on_device(warp, "float32"))),
        "reduce": lambda: value(ops.max(on_device(images), axis=(1, 2, 3))),
    }


def run(used: str, precision: str, ops: dict[str, Callable[[], Any]] | None = None) -> KernelCheck:
    """Each operation twice, in this process, on the backend's device; a failure is a DeviceError
    naming its cause. `isolated` runs this in a child."""
    device.start_backend()
    ops = operations(precision) if ops is None else ops
    check = _blank(used, precision)
    for name, op in ops.items():
        for times in (check.first_s, check.second_s):
            t = time.perf_counter()
            try:
                op()
            except Exception as err:  # noqa: BLE001 - any kernel failure is the finding
                raise device.DeviceError(refusal(check, name, f"{type(err).__name__}: {err}")) from None
            times[name] = round(time.perf_counter() - t, 6)
    return check


def _blank(used: str, precision: str) -> KernelCheck:
    """A check with its facts and no timings yet."""
    said = driver.report() if used.startswith("gpu") else driver.DriverReport()
    gpu = said.gpus[0] if said.gpus else None
    return KernelCheck(used, precision, {}, {}, said.version, build(), gpu.compute if gpu else None)


def isolated(used: str, precision: str) -> KernelCheck:
    """`run` in a fresh process with this one's environment (the same GPU): its answer, or its one
    line when it refused, or a refusal naming how it died."""
    try:
        out = subprocess.run(
            [sys.executable, "-m", "xrayhpc.study.kernels", used, precision],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise device.DeviceError(
            refusal(_blank(used, precision), "every operation", f"no answer within {TIMEOUT_S} s (a hung driver?)")
        ) from None
    if out.returncode == 0:
        record = json.loads(out.stdout.strip().splitlines()[-1])
        return KernelCheck(**{**record, "build": Build(**record["build"])})
    errors = said_errors(out.stderr)
    if errors:
        raise device.DeviceError(errors[-1])
    how = (
        f"its process died of {signal.Signals(-out.returncode).name}"
        if out.returncode < 0 and -out.returncode in signal.valid_signals()
        else f"its process exited with status {out.returncode}"
    )
    last = [line for line in out.stderr.splitlines() if line.strip()][-3:]
    raise device.DeviceError(refusal(_blank(used, precision), "the check", f"{how}: {' / '.join(last)}"))


def refusal(check: KernelCheck, op: str, said: str) -> str:
    """One line: what failed, the facts, and the fix for its cause (read from the whole message)."""
    where = f"{FAILED} on {check.used}: {op} ({check.precision}): {one_line(said)[:300]}; {facts(check)}"
    if any(w.lower() in said.lower() for w in PTX_WORDS):
        return (
            f"{where}: this build has no machine code for this GPU and the driver cannot compile its PTX "
            "(a driver older than the build's CUDA); ask for a GPU the build has code for (the profile's "
            "[gpu] gpu_c, or a named GPU model) or load a newer CUDA driver module"
        )
    if check.used.startswith("gpu"):
        return f"{where}: check `python -m xrayhpc.doctor --on-node gpu`, or ask for another GPU model (the profile's [gpu] gpu_c)"
    return where


@cli
def main(argv: list[str] | None = None) -> int:
    """The check in this process, its record printed as JSON (the line `isolated` reads)."""
    used, precision = argv if argv is not None else sys.argv[1:]
    print(json.dumps(dataclasses.asdict(run(used, precision))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
