"""The simulation runner: bounded loops (XLA), unrolling, NengoDL's maths kept."""

import nengo
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_close

import keras_nengo as kn
from keras_nengo._compat import nengo_dl


def recurrent_network():
    """Spiking LIF with synapses and a recurrent connection (state in every step)."""
    with nengo.Network(seed=4) as net:
        stim = nengo.Node(np.zeros(2), label="stim")
        ens = nengo.Ensemble(40, 2, label="ens")
        out = nengo.Node(size_in=2, label="out")
        nengo.Connection(stim, ens, synapse=0.005)
        nengo.Connection(ens, ens, synapse=0.02, transform=0.5)
        nengo.Connection(ens, out, synapse=0.01)
        nengo.Probe(out, label="p_out", synapse=0.01)
    return net


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, (6, 12, 2)).astype(np.float32)
    return x, np.sin(3 * x)


def fitted(data, **options):
    x, y = data
    compile_options = {k: options.pop(k) for k in list(options) if k != "unroll"}
    model = kn.NengoModel(
        recurrent_network(), seed=1, unroll_simulation=options.get("unroll", 1)
    )
    model.compile(
        optimizer=tf.keras.optimizers.SGD(1e-5), loss="mse", **compile_options
    )
    history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    return model, history


def test_jit_compile_fit_and_predict_equal_the_graph_run(data):
    x, _ = data
    plain, plain_history = fitted(data)
    xla, xla_history = fitted(data, jit_compile=True)
    np.testing.assert_allclose(
        xla_history.history["loss"], plain_history.history["loss"], rtol=1e-4
    )
    for name, value in plain.get_named_weights().items():
        np.testing.assert_allclose(xla.get_named_weights()[name], value, atol=1e-4)
    np.testing.assert_allclose(
        xla.predict(x, batch_size=4, verbose=0),
        plain.predict(x, batch_size=4, verbose=0),
        atol=1e-4,
    )


def test_unrolled_equals_not_unrolled_and_nengo_dl(data):
    x, _ = data
    plain = kn.NengoModel(recurrent_network(), seed=1)
    for unroll in (3, 5):
        model = kn.NengoModel(recurrent_network(), seed=1, unroll_simulation=unroll)
        # 12 steps: a multiple of 3 and not of 5 (the layer returns 12 steps)
        assert_close(
            model.predict(x, batch_size=6, verbose=0),
            plain.predict(x, batch_size=6, verbose=0),
        )
    net = recurrent_network()
    with nengo_dl.Simulator(
        net, seed=1, minibatch_size=6, unroll_simulation=3, progress_bar=False
    ) as sim:
        ref = sim.predict({net.all_nodes[0]: x})[net.all_probes[0]]
    assert_close(plain.predict(x, batch_size=6, verbose=0), ref)


def test_steps_per_execution(data):
    plain, _ = fitted(data)
    batched, _ = fitted(data, steps_per_execution=2)
    for name, value in plain.get_named_weights().items():
        assert_close(batched.get_named_weights()[name], value, "weights32")


def test_jit_compile_refuses_python_nodes():
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.zeros(1), label="stim")
        square = nengo.Node(lambda t, x: x**2, size_in=1, label="square")
        nengo.Connection(stim, square, synapse=None)
        nengo.Probe(square)
    model = kn.NengoModel(net)
    with pytest.raises(ValueError, match=r"XLA.*Node 'square'|Node 'square'.*XLA"):
        model.compile(loss="mse", jit_compile=True)
    with pytest.raises(ValueError, match=r"unroll_simulation.*Received: .*0"):
        kn.NengoModel(net, unroll_simulation=0)


def converted_network():
    """Rate training of LIF neurons with no synapses: folds time into the batch."""
    with nengo.Network(seed=1) as net:
        stim = nengo.Node(np.zeros(3), label="stim")
        wave = nengo.Node(lambda t: np.cos(30 * t), label="wave")
        a = nengo.Ensemble(50, 3, label="a")
        b = nengo.Ensemble(40, 2, label="b", neuron_type=nengo.RectifiedLinear())
        nengo.Connection(stim, a, synapse=None)
        nengo.Connection(wave, a[0], synapse=None)
        nengo.Connection(a, b, synapse=None, function=lambda x: x[:2] * x[2])
        nengo.Probe(b, label="out")
        nengo.Probe(b, label="filtered", synapse=0.01)
    return net


def test_time_folded_training_equals_step_by_step_training():
    from keras_nengo import folding

    net = converted_network()
    out, filtered = net.all_probes
    assert "synapse" in folding.why_not_foldable(net, [filtered], True)
    assert folding.why_not_foldable(net, [out], False) == (
        f"Ensemble {net.all_ensembles[0]} has LIF neurons"
    )
    rng = np.random.RandomState(2)
    x = rng.uniform(-1, 1, (10, 8, 3)).astype(np.float32)
    y = rng.uniform(-1, 1, (10, 8, 2)).astype(np.float32)
    models = []
    for fold in (True, False):
        model = kn.NengoModel(net, outputs=[out], seed=3)
        model.nengo_layer.simulation.fold_time = fold
        model.compile(optimizer=tf.keras.optimizers.SGD(1e-6), loss="mse")
        model.fit(x, y, batch_size=5, epochs=2, shuffle=False, verbose=0)
        models.append(model)
    folded, stepped = models
    # folded: one step of batch × steps rows
    assert 5 * 8 in folded.nengo_layer.simulation.minibatch_sizes
    assert 5 * 8 not in stepped.nengo_layer.simulation.minibatch_sizes
    for name, value in stepped.get_named_weights().items():
        assert_close(folded.get_named_weights()[name], value, "weights32")
    layer = folded.nengo_layer
    assert_close(layer(x, training=True), stepped.nengo_layer(x, training=True))


def test_process_states_are_made_at_build_as_in_nengo_dl():
    """Processes without a native builder make their state from dt at build."""
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.zeros(1), label="stim")
        ens = nengo.Ensemble(10, 1, label="ens", noise=nengo.processes.WhiteNoise())
        nengo.Connection(stim, ens, synapse=nengo.synapses.Triangle(0.01))
        probe = nengo.Probe(ens, label="out")
    x = np.random.RandomState(0).uniform(-1, 1, size=(2, 20, 1))
    model = kn.NengoModel(net, seed=1)
    out = model.predict(x, batch_size=2, verbose=0)
    with nengo_dl.Simulator(net, minibatch_size=2, seed=1, progress_bar=False) as sim:
        expected = sim.predict({stim: x})[probe]
    assert np.abs(expected).max() > 0.01
    assert_close(out, expected)
