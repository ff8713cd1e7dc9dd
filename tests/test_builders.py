"""keras_nengo's own builders against NengoDL's Simulator, nengo.Simulator and
finite differences.

Each kind of batch-first dot product (one matrix, merged column matrices,
merged row matrices, merged general matrices) runs in a network that makes
NengoDL merge operators that way: forward outputs equal ``nengo_dl.Simulator``
(its own builders) and ``nengo.Simulator`` to 1e-10 in float64, spike counts
are within one per neuron, and gradients through the time loop equal central
finite differences in float64.
"""

import nengo
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_close

import keras_nengo as kn
from keras_nengo._compat import nengo_dl
from keras_nengo.engine.builders import DotIncBuilder
from keras_nengo.engine.neurons import LIFBuilder


def ensembles(dims, neuron_type=nengo.LIFRate(), k=4, seed=0):
    """``k`` ensembles of ``dims`` dimensions between an input and an output."""
    with nengo.Network(seed=seed) as net:
        nengo_dl.configure_settings(trainable=None)
        net.config[nengo.Ensemble].neuron_type = neuron_type
        net.stim = nengo.Node(np.zeros(k * dims), label="stim")
        net.out = nengo.Node(size_in=k * dims, label="out")
        for i in range(k):
            ens = nengo.Ensemble(30, dims, label=f"e{i}")
            part = slice(i * dims, (i + 1) * dims)
            nengo.Connection(net.stim[part], ens, synapse=0.002)
            nengo.Connection(ens, net.out[part], synapse=0.005, function=np.sin)
        big = nengo.Ensemble(40, k * dims, label="big")
        nengo.Connection(net.stim, big, synapse=None)
        nengo.Connection(big, net.out, transform=0.1, synapse=0.005)
        net.p_out = nengo.Probe(net.out, label="p_out")
        net.p_spikes = nengo.Probe(big.neurons, label="p_spikes")
    return net


def kinds(model, batch):
    graph = model.nengo_layer.simulation.graph(batch)
    return {
        build.kind
        for build in graph.op_builder.op_builds.values()
        if isinstance(build, DotIncBuilder)
    }


def data(net, batch=4, steps=20, seed=0):
    rng = np.random.RandomState(seed)
    return rng.uniform(-1, 1, (batch, steps, net.stim.size_out))


@pytest.mark.parametrize("dims, expected", [(1, {"column", "row"}), (2, {"einsum"})])
def test_rate_outputs_equal_nengo_dl_and_nengo_in_float64(dims, expected):
    net = ensembles(dims)
    model = kn.NengoModel(net, seed=1, dtype="float64")
    x = data(net)
    got = model.predict(x, batch_size=4, verbose=0)["p_out"]
    assert expected <= kinds(model, 4) and "matmul" in kinds(model, 4)
    with net:
        nengo_dl.configure_settings(dtype="float64")
    with nengo_dl.Simulator(net, minibatch_size=4, seed=1, progress_bar=False) as sim:
        want = sim.predict({net.stim: x}, verbose=0)
    assert_close(got, want[net.p_out], "float64")
    # one sample against Nengo itself
    net.stim.output = nengo.processes.PresentInput(x[0], 0.001)
    with nengo.Simulator(net, seed=1, progress_bar=False) as ref:
        ref.run_steps(x.shape[1])
    assert_close(got[0], ref.data[net.p_out], "float64")


def test_spike_counts_within_one_of_nengo_dl():
    net = ensembles(1, nengo.LIF())
    model = kn.NengoModel(net, seed=1)
    x = data(net, steps=200)
    spikes = model.predict(x, batch_size=4, verbose=0)["p_spikes"] * 0.001
    with nengo_dl.Simulator(net, minibatch_size=4, seed=1, progress_bar=False) as sim:
        want = sim.predict({net.stim: x}, verbose=0)[net.p_spikes] * 0.001
    counts, want_counts = spikes.sum(axis=1), want.sum(axis=1)
    assert want_counts.sum() > 100
    assert np.abs(counts - want_counts).max() <= 1


def test_lif_step_equals_nengo_in_float64():
    """The own LIF step (exp and log forms) against Nengo's, with refractory
    periods and a min_voltage: voltages to 1e-10, the same spikes."""
    with nengo.Network(seed=2) as net:
        nengo_dl.configure_settings(trainable=None)
        net.stim = nengo.Node(np.zeros(2), label="stim")
        ens = nengo.Ensemble(
            50,
            2,
            neuron_type=nengo.LIF(tau_ref=0.003, min_voltage=-0.5),
            max_rates=nengo.dists.Uniform(100, 250),
            label="e",
        )
        nengo.Connection(net.stim, ens, synapse=None)
        net.p_spikes = nengo.Probe(ens.neurons, label="p_spikes")
        net.p_voltage = nengo.Probe(ens.neurons, "voltage", label="p_voltage")
    model = kn.NengoModel(net, seed=1, dtype="float64")
    x = data(net, batch=1, steps=300, seed=3) * 2
    got = model.predict(x, batch_size=1, verbose=0)
    builds = model.nengo_layer.simulation.graph(1).op_builder.op_builds.values()
    assert any(
        isinstance(b.built_neurons, LIFBuilder)
        for b in builds
        if hasattr(b, "built_neurons")
    )
    net.stim.output = nengo.processes.PresentInput(x[0], 0.001)
    with nengo.Simulator(net, seed=1, progress_bar=False) as ref:
        ref.run_steps(x.shape[1])
    assert ref.data[net.p_spikes].sum() * 0.001 > 500
    np.testing.assert_array_equal(got["p_spikes"][0], ref.data[net.p_spikes])
    np.testing.assert_allclose(got["p_voltage"][0], ref.data[net.p_voltage], atol=1e-10)
    assert ref.data[net.p_voltage].min() < -0.1  # min_voltage reached


@pytest.mark.parametrize("dims, steps", [(1, 6), (2, 6), (2, 1)])
def test_gradients_through_the_loop_equal_finite_differences(dims, steps):
    # synapses keep the products in the time loop, so the gradient passes
    # through every kind of batch-first product at every step (one step:
    # built without the loop)
    net = ensembles(dims)
    model = kn.NengoModel(net, outputs=[net.p_out], seed=1, dtype="float64")
    x = tf.constant(data(net, batch=2, steps=steps))

    def loss():
        return tf.reduce_sum(model(x, training=True) ** 2)

    with tf.GradientTape() as tape:
        value = loss()
    variables = model.nengo_layer.named_variables
    grads = dict(zip(variables, tape.gradient(value, list(variables.values()))))
    # no path within the steps run (a synapse delays by a step): zero gradient,
    # which the finite differences must show too
    grads = {
        name: tf.zeros_like(variables[name]) if grad is None else grad
        for name, grad in grads.items()
    }
    rng = np.random.RandomState(0)
    checked = 0
    for name, variable in variables.items():
        if not variable.trainable:
            continue
        flat = variable.numpy().reshape(-1)
        for index in rng.choice(flat.size, 2, replace=False):
            eps = 1e-6 * max(1.0, abs(flat[index]))
            values = []
            for sign in (1, -1):
                moved = flat.copy()
                moved[index] += sign * eps
                variable.assign(moved.reshape(variable.shape))
                values.append(float(loss()))
            variable.assign(flat.reshape(variable.shape))
            numeric = (values[0] - values[1]) / (2 * eps)
            analytic = float(tf.reshape(grads[name], [-1])[index])
            assert_close(analytic, numeric, "finite_difference")
            checked += 1
    assert checked >= 10


def test_lif_rate_derivative_in_both_jacobian_modes():
    """The LIF rate curve: the written-out derivative (reverse mode) equals
    TensorFlow's own (forward mode builds without it), on test_jacobian's
    network shape (LIFRate, a synapse on the output)."""
    with nengo.Network(seed=4) as net:
        net.stim = nengo.Node(np.zeros(2), label="stim")
        ens = nengo.Ensemble(30, 2, neuron_type=nengo.LIFRate(), label="e")
        out = nengo.Node(size_in=2, label="out")
        nengo.Connection(net.stim, ens, synapse=None)
        nengo.Connection(ens, out, function=np.sin, synapse=0.005)
        net.p_out = nengo.Probe(out, label="p_out")
    model = kn.NengoModel(net, seed=1, dtype="float64")
    x = np.random.RandomState(0).uniform(-1, 1, (2, 4, 2))
    for wrt in ("inputs", "weights"):
        reverse = model.jacobian(x, wrt=wrt, steps=[1, 3], mode="reverse")
        forward = model.jacobian(x, wrt=wrt, steps=[1, 3], mode="forward")
        assert sorted(forward) == sorted(reverse)
        assert max(np.abs(value).max() for value in reverse.values()) > 1e-3
        for name in reverse:
            assert_close(forward[name], reverse[name], "float64")
