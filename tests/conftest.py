"""Shared fixtures and tolerances for keras_nengo's tests."""

import builtins
import json
import os
import pathlib
import subprocess
import sys
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The suite runs in the Keras TF_USE_LEGACY_KERAS names, chosen here explicitly
# (child processes inherit it): tf-keras unless it is set; with
# TF_USE_LEGACY_KERAS=0 the same suite runs in Keras 3 (CI runs both). Tests
# that make sense in one Keras only skip in the other, saying why.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

# before TensorFlow resolves tf.keras
import keras_nengo  # noqa: E402,F401  isort: skip
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_nengo._compat import KERAS_3  # noqa: E402

REPO_ROOT = pathlib.Path(keras_nengo.__file__).parents[1]


def only_tf_keras(reason):
    """Skip a test in a Keras 3 run, saying why it is tf-keras's only."""
    return pytest.mark.skipif(KERAS_3, reason=f"tf-keras only: {reason}")


def weight_name(variable, layer_name="nengo"):
    """The keras_nengo name of a NengoLayer's variable, in either Keras.

    tf-keras names it ``<name>:0``; Keras 3 forbids ``/`` in names, so there the
    name is the variable's path after the layer's (``<model>/nengo/<name>``).
    """
    if KERAS_3:
        return variable.path.partition(f"{layer_name}/")[2] or variable.path
    return variable.name.split(":")[0]


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


def run_in_fresh_python(code, **environ):
    """Run ``code`` in a new interpreter and re-raise its exception here.

    The child starts like a user's new shell: without the
    ``TF_USE_LEGACY_KERAS`` this suite sets (so in Keras 3), unless
    ``environ`` gives it. An exception in the child is raised again here,
    as the builtin of the same name with the same message, so that tests can use
    ``pytest.raises(..., match=...)``.
    """
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env.update(environ)
    script = (
        "import json, sys\n"
        "try:\n"
        + textwrap.indent(textwrap.dedent(code), "    ")
        + "\nexcept Exception as error:\n"
        "    print(json.dumps([type(error).__name__, str(error)]))\n"
        "    sys.exit(1)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        lines = result.stdout.strip().splitlines()
        assert lines, f"child crashed without an exception:\n{result.stderr}"
        name, message = json.loads(lines[-1])
        raise getattr(builtins, name)(message)


@pytest.fixture(autouse=True)
def _clear_keras_session():
    tf.keras.backend.clear_session()
    yield


@pytest.fixture
def rng():
    return np.random.RandomState(0)
