"""Shared fixtures and tolerances for keras_nengo's tests."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_nengo  # noqa: E402,F401  isort: skip  (selects tf-keras first)
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# one place for the tolerances the tests use
TOLERANCES = {
    # same float32 computation, possibly different op order
    "float32": dict(atol=1e-6, rtol=0),
    # weights after a training step compared with a reference implementation
    "weights32": dict(atol=1e-6, rtol=1e-5),
    "float64": dict(atol=1e-10, rtol=1e-9),
    # central finite differences in float64
    "finite_difference": dict(atol=1e-5, rtol=1e-4),
}


def assert_close(actual, expected, kind="float32"):
    """``np.testing.assert_allclose`` with the named tolerance."""
    np.testing.assert_allclose(
        np.asarray(actual), np.asarray(expected), **TOLERANCES[kind]
    )


@pytest.fixture(autouse=True)
def _clear_keras_session():
    tf.keras.backend.clear_session()
    yield


@pytest.fixture
def rng():
    return np.random.RandomState(0)
