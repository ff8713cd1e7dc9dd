"""keras_nengo in Keras 3: NengoDL on tf-keras inside, NengoLayer a keras.Layer.

These tests need a process whose ``tf.keras`` is Keras 3, i.e. one started
without ``TF_USE_LEGACY_KERAS=1``. Run them there directly::

    TF_USE_LEGACY_KERAS=0 pytest tests/test_keras3.py

In the tf-keras suite (the default ``pytest`` run, see conftest.py) they are
skipped one by one and `test_in_a_keras3_process` runs this module in such a
process instead, so that the default run covers them too.
"""

import os
import subprocess
import sys
import textwrap

import keras_tuner
import nengo
import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from conftest import REPO_ROOT, assert_close, run_in_fresh_python

import keras_nengo as kn
from keras_nengo import _compat
from keras_nengo._compat import nengo_dl

keras3 = pytest.mark.skipif(
    not _compat.KERAS_3, reason="needs Keras 3 (runs in test_in_a_keras3_process)"
)
N_STEPS = 5


@pytest.mark.skipif(_compat.KERAS_3, reason="this process is Keras 3 already")
@pytest.mark.slow  # a fresh pytest process importing the whole stack: ~1 min
def test_in_a_keras3_process():
    env = dict(os.environ, TF_USE_LEGACY_KERAS="0")
    command = [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider"]
    # this module's slow tests too (this test is slow itself), but not this one
    command += ["-m", "slow or not slow", "-k", "not test_in_a_keras3_process"]
    result = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    # every test ran there (none skipped for want of Keras 3)
    assert " passed" in result.stdout and "skipped" not in result.stdout
    assert "failed" not in result.stdout


def two_d_network():
    """A 2-D input Node through a subnetwork's Ensemble to a filtered output."""
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.zeros(2), label="stim")
        with nengo.Network(label="sub"):
            ens = nengo.Ensemble(20, 2, label="ens")
        out = nengo.Node(size_in=2, label="out")
        nengo.Connection(stim, ens, synapse=None)
        nengo.Connection(ens, out, synapse=0.01)
        nengo.Probe(out, label="out")
        nengo.Probe(ens.neurons, label="spikes")
    return net


def nengo_dl_predict(net, layer, data):
    """The reference: ``nengo_dl.Simulator`` run on ``data`` for the stim Node."""
    stim = net.nodes[0]
    with nengo_dl.Simulator(
        net, seed=layer.seed, minibatch_size=len(data), progress_bar=False
    ) as sim:
        out = sim.predict({stim: data}, n_steps=data.shape[1], verbose=0)
    return [out[probe] for probe in layer.output_probes]


# --- NengoDL inside a Keras 3 process ----------------------------------------------


@keras3
def test_keras_3_for_the_user_tf_keras_for_nengo_dl():
    import keras  # pylint: disable=import-outside-toplevel

    assert keras.version().startswith("3.")
    assert _compat.keras is keras and tf.keras.Model is keras.Model
    assert issubclass(kn.NengoLayer, keras.Layer)
    # NengoDL's modules see tf-keras as tf.keras, everything else as TensorFlow
    assert issubclass(nengo_dl.tensor_graph.TensorGraph, tf_keras.layers.Layer)
    assert nengo_dl.simulator.tf.keras.Model is tf_keras.Model
    assert nengo_dl.losses.tf.losses.Loss is tf_keras.losses.Loss
    assert nengo_dl.tensor_graph.tf.while_loop is tf.while_loop
    # keras-tuner in its Keras 3 mode
    assert keras_tuner.src.backend.config.multi_backend()


@keras3
def test_nengo_dl_simulator_matches_nengo():
    # NengoDL's "Coming from Nengo to NengoDL" tutorial, first network
    with nengo.Network(seed=0) as net:
        inpt = nengo.Node(nengo.processes.WhiteSignal(1, 5, rms=0.3))
        square = nengo.Ensemble(20, 1)
        sin = nengo.Ensemble(20, 1)
        outpt = nengo.Node(size_in=1)
        nengo.Connection(inpt, square)
        nengo.Connection(square, sin, function=np.square)
        nengo.Connection(sin, outpt, function=np.sin)
        probe = nengo.Probe(outpt, synapse=0.01)

    with nengo.Simulator(net, seed=0, progress_bar=False) as sim:
        sim.run_steps(300)
    with nengo_dl.Simulator(net, seed=0, progress_bar=False) as dl_sim:
        predicted = dl_sim.predict(n_steps=300, verbose=0)[probe]

    assert np.ptp(sim.data[probe]) > 0.1  # the output is not trivially flat
    assert_close(predicted[0], sim.data[probe], kind="float32")


# --- NengoLayer as a keras.Layer --------------------------------------------------


@keras3
def test_sequential_predict_matches_nengo_dl(rng):
    import keras  # pylint: disable=import-outside-toplevel

    net = two_d_network()
    layer = kn.NengoLayer(net, outputs=[net.probes[0]])
    model = keras.Sequential(
        [
            keras.Input((N_STEPS, 4)),
            keras.layers.Dense(2),
            layer,
            keras.layers.Dense(1),
        ]
    )
    x = rng.randn(3, N_STEPS, 4).astype("float32")

    predicted = model.predict(x, verbose=0)

    kernel, bias = (v.numpy() for v in model.layers[0].weights)
    (out,) = nengo_dl_predict(net, layer, x @ kernel + bias)
    kernel, bias = (v.numpy() for v in model.layers[2].weights)
    assert np.ptp(out) > 0.05
    assert predicted.shape == (3, N_STEPS, 1)
    assert_close(predicted, out @ kernel + bias, kind="float32")


@keras3
def test_functional_model_with_two_outputs_matches_nengo_dl(rng):
    import keras  # pylint: disable=import-outside-toplevel

    net = two_d_network()
    layer = kn.NengoLayer(net)
    inputs = keras.Input((N_STEPS, 2))
    outputs = layer(inputs)
    model = keras.Model(inputs, outputs)
    x = rng.uniform(-1, 1, size=(4, N_STEPS, 2)).astype("float32")

    assert [tuple(output.shape) for output in outputs] == [
        (None, N_STEPS, 2),
        (None, N_STEPS, 20),
    ]
    predicted = model.predict(x, verbose=0)

    for actual, expected in zip(predicted, nengo_dl_predict(net, layer, x)):
        assert_close(actual, expected, kind="float32")


@keras3
def test_named_weights_are_keras_variables_with_their_names():
    import keras  # pylint: disable=import-outside-toplevel

    net = two_d_network()
    layer = kn.NengoLayer(net, name="nengo")
    model = keras.Sequential([keras.Input((N_STEPS, 2)), layer])

    names = list(layer.named_variables)
    assert "sub/ens/encoders" in names and "sub/ens/bias" in names
    paths = [variable.path for variable in model.trainable_variables]
    # Keras 3 refuses "/" in a variable's name: the subnetworks are its scopes
    assert paths == [f"sequential/nengo/{name}" for name in names]
    for name, variable in layer.named_variables.items():
        assert isinstance(variable, keras.Variable)
        assert variable.name == name.split("/")[-1]
        param = next(p for p in layer.parameters if p.name == name)
        assert_close(variable.numpy(), param.initial_value)


@keras3
def test_fit_step_equals_a_gradient_tape_step(rng):
    import keras  # pylint: disable=import-outside-toplevel

    net = two_d_network()
    layer = kn.NengoLayer(net, outputs=[net.probes[0]])
    model = keras.Sequential(
        [keras.Input((N_STEPS, 4)), keras.layers.Dense(2), layer, keras.layers.Dense(1)]
    )
    x = rng.randn(4, N_STEPS, 4).astype("float32")
    y = rng.randn(4, N_STEPS, 1).astype("float32")
    learning_rate = 0.1
    variables = model.trainable_variables
    before = [variable.numpy() for variable in variables]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
    gradients = [g.numpy() for g in tape.gradient(loss, variables)]

    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse")
    history = model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)

    assert_close(history.history["loss"][0], float(loss), kind="weights32")
    named = {variable.path for variable in layer.named_variables.values()}
    assert named <= {variable.path for variable in variables}
    for variable, value, gradient in zip(variables, before, gradients):
        # every weight, the Dense kernels and the Nengo ones, got a gradient
        assert np.abs(gradient).max() > 0, variable.path
        assert_close(variable.numpy(), value - learning_rate * gradient, "weights32")


@keras3
def test_keras_file_in_a_fresh_process_honours_safe_mode(rng, tmp_path):
    import keras  # pylint: disable=import-outside-toplevel

    net = two_d_network()
    layer = kn.NengoLayer(net, outputs=[net.probes[0]], name="nengo")
    model = keras.Sequential(
        [keras.Input((N_STEPS, 4)), keras.layers.Dense(2), layer, keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = rng.randn(4, N_STEPS, 4).astype("float32")
    model.fit(x, rng.randn(4, N_STEPS, 1), epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "predicted.npy", model.predict(x, verbose=0))
    weights = {name: v.numpy() for name, v in layer.named_variables.items()}
    np.savez(
        tmp_path / "weights.npz", **{k.replace("/", "|"): w for k, w in weights.items()}
    )

    with pytest.raises(ValueError, match="safe_mode refuses it.*safe_mode=False"):
        run_in_fresh_python(f"""
            import keras, keras_nengo
            keras.models.load_model({str(path)!r})
            """)
    run_in_fresh_python(f"""
        import keras, numpy as np
        import keras_nengo as kn
        model = keras.models.load_model({str(path)!r}, safe_mode=False)
        layer = model.get_layer("nengo")
        assert isinstance(layer, kn.NengoLayer), type(layer)
        weights = np.load({str(tmp_path / "weights.npz")!r})
        for name, variable in layer.named_variables.items():
            expected = weights[name.replace("/", "|")]
            np.testing.assert_array_equal(variable.numpy(), expected)
        x = np.load({str(tmp_path / "x.npy")!r})
        expected = np.load({str(tmp_path / "predicted.npy")!r})
        np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-6)
        """)


# --- NengoModel as a keras.Model -------------------------------------------------


@keras3
def test_nengo_model_fit_evaluate_predict_match_references(rng):
    import keras  # pylint: disable=import-outside-toplevel

    net = two_d_network()
    model = kn.NengoModel(net, outputs=[net.probes[0]], gradient_norms=True)
    x = rng.uniform(-1, 1, size=(4, N_STEPS, 2)).astype("float32")
    y = rng.uniform(-1, 1, size=(4, N_STEPS, 2)).astype("float32")
    learning_rate = 0.01

    assert isinstance(model, keras.Model)
    (expected,) = nengo_dl_predict(net, model.nengo_layer, x)
    assert_close(model.predict(x, verbose=0), expected, kind="float32")

    named = model.named_weights
    before = {name: variable.numpy() for name, variable in named.items()}
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
    gradients = tape.gradient(loss, named)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse")
    logs = model.fit(x, y, batch_size=len(x), shuffle=False, verbose=0).history

    assert_close(logs["loss"][0], float(loss), kind="weights32")
    assert sorted(named) == [
        "sub.ens_to_out/weights",
        "sub/ens/bias",
        "sub/ens/encoders",
    ]
    for name, variable in named.items():
        gradient = gradients[name].numpy()
        assert np.abs(gradient).max() > 0, name
        assert_close(
            logs[f"grad_norm/{name}"][0], np.linalg.norm(gradient), "weights32"
        )
        assert_close(
            variable.numpy(), before[name] - learning_rate * gradient, "weights32"
        )
    # evaluate: the compiled loss of the trained weights, in inference mode
    predicted = model.predict(x, verbose=0)
    assert_close(
        model.evaluate(x, y, batch_size=len(x), verbose=0),
        np.mean((predicted - y) ** 2),
        kind="weights32",
    )


@keras3
def test_stateful_nengo_model_runs_on_and_resets(rng):
    net = two_d_network()
    model = kn.NengoModel(net, outputs=[net.probes[0]], stateful=True)
    x = rng.uniform(-1, 1, size=(2, N_STEPS, 2)).astype("float32")

    first = model.predict(x, batch_size=2, verbose=0)
    second = model.predict(x, batch_size=2, verbose=0)
    model.reset_states()
    again = model.predict(x, batch_size=2, verbose=0)

    # the reference: one run of both calls' steps, from the initial state
    (expected,) = nengo_dl_predict(net, model.nengo_layer, np.concatenate([x, x], 1))
    assert_close(first, expected[:, :N_STEPS], kind="float32")
    assert_close(second, expected[:, N_STEPS:], kind="float32")
    assert_close(again, first, kind="float32")


@keras3
def test_fit_and_predict_equal_those_of_tf_keras(rng, tmp_path):
    import keras  # pylint: disable=import-outside-toplevel

    # the same code in both Kerases: here (Keras 3), and in a tf-keras process;
    # SGD, whose update is the same arithmetic in both (their RMSprop divides
    # by a square root where the other multiplies by its inverse, which spike
    # timing then amplifies to 1e-5 after a few steps)
    code = f"""
        import numpy as np
        import keras_nengo as kn
        from keras_nengo._compat import keras
        from test_keras3 import two_d_network
        net = two_d_network()
        model = kn.NengoModel(net, outputs=[net.probes[0]])
        model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
        data = np.load({str(tmp_path / "data.npz")!r})
        x, y = data["x"], data["y"]
        model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        np.savez(
            {str(tmp_path / "tf_keras.npz")!r},
            predicted=model.predict(x, verbose=0),
            **{{
                k.replace("/", "|"): v.numpy()
                for k, v in model.named_weights.items()
            }},
        )
        """
    x = rng.uniform(-1, 1, size=(8, N_STEPS, 2)).astype("float32")
    np.savez(tmp_path / "data.npz", x=x, y=np.sin(x))
    run_in_fresh_python(
        f"import sys; sys.path.insert(0, {str(REPO_ROOT / 'tests')!r})\n"
        + textwrap.dedent(code),
        TF_USE_LEGACY_KERAS="1",
    )
    tf_keras_run = np.load(tmp_path / "tf_keras.npz")

    net = two_d_network()
    model = kn.NengoModel(net, outputs=[net.probes[0]])
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")
    model.fit(x, np.sin(x), batch_size=4, epochs=2, shuffle=False, verbose=0)

    assert_close(model.predict(x, verbose=0), tf_keras_run["predicted"])
    for name, variable in model.named_weights.items():
        assert_close(variable.numpy(), tf_keras_run[name.replace("/", "|")])


# --- what Keras 3 refuses, by name ---------------------------------------------


@keras3
@pytest.mark.parametrize("which", ["keras", "tf_keras"])
def test_tensor_node_layer_with_weights_is_refused_by_name(which):
    import keras  # pylint: disable=import-outside-toplevel

    layers = keras.layers if which == "keras" else tf_keras.layers
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.zeros(2), label="stim")
        hidden = nengo_dl.TensorNode(
            layers.Dense(3, name="dense_in_node"),
            shape_in=(2,),
            pass_time=False,
            label="hidden",
        )
        nengo.Connection(stim, hidden, synapse=None)
        nengo.Probe(hidden)

    with pytest.raises(
        ValueError,
        match=rf"TensorNode 'hidden'.*'dense_in_node' \(Dense\) with 2 weight.*"
        rf"Received: a {which} layer with weights.*Fix: put the layer outside.*"
        "TF_USE_LEGACY_KERAS=1",
    ):
        kn.NengoModel(net)


@keras3
def test_weightless_tensor_node_layer_runs_as_in_nengo_dl(rng):
    import keras  # pylint: disable=import-outside-toplevel

    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.zeros(2), label="stim")
        relu = nengo_dl.TensorNode(
            keras.layers.ReLU(), shape_in=(2,), pass_time=False, label="relu"
        )
        nengo.Connection(stim, relu, synapse=None)
        nengo.Probe(relu, label="out")
    x = rng.randn(3, N_STEPS, 2).astype("float32")

    predicted = kn.NengoModel(net, seed=0).predict(x, verbose=0)

    assert_close(predicted, np.maximum(x, 0))


@keras3
def test_converter_of_a_keras_3_model_is_refused_and_tf_keras_converts():
    import keras  # pylint: disable=import-outside-toplevel

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="d")(inputs), name="k3")
    with pytest.raises(
        TypeError,
        match=r"converts tf-keras models only.*Received: model='k3' \(keras\..*"
        r"Expected: a tf_keras.Model.*Fix: build the model to convert with "
        "tf-keras",
    ):
        nengo_dl.Converter(model)

    # the way out: the same model in tf-keras converts, and runs as Keras runs it
    inputs = tf_keras.Input((4,))
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(2)(inputs))
    converter = nengo_dl.Converter(model)
    x = np.random.RandomState(0).randn(3, 1, 4).astype("float32")
    nengo_model = kn.NengoModel(
        converter.net, outputs=[converter.outputs[model.outputs[0]]]
    )
    predicted = nengo_model.predict({converter.inputs[model.inputs[0]]: x}, verbose=0)
    assert_close(predicted[:, 0], model.predict(x[:, 0], verbose=0))


# --- tf.distribute ---------------------------------------------------------------


@keras3
@pytest.mark.slow  # worker processes importing the whole stack: ~40 s each
@pytest.mark.parametrize("strategy", ["mirrored", "multi_worker"])
def test_distributed_fit_equals_single_device(tmp_path, strategy):
    # tests/test_distribute.py's checks, in Keras 3: its optimizers sum the
    # replicas' gradients themselves, and Keras 3 reduces logs over workers
    # along axis 0; a batch with a NaN on the second replica is skipped by all
    import test_distribute  # pylint: disable=import-outside-toplevel

    check = {
        "mirrored": test_distribute.test_mirrored_fit_equals_single_device,
        "multi_worker": test_distribute.test_multi_worker_fit_equals_single_device,
    }[strategy]
    check(tmp_path, nan_batch=1)


@keras3
@pytest.mark.slow  # a chief and two worker processes: ~40 s
def test_distributed_tuner_runs_every_trial_once(tmp_path):
    # tests/test_tuning.py's check, with keras-tuner in its Keras 3 mode
    import test_tuning  # pylint: disable=import-outside-toplevel

    test_tuning.test_distributed_search_runs_every_trial_once(tmp_path)


@keras3
def test_stateful_layer_takes_its_batch_size_from_a_functional_input(rng):
    import keras  # pylint: disable=import-outside-toplevel

    net = two_d_network()
    layer = kn.NengoLayer(net, outputs=[net.probes[0]], stateful=True)
    inputs = keras.Input((N_STEPS, 2), batch_size=2)
    model = keras.Model(inputs, layer(inputs))
    x = rng.uniform(-1, 1, size=(2, N_STEPS, 2)).astype("float32")

    first = model.predict(x, batch_size=2, verbose=0)
    second = model.predict(x, batch_size=2, verbose=0)

    (expected,) = nengo_dl_predict(net, layer, np.concatenate([x, x], 1))
    assert layer.fixed_batch_size == 2
    assert_close(first, expected[:, :N_STEPS], kind="float32")
    assert_close(second, expected[:, N_STEPS:], kind="float32")


@keras3
def test_keras_3_objects_in_nengo_dl_compile_are_refused_by_name(rng):
    import keras  # pylint: disable=import-outside-toplevel

    net = two_d_network()
    with nengo_dl.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
        with pytest.raises(
            TypeError,
            match=r"takes tf-keras objects.*Received: keras\.src\.optimizers\.sgd"
            r"\.SGD.*Fix: `import tf_keras` and pass tf_keras\.optimizers\.SGD",
        ):
            sim.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        with pytest.raises(TypeError, match=r"tf_keras\.losses\.MeanSquaredError"):
            sim.compile(
                optimizer="sgd", loss={net.probes[0]: keras.losses.MeanSquaredError()}
            )
        # the way out: tf-keras objects train as before
        sim.compile(optimizer=tf_keras.optimizers.SGD(0.1), loss="mse")
        x = rng.uniform(-1, 1, size=(2, N_STEPS, 2))
        history = sim.fit(
            {net.nodes[0]: x},
            {net.probes[0]: np.zeros((2, N_STEPS, 2))},
            epochs=1,
            verbose=0,
        )
    assert np.isfinite(history.history["loss"][0])
