"""keras_nengo: Nengo networks as first-class tf-keras models."""

from keras_nengo import _compat  # noqa: F401  (must run before anything else)
from keras_nengo.version import version as __version__

__all__ = ["__version__"]
