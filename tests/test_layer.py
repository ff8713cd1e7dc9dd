"""NengoLayer: named variables feed NengoDL's merged storage; any batch size."""

import nengo
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_close, weight_name

from keras_nengo import NengoLayer
from keras_nengo.bench import tutorial_network


@pytest.fixture
def layer():
    net = tutorial_network(n_neurons=10)
    return NengoLayer(net, inputs=[net.stim], outputs=[net.p_out_nofilt], seed=0)


def test_only_named_variables_are_weights(layer):
    layer.build(None)
    names = sorted(weight_name(w, layer.name) for w in layer.weights)
    assert names == sorted(layer.named_variables)
    assert not any("base_params" in name for name in names)


def test_graphs_per_batch_size_share_the_named_variables(layer):
    layer.build(None)
    x = np.random.RandomState(0).uniform(-1, 1, (5, 2, 1)).astype(np.float32)
    before = layer({"stim": x}, training=False)
    single = layer(x[:1], training=False)
    assert_close(single, before[:1])
    # the layer's default minibatch size is built with it; the others on first use
    assert layer.simulation.minibatch_sizes == [1, 5, layer.minibatch_size]

    encoders = layer.named_variables["square/encoders"]
    encoders.assign(encoders * 2.0)
    after = layer({"stim": x}, training=False)
    after_single = layer(x[:1], training=False)
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
    with pytest.raises(ValueError, match="no input Nodes.*Received: array"):
        layer(np.zeros((1, 3, 1)), training=False)
    assert layer(None, training=False, n_steps=3).shape == (1, 3, 1)


def test_bad_dtype():
    net = tutorial_network(n_neurons=5)
    with pytest.raises(ValueError, match="Received: dtype='int32'"):
        NengoLayer(net, inputs=[net.stim], outputs=[net.p_out], dtype="int32")


def test_functional_and_sequential_models_train_both_kinds_of_weights():
    net = tutorial_network(n_neurons=10)
    with net:
        kn_settings = net.config[nengo.Ensemble]
        kn_settings.trainable = True
    x = np.random.RandomState(0).uniform(-1, 1, (10, 2, 1)).astype(np.float32)
    y = np.sin(x)
    for build in ("functional", "sequential"):
        layer = NengoLayer(net, inputs=[net.stim], outputs=[net.p_out_nofilt], seed=1)
        # a fixed kernel: a random one near 0 could leave the neurons silent
        dense = tf.keras.layers.Dense(
            1, name="pre", kernel_initializer=tf.keras.initializers.Constant(0.8)
        )
        if build == "functional":
            inp = tf.keras.Input((2, 1))
            model = tf.keras.Model(inp, layer(dense(inp)))
        else:
            model = tf.keras.Sequential([tf.keras.Input((2, 1)), dense, layer])
        assert any(isinstance(item, NengoLayer) for item in model.layers)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        encoders = layer.named_variables["square/encoders"]
        grad_kernel, grad_encoders = tape.gradient(loss, [dense.kernel, encoders])
        assert np.abs(grad_kernel).max() > 0
        assert np.abs(grad_encoders).max() > 0
        before = layer.named_variables["square/encoders"].numpy()
        kernel = dense.kernel.numpy()
        model.compile(optimizer=tf.keras.optimizers.SGD(0.1), loss="mse")
        # 10 samples in batches of 4: a partial final batch, unknown while tracing
        model.fit(x, y, batch_size=4, epochs=1, verbose=0)
        assert not np.allclose(layer.named_variables["square/encoders"], before)
        assert not np.allclose(dense.kernel, kernel)
        direct = layer(dense(x), training=False)
        assert_close(model.predict(x, batch_size=3, verbose=0), direct)


def test_summary_lists_the_layer_and_its_weights():
    net = tutorial_network(n_neurons=10)
    inp = tf.keras.Input((2, 1))
    model = tf.keras.Model(inp, NengoLayer(net, outputs=[net.p_out], name="snn")(inp))
    lines = []
    model.summary(print_fn=lines.append)
    # tf-keras: " snn (NengoLayer) ..."; Keras 3 draws a box: "│ snn (NengoLayer) ..."
    row = next(line for line in lines if "snn (NengoLayer)" in line)
    assert "(None, 2, 1)" in row and str(model.layers[1].count_params()) in row


def test_wrong_input_structure_says_what_was_received(layer):
    x = np.zeros((2, 3, 1), np.float32)
    cases = [
        ([x, x], r"list of 1 arrays as data \(layer .*Received: a list of 2"),
        ({"nope": x}, r"Unknown input 'nope'.*\['stim'\]"),
        (np.zeros((2, 3, 4), np.float32), r"Input 'stim'.*\(batch, n_steps, 1\).*4"),
        (np.zeros((2, 3), np.float32), r"Input 'stim'.*Received: shape \(2, 3\)"),
    ]
    for inputs, match in cases:
        with pytest.raises(ValueError, match=match):
            layer(inputs)
    with pytest.raises(ValueError, match=r"minibatch_size must be >= 1.*0"):
        layer.minibatch_size = 0
