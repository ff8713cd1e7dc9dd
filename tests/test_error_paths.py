"""Every error keras_nengo raises, through every entry point where it can arise.

One table: each cell feeds one kind of bad input through one entry point
(direct call, predict, evaluate, fit, fit with ``steps_per_execution`` or
``jit_compile``, a Functional model holding a NengoLayer, export, a keras-tuner
trial) and asserts the clear message (what was received, what was expected,
the fix, the Nengo object), never TensorFlow's graph execution error, and
that no weight, optimizer slot or simulation state changed.
"""

import re

import nengo
import numpy as np
import pytest
import tensorflow as tf

import keras_nengo as kn

N_STEPS = 3
X = np.linspace(-1, 1, 4 * N_STEPS * 2, dtype=np.float32).reshape(4, N_STEPS, 2)
Y = np.zeros((4, N_STEPS, 2), np.float32)


def network(python_node=False):
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.zeros(2), label="stim")
        ens = nengo.Ensemble(10, 2, label="ens")
        nengo.Connection(stim, ens, synapse=None)
        if python_node:
            py = nengo.Node(lambda t, x: x, size_in=2, label="py")
            nengo.Connection(ens, py, synapse=None)
            nengo.Probe(py, label="out")
        else:
            nengo.Probe(ens, synapse=0.01, label="out")
    return net


def compiled(model, **kwargs):
    model.compile(optimizer=tf.keras.optimizers.SGD(0.1), loss="mse", **kwargs)
    # one good step first, so that the optimizer has state that could move
    model.fit(X, Y, batch_size=4, epochs=1, verbose=0)
    return model


def functional(stateful=False):
    inputs = tf.keras.Input((None, 2))
    layer = kn.NengoLayer(network(), stateful=stateful)
    # a batch of unknown size while tracing runs minibatch_size rows; with
    # Input(batch_size=4) Keras would fix the model's output shape itself, and
    # its loss could fail on another size before the layer's check
    layer.minibatch_size = 4
    return tf.keras.Model(inputs, layer(inputs))


@pytest.fixture(scope="module")
def models():
    return {
        "plain": compiled(kn.NengoModel(network(), seed=0)),
        "steps_per_execution": compiled(
            kn.NengoModel(network(), seed=0), steps_per_execution=2
        ),
        "jit_compile": compiled(kn.NengoModel(network(), seed=0), jit_compile=True),
        "functional": compiled(functional()),
        "stateful": compiled(kn.NengoModel(network(), seed=0, stateful=True)),
        "functional_stateful": compiled(functional(stateful=True)),
    }


def snapshot(model, counters=True) -> list:
    """Everything bad input must not change: weights, optimizer, simulation state.

    ``counters=False`` leaves out the optimizer's step counter: when a check can
    only fail as the graph runs, Keras's optimizer has counted the step (its
    increment does not wait for the gradients), though no weight moved.
    """
    optimizer = getattr(model, "optimizer", None)  # Keras 3: none before compile
    variables = list(model.variables) + list(getattr(optimizer, "variables", []))
    if not counters:
        iterations = optimizer.iterations
        variables = [var for var in variables if var is not iterations]
    for layer in model._flatten_layers():  # both Kerases' walk over sublayers
        state = getattr(layer, "_state", None)
        if isinstance(layer, kn.NengoLayer) and state is not None:
            variables += state._variables + [state.steps]
    return [np.array(variable.numpy()) for variable in variables]


def assert_refused(model, action, error, match, graph=False):
    """``action`` raises ``error`` matching ``match`` and changes nothing.

    ``graph=True``: the check can only run inside the graph (a size unknown
    while tracing), so TensorFlow's error type is allowed; its message is ours.
    """
    before = snapshot(model, counters=not graph)
    with pytest.raises(error) as info:
        action()
    # TensorFlow escapes quotes in the messages of its graph errors
    message = re.sub(r"\s+", " ", str(info.value)).replace("\\", "")
    assert re.search(match, message), message
    if not graph:
        assert not isinstance(info.value, tf.errors.OpError), info.value
    after = snapshot(model, counters=not graph)
    assert len(after) == len(before)
    for old, new in zip(before, after):
        np.testing.assert_array_equal(new, old)


# -- the table ------------------------------------------------------------------------

STIM = r"Input 'stim' \(Node <Node \"?'?stim"
OUT = r"Target 'out' \(Probe <Probe"

# kind of bad data -> (x, y, error, message); y=None keeps the good targets
DATA_ERRORS = {
    "input shape": (
        np.zeros((4, N_STEPS, 3)),
        None,
        ValueError,
        STIM + r".*shape \(batch, n_steps, 2\)\. Received: shape \(4, 3, 3\)",
    ),
    "input rank": (
        np.zeros((4, N_STEPS)),
        None,
        ValueError,
        STIM + r".*shape \(batch, n_steps, 2\)\. Received: shape \(4, 3\)",
    ),
    "input dtype": (
        np.full((4, N_STEPS, 2), "a"),
        None,
        TypeError,
        STIM + r".*expects real numbers.*Received: data of dtype .*Convert it",
    ),
    "unknown input": (
        {"nope": X},
        None,
        ValueError,
        r"Unknown input 'nope'\. Expected one of the input Nodes.*\['stim'\]",
    ),
    "input list length": (
        [X, X],
        None,
        ValueError,
        r"Expected a list of 1 arrays.*\['stim'\]\. Received: a list of 2 items",
    ),
    "target shape": (
        X,
        np.zeros((4, N_STEPS, 3)),
        ValueError,
        OUT + r".*\(batch, n_steps, 2\).*Received: shape \(4, 3, 3\)",
    ),
    "target samples": (
        X,
        np.zeros((3, N_STEPS, 2)),
        ValueError,
        r"same number of samples\. Received: 4 samples in x and 3 in y for 'out'",
    ),
    "target dtype": (
        X,
        np.full((4, N_STEPS, 2), "a"),
        TypeError,
        OUT + r".*expects real numbers.*Received: data of dtype",
    ),
    "unknown output": (
        X,
        {"nope": Y},
        ValueError,
        r"Unknown output 'nope'\. Expected one of the output Probes.*\['out'\]",
    ),
    "no samples": (
        np.zeros((0, N_STEPS, 2)),
        np.zeros((0, N_STEPS, 2)),
        ValueError,
        r"no samples.*Received: x with shapes \{'stim': \(0, 3, 2\)\}",
    ),
}

ENTRY_POINTS = {
    "call": lambda model, x, y: model(x),
    "predict": lambda model, x, y: model.predict(x, batch_size=4, verbose=0),
    "evaluate": lambda model, x, y: model.evaluate(x, y, batch_size=4, verbose=0),
    "fit": lambda model, x, y: model.fit(x, y, batch_size=4, verbose=0),
}
TARGET_ERRORS = ("target shape", "target samples", "target dtype", "unknown output")


def data_cells():
    for error in DATA_ERRORS:
        for entry in ENTRY_POINTS:
            if entry in ("call", "predict") and error in TARGET_ERRORS:
                continue  # these take no targets
            if entry == "call" and error == "no samples":
                continue  # a layer returns empty outputs (tested below)
            models = ["plain"]
            if entry == "fit":
                models += ["steps_per_execution", "jit_compile"]
            for model in models:
                yield pytest.param(error, entry, model, id=f"{error}-{entry}-{model}")


@pytest.mark.parametrize("error, entry, model_name", data_cells())
def test_data_errors(models, error, entry, model_name):
    x, y, exception, match = DATA_ERRORS[error]
    model = models[model_name]
    action = ENTRY_POINTS[entry]
    assert_refused(
        model, lambda: action(model, x, Y if y is None else y), exception, match
    )


# In a Functional model Keras checks the data against the model's Input first
# (its own message); after Keras retraced for relaxed shapes (a second fit) the
# NengoLayer sees an unknown size and checks it when the graph runs, before the
# simulation uses the data (TensorFlow's error type, the layer's message)
FUNCTIONAL = (
    r"(expected shape=\(None, None, 2\), found shape=\(\w+, 3, 3\)"
    r"|expected ndim=3, found ndim=2"
    # Keras 3's Functional model checks the input against its Input
    r"|Expected shape \(None, None, 2\), but input has incompatible shape \(\w+, 3"
    # and in fit, where it does not yet know the rank of the data it traces with
    r"|as_list\(\) is not defined on an unknown TensorShape"
    r"|" + STIM + r".* of layer 'nengo_layer.*' expects a tensor of shape)"
)


@pytest.mark.parametrize("entry", ["call", "predict", "evaluate", "fit"])
@pytest.mark.parametrize("error", ["input shape", "input rank"])
def test_data_errors_in_functional_model(models, error, entry):
    x = DATA_ERRORS[error][0]
    model = models["functional"]
    action = ENTRY_POINTS[entry]
    errors = (ValueError, tf.errors.InvalidArgumentError)
    assert_refused(model, lambda: action(model, x, Y), errors, FUNCTIONAL, graph=True)


def test_empty_batch_in_a_direct_call_gives_empty_outputs(models):
    model = models["plain"]
    before = snapshot(model)
    out = model(np.zeros((0, N_STEPS, 2), np.float32))
    assert out.shape == (0, N_STEPS, 2)
    for old, new in zip(before, snapshot(model)):
        np.testing.assert_array_equal(new, old)


# -- stateful batch sizes -------------------------------------------------------------

STATEFUL = (
    r"stateful and its batch size was fixed to 4 by its first call.*{}.*batch_size=4"
)
X2 = X[:2]
X8 = np.concatenate([X, X])
Y2, Y8 = Y[:2], np.concatenate([Y, Y])
STATEFUL_CELLS = {
    "call": (lambda m: m(X2), r"Received: a batch of 2\."),
    "predict": (lambda m: m.predict(X2, verbose=0), r"a batch of 2 \(2 samples"),
    "predict batch_size": (
        lambda m: m.predict(X8, batch_size=2, verbose=0),
        r"a batch of 2 \(8 samples, batch_size=2\)",
    ),
    "predict n_steps": (lambda m: m.predict(n_steps=3), r"Received: a batch of 1\."),
    "evaluate": (
        lambda m: m.evaluate(X8, Y8, batch_size=2, verbose=0),
        r"a batch of 2 \(8 samples",
    ),
    "fit": (lambda m: m.fit(X2, Y2, verbose=0), r"a batch of 2 \(2 samples"),
    "fit validation": (
        lambda m: m.fit(X, Y, batch_size=4, validation_data=(X2, Y2), verbose=0),
        r"a batch of 2 \(2 samples",
    ),
    "fit dataset": (
        lambda m: m.fit(
            tf.data.Dataset.from_tensor_slices((X8, Y8)).batch(2), verbose=0
        ),
        r"a batch of 2 \(the dataset's first batch\)",
    ),
}


@pytest.mark.parametrize("cell", list(STATEFUL_CELLS))
def test_stateful_batch_size(models, cell):
    action, received = STATEFUL_CELLS[cell]
    model = models["stateful"]
    match = STATEFUL.format(received)
    assert_refused(model, lambda: action(model), ValueError, match)


@pytest.mark.parametrize("entry", ["predict", "evaluate", "fit"])
def test_stateful_batch_size_in_functional_model(models, entry):
    """Keras traces a Functional model with an unknown batch size, so the size is
    checked when the graph runs, before the simulation reads the data: the error
    is TensorFlow's, the message is ours, and nothing changed."""
    model = models["functional_stateful"]
    action = {
        "predict": lambda: model.predict(X2, verbose=0),
        "evaluate": lambda: model.evaluate(X2, Y2, verbose=0),
        "fit": lambda: model.fit(X2, Y2, verbose=0),
    }[entry]
    # Keras 3 may trace with the batch's size, and then the layer refuses at once
    match = STATEFUL.format(r"a batch of (another size|2\.)")
    errors = (tf.errors.InvalidArgumentError, ValueError)
    assert_refused(model, action, errors, match, graph=True)


# -- Python Nodes, saving, tuning -----------------------------------------------------

PYTHON_NODE = r"Node 'py' \(<Node \"?'?py.*Python function.*nengo_dl\.TensorNode"


def test_python_node_under_xla_is_refused_at_compile():
    model = kn.NengoModel(network(python_node=True), seed=0)
    before = snapshot(model) if getattr(model, "optimizer", None) else None
    with pytest.raises(ValueError, match=r"Cannot compile with jit_compile=True"):
        model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    with pytest.raises(ValueError, match=PYTHON_NODE):
        model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    assert before is None


@pytest.mark.parametrize("entry", ["predict", "evaluate", "fit"])
def test_python_node_under_xla_in_functional_model(entry):
    """Keras compiles a Functional model's functions itself: the layer refuses
    while XLA traces it (Keras wraps the error in its "in user code" one)."""
    inputs = tf.keras.Input((N_STEPS, 2))
    model = tf.keras.Model(inputs, kn.NengoLayer(network(python_node=True))(inputs))
    model.compile(optimizer=tf.keras.optimizers.SGD(0.1), loss="mse", jit_compile=True)
    model.optimizer.build(model.trainable_variables)
    match = r"Cannot compile layer 'nengo_layer.*' with XLA: " + PYTHON_NODE
    action = ENTRY_POINTS[entry]
    assert_refused(model, lambda: action(model, X, Y), ValueError, match)


def test_python_node_refused_by_export(tmp_path):
    model = compiled(kn.NengoModel(network(python_node=True), seed=0))
    assert_refused(
        model,
        lambda: model.export(tmp_path / "served"),
        ValueError,
        r"Cannot export: " + PYTHON_NODE,
    )
    assert not (tmp_path / "served").exists()


def test_safe_mode_refuses_loading(models, tmp_path):
    path = tmp_path / "model.keras"
    models["plain"].save(path)
    with pytest.raises(ValueError, match=r"safe_mode=False.*load_weights"):
        tf.keras.models.load_model(path)


def test_keras_tuner_trial_reports_the_message(tmp_path):
    """keras-tuner records a failed trial's error and stops with it."""
    import keras_tuner as kt

    def build(hp):
        model = kn.NengoModel(network(), seed=0)
        model.compile(optimizer=tf.keras.optimizers.SGD(hp.Float("lr", 0.01, 0.1)))
        model.compile(optimizer="sgd", loss="mse")
        return model

    tuner = kt.RandomSearch(
        build,
        objective="loss",
        max_trials=1,
        max_consecutive_failed_trials=1,
        directory=tmp_path,
        project_name="bad_data",
    )
    x, _, _, match = DATA_ERRORS["input shape"]
    with pytest.raises(RuntimeError, match=r"consecutive failures") as info:
        tuner.search(x, Y, epochs=1, batch_size=4, verbose=0)
    assert re.search(match, str(info.value)), str(info.value)


def test_nir_export_refusal_names_the_ensemble(models):
    """The NIR door: what NIR cannot express is refused by name (the NIR tests
    hold the other refusals)."""
    pytest.importorskip("nir")
    model = models["plain"]
    match = (
        r"<Ensemble 'ens'> cannot be exported to NIR exactly: its LIF has "
        r"tau_ref=0\.002.*nir_lif\(tau_rc\).*approximate=True"
    )
    assert_refused(model, lambda: kn.nir.to_nir(model), ValueError, match)
