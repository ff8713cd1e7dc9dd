"""Build-time modes of keras_nengo's graphs.

`stepwise_reads` marks graphs built for forward-mode differentiation
(``tf.autodiff.ForwardAccumulator``), which cannot pass through TensorArrays
nor through gradients written out in the time loop (``tf.custom_gradient``
closes over the loop body's tensors). Graphs built inside it run every
operator in the loop (no hoisting: a hoisted value's tangent, written into a
probe's TensorArray, raised a TypeError in the accumulator) and use
TensorFlow's own derivatives.
"""

from __future__ import annotations

import contextlib
import threading

_STEPWISE = threading.local()


@contextlib.contextmanager
def stepwise_reads():
    """Graphs built inside are forward-mode safe (see the module docstring)."""
    previous = stepwise()
    _STEPWISE.active = True
    try:
        yield
    finally:
        _STEPWISE.active = previous


def stepwise() -> bool:
    """Whether graphs are being built inside `stepwise_reads`."""
    return getattr(_STEPWISE, "active", False)
