"""Everything keras_nengo knows about versions of its dependencies.

keras_nengo runs NengoDL 3.6.0 (written for TF 2.3-2.11, Keras 2, Nengo 3) on
TensorFlow >= 2.16 with tf-keras, Nengo 4 and NumPy 2. This module is the only
place that deals with that gap:

- it selects Keras 2 (``TF_USE_LEGACY_KERAS=1``) before TensorFlow resolves
  ``tf.keras``, and refuses to continue if ``tf.keras`` is already Keras 3;
- it imports NengoDL with ``keras`` temporarily resolving to tf-keras, so that
  NengoDL's ``keras.engine.functional`` and ``keras.layers.BatchNormalizationV1``
  imports find tf-keras's classes (Keras 3 stays untouched for everyone else);
- it imports keras-tuner the same way, so that it runs in its tf.keras mode and
  accepts tf-keras models;
- it mends what NengoDL 3.6.0 gets wrong with Nengo 4 and NumPy 2.
"""

import contextlib
import os
import sys
import types
import warnings

_FIX_HINT = (
    "Import keras_nengo before TensorFlow/Keras/keras_tuner (`import keras_nengo` "
    "as the first import), or set the environment variable "
    "TF_USE_LEGACY_KERAS=1 before starting Python."
)


def _select_legacy_keras():
    """Make ``tf.keras`` resolve to tf-keras (Keras 2) and return ``tf``."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    keras_module = tf.keras.Model.__module__
    if not keras_module.startswith("tf_keras"):
        raise ImportError(
            "keras_nengo needs tf.keras to be tf-keras (Keras 2), but tf.keras "
            f"already resolved to Keras 3. Received: tf.keras.Model from {keras_module!r} "
            f"(TF_USE_LEGACY_KERAS={os.environ.get('TF_USE_LEGACY_KERAS')!r}). "
            + _FIX_HINT
        )
    return tf


@contextlib.contextmanager
def _keras_is_tf_keras():
    """Temporarily let ``import keras`` resolve to tf-keras.

    NengoDL 3.6.0 and keras-tuner 1.4 import the top-level ``keras`` package; on
    TF >= 2.16 that is Keras 3. While the block runs, ``keras`` (and the two
    NengoDL-specific submodules) point to tf-keras; afterwards the previous
    modules are restored, so Keras 3 users are unaffected.
    """
    import tf_keras  # pylint: disable=import-outside-toplevel
    from tf_keras.src import engine  # pylint: disable=import-outside-toplevel
    from tf_keras.src import layers  # pylint: disable=import-outside-toplevel
    from tf_keras.src.engine import functional  # pylint: disable=import-outside-toplevel

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


def _import_nengo_dl():
    if "nengo_dl" in sys.modules:
        return sys.modules["nengo_dl"]
    with _keras_is_tf_keras(), warnings.catch_warnings():
        # NengoDL 3.6.0 warns that it was only tested up to Nengo 3.2; running it
        # on Nengo 4 is exactly what this module makes work.
        warnings.filterwarnings(
            "ignore", message="This version of NengoDL has not been tested"
        )
        import nengo_dl  # pylint: disable=import-outside-toplevel

    return nengo_dl


def _import_keras_tuner():
    existing = sys.modules.get("keras_tuner")
    if existing is not None:
        from keras_tuner.src.backend import config  # pylint: disable=import-outside-toplevel

        if config.multi_backend():
            raise RuntimeError(
                "keras_tuner was imported before keras_nengo and runs in Keras 3 "
                "mode, where it rejects tf-keras models such as NengoModel. "
                "Received: keras_tuner backend=Keras 3. " + _FIX_HINT
            )
        return existing
    with _keras_is_tf_keras():
        import keras_tuner  # pylint: disable=import-outside-toplevel

    return keras_tuner


tf = _select_legacy_keras()
nengo_dl = _import_nengo_dl()
keras_tuner = _import_keras_tuner()
