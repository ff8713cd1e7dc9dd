"""keras_nengo: Nengo networks as first-class Keras models.

Its layers and models belong to the Keras the process uses: Keras 3, or
tf-keras where ``TF_USE_LEGACY_KERAS=1`` is set. Import it before NengoDL: it
runs NengoDL 3.6.0 on tf-keras inside either, and makes it and keras-tuner
work on the current stack (see ``keras_nengo._compat``).
"""

from keras_nengo import _compat  # noqa: F401  (must run before anything else)
from keras_nengo import _keras3_limits
from keras_nengo.engine import Simulator
from keras_nengo.jacobian import jacobian_norms
from keras_nengo.layer import NengoLayer
from keras_nengo.model import NengoModel
from keras_nengo.version import version as __version__

from keras_nengo import callbacks, tuning  # isort: skip  (kn.callbacks, kn.tuning)

_keras3_limits.refuse_converting_keras_3_models()
_keras3_limits.refuse_keras_3_objects_in_nengo_dl_compile()


def __getattr__(name):
    # kn.nir needs the optional `nir` package: import it on first use only
    if name == "nir":
        import importlib

        return importlib.import_module("keras_nengo.nir")
    raise AttributeError(f"module 'keras_nengo' has no attribute {name!r}")


__all__ = [
    "NengoLayer",
    "NengoModel",
    "Simulator",
    "callbacks",
    "jacobian_norms",
    "tuning",
    "__version__",
]
