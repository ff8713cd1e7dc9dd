"""Workloads from NengoDL's example notebooks, run against ``nengo_dl.Simulator``.

Each test reproduces one way a port of a notebook used to differ from NengoDL:
sparse integer labels, per-output log names with non-alphabetical outputs,
optional Node data (a ``nengo_dl.Converter`` network), several Process
Nodes sharing NengoDL's random state, and TensorNodes whose functions see the
batch NengoDL gives them (the tensorflow-models notebook).
"""

import gc
import logging

import nengo
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_close, only_tf_keras

import keras_nengo as kn
from keras_nengo._compat import nengo_dl, tf_keras


def reference(net, model, minibatch_size):
    """``nengo_dl.Simulator`` with the model's seed."""
    return nengo_dl.Simulator(
        net,
        minibatch_size=minibatch_size,
        seed=model.nengo_layer.seed,
        progress_bar=False,
    )


def assert_logs_equal(actual, expected, kind="weights32"):
    """Two Keras log dicts (or History.history dicts) hold the same values."""
    assert sorted(actual) == sorted(expected)
    for key, value in expected.items():
        assert_close(actual[key], value, kind)


# -- 1. sparse integer labels -------------------------------------------------------


def classifier_network():
    with nengo.Network(seed=0) as net:
        nengo_dl.configure_settings(trainable=None)
        stim = nengo.Node(np.zeros(4), label="stim")
        ens = nengo.Ensemble(
            20, 4, neuron_type=nengo.RectifiedLinear(amplitude=0.01), label="ens"
        )
        nengo.Connection(stim, ens, synapse=None)
        logits = nengo.Node(size_in=3, label="logits")
        nengo.Connection(
            ens,
            logits,
            transform=np.random.RandomState(1).normal(size=(3, 4)),
            synapse=None,
        )
        net.probe = nengo.Probe(logits, label="out_p")
    return net


def sparse_compile_args(keras=tf.keras):
    """The same compile arguments for keras_nengo (the user's Keras) or NengoDL's."""
    return dict(
        optimizer=keras.optimizers.SGD(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


@pytest.mark.parametrize("label_dtype", ["int32", "float32"])
def test_sparse_labels_fit_and_evaluate_equal_nengo_dl(label_dtype):
    net = classifier_network()
    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, size=(8, 5, 4))
    y = rng.randint(0, 3, size=(8, 5, 1)).astype(label_dtype)
    model = kn.NengoModel(net)
    model.compile(**sparse_compile_args())
    before = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    history = model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    after = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    weights = model.get_named_weights()

    with reference(net, model, 4) as sim:
        args = sparse_compile_args(tf_keras)
        sim.compile(
            optimizer=args["optimizer"],
            loss={net.probe: args["loss"]},
            metrics={net.probe: args["metrics"]},
        )
        ref_before = sim.evaluate({"stim": x}, {net.probe: y}, verbose=0)
        ref_history = sim.fit(
            {"stim": x}, {net.probe: y}, epochs=1, shuffle=False, verbose=0
        )
        ref_after = sim.evaluate({"stim": x}, {net.probe: y}, verbose=0)
        ref_weights = {
            param.name: sim.data.get_params((param.obj, param.attr))[0]
            for param in model.nengo_layer.parameters
        }

    # NengoDL logs the one output under its name as well: out_p_loss, out_p_accuracy
    for ours, theirs in [(before, ref_before), (after, ref_after)]:
        assert_close(ours["loss"], theirs["loss"], "weights32")
        assert_close(ours["accuracy"], theirs["out_p_accuracy"], "weights32")
    assert_close(history.history["loss"], ref_history.history["loss"], "weights32")
    assert after["loss"] < before["loss"]
    assert sorted(weights) == sorted(ref_weights)
    for name, value in ref_weights.items():
        assert_close(weights[name], value, "weights32")


def test_sparse_labels_wrong_last_dimension_names_the_probe():
    net = classifier_network()
    model = kn.NengoModel(net)
    model.compile(**sparse_compile_args())
    x = np.zeros((2, 5, 4))
    with pytest.raises(
        ValueError, match=r"Target 'out_p' \(Probe .*\(batch, n_steps, 1\)"
    ):
        model.evaluate(x, np.zeros((2, 5, 2)), verbose=0)


# -- 2. per-output log names with non-alphabetical outputs -------------------------


def two_output_network():
    """Probes ``z_out`` (value x) and ``a_out`` (value 2x), in that order."""
    with nengo.Network(seed=0) as net:
        nengo_dl.configure_settings(trainable=None)
        stim = nengo.Node(np.zeros(1), label="stim")
        z = nengo.Node(size_in=1, label="z")
        a = nengo.Node(size_in=1, label="a")
        nengo.Connection(stim, z, transform=1.0, synapse=None)
        nengo.Connection(stim, a, transform=2.0, synapse=None)
        net.p_z = nengo.Probe(z, label="z_out")
        net.p_a = nengo.Probe(a, label="a_out")
    return net


def read_scalars(log_dir):
    """``{tag: [(step, value), ...]}`` from the event files in ``log_dir``."""
    scalars = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.HasField("tensor"):
                    number = float(tf.make_ndarray(value.tensor))
                else:
                    number = float(value.simple_value)
                scalars.setdefault(value.tag, []).append((event.step, number))
    return scalars


@pytest.fixture(scope="module")
def per_output_runs(tmp_path_factory):
    """One keras_nengo fit (History, TensorBoard, EarlyStopping) and NengoDL's."""
    tf.keras.backend.clear_session()
    net = two_output_network()
    x = np.ones((4, 3, 1))
    y = {net.p_z: np.zeros((4, 3, 1)), net.p_a: np.zeros((4, 3, 1))}

    def compile_args(keras=tf.keras):
        return dict(
            optimizer=keras.optimizers.SGD(0.01),
            loss={net.p_z: "mse", net.p_a: "mse"},
            metrics={net.p_z: "mae"},
        )

    model = kn.NengoModel(net)
    assert model.output_names == ["z_out", "a_out"]
    model.compile(**compile_args())
    first = model.evaluate(x, y, batch_size=2, verbose=0, return_dict=True)
    log_dir = tmp_path_factory.mktemp("per_output_logs")
    # stop when z_out's value is not below half-way between the two outputs'
    # first values: z_out (1) is, a_out (4) is not
    baseline = (first["z_out_loss"] + first["a_out_loss"]) / 2
    stopper = tf.keras.callbacks.EarlyStopping(
        monitor="val_z_out_loss", baseline=baseline, patience=1, mode="min"
    )
    history = model.fit(
        x,
        y,
        batch_size=2,
        epochs=3,
        shuffle=False,
        validation_data=(x, y),
        callbacks=[tf.keras.callbacks.TensorBoard(str(log_dir)), stopper],
        verbose=0,
    )
    with reference(net, model, 2) as sim:
        sim.compile(**compile_args(tf_keras))
        ref_first = sim.evaluate({"stim": x}, y, verbose=0)
        ref_history = sim.fit(
            {"stim": x},
            y,
            epochs=3,
            shuffle=False,
            validation_data=({"stim": x}, y),
            verbose=0,
        )
    return dict(
        first=first,
        ref_first=ref_first,
        history=history.history,
        ref_history=ref_history.history,
        log_dir=log_dir,
        stopper=stopper,
        baseline=baseline,
    )


def test_per_output_evaluate_logs_equal_nengo_dl(per_output_runs):
    first, ref_first = per_output_runs["first"], per_output_runs["ref_first"]
    assert_logs_equal(first, ref_first)
    # the outputs differ, so a swap cannot go unnoticed
    assert not np.isclose(ref_first["z_out_loss"], ref_first["a_out_loss"])


def test_per_output_history_equals_nengo_dl(per_output_runs):
    history, ref_history = per_output_runs["history"], per_output_runs["ref_history"]
    assert_logs_equal(history, ref_history)
    assert "val_z_out_mae" in history and "val_a_out_mae" not in history
    assert history["z_out_loss"][-1] < history["z_out_loss"][0]


def test_per_output_tensorboard_tags_and_values(per_output_runs):
    history = per_output_runs["history"]
    log_dir = per_output_runs["log_dir"]
    for run, prefix in [("train", ""), ("validation", "val_")]:
        scalars = read_scalars(log_dir / run)
        for key in ["loss", "z_out_loss", "a_out_loss", "z_out_mae"]:
            logged = scalars[f"epoch_{key}"]
            assert [step for step, _ in logged] == list(range(len(history["loss"])))
            assert_close([value for _, value in logged], history[prefix + key])
        assert "epoch_a_out_mae" not in scalars


def test_early_stopping_monitors_the_named_output(per_output_runs):
    stopper, ref_history = per_output_runs["stopper"], per_output_runs["ref_history"]
    assert per_output_runs["baseline"] > ref_history["val_z_out_loss"][0]
    # it trained all epochs: val_z_out_loss stayed below the baseline
    assert stopper.stopped_epoch == 0
    assert len(per_output_runs["history"]["loss"]) == 3
    assert_close(stopper.best, min(ref_history["val_z_out_loss"]), "weights32")


# -- 3. optional Node data ----------------------------------------------------------


@pytest.fixture(scope="module")
def converted():
    """A small Keras conv net converted by ``nengo_dl.Converter`` (bias Nodes)."""
    # NengoDL's Keras (tf-keras), whose models its Converter reads, in either Keras
    tf_keras.backend.clear_session()
    tf.random.set_seed(0)
    inp = tf_keras.Input((4, 4, 1))
    hidden = tf_keras.layers.Conv2D(2, 3, activation=tf.nn.relu)(inp)
    hidden = tf_keras.layers.Flatten()(hidden)
    out = tf_keras.layers.Dense(3)(hidden)
    converter = nengo_dl.Converter(tf_keras.Model(inp, out))
    net = converter.net
    net.seed = 0
    rng = np.random.RandomState(1)
    data = dict(
        net=net,
        node=converter.inputs[inp],
        probe=converter.outputs[out],
        x=rng.uniform(-1, 1, size=(6, 2, 16)),
        y=rng.uniform(-1, 1, size=(6, 2, 3)),
    )
    bias_nodes = [
        node for node in net.all_nodes if node.size_in == 0 and node is not data["node"]
    ]
    assert bias_nodes, "the converter makes bias Nodes that run themselves"
    return data


def test_converter_network_predict_with_data_for_its_input_only(converted):
    net, node, probe, x = (converted[k] for k in ("net", "node", "probe", "x"))
    model = kn.NengoModel(net)
    assert model.input_names[0] == "input_1" and len(model.input_names) == 3
    single = model.predict(x, batch_size=3, verbose=0)
    by_node = model.predict({node: x}, batch_size=3, verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(3)
    through_dataset = model.predict(dataset, verbose=0)
    with reference(net, model, 3) as sim:
        expected = sim.predict({node: x})[probe]
    assert np.abs(expected).max() > 0.01
    for out in (single, by_node, through_dataset):
        assert_close(out, expected)


def converter_compile_args(keras=tf.keras):
    """For keras_nengo (the user's Keras) or NengoDL's (tf-keras)."""
    return dict(optimizer=keras.optimizers.SGD(0.05), loss="mse")


@pytest.mark.parametrize("through", ["arrays", "dataset"])
def test_converter_network_fit_and_evaluate_equal_nengo_dl(converted, through):
    net, node, probe, x, y = (converted[k] for k in ("net", "node", "probe", "x", "y"))
    model = kn.NengoModel(net)
    model.compile(**converter_compile_args())
    if through == "arrays":
        data, kwargs = (x, y), dict(batch_size=3)
    else:
        dataset = tf.data.Dataset.from_tensor_slices(({"input_1": x}, y)).batch(3)
        data, kwargs = (dataset,), {}
    before = model.evaluate(*data, verbose=0, **kwargs)
    history = model.fit(*data, epochs=1, shuffle=False, verbose=0, **kwargs)
    after = model.evaluate(*data, verbose=0, **kwargs)
    weights = model.get_named_weights()
    with reference(net, model, 3) as sim:
        args = converter_compile_args(tf_keras)
        sim.compile(optimizer=args["optimizer"], loss={probe: args["loss"]})
        ref_before = sim.evaluate({node: x}, {probe: y}, verbose=0)["loss"]
        ref_history = sim.fit({node: x}, {probe: y}, epochs=1, shuffle=False, verbose=0)
        ref_after = sim.evaluate({node: x}, {probe: y}, verbose=0)["loss"]
        ref_weights = {
            param.name: sim.data.get_params((param.obj, param.attr))[0]
            for param in model.nengo_layer.parameters
        }
    assert_close(before, ref_before, "weights32")
    assert_close(history.history["loss"], ref_history.history["loss"], "weights32")
    assert_close(after, ref_after, "weights32")
    assert after < before
    for name, value in ref_weights.items():
        assert_close(weights[name], value, "weights32")


def test_predict_n_steps_with_a_function_node_and_no_data():
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(lambda t: np.sin(10 * t), label="sin")
        ens = nengo.Ensemble(20, 1, label="ens")
        nengo.Connection(stim, ens)
        probe = nengo.Probe(ens, synapse=0.01)
    model = kn.NengoModel(net)
    assert model.input_names == ["sin"]
    out = model.predict(n_steps=30)
    with reference(net, model, 1) as sim:
        expected = sim.predict(n_steps=30)[probe]
    assert out.shape == (1, 30, 1)
    assert np.abs(expected).max() > 0.01
    assert_close(out, expected)


def two_input_network():
    with nengo.Network(seed=0) as net:
        net.a = nengo.Node(np.full(2, 0.3), label="a")
        net.b = nengo.Node(lambda t: [np.cos(20 * t)], label="b")
        ens = nengo.Ensemble(20, 3, label="ens")
        nengo.Connection(net.a, ens[:2], synapse=None)
        nengo.Connection(net.b, ens[2], synapse=None)
        net.probe = nengo.Probe(ens, label="out")
    return net


def test_single_array_goes_to_the_first_input():
    net = two_input_network()
    model = kn.NengoModel(net)
    assert model.input_names == ["a", "b"]
    x = np.random.RandomState(0).uniform(-1, 1, size=(2, 10, 2))
    single = model.predict(x, verbose=0)
    by_name = model.predict({"a": x}, verbose=0)
    with reference(net, model, 2) as sim:
        expected = sim.predict({net.a: x})[net.probe]
        # b runs its own output: feeding it those values changes nothing
        b_values = sim._generate_inputs({}, n_steps=10)["b"]
    assert_close(single, expected)
    assert_close(by_name, expected)
    assert_close(model.predict([x, b_values], verbose=0), expected)


def test_single_array_of_the_wrong_shape_says_where_it_went():
    model = kn.NengoModel(two_input_network())
    with pytest.raises(
        ValueError,
        match=r"Input 'a' \(Node .*\) expects data of shape \(batch, n_steps, 2\)"
        r".*A single array goes to the first input 'a'.*\['a', 'b'\]",
    ):
        model.predict(np.zeros((2, 10, 1)), verbose=0)


def test_unknown_input_name_lists_the_nodes():
    model = kn.NengoModel(two_input_network())
    with pytest.raises(ValueError, match=r"Unknown input 'c'.*Node.*\['a', 'b'\]"):
        model.predict({"c": np.zeros((2, 10, 1))}, verbose=0)


@only_tf_keras(
    "Keras 3 builds a Functional model from compute_output_shape, never running "
    "the layer on a symbolic n_steps (at run time n_steps is known)"
)
def test_unfed_node_with_unknown_n_steps_names_the_node():
    net = two_input_network()
    layer = kn.NengoLayer(net)
    inputs = tf.keras.Input((None, 2))
    with pytest.raises(ValueError, match=r"Node <Node 'b'.* not fed from data"):
        layer(inputs)


# -- 4. several Process Nodes -------------------------------------------------------


def process_network():
    with nengo.Network(seed=3) as net:
        stim = nengo.Node(np.zeros(1), label="stim")
        noise = nengo.Node(nengo.processes.WhiteNoise(), size_out=2, label="noise")
        signal = nengo.Node(
            nengo.processes.WhiteSignal(period=1.0, high=20), size_out=1, label="signal"
        )
        more = nengo.Node(nengo.processes.WhiteNoise(), size_out=1, label="more")
        ens = nengo.Ensemble(20, 2, label="ens")
        nengo.Connection(stim, ens[0], synapse=None)
        nengo.Connection(noise, ens, synapse=None)
        nengo.Connection(signal, ens[1], synapse=None)
        nengo.Connection(more, ens[0], synapse=None)
        net.outputs = [nengo.Probe(obj) for obj in (noise, signal, more)] + [
            nengo.Probe(ens, synapse=0.01)
        ]
    return net


@pytest.mark.parametrize("batch", [1, 3])
def test_process_nodes_equal_nengo_dl(batch):
    net = process_network()
    model = kn.NengoModel(net)
    x = np.random.RandomState(0).uniform(-1, 1, size=(batch, 20, 1))
    out = model.predict({"stim": x}, batch_size=batch, verbose=0)
    with reference(net, model, batch) as sim:
        expected = sim.predict({"stim": x})
    for name, probe in zip(model.output_names, model.output_probes):
        assert_close(out[name], expected[probe])
    # the rows and the nodes draw different noise
    noise = out[model.output_names[0]]
    assert not np.allclose(noise[..., 0], noise[..., 1])
    assert not np.allclose(noise[..., 0], out[model.output_names[2]][..., 0])
    if batch > 1:
        assert not np.allclose(noise[0], noise[1])


def test_process_nodes_without_data_equal_nengo_dl():
    net = process_network()
    model = kn.NengoModel(net, inputs=[])
    out = model.predict(n_steps=20)
    with reference(net, model, 1) as sim:
        expected = sim.predict(n_steps=20)
    for name, probe in zip(model.output_names, model.output_probes):
        assert_close(out[name], expected[probe])


# -- names of Keras-layer weights, and loading weights ----------------------------


def layer_network():
    with nengo.Network(seed=0) as net:
        nengo_dl.configure_settings(trainable=None)
        stim = nengo.Node(np.zeros(2), label="stim")
        ens = nengo.Ensemble(10, 2, label="ens")
        nengo.Connection(stim, ens)
        with nengo.Network(label="sub"):
            net.dense = tf.keras.layers.Dense(3)
            hidden = nengo_dl.Layer(net.dense)(ens, label="hidden")
        net.p_ens = nengo.Probe(ens, label="p_ens")
        net.p_hidden = nengo.Probe(hidden, label="p_hidden")
    return net


@only_tf_keras(
    "Keras 3 refuses Keras-layer weights inside TensorNodes (test_keras3.py)"
)
def test_keras_layer_weights_are_named_after_their_tensor_node():
    names = []
    for _ in range(2):
        net = layer_network()
        keras_name = net.dense.name
        model = kn.NengoModel(net)
        names.append(sorted(v.name for v in model.trainable_variables))
        # the Keras layer keeps its own name
        assert net.dense.name == keras_name
    assert names[0] == names[1]
    assert "sub/hidden/kernel:0" in names[0] and "sub/hidden/bias:0" in names[0]
    assert not any(keras_name in name for name in names[0])


@only_tf_keras(
    "Keras 3 refuses Keras-layer weights inside TensorNodes (test_keras3.py)"
)
def test_keras_layer_weights_train_as_in_nengo_dl():
    net = layer_network()
    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, size=(4, 3, 2))
    y = {net.p_ens: np.zeros((4, 3, 2)), net.p_hidden: np.ones((4, 3, 3))}

    def compile_args():
        return dict(optimizer=tf.keras.optimizers.SGD(0.1), loss="mse")

    model = kn.NengoModel(net)
    start = [weight.numpy() for weight in net.dense.weights]
    model.compile(**compile_args())
    model.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    trained = {v.name: v.numpy() for v in model.trainable_variables}
    named = model.get_named_weights()
    with reference(net, model, 2) as sim:
        # NengoDL rebuilds the shared Keras layer with the values it has now
        net.dense.set_weights(start)
        sim.compile(**compile_args())
        sim.fit({"stim": x}, y, epochs=1, shuffle=False, verbose=0)
        ref_layer = [weight.numpy() for weight in net.dense.weights]
        ref_named = {
            param.name: sim.data.get_params((param.obj, param.attr))[0]
            for param in model.nengo_layer.parameters
        }
    assert not np.allclose(trained["sub/hidden/kernel:0"], start[0])
    assert_close(trained["sub/hidden/kernel:0"], ref_layer[0], "weights32")
    assert_close(trained["sub/hidden/bias:0"], ref_layer[1], "weights32")
    for name, value in ref_named.items():
        assert_close(named[name], value, "weights32")


@only_tf_keras(
    "Keras 3 refuses Keras-layer weights inside TensorNodes (test_keras3.py)"
)
def test_load_weights_before_compile_does_not_warn_and_compile_restores(tmp_path):

    net = layer_network()
    x = np.random.RandomState(0).uniform(-1, 1, size=(4, 3, 2))
    y = {"p_ens": np.zeros((4, 3, 2)), "p_hidden": np.ones((4, 3, 3))}
    model = kn.NengoModel(net)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="mse")
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    path = str(tmp_path / "checkpoint")
    model.save_weights(path)

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = tf.get_logger()
    logger.addHandler(handler)
    try:
        # TensorFlow warns about unrestored values when the load is deleted
        unused = kn.NengoModel(layer_network())
        unused.load_weights(path)
        del unused
        gc.collect()
    finally:
        logger.removeHandler(handler)
    messages = [record.getMessage() for record in records]
    assert not [m for m in messages if "unrestored" in m or "could not be found" in m]

    fresh = kn.NengoModel(layer_network())
    fresh.load_weights(path)
    for name, value in model.get_named_weights().items():
        assert_close(fresh.get_named_weights()[name], value, "float64")
    # the optimizer state in the file is restored once there is an optimizer
    fresh.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="mse")
    assert int(fresh.optimizer.iterations.numpy()) == int(
        model.optimizer.iterations.numpy()
    )
    moments = sorted(
        (v.name, v.numpy()) for v in fresh.optimizer.variables if "m/" in v.name
    )
    expected = sorted(
        (v.name, v.numpy()) for v in model.optimizer.variables if "m/" in v.name
    )
    assert [name for name, _ in moments] == [name for name, _ in expected]
    for (_, value), (_, reference_value) in zip(moments, expected):
        assert_close(value, reference_value, "float64")


# -- 5. TensorNodes see NengoDL's batch (the tensorflow-models notebook) -----------


def sin_tensor_node_network():
    """The first network of NengoDL's tensorflow-models notebook."""
    with nengo.Network() as net:

        def sin_func(t):
            # a batch of one, as the notebook writes it
            return tf.reshape(tf.sin(t), (1, 1))

        node = nengo_dl.TensorNode(sin_func)
        net.probe = nengo.Probe(node)
    return net


def test_notebook_sin_tensor_node_runs_5000_steps_as_in_nengo_dl():
    net = sin_tensor_node_network()
    model = kn.NengoModel(net, seed=0)
    out = model.predict(n_steps=5000, verbose=0)
    with nengo_dl.Simulator(net, seed=0, progress_bar=False) as sim:
        sim.run(5.0)
        expected = sim.data[net.probe]
    assert out.shape == (1, 5000, 1)
    assert_close(out[0], expected)
    assert_close(out[0, :, 0], np.sin(sim.trange()), "weights32")


def batch_of_one_network():
    """A TensorNode without time input whose function returns a batch of one."""
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.zeros(2), label="stim")
        total = nengo_dl.TensorNode(
            lambda x: tf.reshape(tf.reduce_sum(x), (1, 1)),
            shape_in=(2,),
            pass_time=False,
            label="total",
        )
        nengo.Connection(stim, total, synapse=None)
        net.probe = nengo.Probe(total)
    return net


@pytest.mark.parametrize("training", [False, True])
def test_batch_of_one_tensor_node_is_not_folded(training):
    net = batch_of_one_network()
    x = np.random.RandomState(0).uniform(-1, 1, size=(1, 7, 2))
    model = kn.NengoModel(net, seed=0)
    out = model.nengo_layer(x, training=training).numpy()
    with reference(net, model, 1) as sim:
        expected = sim.predict({"stim": x})[net.probe]
    assert_close(out, expected)
    assert_close(out[0, :, 0], x[0].sum(axis=1))
    assert 7 not in model.nengo_layer.simulation.minibatch_sizes


def test_why_not_foldable_names_tensor_nodes_not_known_row_wise():
    from keras_nengo.folding import why_not_foldable

    net = batch_of_one_network()
    reason = why_not_foldable(net, [net.probe], training=True)
    assert reason.startswith("TensorNode <TensorNode 'total'> runs the function")
    assert "not known to compute each sample row on its own" in reason
    reason = why_not_foldable(sin_tensor_node_network(), [], training=True)
    assert reason.startswith("TensorNode <TensorNode (unlabeled)")
    assert reason.endswith("reads the simulation time")
    with nengo.Network() as net:
        stim = nengo.Node(np.zeros(2))
        # NengoDL's Keras, whose layers the folding rules know, in either Keras
        norm = nengo_dl.Layer(tf_keras.layers.BatchNormalization())(stim)
        dense = nengo_dl.Layer(tf_keras.layers.Dense(2))(norm, label="dense")
        probe = nengo.Probe(dense)
    assert why_not_foldable(net, [probe], training=False) is None
    assert "a BatchNormalization layer" in why_not_foldable(net, [probe], True)


@only_tf_keras(
    "Keras 3 refuses Keras-layer weights inside TensorNodes (test_keras3.py)"
)
def test_row_wise_keras_layer_tensor_node_still_folds_and_equals_nengo_dl():
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.zeros(2), label="stim")
        dense = nengo_dl.Layer(tf.keras.layers.Dense(3))(stim, label="dense")
        probe = nengo.Probe(dense)
    x = np.random.RandomState(1).uniform(-1, 1, size=(2, 5, 2))
    model = kn.NengoModel(net, seed=0)
    out = model.predict(x, batch_size=2, verbose=0)
    assert 2 * 5 in model.nengo_layer.simulation.minibatch_sizes
    with reference(net, model, 2) as sim:
        expected = sim.predict({"stim": x})[probe]
    assert np.abs(expected).max() > 0.1
    assert_close(out, expected)
