"""NengoLayer: named variables feed NengoDL's merged storage; any batch size."""

import nengo
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_close

from keras_nengo import NengoLayer
from keras_nengo.bench import tutorial_network


@pytest.fixture
def layer():
    net = tutorial_network(n_neurons=10)
    return NengoLayer(net, inputs=[net.stim], outputs=[net.p_out_nofilt], seed=0)


def test_only_named_variables_are_weights(layer):
    layer.build(None)
    names = sorted(w.name.split(":")[0] for w in layer.weights)
    assert names == sorted(layer.named_variables)
    assert not any("base_params" in name for name in names)


def test_graphs_per_batch_size_share_the_named_variables(layer):
    layer.build(None)
    x = np.random.RandomState(0).uniform(-1, 1, (5, 2, 1)).astype(np.float32)
    before = layer({"stim": x}, training=True)
    single = layer(x[:1], training=True)
    assert_close(single, before[:1])
    assert layer.simulation.minibatch_sizes == [1, 5]

    encoders = layer.named_variables["square/encoders"]
    encoders.assign(encoders * 2.0)
    after = layer({"stim": x}, training=True)
    after_single = layer(x[:1], training=True)
    assert not np.allclose(after, before)
    assert_close(after_single, after[:1])


@pytest.mark.parametrize("batch", [1, 3, 4, 7])
def test_unknown_batch_size_runs_in_chunks(layer, batch):
    layer.build(None)
    layer.minibatch_size = 3

    @tf.function(input_signature=[tf.TensorSpec((None, 2, 1), tf.float32)])
    def run(x):
        return layer(x, training=True)

    x = np.random.RandomState(batch).uniform(-1, 1, (batch, 2, 1)).astype(np.float32)
    expected = layer(x, training=True)
    assert_close(run(x), expected)
    assert 3 in layer.simulation.minibatch_sizes


def test_inputless_network_needs_n_steps():
    with nengo.Network(seed=0) as net:
        ens = nengo.Ensemble(5, 1, label="ens")
        probe = nengo.Probe(ens)
    layer = NengoLayer(net, inputs=[], outputs=[probe])
    layer.build(None)
    with pytest.raises(ValueError, match="Received: n_steps=None"):
        layer(None, training=False)
    with pytest.raises(ValueError, match="has no input Nodes.*Received: array"):
        layer(np.zeros((1, 3, 1)), training=False)
    assert layer(None, training=False, n_steps=3).shape == (1, 3, 1)


def test_bad_dtype():
    net = tutorial_network(n_neurons=5)
    with pytest.raises(ValueError, match="Received: dtype='int32'"):
        NengoLayer(net, inputs=[net.stim], outputs=[net.p_out], dtype="int32")
