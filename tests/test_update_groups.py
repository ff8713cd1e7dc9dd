"""Grouped optimizer updates against Keras's per-variable updates."""

import nengo
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_close, only_tf_keras, weight_name
from test_data_fuzz import network as fuzz_network

import keras_nengo as kn
from keras_nengo._compat import KERAS_3, nengo_dl
from keras_nengo.bench import tutorial_network

OPTIMIZERS = {
    "sgd_nesterov": lambda: tf.keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "adam_amsgrad": lambda: tf.keras.optimizers.Adam(0.01, amsgrad=True),
    "rmsprop_centered": lambda: tf.keras.optimizers.RMSprop(
        0.01, momentum=0.5, centered=True
    ),
    "adagrad": lambda: tf.keras.optimizers.Adagrad(0.1),
    "adadelta": lambda: tf.keras.optimizers.Adadelta(1.0),
    "adamax": lambda: tf.keras.optimizers.Adamax(0.01),
    "lion": lambda: tf.keras.optimizers.Lion(0.001),
    "adam_clipvalue_schedule": lambda: tf.keras.optimizers.Adam(
        tf.keras.optimizers.schedules.ExponentialDecay(0.01, 1, 0.5), clipvalue=0.01
    ),
}


def network(keras_layer=False):
    net = tutorial_network()
    with net:
        nengo_dl.configure_settings(trainable=None)
        if keras_layer:
            dense = nengo_dl.Layer(tf.keras.layers.Dense(1, name="dense"))(net.stim)
            nengo.Connection(dense, net.out_node, synapse=None)
    return net


def data(seed=1, n=16):
    rng = np.random.RandomState(seed)
    x = rng.uniform(-1, 1, size=(n, 3, 1)).astype(np.float32)
    return x, np.sin(x**2)


def per_variable_steps(model, optimizer, x, y, batch_size, steps):
    """Keras's per-variable update of ``model``'s weights in a hand-written loop."""
    variables = model.trainable_variables

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))

    for i in range(steps):
        batch = slice(i * batch_size, (i + 1) * batch_size)
        step(x[batch], y[batch])


def own_variables(optimizer) -> int:
    """How many variables ``optimizer`` holds for itself (not per weight)."""
    optimizer.build([])
    return len(optimizer.variables)


def trained_pair(make_optimizer, keras_layer=False, steps=3, batch_size=4):
    # two builds of the network: a Keras layer in it holds its own variables
    net, net_copy = network(keras_layer), network(keras_layer)
    model = kn.NengoModel(net, outputs=[net.p_out_nofilt], seed=5)
    reference = kn.NengoModel(net_copy, outputs=[net_copy.p_out_nofilt], seed=5)
    reference.set_weights(model.get_weights())
    x, y = data(n=steps * batch_size)
    model.compile(optimizer=make_optimizer(), loss="mse")
    model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    optimizer = make_optimizer()
    per_variable_steps(reference, optimizer, x, y, batch_size, steps)
    return model, reference, optimizer


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_grouped_update_equals_per_variable_update(name):
    model, reference, optimizer = trained_pair(OPTIMIZERS[name])
    for variable, expected in zip(
        model.trainable_variables, reference.trainable_variables
    ):
        assert weight_name(variable) == weight_name(expected)
        assert_close(variable.numpy(), expected.numpy(), "weights32")
    # one flat slot per optimizer state instead of one per named weight
    # (besides the optimizer's own: its step counter, and in Keras 3 its rate)
    n_own = own_variables(OPTIMIZERS[name]())
    n_named = len(model.trainable_variables)
    per_weight = (len(optimizer.variables) - n_own) // n_named
    assert per_weight >= 0 and len(optimizer.variables) == n_own + per_weight * n_named
    assert len(model.optimizer.variables) == n_own + per_weight
    assert int(model.optimizer.iterations.numpy()) == 3


@only_tf_keras(
    "Keras 3 refuses Keras-layer weights inside TensorNodes (test_keras3.py)"
)
def test_keras_layer_weights_update_beside_groups():
    model, reference, _ = trained_pair(OPTIMIZERS["adam_amsgrad"], keras_layer=True)
    names = [v.name for v in model.trainable_variables]
    assert any(name.endswith("/kernel:0") for name in names)
    for variable, expected in zip(
        model.trainable_variables, reference.trainable_variables
    ):
        assert_close(variable.numpy(), expected.numpy(), "weights32")


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda: tf.keras.optimizers.Adam(0.05, clipnorm=0.01),
        lambda: tf.keras.optimizers.SGD(0.05, global_clipnorm=0.01),
        lambda: tf.keras.optimizers.AdamW(0.01, weight_decay=0.1),
        lambda: tf.keras.optimizers.Ftrl(0.1),
    ],
    ids=["clipnorm", "global_clipnorm", "weight_decay", "ftrl"],
)
def test_whole_variable_options_update_per_variable(make_optimizer):
    model, reference, optimizer = trained_pair(make_optimizer)
    for variable, expected in zip(
        model.trainable_variables, reference.trainable_variables
    ):
        assert_close(variable.numpy(), expected.numpy(), "weights32")
    assert len(model.optimizer.variables) == len(optimizer.variables)


def test_skipped_batch_changes_no_weight_and_no_optimizer_state():
    net = network()
    model = kn.NengoModel(net, outputs=[net.p_out_nofilt], seed=5)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="mse")
    x, y = data(n=8)
    model.fit(x[:4], y[:4], batch_size=4, epochs=1, verbose=0)
    weights = model.get_weights()
    state = [v.numpy() for v in model.optimizer.variables]
    y[4:] = np.nan
    with pytest.warns(RuntimeWarning, match="1 training batch"):
        model.fit(x[4:], y[4:], batch_size=4, epochs=1, verbose=0)
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)
    for before, variable in zip(state, model.optimizer.variables):
        np.testing.assert_array_equal(before, variable.numpy())


@pytest.mark.parametrize("clipnorm", [None, 1.0], ids=["grouped", "per_variable"])
def test_nan_data_that_reaches_no_output_skips_the_batch(clipnorm):
    # found by test_data_fuzz: a probe behind a synapse does not see this
    # step's input within a one-step run, so a NaN input left the loss and
    # the gradients finite; the batch must still change nothing (Adam's
    # moments would move the weights, and the iteration count would grow)
    model = kn.NengoModel(fuzz_network(), seed=0)
    optimizer = tf.keras.optimizers.Adam(0.01, clipnorm=clipnorm)
    model.compile(optimizer=optimizer, loss="mse")
    rng = np.random.RandomState(0)
    x, y = rng.uniform(-1, 1, (4, 1, 2)), rng.uniform(-1, 1, (4, 1, 3))
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    weights = model.get_weights()
    state = [v.numpy() for v in model.optimizer.variables]
    x = x[:1].copy()
    x[0, 0, 0] = np.nan
    with pytest.warns(RuntimeWarning, match="1 training batch"):
        model.fit(x, y[:1], batch_size=4, epochs=1, verbose=0)
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)
    for before, variable in zip(state, model.optimizer.variables):
        np.testing.assert_array_equal(before, variable.numpy())


def test_trainable_changed_since_compile_is_refused():
    # fit restores the compiled trainable state (Keras); a custom loop may not
    net = network()
    model = kn.NengoModel(net, outputs=[net.p_out_nofilt], seed=5)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="mse")
    x, y = data(n=4)
    weights = model.get_weights()
    model.nengo_layer.trainable = False
    with pytest.raises(RuntimeError, match="built for 6 trainable .* now has 0"):
        model.train_step((tf.constant(x), tf.constant(y)))
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)
    if KERAS_3:
        # Keras 3's fit does not restore the compiled state: the same refusal
        with pytest.raises(RuntimeError, match="built for 6 trainable .* has 0"):
            model.fit(x, y, batch_size=4, epochs=1, verbose=0)
        model.nengo_layer.trainable = True
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert not np.array_equal(model.get_weights()[0], weights[0])


def test_model_made_under_a_strategy_updates_per_variable():
    # compiled outside the strategy's scope, it still trains under the strategy
    net = network()
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        model = kn.NengoModel(net, outputs=[net.p_out_nofilt], seed=5)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="mse")
    net_copy = network()
    reference = kn.NengoModel(net_copy, outputs=[net_copy.p_out_nofilt], seed=5)
    reference.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="mse")
    x, y = data(n=8)
    for trained in (model, reference):
        trained.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    n_own = own_variables(tf.keras.optimizers.Adam(0.01))
    assert len(model.optimizer.variables) == n_own + 2 * len(model.trainable_variables)
    for variable, expected in zip(
        model.trainable_variables, reference.trainable_variables
    ):
        assert_close(variable.numpy(), expected.numpy(), "weights32")


def test_recompiling_with_the_same_optimizer_keeps_its_state():
    net = network()
    model = kn.NengoModel(net, outputs=[net.p_out_nofilt], seed=5)
    optimizer = tf.keras.optimizers.Adam(0.01)
    model.compile(optimizer=optimizer, loss="mse")
    x, y = data(n=8)
    model.fit(x[:4], y[:4], batch_size=4, epochs=1, verbose=0)
    moments = [v.numpy() for v in optimizer.variables]
    model.compile(optimizer=optimizer, loss="mae")
    for before, variable in zip(moments, optimizer.variables):
        np.testing.assert_array_equal(before, variable.numpy())
    model.fit(x[4:], y[4:], batch_size=4, epochs=1, verbose=0)
    assert int(optimizer.iterations.numpy()) == 2
    n_own = own_variables(tf.keras.optimizers.Adam(0.01))
    assert len(optimizer.variables) == len(moments) == n_own + 2


def test_an_optimizer_built_for_another_model_is_refused_by_keras():
    first, second = network(), network()
    optimizer = tf.keras.optimizers.Adam(0.01)
    model = kn.NengoModel(first, outputs=[first.p_out_nofilt], seed=5)
    model.compile(optimizer=optimizer, loss="mse")
    other = kn.NengoModel(second, outputs=[second.p_out_nofilt], seed=5)
    other.compile(optimizer=optimizer, loss="mse")
    x, y = data(n=4)
    weights = other.get_weights()
    error, match = (
        (ValueError, "Unknown variable: .*square/encoders")
        if KERAS_3
        else (KeyError, "cannot recognize variable square/encoders")
    )
    with pytest.raises(error, match=match):
        other.fit(x, y, batch_size=4, epochs=1, verbose=0)
    for before, after in zip(weights, other.get_weights()):
        np.testing.assert_array_equal(before, after)
