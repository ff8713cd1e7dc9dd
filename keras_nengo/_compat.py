"""Everything keras_nengo knows about versions of its dependencies.

keras_nengo runs NengoDL 3.6.0 (written for TF 2.3-2.11, Keras 2, Nengo 3) on
TensorFlow >= 2.16, Nengo 4 and NumPy 2, under either Keras the process uses.
This module is the only place that deals with those gaps:

- **Which Keras.** keras_nengo follows Keras's own convention and does not
  choose: with ``TF_USE_LEGACY_KERAS=1`` (set before ``tf.keras`` is first
  used), ``tf.keras`` is tf-keras (Keras 2) and so is keras_nengo; without it,
  ``tf.keras`` and ``import keras`` are Keras 3 (TensorFlow backend) and
  `NengoLayer` is a ``keras.Layer``. `keras` is the chosen one, `KERAS_3` says
  which it is; everything user-facing in keras_nengo goes through them.
- **NengoDL stays on tf-keras.** NengoDL's ``TensorGraph`` is a tf-keras layer
  and its code calls ``tf.keras`` at run time. It is imported while ``keras``
  resolves to tf-keras (for its ``keras.engine.functional`` and
  ``keras.layers.BatchNormalizationV1`` imports) and, under Keras 3, while
  ``tensorflow`` resolves to `TensorFlowWithTfKeras`: each NengoDL module's
  ``tf`` is then TensorFlow with ``tf.keras`` (and ``tf.losses``,
  ``tf.optimizers``, ...) being tf-keras. The user's ``tf.keras`` and
  ``keras`` are not changed; nothing of NengoDL's is a Keras 3 object, since
  keras_nengo's layer owns its variables and feeds NengoDL's graph tensors.
- keras-tuner is imported in the mode matching the chosen Keras (its tf.keras
  mode under tf-keras, refusing to continue if it was already imported in its
  Keras 3 mode).
- Where the two Kerases' APIs differ for a layer or model (variables,
  tracking, output shapes, dtypes, serialization, training and distribution
  steps), `keras_nengo._keras_apis` hides the difference.
- It mends what NengoDL 3.6.0 and Nengo 4.1 get wrong with Nengo 4 and NumPy 2
  (`keras_nengo._nengo4_fixes`) and, on a machine without GPU hardware, keeps
  the CUDA runtime's start-up line and NengoDL's "No GPU support detected"
  warning off the terminal (`_quiet_no_gpu_warning`).

Importing it has these effects only; it exports ``tf``, ``keras``,
``tf_keras``, ``KERAS_3``, ``nengo_dl`` and ``keras_tuner`` for the rest of
keras_nengo.
"""

import contextlib
import importlib
import os
import sys
import types
import warnings

from keras_nengo import _nengo4_fixes
from keras_nengo._quiet import (  # noqa: F401  (native_stderr_to_devnull: cli)
    _could_have_gpu,
    _gpu_check_without_subprocess,
    _gpu_hardware_present,
    _quiet_no_gpu_warning,
    native_stderr_to_devnull,
)

# Values of TF_USE_LEGACY_KERAS for which TensorFlow routes tf.keras to tf-keras.
_LEGACY_KERAS_ON = ("true", "True", "1")
# tf-keras's API module, which tf.keras is in legacy mode
_TF_KERAS_API = "tf_keras.api._v2.keras"


def _check_keras_tuner_mode(keras_3):
    """Raise if keras_tuner was imported in the mode of the other Keras.

    keras-tuner picks its mode once, at import, from the ``keras`` package it
    finds (Keras 3 on TF >= 2.16); in that mode it rejects tf-keras models.
    ``TF_USE_LEGACY_KERAS`` does not change that, so the only fix is the
    import order.
    """
    config = sys.modules.get("keras_tuner.src.backend.config")
    if keras_3 or config is None or not config.multi_backend():
        return
    raise RuntimeError(
        "keras_tuner was imported before keras_nengo, so it runs in its Keras 3 "
        "mode and rejects tf-keras models, which TF_USE_LEGACY_KERAS=1 makes "
        "keras_nengo's. Received: keras_tuner using keras "
        f"{config.keras.version()}. Expected: keras_tuner in its tf.keras mode. "
        "Fix: put `import keras_nengo` before `import keras_tuner` (setting "
        "TF_USE_LEGACY_KERAS does not change keras_tuner's mode), or unset "
        "TF_USE_LEGACY_KERAS to use Keras 3."
    )


def _select_keras():
    """Import TensorFlow quietly; return ``(tf, keras_3)`` for the user's Keras.

    Raises
    ------
    ImportError
        If ``TF_USE_LEGACY_KERAS`` asks for tf-keras but ``tf.keras`` was
        resolved to Keras 3 before it was set.
    """
    # Keras's own convention, read as TensorFlow reads it: never set here
    legacy = os.environ.get("TF_USE_LEGACY_KERAS") in _LEGACY_KERAS_ON
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
    if not keras_module.startswith("tf_keras"):
        if not legacy:
            return tf, True
        raise ImportError(
            "TF_USE_LEGACY_KERAS=1 asks for tf-keras (Keras 2), but tf.keras is "
            "Keras 3: TensorFlow resolved tf.keras before the variable was set. "
            f"Received: tf.keras.Model from {keras_module!r}. Expected: "
            "tf.keras.Model from 'tf_keras'. Fix: set TF_USE_LEGACY_KERAS=1 "
            "before starting Python (or before importing tensorflow), or unset "
            "it to use Keras 3."
        )
    if not getattr(tf, "_tf_uses_legacy_keras", True):
        # TensorFlow was imported before TF_USE_LEGACY_KERAS=1 was set: it fixes
        # where the *module* ``tensorflow.keras`` comes from when it is imported
        # (Keras 3 then), while the attribute ``tf.keras`` resolves on first use
        # (tf-keras, checked above). keras-tuner does
        # `from tensorflow.keras import *`: make both tf-keras.
        sys.modules.setdefault(
            "tensorflow.keras", importlib.import_module(_TF_KERAS_API)
        )
    return tf, False


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
    with _modules_replaced(replacements):
        yield


@contextlib.contextmanager
def _modules_replaced(replacements):
    """Let ``sys.modules`` hold ``replacements`` while the block runs."""
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


class TensorFlowWithTfKeras(types.ModuleType):
    """``tensorflow`` whose Keras is tf-keras: the ``tf`` of NengoDL's modules.

    TensorFlow's ``tf.keras``, ``tf.losses``, ``tf.metrics``, ``tf.optimizers``
    and ``tf.initializers`` resolve to the Keras the process chose (Keras 3
    unless ``TF_USE_LEGACY_KERAS=1``); here they are tf-keras's, and every other
    name is TensorFlow's own.
    """

    def __init__(self, tf):
        super().__init__("tensorflow")
        self._tensorflow = tf
        self.keras = importlib.import_module(_TF_KERAS_API)
        for name in ("losses", "metrics", "optimizers", "initializers"):
            setattr(self, name, getattr(self.keras, name))

    def __getattr__(self, name):
        return getattr(self._tensorflow, name)


def _import_nengo_dl(keras_3):
    if "nengo_dl" in sys.modules:
        return sys.modules["nengo_dl"]
    with contextlib.ExitStack() as stack:
        stack.enter_context(_keras_is_tf_keras())
        if keras_3:
            # each NengoDL module's `import tensorflow as tf` binds the proxy
            stack.enter_context(_modules_replaced({"tensorflow": nengo_dl_tf}))
        stack.enter_context(_gpu_check_without_subprocess())
        stack.enter_context(warnings.catch_warnings())
        # NengoDL 3.6.0 warns that it was only tested up to Nengo 3.2; running it
        # on Nengo 4 is exactly what this module makes work.
        warnings.filterwarnings(
            "ignore", message="This version of NengoDL has not been tested"
        )
        import nengo_dl  # pylint: disable=import-outside-toplevel

    if not issubclass(nengo_dl.tensor_graph.TensorGraph, tf_keras.layers.Layer):
        raise ImportError(
            "NengoDL was imported before keras_nengo, in a process whose tf.keras "
            "is Keras 3, so NengoDL's layers are not tf-keras layers and cannot "
            "run. Received: nengo_dl.TensorGraph based on "
            f"{nengo_dl.tensor_graph.TensorGraph.__mro__[1]!r}. Expected: a "
            "tf-keras layer. Fix: put "
            "`import keras_nengo` before `import nengo_dl`."
        )
    return nengo_dl


def _import_keras_tuner(keras_3):
    if "keras_tuner" in sys.modules or keras_3:
        # Keras 3: keras-tuner's own choice (its Keras 3 mode) is the right one
        return importlib.import_module("keras_tuner")
    with _keras_is_tf_keras():
        import keras_tuner  # pylint: disable=import-outside-toplevel

    return keras_tuner


def in_functional_construction() -> bool:
    """True while a Keras Functional model is being built from symbolic inputs.

    tf-keras calls each layer once on placeholders in its own scratch graph
    (``keras_graph``) to work out the model's structure; nothing run there is
    ever executed, so a stateful layer must not fix its batch size there.
    Keras 3 asks `NengoLayer.compute_output_shape` instead and never calls it.
    """
    if KERAS_3:
        return False
    from tf_keras.src import backend  # pylint: disable=import-outside-toplevel

    keras_graph = getattr(backend._GRAPH, "graph", None)
    return keras_graph is not None and tf.compat.v1.get_default_graph() is keras_graph


def in_xla_compilation() -> bool:
    """True while tracing a function that XLA compiles (``jit_compile=True``)."""
    from tensorflow.python.ops import control_flow_util

    if tf.executing_eagerly():
        return False
    graph = tf.compat.v1.get_default_graph()
    return bool(control_flow_util.GraphOrParentsInXlaContext(graph))


tf, KERAS_3 = _select_keras()
#: the Keras the process chose: all of keras_nengo's Keras objects come from it
keras = importlib.import_module("keras") if KERAS_3 else tf.keras
#: NengoDL's Keras, always tf-keras (and `nengo_dl_tf`, NengoDL's `tf`)
tf_keras = importlib.import_module(_TF_KERAS_API)
nengo_dl_tf = TensorFlowWithTfKeras(tf) if KERAS_3 else tf
_check_keras_tuner_mode(KERAS_3)
nengo_dl = _import_nengo_dl(KERAS_3)
keras_tuner = _import_keras_tuner(KERAS_3)
_nengo4_fixes.fix_vendored_scipy()
_nengo4_fixes.fix_linear_filter_builder()
_quiet_no_gpu_warning()
