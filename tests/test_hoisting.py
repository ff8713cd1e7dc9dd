"""Hoisting: stateless input-driven operators run for all steps before the loop.

Each hoisted run is checked against the same network run with every operator
in the loop (``Simulation.hoist = False``, NengoDL's step-by-step build) and
against ``nengo.Simulator``: spikes equal, rate outputs and gradients equal to
float rounding (1e-5 relative in float32, 1e-10 in float64, DESIGN §4).
"""

import nengo
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_close

import keras_nengo as kn
from keras_nengo.simulation import Simulation


def linear_lif(n=24, seed=0):
    """Input -> Linear(n x n) -> LIF neurons, no synapse (the ONM bench shape)."""
    rng = np.random.RandomState(seed)
    with nengo.Network(seed=seed) as net:
        stim = nengo.Node(np.zeros(n), label="stim")
        lif = nengo.Ensemble(n, 1, gain=np.ones(n), bias=np.ones(n), label="lif")
        nengo.Connection(
            stim, lif.neurons, transform=rng.uniform(-1, 1, (n, n)), synapse=None
        )
        nengo.Probe(lif.neurons, label="spikes")
    return net


def mixed(neuron_type=nengo.LIF()):
    """Slices, scalar and elementwise transforms, a Node function, synapses.

    Hoistable: the input Copy/encoders into ``a``, the scalar transform into
    ``b``'s neurons; not hoistable: ``b``'s decoded input (a synapse), the
    function Node (computes from its input at each step), recurrence.
    """
    with nengo.Network(seed=3) as net:
        net.config[nengo.Ensemble].neuron_type = neuron_type
        u = nengo.Node(np.zeros(3), label="u")
        v = nengo.Node(np.zeros(2), label="v")
        a = nengo.Ensemble(30, 2, label="a")
        b = nengo.Ensemble(20, 3, label="b")
        f = nengo.Node(lambda t, x: x**2, size_in=2, label="f")
        nengo.Connection(u[[0, 2]], a, synapse=None)
        nengo.Connection(v, a, transform=[[0.5, 0], [0, -1]], synapse=None)
        nengo.Connection(u[1], b.neurons, transform=np.linspace(-1, 1, 20)[:, None])
        nengo.Connection(v, b[:2], synapse=0.005)
        nengo.Connection(a, f, synapse=None)
        nengo.Connection(f, b[2], transform=[[0.3, -0.2]], synapse=None)
        nengo.Connection(a.neurons, b.neurons, transform=0.01 * np.ones((20, 30)))
        nengo.Connection(b, b, synapse=0.02, transform=0.2)
        nengo.Probe(a, label="p_a", synapse=None)
        nengo.Probe(b, label="p_b", synapse=0.01)
        nengo.Probe(u, label="p_u")
    return net


def data(net, batch=3, steps=25, seed=1):
    rng = np.random.RandomState(seed)
    return {
        node.label: rng.uniform(-1, 1, (batch, steps, node.size_out))
        for node in net.all_nodes
        if node.size_in == 0
    }


def model_of(net, hoist, monkeypatch, **options):
    monkeypatch.setattr(Simulation, "hoist", hoist)
    return kn.NengoModel(net, seed=2, **options)


def plan_kinds(model, batch):
    graph = model.layers[0].simulation.graph(batch)
    return [type(op).__name__ for ops in graph.plan for op in ops]


def test_linear_lif_steps_only_the_neurons(monkeypatch):
    net = linear_lif()
    hoisted = model_of(net, True, monkeypatch)
    plain = model_of(linear_lif(), False, monkeypatch)
    assert plan_kinds(hoisted, 3) == ["TimeUpdate", "SimNeurons", "SimProbe"]
    assert "DotSet" in plan_kinds(plain, 3)
    x = data(net)["stim"].astype(np.float32)
    spikes = hoisted.predict(x, verbose=0)
    np.testing.assert_array_equal(spikes, plain.predict(x, verbose=0))
    assert spikes.sum() > 0


@pytest.mark.parametrize("neuron_type", [nengo.LIF(), nengo.RectifiedLinear()])
def test_mixed_network_equals_the_step_by_step_run(monkeypatch, neuron_type):
    net = mixed(neuron_type)
    x = data(net)
    hoisted = model_of(net, True, monkeypatch)
    plain = model_of(net, False, monkeypatch)
    kinds, all_kinds = plan_kinds(hoisted, 3), plan_kinds(plain, 3)
    assert len(kinds) < len(all_kinds)
    assert "SimPyFunc" in kinds and "SimProcess" in kinds  # Node f, synapses stay
    for training in (False, True):
        fed = {k: tf.constant(v, tf.float32) for k, v in x.items()}
        got = hoisted(fed, training=training)
        want = plain(fed, training=training)
        for name in want:
            scale = np.abs(want[name]).max()
            assert_close(got[name] / scale, want[name] / scale)


def test_float64_outputs_and_gradients_equal_the_step_by_step_run(monkeypatch):
    net = mixed(nengo.LIFRate())
    x = {k: tf.constant(v) for k, v in data(net).items()}
    results = []
    for hoist in (True, False):
        model = model_of(net, hoist, monkeypatch, dtype="float64")
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            loss = tf.reduce_sum(out["p_b"] ** 2) + tf.reduce_sum(out["p_a"] ** 2)
        named = {
            name: variable
            for name, variable in model.nengo_layer.named_variables.items()
            if variable.trainable
        }
        grads = tape.gradient(loss, list(named.values()))
        results.append((out, dict(zip(named, grads))))
    (out, grads), (want_out, want_grads) = results
    for name in want_out:
        assert_close(out[name], want_out[name], "float64")
    assert set(grads) == set(want_grads)
    # (no gradient crosses the Python Node f)
    assert sum(np.abs(grad).max() > 0 for grad in want_grads.values()) >= 4
    for name, grad in want_grads.items():
        assert_close(grads[name], grad, "float64")


def test_rate_network_equals_nengo(monkeypatch):
    net = mixed(nengo.RectifiedLinear())
    x = data(net, batch=1, steps=40)
    model = model_of(net, True, monkeypatch, dtype="float64")
    got = model({k: tf.constant(v) for k, v in x.items()})
    processes = {
        node: nengo.processes.PresentInput(x[node.label][0], 0.001)
        for node in net.all_nodes
        if node.size_in == 0
    }
    for node, process in processes.items():
        node.output = process
    try:
        with nengo.Simulator(net, seed=2, progress_bar=False, dt=0.001) as sim:
            sim.run_steps(40)
    finally:
        for node in processes:
            node.output = np.zeros(node.size_out)
    for probe in net.all_probes:
        assert_close(got[probe.label][0], sim.data[probe], "float64")


def test_unrolled_and_stateful_chunks_equal_one_long_run(monkeypatch):
    net = mixed()
    x = data(net, steps=24)
    long = model_of(net, True, monkeypatch)
    want = long({k: tf.constant(v, tf.float32) for k, v in x.items()})
    unrolled = model_of(net, True, monkeypatch, unroll_simulation=5)
    got = unrolled({k: tf.constant(v, tf.float32) for k, v in x.items()})
    chunked = model_of(net, True, monkeypatch, stateful=True)
    chunks = [
        chunked({k: tf.constant(v[:, i : i + 8], tf.float32) for k, v in x.items()})
        for i in range(0, 24, 8)
    ]
    for name in want:
        assert_close(got[name], want[name])
        assert_close(np.concatenate([c[name] for c in chunks], axis=1), want[name])


def test_xla_predict_equals_the_graph_run(monkeypatch):
    net = linear_lif()
    x = data(net)["stim"].astype(np.float32)
    model = model_of(net, True, monkeypatch)
    model.compile(loss="mse", jit_compile=True)
    np.testing.assert_array_equal(
        model.predict(x, batch_size=3, verbose=0),
        model_of(net, False, monkeypatch).predict(x, batch_size=3, verbose=0),
    )


@pytest.mark.parametrize("batch, steps", [(1, 1), (2, 1), (1, 3)])
def test_one_row_runs_equal_the_step_by_step_run(monkeypatch, batch, steps):
    # rows == 1 makes constants (Reset values, parameters) and data alike in shape
    net = mixed()
    x = {k: tf.constant(v, tf.float32) for k, v in data(net, batch, steps).items()}
    got = model_of(net, True, monkeypatch)(x)
    want = model_of(net, False, monkeypatch)(x)
    for name in want:
        assert_close(got[name], want[name])
