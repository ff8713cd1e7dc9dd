"""Property-based fuzzing of the data path of fit, evaluate and predict.

Random structures (one array, lists, dicts keyed by name, Node or label, unknown
keys), shapes (batch 0 to 3, 0 to 3 steps, wrong rank or size), dtypes
(floats, ints, bools, complex, strings) and NaN/inf. Properties: either a clear
error (ValueError/TypeError saying what it received, never a TensorFlow error)
that changed no weight and no optimizer slot, or the right result: ``predict``
equal to a direct call, ``evaluate`` equal to the loss of a direct call, ``fit``
leaving finite weights (unchanged when the batch was not finite).
"""

import warnings

import nengo
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_close
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import keras_nengo as kn

SIZES = {"a": 2, "b": 1}
# mostly data that is right, so that every property is exercised both ways
DTYPES = ["float32"] * 4 + ["float64", "int32", "bool", "complex64", "str"]
# bounded so that the default test run stays within minutes; derandomized so
# that CI runs the same examples every time
FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def network():
    with nengo.Network(seed=0) as net:
        a = nengo.Node(np.zeros(2), label="a")
        b = nengo.Node(np.zeros(1), label="b")
        ens = nengo.Ensemble(8, 3, neuron_type=nengo.RectifiedLinear(), label="ens")
        nengo.Connection(a, ens[:2], synapse=None)
        nengo.Connection(b, ens[2], synapse=None)
        nengo.Probe(ens, synapse=0.01, label="out")
    return net


NETWORK = network()


@pytest.fixture(scope="module")
def model():
    model = kn.NengoModel(NETWORK, seed=0)
    model.compile(optimizer=tf.keras.optimizers.SGD(0.01), loss="mse")
    return model


def snapshot(model):
    variables = list(model.variables) + list(model.optimizer.variables)
    return [np.array(variable.numpy()) for variable in variables]


@st.composite
def arrays(draw, size, batch, steps):
    """One input's (or target's) data: mostly right, sometimes wrong."""
    shape = (batch, steps, draw(st.sampled_from([size] * 5 + [size + 1])))
    if draw(st.integers(0, 11)) == 0:
        shape = shape[:2]
    dtype = draw(st.sampled_from(DTYPES))
    values = np.random.RandomState(draw(st.integers(0, 99))).uniform(-1, 1, shape)
    if draw(st.integers(0, 5)) == 0 and values.size:
        values.flat[draw(st.integers(0, values.size - 1))] = draw(
            st.sampled_from([np.nan, np.inf, -np.inf])
        )
    if dtype == "str":
        return values.astype(str)
    return values.astype(dtype)


@st.composite
def datasets(draw):
    """``(x, y)`` in one of the structures Keras users pass."""
    batch, steps = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    data = {name: draw(arrays(size, batch, steps)) for name, size in SIZES.items()}
    y = draw(arrays(3, batch, steps))
    structure = draw(
        st.sampled_from(
            ["array", "list", "name", "node"] * 3 + ["short list", "unknown"]
        )
    )
    if structure == "array":
        return data["a"], y
    if structure == "list":
        return [data["a"], data["b"]], y
    if structure == "short list":
        return [data["a"]], y
    keep = draw(st.sampled_from([("a",), ("b",), ("a", "b")]))
    if structure == "unknown":
        return {"nope": data["a"]}, y
    if structure == "node":
        nodes = {node.label: node for node in NETWORK.all_nodes}
        return {nodes[name]: data[name] for name in keep}, y
    return {name: data[name] for name in keep}, y


def as_float(x):
    """``x`` with every array converted to float32 (what the model computes in)."""
    if isinstance(x, dict):  # keyed by Node maybe: Nodes do not sort for tf.nest
        return {key: np.asarray(value, np.float32) for key, value in x.items()}
    if isinstance(x, list):
        return [np.asarray(value, np.float32) for value in x]
    return np.asarray(x, np.float32)


def check_refusal(model, error, before):
    event(f"refused: {type(error).__name__}: {str(error)[:60]}")
    assert isinstance(error, (ValueError, TypeError)), repr(error)
    assert not isinstance(error, tf.errors.OpError), repr(error)
    assert "Received" in str(error), str(error)
    for old, new in zip(before, snapshot(model)):
        np.testing.assert_array_equal(new, old)


def finite(x) -> bool:
    x = as_float(x)
    values = x.values() if isinstance(x, dict) else x if isinstance(x, list) else [x]
    return all(np.isfinite(value).all() for value in values)


@FUZZ
@given(data=datasets())
def test_predict_is_a_clear_error_or_a_direct_call(model, data):
    x, _ = data
    before = snapshot(model)
    try:
        out = model.predict(x, batch_size=2, verbose=0)
    except Exception as error:  # noqa: BLE001  (the property is about any error)
        check_refusal(model, error, before)
        return
    event("ran")
    expected = model(as_float(x), training=False)
    np.testing.assert_allclose(out, expected.numpy(), atol=1e-6, equal_nan=True)


@FUZZ
@given(data=datasets())
def test_evaluate_is_a_clear_error_or_the_loss_of_a_direct_call(model, data):
    x, y = data
    before = snapshot(model)
    try:
        loss = model.evaluate(x, y, batch_size=2, verbose=0)
    except Exception as error:  # noqa: BLE001
        check_refusal(model, error, before)
        return
    event("ran")
    error = model(as_float(x), training=False).numpy() - np.asarray(y, np.float32)
    if error.size == 0:
        # zero steps: nothing to compare, Keras's mean of nothing is 0
        assert loss == 0
        return
    expected = np.mean(error**2)
    if np.isfinite(expected):
        assert_close(loss, expected, "weights32")
    else:
        assert not np.isfinite(loss)


@FUZZ
@given(data=datasets())
def test_fit_is_a_clear_error_or_finite_weights(model, data):
    x, y = data
    before = snapshot(model)
    try:
        with warnings.catch_warnings():
            # a non-finite batch is skipped with a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    except Exception as error:  # noqa: BLE001
        check_refusal(model, error, before)
        return
    event("ran")
    weights = model.get_named_weights()
    assert all(np.isfinite(value).all() for value in weights.values())
    if not (finite(x) and finite(y)):
        # a non-finite batch is skipped: nothing changed
        for old, new in zip(before, snapshot(model)):
            np.testing.assert_array_equal(new, old)
