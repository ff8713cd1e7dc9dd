"""Quiet start-up on machines without a GPU (see `keras_nengo._compat`).

TensorFlow's C++ code logs a few lines while it loads, and NengoDL checks for
a GPU in a second Python and warns on every Simulator it builds without one;
where the machine has no GPU hardware at all, none of that says anything.
"""

import contextlib
import functools
import glob
import os
import subprocess
import sys
import warnings


@contextlib.contextmanager
def native_stderr_to_devnull():
    """Point the C-level stderr (fd 2) to /dev/null while the block runs.

    TensorFlow's C++ code logs a few lines while it loads (oneDNN, CUDA stubs)
    before its logging reads ``TF_CPP_MIN_LOG_LEVEL``, and one more when the
    first op initialises the devices. Python exceptions are unaffected.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


def _gpu_hardware_present():
    """True when the machine has a CUDA or ROCm GPU driver's device nodes."""
    return bool(glob.glob("/dev/nvidia[0-9]*") or glob.glob("/dev/kfd"))


def _could_have_gpu():
    """False when no GPU can be visible to TensorFlow, without initialising it."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    if not tf.test.is_built_with_cuda() and not tf.test.is_built_with_rocm():
        return False
    return _gpu_hardware_present()


@contextlib.contextmanager
def _gpu_check_without_subprocess():
    """Answer NengoDL's import-time GPU check in-process when there is no GPU.

    ``nengo_dl.utils`` starts a second Python that imports TensorFlow just to
    list GPUs (doing it in-process would initialise the devices too early),
    which adds several seconds to every import. Without a CUDA/ROCm build or
    a GPU device node the answer is known to be "no GPU"; otherwise the
    subprocess runs as NengoDL intends.
    """
    original = subprocess.call

    def call(args, *rest, **kwargs):
        command = args[-1] if isinstance(args, (list, tuple)) and args else ""
        if (
            isinstance(command, str)
            and "list_physical_devices('GPU')" in command
            and not _could_have_gpu()
        ):
            return 1  # the child's exit status for "no GPU"
        return original(args, *rest, **kwargs)

    subprocess.call = call
    try:
        yield
    finally:
        subprocess.call = original


def _quiet_no_gpu_warning():
    """Drop ``nengo_dl.Simulator``'s "No GPU support detected" warning where
    the machine has no GPU at all.

    NengoDL warns on every Simulator it builds without a GPU, to point to
    TensorFlow's GPU set-up; on a machine without GPU hardware there is
    nothing to set up. Where GPU hardware exists the warning stays, since
    there it means TensorFlow cannot use it.
    """
    if _gpu_hardware_present():
        return
    simulator = sys.modules["nengo_dl.simulator"].Simulator
    nengo_dl_init = simulator.__init__

    @functools.wraps(nengo_dl_init)
    def __init__(self, *args, **kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="No GPU support detected", category=UserWarning
            )
            nengo_dl_init(self, *args, **kwargs)

    simulator.__init__ = __init__
