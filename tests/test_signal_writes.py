"""Base arrays in pieces (reads and writes without indices) against NengoDL."""

import nengo
import numpy as np
import tensorflow as tf

import keras_nengo as kn
from keras_nengo._compat import nengo_dl, tf_keras
from keras_nengo.engine.pieces import PiecewiseSignalDict


def sliced_network():
    """Targets that are parts of larger base arrays: slices of an ensemble's input."""
    with nengo.Network(seed=3) as net:
        nengo_dl.configure_settings(trainable=None)
        net.stim = nengo.Node(np.zeros(3), label="stim")
        a = nengo.Ensemble(60, 3, label="a")
        b = nengo.Ensemble(80, 3, label="b", neuron_type=nengo.RectifiedLinear())
        c = nengo.Ensemble(40, 1, label="c")
        nengo.Connection(net.stim, a, synapse=None)
        nengo.Connection(a[:2], b[1:], synapse=0.005)
        nengo.Connection(net.stim[2], b[0], synapse=None)
        nengo.Connection(b, c, function=lambda v: v[0] * v[1], synapse=None)
        nengo.Connection(c, a[1], transform=0.3, synapse=0.01)
        net.p_b = nengo.Probe(b, label="p_b")
        net.p_c = nengo.Probe(c, label="p_c", synapse=0.01)
    return net


def test_forward_and_gradients_equal_nengo_dl_scatters():
    net = sliced_network()
    model = kn.NengoModel(net, inputs=[net.stim], outputs=[net.p_b, net.p_c])
    x = np.random.RandomState(0).uniform(-1, 1, size=(4, 25, 3)).astype(np.float32)
    spiking = model.predict(x, batch_size=4, verbose=0)
    rates = {
        name: value.numpy()
        for name, value in zip(model.output_names, model(x, training=True).values())
    }
    graph = model.nengo_layer.simulation.graph(4)
    assert isinstance(graph.signals, PiecewiseSignalDict)
    writes = graph.signals.write_types
    assert writes["pieces_inc"] + writes["pieces_update"] > 0
    assert graph.signals.read_types["pieces"] > 0

    with nengo_dl.Simulator(
        net, minibatch_size=4, seed=model.nengo_layer.seed, progress_bar=False
    ) as sim:
        # NengoDL's own Simulator keeps NengoDL's indexed writes
        assert not isinstance(sim.tensor_graph.signals, PiecewiseSignalDict)
        scatters = sim.tensor_graph.signals.write_types
        assert writes["scatter_add"] + writes["scatter_update"] < (
            scatters["scatter_add"] + scatters["scatter_update"]
        )
        # keras_nengo's engine sums in another order (its own builders,
        # hoisting): Nengo's semantics to float rounding, not NengoDL's bits
        reference = sim.predict({net.stim: x})
        for probe, name in zip(model.output_probes, model.output_names):
            np.testing.assert_allclose(
                spiking[name], reference[probe], rtol=1e-5, atol=1e-6
            )
        # training=True: NengoDL's Keras model on the same inputs
        n_steps = np.full((4, 1), 25, dtype=np.int32)
        outputs = sim.keras_model([tf.constant(x), tf.constant(n_steps)], training=True)
        for probe, name in zip(model.output_probes, model.output_names):
            index = sim.model.probes.index(probe)
            np.testing.assert_allclose(
                rates[name], outputs[index].numpy(), rtol=1e-5, atol=1e-6
            )
    assert np.abs(spiking["p_c"]).max() > 0.05


def test_training_step_equals_scatter_training_step():
    """One fit epoch with sliced writes gives NengoDL's weights.

    This training is sensitive (large updates through a product of decoded
    values): float32 rounding in another summation order moves the weights by
    a few 1e-5 of the update each made, so they are compared at 1e-4 of it.
    """
    net = sliced_network()
    model = kn.NengoModel(net, inputs=[net.stim], outputs=[net.p_b])
    rng = np.random.RandomState(1)
    x = rng.uniform(-1, 1, size=(8, 5, 3)).astype(np.float32)
    y = rng.uniform(-1, 1, size=(8, 5, 3)).astype(np.float32)
    model.compile(optimizer=tf.keras.optimizers.SGD(0.05), loss="mse")
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    after = model.get_named_weights()
    with nengo_dl.Simulator(
        net, minibatch_size=4, seed=model.nengo_layer.seed, progress_bar=False
    ) as sim:
        sim.compile(optimizer=tf_keras.optimizers.SGD(0.05), loss={net.p_b: "mse"})
        sim.fit({net.stim: x}, {net.p_b: y}, epochs=1, shuffle=False, verbose=0)
        for param in model.nengo_layer.parameters:
            reference = sim.data.get_params((param.obj, param.attr))[0]
            update = np.abs(reference - param.initial_value).max()
            assert update > 0, param.name
            np.testing.assert_allclose(
                after[param.name], reference, atol=1e-4 * update, rtol=0
            )


def test_many_slice_accesses_index_as_nengo_dl():
    """Merged operators on many small, scattered signals (a circular
    convolution of one-dimensional ensembles) read and write by index, the
    rest in pieces; outputs equal NengoDL's, spiking and in training."""
    from nengo_dl.benchmarks import cconv

    net = cconv(4, 40, nengo.LIF())
    model = kn.NengoModel(net, inputs=[net.inp_a, net.inp_b], outputs=[net.p])
    rng = np.random.RandomState(2)
    x = [rng.uniform(-1, 1, size=(2, 15, 4)).astype(np.float32) for _ in range(2)]
    spiking = model.predict(x, batch_size=2, verbose=0)
    rates = model(x, training=True).numpy()
    signals = model.nengo_layer.simulation.graph(2).signals
    assert signals.read_types["pieces"] > 0
    assert signals.read_types["gather"] + signals.write_types["scatter_add"] > 0
    with nengo_dl.Simulator(
        net, minibatch_size=2, seed=model.nengo_layer.seed, progress_bar=False
    ) as sim:
        feed = {net.inp_a: x[0], net.inp_b: x[1]}
        np.testing.assert_allclose(
            spiking, sim.predict(feed)[net.p], rtol=1e-5, atol=1e-5
        )
        n_steps = np.full((2, 1), 15, dtype=np.int32)
        inputs = [tf.constant(x[0]), tf.constant(x[1]), tf.constant(n_steps)]
        outputs = sim.keras_model(inputs, training=True)
        index = sim.model.probes.index(net.p)
        np.testing.assert_allclose(rates, outputs[index].numpy(), rtol=1e-5, atol=1e-5)
    assert np.abs(rates).max() > 0.05
