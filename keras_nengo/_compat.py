"""Everything keras_nengo knows about versions of its dependencies.

keras_nengo runs NengoDL 3.6.0 (written for TF 2.3-2.11, Keras 2, Nengo 3) on
TensorFlow >= 2.16 with tf-keras, Nengo 4 and NumPy 2. This module is the only
place that deals with that gap:

- it selects Keras 2 (``TF_USE_LEGACY_KERAS=1``) before TensorFlow resolves
  ``tf.keras`` (also when TensorFlow itself was imported first, as isort orders
  imports), and refuses to continue if ``tf.keras`` is already Keras 3;
- it imports NengoDL with ``keras`` temporarily resolving to tf-keras, so that
  NengoDL's ``keras.engine.functional`` and ``keras.layers.BatchNormalizationV1``
  imports find tf-keras's classes (Keras 3 stays untouched for everyone else);
- it imports keras-tuner the same way, so that it runs in its tf.keras mode and
  accepts tf-keras models, and refuses to continue if keras-tuner was already
  imported in its Keras 3 mode;
- it mends what NengoDL 3.6.0 and Nengo 4.1 get wrong with Nengo 4 and NumPy 2
  (`_fix_linear_filter_builder`, `_fix_vendored_scipy`);
- on a machine without GPU hardware it keeps the CUDA runtime's start-up
  error line and NengoDL's "No GPU support detected" warning off the terminal
  (`_quiet_no_gpu_warning`).

Importing it has these effects only; it exports ``tf``, ``nengo_dl`` and
``keras_tuner`` for the rest of keras_nengo.
"""

import contextlib
import functools
import glob
import importlib
import os
import subprocess
import sys
import types
import warnings

import numpy as np

# Values of TF_USE_LEGACY_KERAS for which TensorFlow routes tf.keras to tf-keras.
_LEGACY_KERAS_ON = ("true", "True", "1")


def _check_keras_tuner_mode():
    """Raise if keras_tuner was already imported in its Keras 3 mode.

    keras-tuner picks its mode once, at import, from the ``keras`` package it
    finds (Keras 3 on TF >= 2.16); in that mode it rejects tf-keras models.
    ``TF_USE_LEGACY_KERAS`` does not change that, so the only fix is the
    import order.
    """
    config = sys.modules.get("keras_tuner.src.backend.config")
    if config is None or not config.multi_backend():
        return
    raise RuntimeError(
        "keras_tuner was imported before keras_nengo, so it runs in its Keras 3 "
        "mode and rejects tf-keras models such as keras_nengo's. Received: "
        f"keras_tuner using keras {config.keras.version()}. Expected: keras_tuner "
        "in its tf.keras mode. Fix: put `import keras_nengo` before "
        "`import keras_tuner` (setting TF_USE_LEGACY_KERAS does not change "
        "keras_tuner's mode)."
    )


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


def _select_legacy_keras():
    """Make ``tf.keras`` resolve to tf-keras (Keras 2) and return ``tf``.

    Raises
    ------
    ImportError
        If ``tf.keras`` is Keras 3 even so: it was resolved before this module
        ran, or the user set ``TF_USE_LEGACY_KERAS`` to a false value.
    """
    user_value = os.environ.get("TF_USE_LEGACY_KERAS")
    tf_imported_without_legacy_keras = (
        "tensorflow" in sys.modules and user_value not in _LEGACY_KERAS_ON
    )
    # setdefault: an explicit user choice is reported below, not overridden.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    # honour TF_CPP_MIN_LOG_LEVEL (unless the user asked for everything, 0) for
    # the lines TensorFlow prints while loading, before its logging reads it
    quiet = os.environ["TF_CPP_MIN_LOG_LEVEL"] not in ("", "0")
    with native_stderr_to_devnull() if quiet else contextlib.nullcontext():
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        if not _gpu_hardware_present():
            # On a machine without a GPU, TensorFlow's CUDA platform prints
            # "failed call to cuInit" when it first looks for one (at the first
            # op otherwise). Listing the physical devices is that look, without
            # initialising the runtime: thread and device settings stay open.
            tf.config.list_physical_devices("GPU")

    keras_module = tf.keras.Model.__module__
    if keras_module.startswith("tf_keras"):
        if tf_imported_without_legacy_keras:
            # TensorFlow fixes where the *module* ``tensorflow.keras`` comes from
            # when it is imported (Keras 3 here), while the attribute ``tf.keras``
            # resolves on first use (tf-keras, checked above). keras-tuner does
            # `from tensorflow.keras import *`: make both mean tf-keras.
            sys.modules.setdefault(
                "tensorflow.keras", importlib.import_module("tf_keras.api._v2.keras")
            )
        return tf

    if user_value is None or user_value in _LEGACY_KERAS_ON:
        cause = "TensorFlow resolved tf.keras before keras_nengo was imported"
        fix = "put `import keras_nengo` before importing tensorflow or keras"
    else:
        cause = f"TF_USE_LEGACY_KERAS={user_value!r} makes TensorFlow use Keras 3"
        fix = "set TF_USE_LEGACY_KERAS=1 (or unset it) before starting Python"
    raise ImportError(
        f"keras_nengo needs tf.keras to be tf-keras (Keras 2), but it is Keras 3: "
        f"{cause}. Received: tf.keras.Model from {keras_module!r}, "
        f"TF_USE_LEGACY_KERAS={user_value!r} before keras_nengo was imported. "
        f"Expected: tf.keras.Model from 'tf_keras'. Fix: {fix}."
    )


@contextlib.contextmanager
def _keras_is_tf_keras():
    """Temporarily let ``import keras`` resolve to tf-keras.

    NengoDL 3.6.0 and keras-tuner 1.4 import the top-level ``keras`` package; on
    TF >= 2.16 that is Keras 3. While the block runs, ``keras`` (and the two
    NengoDL-specific submodules) point to tf-keras; afterwards the previous
    modules are restored, so Keras 3 users are unaffected.
    """
    # pylint: disable=import-outside-toplevel
    import tf_keras
    from tf_keras.src import engine, layers
    from tf_keras.src.engine import functional

    keras_layers = types.ModuleType("keras.layers")
    keras_layers.__dict__.update(vars(tf_keras.layers))
    keras_layers.BatchNormalizationV1 = layers.BatchNormalizationV1
    keras_layers.BatchNormalizationV2 = layers.BatchNormalizationV2

    replacements = {
        "keras": tf_keras,
        "keras.engine": engine,
        "keras.engine.functional": functional,
        "keras.layers": keras_layers,
    }
    saved = {name: sys.modules.get(name) for name in replacements}
    sys.modules.update(replacements)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


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


def _import_nengo_dl():
    if "nengo_dl" in sys.modules:
        return sys.modules["nengo_dl"]
    with _keras_is_tf_keras(), _gpu_check_without_subprocess(), warnings.catch_warnings():
        # NengoDL 3.6.0 warns that it was only tested up to Nengo 3.2; running it
        # on Nengo 4 is exactly what this module makes work.
        warnings.filterwarnings(
            "ignore", message="This version of NengoDL has not been tested"
        )
        import nengo_dl  # pylint: disable=import-outside-toplevel

    return nengo_dl


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


def _import_keras_tuner():
    if "keras_tuner" in sys.modules:
        return sys.modules["keras_tuner"]
    with _keras_is_tf_keras():
        import keras_tuner  # pylint: disable=import-outside-toplevel

    return keras_tuner


class _NumpyWithRemovedFunctions(types.ModuleType):
    """``numpy``, plus the functions NumPy 2 removed that Nengo's vendored SciPy
    code still calls (``in1d``: removed in 2.4; ``find_common_type``: in 2.0).

    Used as the ``np`` of those vendored modules only; the real ``numpy`` module
    is not modified.
    """

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def in1d(ar1, ar2, assume_unique=False, invert=False):
        """``np.in1d``, as NumPy documented it: ``np.isin(...).ravel()``."""
        return np.isin(ar1, ar2, assume_unique=assume_unique, invert=invert).ravel()

    @staticmethod
    def find_common_type(array_types, scalar_types):
        """``np.find_common_type`` for the vendored callers, which pass no
        scalar types (NumPy's documented replacement is ``np.result_type``)."""
        return np.result_type(*array_types, *scalar_types)


def _fix_vendored_scipy():
    """Let Nengo's vendored ``expm`` run on NumPy 2.

    ``nengo.LinearFilter`` discretizes analog filters with ``cont2discrete``,
    which calls Nengo's vendored copy of SciPy's ``expm``. For matrices with 200
    or more states (e.g. an LMU memory) that estimates 1-norms, calling
    ``np.in1d`` and ``np.find_common_type``, both removed from NumPy 2.
    """
    # pylint: disable=import-outside-toplevel
    from nengo._vendor.scipy.sparse import (
        linalg_expm,
        linalg_interface,
        linalg_onenormest,
    )

    numpy_with_removed_functions = _NumpyWithRemovedFunctions("numpy")
    for module in (linalg_expm, linalg_interface, linalg_onenormest):
        module.np = numpy_with_removed_functions


def _fix_linear_filter_builder():
    """Give NengoDL's ``LinearFilter`` builder the step shapes of Nengo 3.

    Nengo 4's filter steps reshape the passthrough ``D`` from ``(1,)`` to
    ``(1, 1)``. NengoDL 3.6.0's ``LinearFilterBuilder.build_pre`` indexes ``D``
    as a vector, so building a filter with a passthrough (``NoX``, ``General``
    steps: any ``LinearFilter`` whose numerator is as long as its denominator)
    fails its shape assertions. Its ``A``, ``B`` and ``C`` shapes did not change.
    """
    # pylint: disable=import-outside-toplevel
    from nengo.synapses import LinearFilter
    from nengo_dl.process_builders import LinearFilterBuilder

    nengo_make_step = LinearFilter.make_step
    nengo_dl_build_pre = LinearFilterBuilder.build_pre

    def make_step_with_vector_d(self, *args, **kwargs):
        step = nengo_make_step(self, *args, **kwargs)
        step.D = step.D.reshape(-1)
        return step

    @functools.wraps(nengo_dl_build_pre)
    def build_pre(self, signals, config):
        # Swapped only while NengoDL creates its steps, so Nengo's own simulator
        # keeps Nengo 4's shapes.
        LinearFilter.make_step = make_step_with_vector_d
        try:
            nengo_dl_build_pre(self, signals, config)
        finally:
            LinearFilter.make_step = nengo_make_step

    LinearFilterBuilder.build_pre = build_pre


def in_functional_construction() -> bool:
    """True while a Keras Functional model is being built from symbolic inputs.

    tf-keras calls each layer once on placeholders in its own scratch graph
    (``keras_graph``) to work out the model's structure; nothing run there is
    ever executed, so a stateful layer must not fix its batch size there.
    """
    from tf_keras.src import backend

    keras_graph = getattr(backend._GRAPH, "graph", None)
    return keras_graph is not None and tf.compat.v1.get_default_graph() is keras_graph


def in_xla_compilation() -> bool:
    """True while tracing a function that XLA compiles (``jit_compile=True``)."""
    from tensorflow.python.ops import control_flow_util

    if tf.executing_eagerly():
        return False
    graph = tf.compat.v1.get_default_graph()
    return bool(control_flow_util.GraphOrParentsInXlaContext(graph))


_check_keras_tuner_mode()
tf = _select_legacy_keras()
nengo_dl = _import_nengo_dl()
keras_tuner = _import_keras_tuner()
_fix_vendored_scipy()
_fix_linear_filter_builder()
_quiet_no_gpu_warning()
