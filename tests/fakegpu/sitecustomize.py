"""A GPU that is not there, faked at TensorFlow's device boundary (put this folder on PYTHONPATH).

TensorFlow then lists one GPU, "Fake GPU", unless CUDA_VISIBLE_DEVICES hid the GPUs when it was
imported, and refuses to change its visible devices, as a GPU build does once its runtime runs
("Visible devices cannot be modified after being initialized"). The work itself runs on the CPU.
FAKE_GPU_KERNELS=ptx makes every convolution fail as on a GPU the build has no code for under a
driver older than its CUDA; FAKE_GPU_KERNELS=abort makes it abort the process, as a fatal CUDA
error in TensorFlow's runtime does.
"""

import importlib.abc
import importlib.util
import os
import sys

NAME = "Fake GPU"


def _fake(tf) -> None:  # noqa: ANN001 - the tensorflow module
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES") in ("-1", "")
    gpu = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    listed, visible, details = (
        tf.config.list_physical_devices,
        tf.config.get_visible_devices,
        tf.config.experimental.get_device_details,
    )

    def with_gpu(real):  # noqa: ANN001, ANN202
        def devices(device_type=None):  # noqa: ANN001, ANN202
            found = list(real(device_type))
            return found + [gpu] if not hidden and device_type in (None, "GPU") else found

        return devices

    def set_visible_devices(devices, device_type=None):  # noqa: ANN001, ANN202, ARG001
        raise RuntimeError("Visible devices cannot be modified after being initialized")

    def get_device_details(device):  # noqa: ANN001, ANN202
        return {"device_name": NAME, "compute_capability": (9, 0)} if device == gpu else details(device)

    tf.config.list_physical_devices = with_gpu(listed)
    tf.config.get_visible_devices = with_gpu(visible)
    tf.config.experimental.list_physical_devices = tf.config.list_physical_devices
    tf.config.set_visible_devices = tf.config.experimental.set_visible_devices = set_visible_devices
    tf.config.experimental.get_device_details = get_device_details

    failure = os.environ.get("FAKE_GPU_KERNELS")
    if failure and not hidden:

        def convolution(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202, ARG001
            if failure == "abort":
                os.abort()
            raise tf.errors.InternalError(
                None, None, "'cuModuleLoadData(&module, data)' failed with 'CUDA_ERROR_UNSUPPORTED_PTX_VERSION'"
            )

        tf.nn.convolution = convolution


class _AfterImport(importlib.abc.MetaPathFinder):
    """Patches tensorflow once it has been imported, wherever that happens."""

    def find_spec(self, name, path, target=None):  # noqa: ANN001, ANN201, ARG002
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):  # noqa: ANN001, ANN202
            run(module)
            _fake(module)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _AfterImport())
