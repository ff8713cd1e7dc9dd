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
    before = layer({"stim": x}, training=True)[0]
    single = layer({"stim": x[:1]}, training=True)[0]
    assert_close(single, before[:1])
    assert sorted(layer._graphs) == [1, 5]

    encoders = layer.named_variables["square/encoders"]
    encoders.assign(encoders * 2.0)
    after = layer({"stim": x}, training=True)[0]
    after_single = layer({"stim": x[:1]}, training=True)[0]
    assert not np.allclose(after, before)
    assert_close(after_single, after[:1])


def test_unknown_batch_size_needs_a_default(layer):
    layer.build(None)

    @tf.function(input_signature=[tf.TensorSpec((None, 2, 1), tf.float32)])
    def run(x):
        return layer({"stim": x}, training=False)[0]

    with pytest.raises(ValueError, match="batch size of this call is not known"):
        run(np.zeros((2, 2, 1), np.float32))

    # a new batch size inside an already traced function builds its graph
    layer.default_minibatch_size = 3
    assert run(np.zeros((2, 2, 1), np.float32)).shape == (2, 2, 1)
    assert 3 in layer._graphs
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most 3 samples"):
        run(np.zeros((4, 2, 1), np.float32))


def test_inputless_network_needs_n_steps():
    with nengo.Network(seed=0) as net:
        ens = nengo.Ensemble(5, 1, label="ens")
        probe = nengo.Probe(ens)
    layer = NengoLayer(net, inputs=[], outputs=[probe])
    layer.build(None)
    with pytest.raises(ValueError, match="Received: n_steps=None"):
        layer({}, training=False)
    assert layer({}, training=False, n_steps=3)[0].shape == (1, 3, 1)


def test_bad_dtype():
    net = tutorial_network(n_neurons=5)
    with pytest.raises(ValueError, match="Received: dtype='int32'"):
        NengoLayer(net, inputs=[net.stim], outputs=[net.p_out], dtype="int32")
