"""Mends for NengoDL 3.6.0 and Nengo 4.1 on Nengo 4 and NumPy 2.

Applied once by `keras_nengo._compat` after NengoDL is imported; they do not
depend on which Keras the process uses.
"""

import functools
import types

import numpy as np


class NumpyWithRemovedFunctions(types.ModuleType):
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


def fix_vendored_scipy():
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

    numpy_with_removed_functions = NumpyWithRemovedFunctions("numpy")
    for module in (linalg_expm, linalg_interface, linalg_onenormest):
        module.np = numpy_with_removed_functions


def fix_linear_filter_builder():
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
