"""The stack works together behind keras_nengo._compat, and each of its fixes.

conftest.py imports keras_nengo before this module imports keras_tuner,
tensorflow and nengo_dl, the order the compatibility layer requires.
"""

import importlib
import os
import subprocess
import sys
import types
import warnings

import keras_tuner
import nengo
import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from conftest import assert_close, only_tf_keras, run_in_fresh_python
from nengo._vendor.scipy.sparse import (
    linalg_expm,
    linalg_interface,
    linalg_onenormest,
)
from nengo.utils.filter_design import cont2discrete, tf2ss

import keras_nengo
from keras_nengo import _compat
from keras_nengo._compat import nengo_dl


def lmu_system(order=256, theta=1000.0):
    """Continuous (A, B, C, D) of a Legendre Memory Unit, as NengoDL's LMU
    benchmark builds it (Voelker et al., 2019)."""
    q = np.arange(order, dtype=np.float64)
    r = (2 * q + 1)[:, None] / theta
    j, i = np.meshgrid(q, q)
    a = np.where(i < j, -1, (-1.0) ** (i - j + 1)) * r
    b = (-1.0) ** q[:, None] * r
    return a, b, np.ones((1, order)), np.zeros((1,))


def expm_taylor(matrix, terms=30):
    """Matrix exponential by scaling and squaring a Taylor series.

    An implementation independent of the vendored SciPy ``expm`` under test.
    """
    norm = np.abs(matrix).sum(axis=0).max()
    squarings = max(0, int(np.ceil(np.log2(norm))) + 1)
    scaled = matrix / 2.0**squarings
    result = term = np.eye(len(matrix))
    for k in range(1, terms):
        term = term @ scaled / k
        result = result + term
    for _ in range(squarings):
        result = result @ result
    return result


def zoh_reference(a, b, dt):
    """Zero-order-hold discretization of (A, B) via `expm_taylor`."""
    n_states, n_inputs = b.shape
    block = np.zeros((n_states + n_inputs, n_states + n_inputs))
    block[:n_states, :n_states] = a
    block[:n_states, n_states:] = b
    discrete = expm_taylor(block * dt)
    return discrete[:n_states, :n_states], discrete[:n_states, n_states:]


# --- the stack works together -------------------------------------------------


@only_tf_keras("the suite's tf-keras process")
def test_tf_keras_is_tf_keras():
    assert tf.keras.Model is tf_keras.Model
    assert tf.keras.layers.Dense is tf_keras.layers.Dense


def test_nengo_dl_uses_tf_keras():
    assert nengo_dl is sys.modules["nengo_dl"]
    # NengoDL's `keras.engine.functional` import found tf-keras's class
    assert issubclass(nengo_dl.compat.Functional, tf_keras.Model)
    assert nengo_dl.compat.BatchNormalizationV1 is (
        tf_keras.src.layers.BatchNormalizationV1
    )


def test_keras_not_left_pointing_to_tf_keras():
    assert sys.modules.get("keras") is not tf_keras
    assert "keras.engine" not in sys.modules


def test_keras_is_tf_keras_restores_modules(monkeypatch):
    sentinel = types.ModuleType("keras")
    monkeypatch.setitem(sys.modules, "keras", sentinel)
    monkeypatch.delitem(sys.modules, "keras.engine", raising=False)
    with _compat._keras_is_tf_keras():
        assert sys.modules["keras"] is tf_keras
    assert sys.modules["keras"] is sentinel
    assert "keras.engine" not in sys.modules


@only_tf_keras("keras-tuner's tf.keras mode")
def test_keras_tuner_tunes_a_tf_keras_model(tmp_path):
    def build(hp):
        model = tf.keras.Sequential(
            [
                tf.keras.layers.Dense(hp.Int("units", 1, 4), input_shape=(2,)),
                tf.keras.layers.Dense(1),
            ]
        )
        model.compile(optimizer="sgd", loss="mse")
        return model

    tuner = keras_tuner.RandomSearch(
        build,
        objective="loss",
        max_trials=1,
        seed=0,
        directory=tmp_path,
        project_name="compat",
    )
    x = np.linspace(-1, 1, 16).reshape(8, 2)
    tuner.search(x, x[:, :1], epochs=1, verbose=0)

    assert len(tuner.oracle.trials) == 1
    assert isinstance(tuner.get_best_models(1)[0], tf_keras.Model)


def test_tutorial_network_matches_nengo():
    # NengoDL's "Coming from Nengo to NengoDL" tutorial, first network
    seed = 0
    with nengo.Network(seed=seed) as net:
        inpt = nengo.Node(nengo.processes.WhiteSignal(1, 5, rms=0.3))
        square = nengo.Ensemble(20, 1)
        sin = nengo.Ensemble(20, 1)
        outpt = nengo.Node(size_in=1)
        nengo.Connection(inpt, square)
        nengo.Connection(square, sin, function=np.square)
        nengo.Connection(sin, outpt, function=np.sin)
        inpt_p = nengo.Probe(inpt)
        outpt_p = nengo.Probe(outpt, synapse=0.01)

    with nengo.Simulator(net, seed=seed, progress_bar=False) as sim:
        sim.run(1.0)
    with nengo_dl.Simulator(net, seed=seed, progress_bar=False) as dl_sim:
        dl_sim.run(1.0)

    assert np.ptp(sim.data[outpt_p]) > 0.1  # the output is not trivially flat
    for probe in (inpt_p, outpt_p):
        assert_close(dl_sim.data[probe], sim.data[probe], kind="float32")


# --- clear errors -------------------------------------------------------------


def test_error_legacy_keras_asked_after_tf_keras_resolved():
    with pytest.raises(
        ImportError,
        match=r"TF_USE_LEGACY_KERAS=1 asks for tf-keras \(Keras 2\), but tf.keras "
        r"is Keras 3.*Received: tf.keras.Model from 'keras\..*"
        r"Fix: set TF_USE_LEGACY_KERAS=1 before starting Python",
    ):
        run_in_fresh_python("""
            import os
            import tensorflow as tf
            tf.keras.Model
            os.environ["TF_USE_LEGACY_KERAS"] = "1"
            import keras_nengo
            """)


def test_error_keras_tuner_in_keras3_mode():
    with pytest.raises(
        RuntimeError,
        match=r"keras_tuner was imported before keras_nengo.*Keras 3 mode.*"
        r"Received: keras_tuner using keras 3\..*"
        r"Fix: put `import keras_nengo` before `import keras_tuner`",
    ):
        run_in_fresh_python(
            """
            import keras_tuner
            import keras_nengo
            """,
            TF_USE_LEGACY_KERAS="1",
        )


@only_tf_keras("the suite's tf-keras process")
def test_keras_of_this_process_is_tf_keras():
    assert _compat.KERAS_3 is False
    assert _compat.keras.Model is tf_keras.Model
    assert issubclass(keras_nengo.NengoLayer, tf_keras.layers.Layer)
    # NengoDL's modules use TensorFlow itself (its tf.keras is tf-keras here)
    assert nengo_dl.tensor_graph.tf is tf


@pytest.mark.slow  # a fresh interpreter importing the whole stack: ~15 s
def test_keras3_stays_keras3_for_later_imports():
    run_in_fresh_python(
        """
        import sys
        import keras_nengo
        assert "keras" not in sys.modules, sys.modules["keras"]
        import keras
        assert keras.version().startswith("3."), keras.version()
        """,
        TF_USE_LEGACY_KERAS="1",
    )


@pytest.mark.slow  # a fresh interpreter importing the whole stack: ~15 s
def test_tensorflow_and_keras3_imported_first():
    # TensorFlow was imported before TF_USE_LEGACY_KERAS=1 was set, and fixed
    # `tensorflow.keras` to Keras 3 then; the attribute tf.keras is still free
    run_in_fresh_python("""
        import os
        import sys
        import keras
        import tensorflow as tf
        keras3 = sys.modules["keras"]
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        import keras_nengo
        import keras_tuner
        from tensorflow.keras import layers
        assert sys.modules["keras"] is keras3
        assert tf.keras.Model.__module__.startswith("tf_keras"), tf.keras.Model
        assert layers.Dense.__module__.startswith("tf_keras"), layers.Dense
        assert not keras_tuner.src.backend.config.multi_backend()
        """)


# --- fixes for Nengo 4 and NumPy 2 --------------------------------------------


@pytest.mark.parametrize(
    "synapse, step_type",
    [
        (nengo.LinearFilter([2.0], [1.0]), "NoX"),
        (nengo.LinearFilter([1.0], [0.01, 1.0]), "OneX"),
        (nengo.Alpha(0.01), "NoD"),
        (nengo.LinearFilter([0.1, 1.0], [0.01, 1.0]), "General"),
    ],
)
def test_linear_filter_matches_nengo(synapse, step_type, monkeypatch):
    with nengo.Network(seed=0) as net:
        nengo_dl.configure_settings(dtype="float64")
        stim = nengo.Node(lambda t: [np.sin(10 * t), np.cos(7 * t)])
        out = nengo.Node(size_in=2)
        nengo.Connection(stim, out, synapse=synapse)
        probe = nengo.Probe(out)
    state = synapse.make_state((2,), (2,), 0.001)
    step = synapse.make_step((2,), (2,), 0.001, rng=None, state=state)
    assert type(step).__name__.startswith(step_type)

    with nengo.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(50)
    with nengo_dl.Simulator(net, minibatch_size=2, progress_bar=False) as dl_sim:
        dl_sim.run_steps(50)

    for minibatch in dl_sim.data[probe]:
        assert_close(minibatch, sim.data[probe], kind="float64")
    # Nengo's own steps keep Nengo 4's shapes
    assert synapse.make_step((2,), (2,), 0.001, None, state).D.shape == (1, 1)

    builder = nengo_dl.process_builders.LinearFilterBuilder
    monkeypatch.setattr(builder, "build_pre", builder.build_pre.__wrapped__)
    if step_type in ("NoX", "General"):  # the steps that have a passthrough D
        with pytest.raises(AssertionError):
            nengo_dl.Simulator(net, progress_bar=False)


def test_lmu_discretization_on_numpy2():
    a, b, c, d = lmu_system()
    ad, bd, _, _, _ = cont2discrete((a, b, c, d), dt=1.0, method="zoh")

    expected_ad, expected_bd = zoh_reference(a, b, dt=1.0)
    assert_close(ad, expected_ad, kind="float64")
    assert_close(bd, expected_bd, kind="float64")


def test_large_linear_filter_on_numpy2():
    # 200 states: enough for `expm` to estimate norms (np.in1d) not compute them
    den = np.r_[1.0, np.zeros(199), 1.0]
    synapse = nengo.LinearFilter([1.0], den)
    state = synapse.make_state((1,), (1,), 0.001)
    step = synapse.make_step((1,), (1,), 0.001, rng=None, state=state)

    a, b, _, _ = tf2ss([1.0], den)
    expected_a, _ = zoh_reference(a, b, dt=0.001)
    assert_close(step.A, expected_a, kind="float64")


@pytest.mark.parametrize(
    "module, removed",
    [(linalg_onenormest, "in1d"), (linalg_expm, "find_common_type")],
)
def test_vendored_expm_fails_without_fix(module, removed, monkeypatch):
    if hasattr(np, removed):
        pytest.skip(f"this NumPy {np.__version__} still has np.{removed}")
    monkeypatch.setattr(module, "np", np)
    with pytest.raises(AttributeError, match=removed):
        cont2discrete(lmu_system(), dt=1.0, method="zoh")


def test_numpy_with_removed_functions():
    fixed = linalg_onenormest.np
    assert fixed is not np and fixed.argsort is np.argsort
    ar1 = np.array([[1, 2], [3, 4]])
    assert fixed.in1d(ar1, [2, 3]).tolist() == [False, True, True, False]
    assert fixed.in1d(ar1, [2, 3], invert=True).tolist() == [True, False, False, True]
    float32_op = types.SimpleNamespace(dtype=np.dtype(np.float32))
    assert linalg_interface._get_dtype([float32_op], [np.float64]) == np.float64
    assert linalg_interface._get_dtype([float32_op]) == np.float32
    # the real numpy module is left alone
    assert getattr(importlib.import_module("numpy"), "in1d", None) is not fixed.in1d


def test_gpu_check_answered_without_a_subprocess():
    if _compat._could_have_gpu():
        pytest.skip("this machine may have a GPU: NengoDL's own check runs")
    assert nengo_dl.utils.tf_gpu_installed is False
    check = "import tensorflow as tf; tf.config.list_physical_devices('GPU')"
    with _compat._gpu_check_without_subprocess():
        # answered at once (no second Python importing TensorFlow)
        assert subprocess.call([sys.executable, "-c", check]) == 1
        # any other command still runs
        assert subprocess.call([sys.executable, "-c", "raise SystemExit(3)"]) == 3
    assert subprocess.call is not None and subprocess.call.__module__ == "subprocess"


def test_import_prints_nothing():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-c", "import keras_nengo"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and result.stdout == ""


def test_first_op_prints_nothing_and_leaves_runtime_settings_open():
    """No "failed call to cuInit" line on a machine without a GPU, and the
    runtime is not initialised by the import (thread settings still work)."""
    if _compat._gpu_hardware_present():
        pytest.skip("this machine has GPU hardware: TensorFlow's CUDA lines stay")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    code = (
        "import keras_nengo, tensorflow as tf; "
        "tf.config.threading.set_inter_op_parallelism_threads(1); "
        "print(float(tf.constant(1.0) + 1))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("2.0\n", "")


def test_no_gpu_warning_from_nengo_dl_simulator_without_gpu_hardware():
    if _compat._gpu_hardware_present():
        pytest.skip("this machine has GPU hardware: NengoDL's warning stays")
    with nengo.Network() as net:
        nengo.Probe(nengo.Node([1.0]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with nengo_dl.Simulator(net, progress_bar=False) as sim:
            sim.run_steps(2)
            warnings.warn("a warning from inside the simulation", UserWarning)
    messages = [str(warning.message) for warning in caught]
    assert not [m for m in messages if "No GPU support detected" in m], messages
    # only that one warning is dropped, and only while a Simulator is built
    assert "a warning from inside the simulation" in messages
    assert nengo_dl.Simulator.__init__.__wrapped__.__module__ == "nengo_dl.simulator"


@pytest.mark.slow  # fresh interpreters importing the whole stack: ~15 s each
def test_keras_is_the_users_choice():
    """Keras's own convention: Keras 3 unless TF_USE_LEGACY_KERAS=1 was set, and
    importing keras_nengo does not choose (it sets no variable)."""
    run_in_fresh_python("""
        import os
        import keras
        import keras_nengo
        from keras_nengo import _compat
        assert "TF_USE_LEGACY_KERAS" not in os.environ
        assert _compat.KERAS_3 is True
        assert issubclass(keras_nengo.NengoLayer, keras.Layer)
        assert issubclass(keras_nengo.NengoModel, keras.Model)
        """)
    run_in_fresh_python(
        """
        import tensorflow as tf
        import tf_keras
        import keras_nengo
        from keras_nengo import _compat
        assert _compat.KERAS_3 is False
        assert tf.keras.Model is tf_keras.Model
        assert issubclass(keras_nengo.NengoModel, tf_keras.Model)
        """,
        TF_USE_LEGACY_KERAS="1",
    )
