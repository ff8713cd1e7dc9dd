"""NengoModel against NengoDL's Simulator, a hand-written step and nengo core."""

import warnings

import nengo
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_close, only_tf_keras, weight_name

import keras_nengo as kn
from keras_nengo import _compat
from keras_nengo._compat import nengo_dl, tf_keras
from keras_nengo.bench import tutorial_network


def nengo_dl_sim(net, model, minibatch_size):
    return nengo_dl.Simulator(
        net,
        minibatch_size=minibatch_size,
        seed=model.nengo_layer.seed,
        progress_bar=False,
    )


def all_trainable(net):
    with net:
        nengo_dl.configure_settings(trainable=None)
    return net


def two_input_network():
    with nengo.Network(seed=1) as net:
        a = nengo.Node(np.zeros(2), label="a")
        b = nengo.Node(np.zeros(1), label="b")
        ens = nengo.Ensemble(30, 3, label="ens", neuron_type=nengo.RectifiedLinear())
        nengo.Connection(a, ens[:2], synapse=None)
        nengo.Connection(b, ens[2], synapse=None)
        out = nengo.Node(size_in=3, label="out")
        nengo.Connection(ens, out, synapse=None)
        net.p_ens = nengo.Probe(ens, label="p_ens")
        net.p_out = nengo.Probe(out, label="p_out", synapse=0.01)
        net.a, net.b = a, b
    return net


@pytest.fixture(scope="module")
def tutorial():
    net = tutorial_network()
    return net


# -- forward pass -------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [32, 7])
def test_predict_matches_nengo_dl(tutorial, batch_size):
    net = tutorial
    model = kn.NengoModel(net)
    x = np.random.RandomState(1).uniform(-1, 1, size=(10, 30, 1))
    out = model.predict(x, batch_size=batch_size, verbose=0)
    assert sorted(out) == ["in", "out", "out_nofilt"]
    with nengo_dl_sim(net, model, 10) as sim:
        ref = sim.predict({net.stim: x})
    for probe, name in zip(model.output_probes, model.output_names):
        assert out[name].shape == (10, 30, probe.size_in)
        assert_close(out[name], ref[probe])
    # the spiking output is not trivially zero
    assert np.abs(out["out"]).max() > 0.05


def test_single_sample_and_partial_batches(tutorial):
    model = kn.NengoModel(tutorial, outputs=[tutorial.p_out])
    x = np.random.RandomState(2).uniform(-1, 1, size=(5, 20, 1))
    full = model.predict(x, batch_size=5, verbose=0)
    single = model.predict(x[:1], verbose=0)
    partial = model.predict(x, batch_size=2, verbose=0)
    assert single.shape == (1, 20, 1)
    assert_close(single, full[:1])
    assert_close(partial, full)
    # a direct call with a static batch size
    assert_close(model(x[:3], training=False), full[:3])


def test_nengo_dl_matches_nengo_core(tutorial):
    with nengo_dl.Simulator(tutorial, seed=3, progress_bar=False) as sim:
        sim.run_steps(200)
        dl = sim.data[tutorial.p_out]
    with nengo.Simulator(tutorial, seed=3, progress_bar=False) as sim:
        sim.run_steps(200)
        core = sim.data[tutorial.p_out]
    assert np.abs(core).max() > 0.05
    assert_close(dl, core)


def test_inputs_and_outputs_by_object_name_and_label(rng):
    net = two_input_network()
    model = kn.NengoModel(net)
    assert model.input_names == ["a", "b"]
    assert model.output_names == ["p_ens", "p_out"]
    xa = rng.uniform(-1, 1, size=(4, 10, 2))
    xb = rng.uniform(-1, 1, size=(4, 10, 1))
    by_name = model.predict({"a": xa, "b": xb}, verbose=0)
    by_node = model.predict({net.a: xa, net.b: xb}, verbose=0)
    by_list = model.predict([xa, xb], verbose=0)
    for name in model.output_names:
        assert_close(by_node[name], by_name[name])
        assert_close(by_list[name], by_name[name])
    with nengo_dl_sim(net, model, 4) as sim:
        ref = sim.predict({net.a: xa, net.b: xb})
    assert_close(by_name["p_out"], ref[net.p_out])


def test_tf_data_dataset(rng):
    net = two_input_network()
    model = kn.NengoModel(net, outputs=[net.p_out])
    x = {"a": rng.uniform(-1, 1, (6, 5, 2)), "b": rng.uniform(-1, 1, (6, 5, 1))}
    y = rng.uniform(-1, 1, (6, 5, 3))
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    model.compile(optimizer=tf.keras.optimizers.SGD(0.01), loss="mse")
    from_dataset = model.evaluate(dataset, verbose=0)
    from_arrays = model.evaluate(x, y, batch_size=4, verbose=0)
    assert np.isclose(from_dataset, from_arrays, rtol=1e-6)
    history = model.fit(dataset, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_network_without_inputs():
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.sin, label="sin")
        ens = nengo.Ensemble(20, 1, label="ens")
        nengo.Connection(stim, ens)
        probe = nengo.Probe(ens, synapse=0.01)
    model = kn.NengoModel(net, inputs=[])
    out = model.predict(n_steps=50)
    with nengo.Simulator(net, progress_bar=False) as sim:
        sim.run_steps(50)
    assert out.shape == (1, 50, 1)
    assert_close(out[0], sim.data[probe], "weights32")
    with pytest.raises(ValueError, match="n_steps=None"):
        model.predict()


def test_tensor_node_in_network():
    net = tutorial_network(tensor_node=True)
    model = kn.NengoModel(net, outputs=[net.p_exp, net.p_out_nofilt])
    x = np.random.RandomState(3).uniform(-1, 1, size=(3, 5, 1))
    out = model.predict(x, verbose=0)
    exp_name, nofilt_name = model.output_names
    assert_close(out[exp_name], np.exp(out[nofilt_name]))


@only_tf_keras(
    "Keras 3 refuses Keras-layer weights inside TensorNodes (test_keras3.py)"
)
def test_tensor_node_layer_weights_train():
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.zeros(2), label="stim")
        dense = nengo_dl.Layer(tf.keras.layers.Dense(3, name="dense"))(stim)
        probe = nengo.Probe(dense, label="out")
    model = kn.NengoModel(net)
    names = [v.name for v in model.trainable_variables]
    # named after the TensorNode (unlabelled: node_0), not Keras's "dense"
    assert "node_0/kernel:0" in names
    x = np.random.RandomState(0).uniform(-1, 1, (8, 1, 2))
    y = np.ones((8, 1, 3))
    model.compile(optimizer=tf.keras.optimizers.SGD(0.1), loss="mse")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=5, verbose=0)
    assert model.evaluate(x, y, verbose=0) < 0.9 * before
    assert probe is not None


# -- training -----------------------------------------------------------------------


def test_one_epoch_equals_nengo_dl_fit():
    net = all_trainable(tutorial_network())
    model = kn.NengoModel(net, outputs=[net.p_out_nofilt])
    assert sorted(weight_name(v) for v in model.trainable_variables) == sorted(
        [
            "square/encoders",
            "square/bias",
            "sin/encoders",
            "sin/bias",
            "square_to_sin/weights",
            "sin_to_output/weights",
        ]
    )
    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, size=(64, 1, 1))
    y = np.sin(x**2)
    before = model.get_named_weights()
    model.compile(optimizer=tf.keras.optimizers.SGD(0.01), loss="mse")
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    after = model.get_named_weights()
    with nengo_dl_sim(net, model, 16) as sim:
        sim.compile(
            optimizer=tf_keras.optimizers.SGD(0.01), loss={net.p_out_nofilt: "mse"}
        )
        sim.fit({net.stim: x}, {net.p_out_nofilt: y}, epochs=1, shuffle=False)
        for param in model.nengo_layer.parameters:
            reference = sim.data.get_params((param.obj, param.attr))[0]
            assert_close(after[param.name], reference, "weights32")
            assert not np.allclose(after[param.name], before[param.name])


def test_train_step_equals_hand_written_tape():
    net = all_trainable(tutorial_network())
    model = kn.NengoModel(net, outputs=[net.p_out_nofilt], seed=5)
    reference = kn.NengoModel(net, outputs=[net.p_out_nofilt], seed=5)
    rng = np.random.RandomState(1)
    x = rng.uniform(-1, 1, size=(8, 3, 1)).astype(np.float32)
    y = np.sin(x**2)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="mse")
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)

    optimizer = tf.keras.optimizers.Adam(0.01)
    variables = reference.trainable_variables

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(reference(x, training=True) - y))
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))

    for _ in range(2):
        step()
    for name, value in model.get_named_weights().items():
        assert_close(value, reference.get_named_weights()[name], "weights32")


def test_gradients_and_gradient_norms():
    net = all_trainable(tutorial_network())
    model = kn.NengoModel(net, outputs=[net.p_out_nofilt], gradient_norms=True)
    x = np.random.RandomState(2).uniform(-1, 1, size=(4, 1, 1))
    y = np.sin(x**2)
    with pytest.raises(RuntimeError, match="not compiled"):
        model.gradients(x, y)
    model.compile(optimizer=tf.keras.optimizers.SGD(0.0), loss="mse")
    grads = model.gradients(x, y)
    assert sorted(grads) == sorted(model.named_weights)

    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
    expected = tape.gradient(loss, model.named_weights)
    for name in grads:
        assert_close(grads[name], expected[name], "weights32")

    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    for name in grads:
        logged = history.history[f"grad_norm/{name}"][0]
        assert np.isclose(logged, np.linalg.norm(grads[name]), rtol=1e-4)


def test_tutorial_flow_improves_error():
    """NengoDL's tutorial: train encoders only, in rate mode, then test spiking.

    The rate-mode error must improve by >= 30 %. The spiking error is measured
    as in the tutorial on the last 10 steps, but of 300 instead of 100 steps:
    after 100 steps the 0.04 s output filter is still 8 % short of its input,
    a floor that training cannot move (measured here, and the same with
    NengoDL's own Simulator: 0.00398 -> 0.00379 after 25 epochs).
    """
    net = tutorial_network()
    model = kn.NengoModel(net, seed=0)
    model.compile(
        optimizer=tf.keras.optimizers.RMSprop(0.01),
        loss={net.p_out_nofilt: "mse"},
    )
    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, size=(4096, 1, 1))
    test_x = rng.uniform(-1, 1, size=(256, 1, 1))
    spiking_x = np.tile(test_x, (1, 300, 1))

    def errors():
        spiking = model.predict(spiking_x, batch_size=256, verbose=0)["out"]
        rate = model(test_x, training=True)["out_nofilt"].numpy()
        return (
            np.mean((spiking[:, -10:] - np.sin(spiking_x[:, -10:] ** 2)) ** 2),
            np.mean((rate - np.sin(test_x**2)) ** 2),
        )

    spiking_before, rate_before = errors()
    model.fit(x, {net.p_out_nofilt: np.sin(x**2)}, batch_size=32, epochs=5, verbose=0)
    spiking_after, rate_after = errors()
    assert rate_after < 0.7 * rate_before, (rate_before, rate_after)
    assert spiking_after < 0.95 * spiking_before, (spiking_before, spiking_after)


def test_non_finite_batch_is_skipped():
    net = all_trainable(tutorial_network())
    model = kn.NengoModel(net, outputs=[net.p_out_nofilt])
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="mse")
    x = np.random.RandomState(0).uniform(-1, 1, size=(8, 1, 1))
    y = np.sin(x**2)
    y[:4] = np.nan
    with pytest.warns(RuntimeWarning, match="1 training batch"):
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for value in model.get_named_weights().values():
        assert np.all(np.isfinite(value))


def test_float64():
    net = all_trainable(tutorial_network())
    model = kn.NengoModel(net, outputs=[net.p_out_nofilt], dtype="float64")
    assert all(v.dtype == tf.float64 for v in model.named_weights.values())
    x = np.random.RandomState(0).uniform(-1, 1, size=(4, 3, 1))
    out = model.predict(x, verbose=0)
    assert out.dtype == np.float64
    with net:
        nengo_dl.configure_settings(dtype="float64")
    with nengo_dl_sim(net, model, 4) as sim:
        ref = sim.predict({net.stim: x})[net.p_out_nofilt]
    assert_close(out, ref, "float64")


def test_float64_data_is_never_rounded_to_float32():
    net = all_trainable(tutorial_network())
    model = kn.NengoModel(net, outputs=[net.p_out_nofilt], dtype="float64", seed=2)
    reference = kn.NengoModel(net, outputs=[net.p_out_nofilt], dtype="float64", seed=2)
    rng = np.random.RandomState(3)
    # values that float32 cannot hold: a float32 round trip changes them by ~1e-8
    x = rng.uniform(-1, 1, size=(6, 3, 1)) + 1e-9
    y = np.sin(x**2)
    assert np.abs(x.astype(np.float32) - x).max() > 1e-9

    direct = reference(tf.constant(x), training=False).numpy()
    assert_close(model.predict(x, batch_size=6, verbose=0), direct, "float64")
    model.compile(optimizer=tf.keras.optimizers.SGD(0.5), loss="mse")
    # Keras's loss tracker (a Mean metric) accumulates in float32, whatever the data
    loss = model.evaluate(x, y, batch_size=6, verbose=0)
    np.testing.assert_allclose(loss, np.mean((direct - y) ** 2), rtol=1e-7)
    model.fit(x, y, batch_size=6, epochs=1, shuffle=False, verbose=0)

    variables = reference.trainable_variables
    with tf.GradientTape() as tape:
        out = reference(tf.constant(x), training=True)
        step_loss = tf.reduce_mean(tf.square(out - y))
    for variable, grad in zip(variables, tape.gradient(step_loss, variables)):
        variable.assign_sub(0.5 * grad)
    for name, value in model.get_named_weights().items():
        np.testing.assert_allclose(
            value, reference.get_named_weights()[name], rtol=0, atol=1e-12
        )


# -- named weights ------------------------------------------------------------------


def test_named_weights_respect_trainable_config(tutorial):
    model = kn.NengoModel(tutorial)
    trainable = sorted(weight_name(v) for v in model.trainable_variables)
    assert trainable == ["sin/encoders", "square/encoders"]
    named = model.named_weights
    assert not named["square_to_sin/weights"].trainable
    # a tf.Variable in tf-keras, a keras.Variable (over a tf.Variable) in Keras 3
    variable_type = getattr(_compat.keras, "Variable", tf.Variable)
    assert all(isinstance(v, variable_type) for v in named.values())


def test_set_named_weights_validates_before_assigning(tutorial):
    model = kn.NengoModel(tutorial)
    before = model.get_named_weights()
    bad = {name: value + 1 for name, value in before.items()}
    bad["square/encoders"] = np.zeros((3, 3))
    with pytest.raises(ValueError, match="'square/encoders' has shape"):
        model.set_named_weights(bad)
    with pytest.raises(ValueError, match="Unknown weight names \\['nope'\\]"):
        model.set_named_weights({"nope": 1.0}, strict=False)
    with pytest.raises(ValueError, match="missing"):
        model.set_named_weights({"sin/encoders": before["sin/encoders"]})
    nan = dict(before)
    nan["sin/encoders"] = np.full_like(before["sin/encoders"], np.nan)
    with pytest.raises(ValueError, match="must be finite"):
        model.set_named_weights(nan)
    for name, value in model.get_named_weights().items():
        np.testing.assert_array_equal(value, before[name])

    model.set_named_weights({"sin/encoders": before["sin/encoders"] * 2}, strict=False)
    assert_close(model.get_named_weights()["sin/encoders"], before["sin/encoders"] * 2)


def test_save_and_load_weights_by_name(tmp_path, tutorial):
    model = kn.NengoModel(tutorial)
    changed = {k: v * 1.5 for k, v in model.get_named_weights().items()}
    model.set_named_weights(changed)
    # a weights file both Kerases write (Keras 3 takes no TensorFlow checkpoint)
    model.save_weights(str(tmp_path / "model.weights.h5"))
    fresh = kn.NengoModel(tutorial)
    fresh.load_weights(str(tmp_path / "model.weights.h5"))
    for name, value in fresh.get_named_weights().items():
        np.testing.assert_array_equal(value, changed[name])


def test_freeze_params_reproduces_in_nengo_core():
    net = all_trainable(tutorial_network())
    model = kn.NengoModel(net, outputs=[net.p_out_nofilt], seed=0)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="mse")
    x = np.random.RandomState(0).uniform(-1, 1, size=(256, 1, 1))
    model.fit(x, np.sin(x**2), epochs=3, verbose=0)
    test_x = np.tile(np.linspace(-1, 1, 4)[:, None, None], (1, 50, 1))
    trained = model.predict(test_x, verbose=0)
    model.freeze_params(net)
    for i in range(len(test_x)):
        with net:
            net.stim.output = test_x[i, 0]
        with nengo.Simulator(net, progress_bar=False, seed=0) as sim:
            sim.run_steps(50)
        assert_close(sim.data[net.p_out_nofilt], trained[i], "weights32")
    with pytest.raises(TypeError, match="freeze_params takes"):
        model.freeze_params(net.stim)


# -- bad input ----------------------------------------------------------------------


def test_bad_inputs_name_the_node_and_change_no_weight(rng):
    net = two_input_network()
    model = kn.NengoModel(net, outputs=[net.p_out])
    model.compile(optimizer=tf.keras.optimizers.SGD(0.1), loss="mse")
    before = model.get_named_weights()
    xa = rng.uniform(-1, 1, (4, 5, 2))
    xb = rng.uniform(-1, 1, (4, 5, 1))
    y = rng.uniform(-1, 1, (4, 5, 3))

    cases = [
        (
            {"a": xa[..., :1], "b": xb},
            y,
            r"Input 'a' .*\(batch, n_steps, 2\).*\(4, 5, 1\)",
        ),
        ({"a": xa[0], "b": xb}, y, r"Input 'a'.*Received: shape \(5, 2\)"),
        ({"a": xa, "c": xb}, y, r"Unknown input 'c'.*\['a', 'b'\]"),
        ({"a": xa, "b": xb[:3]}, y, r"same batch size"),
        ({"a": xa, "b": xb}, y[:3], r"same number of samples.*4.*3"),
        ({"a": xa, "b": xb}, y[..., :2], r"Target 'p_out'.*\(batch, n_steps, 3\)"),
        ({"a": xa, "b": xb}, {"nope": y}, r"Unknown output 'nope'.*\['p_out'\]"),
        (xb, y, r"Input 'a'.*single array goes to the first input 'a'"),
        ([xa], y, r"list of 2 arrays"),
    ]
    for x_bad, y_bad, match in cases:
        with pytest.raises(ValueError, match=match):
            model.fit(x_bad, y_bad, verbose=0)
    for name, value in model.get_named_weights().items():
        np.testing.assert_array_equal(value, before[name])


def test_bad_constructor_arguments(tutorial):
    with pytest.raises(TypeError, match="needs a nengo.Network"):
        kn.NengoModel("net")
    with pytest.raises(ValueError, match="cannot be fed from data"):
        kn.NengoModel(tutorial, inputs=[tutorial.out_node])
    other = nengo.Node(0, add_to_container=False)
    with pytest.raises(ValueError, match="nengo.Node of the network"):
        kn.NengoModel(tutorial, inputs=[other])
    with pytest.raises(ValueError, match="nengo.Probe of the network"):
        kn.NengoModel(tutorial, outputs=[tutorial.stim])
    with pytest.raises(ValueError, match="dtype must be one of"):
        kn.NengoModel(tutorial, dtype="float16")


def test_compile_accepts_probe_keys(rng):
    net = two_input_network()
    model = kn.NengoModel(net)
    model.compile(
        optimizer=tf.keras.optimizers.SGD(0.01),
        loss={net.p_out: "mse", "p_ens": "mae"},
        loss_weights={net.p_out: 1.0, net.p_ens: 0.0},
    )
    x = {net.a: rng.uniform(-1, 1, (4, 5, 2)), net.b: rng.uniform(-1, 1, (4, 5, 1))}
    y = {net.p_out: rng.uniform(-1, 1, (4, 5, 3)), net.p_ens: np.zeros((4, 5, 3))}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        history = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert {"p_out_loss", "p_ens_loss"} <= set(history.history)
