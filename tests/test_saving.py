"""Saving, loading and serving: .keras files in fresh processes, SavedModel export."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import nengo
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_close

import keras_nengo as kn
from keras_nengo.bench import tutorial_network


def run_python(code, *args, timeout=300, same_keras=True):
    """Run ``code`` in a fresh Python process; return its stdout.

    With ``same_keras`` the process uses the Keras of this one (the saved
    file's, which conftest.py chose); else TensorFlow's default.
    """
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"}
    if same_keras:
        env["TF_USE_LEGACY_KERAS"] = os.environ["TF_USE_LEGACY_KERAS"]
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def lambda_network():
    """A network holding lambdas (which the standard pickler refuses)."""
    with nengo.Network(seed=3) as net:
        stim = nengo.Node(np.zeros(2), label="stim")
        bias = nengo.Node(lambda t: np.sin(10 * t), label="wave")
        hidden = nengo.Ensemble(30, 2, label="hidden", neuron_type=nengo.LIFRate())
        out = nengo.Node(lambda t, x: 2 * x, size_in=2, label="out")
        nengo.Connection(stim, hidden, synapse=None)
        nengo.Connection(bias, hidden[0], synapse=None)
        nengo.Connection(hidden, out, function=lambda x: x**2, synapse=None)
        nengo.Probe(out, label="p_out")
    return net


def trained_model():
    model = kn.NengoModel(lambda_network(), seed=1)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="mse")
    rng = np.random.RandomState(0)
    x = {"stim": rng.uniform(-1, 1, (16, 4, 2))}
    model.fit(x, rng.uniform(0, 1, (16, 4, 2)), batch_size=8, epochs=1, verbose=0)
    return model, x


def test_standard_pickle_refuses_lambdas_cloudpickle_does_not():
    import pickle

    from keras_nengo import saving

    net = lambda_network()
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(net)
    config = saving.serialize_network(net, net.all_nodes[:1], net.all_probes)
    copy, inputs, probes = saving.deserialize_network(json.loads(json.dumps(config)))
    assert [n.label for n in copy.all_nodes] == [n.label for n in net.all_nodes]
    assert inputs[0] is copy.all_nodes[0] and probes[0] is copy.all_probes[0]


def test_layer_config_round_trip():
    net = tutorial_network(n_neurons=10)
    layer = kn.NengoLayer(net, inputs=[net.stim], outputs=[net.p_out_nofilt], seed=4)
    x = np.random.RandomState(0).uniform(-1, 1, (3, 2, 1)).astype(np.float32)
    expected = layer(x, training=True)
    config = json.loads(json.dumps(layer.get_config()))
    clone = kn.NengoLayer.from_config(config)
    assert clone.seed == 4 and clone.input_names == ["stim"]
    assert clone.output_names == ["out_nofilt"]
    assert_close(clone(x, training=True), expected)


def test_safe_mode_refuses_and_names_the_alternatives(tmp_path):
    model, x = trained_model()
    path = tmp_path / "model.keras"
    model.save(path)
    with pytest.raises(ValueError, match=r"safe_mode=False.*load_weights"):
        tf.keras.models.load_model(path)
    # the code-only way: the same network from code, weights from the file
    again = kn.NengoModel(lambda_network(), seed=1)
    again.load_weights(path)
    for name, value in model.get_named_weights().items():
        np.testing.assert_array_equal(again.get_named_weights()[name], value)
    assert_close(again.predict(x, verbose=0), model.predict(x, verbose=0))


def test_export_refuses_python_nodes(tmp_path):
    model, _ = trained_model()
    with pytest.raises(ValueError, match=r"Node 'out'.*Python function.*TensorNode"):
        model.export(tmp_path / "served")


@pytest.mark.slow
def test_saved_model_loads_in_a_fresh_process_and_fit_continues(tmp_path):
    model, x = trained_model()
    path = tmp_path / "model.keras"
    model.save(path)
    np.savez(tmp_path / "x.npz", **x)
    y = np.random.RandomState(5).uniform(0, 1, (16, 4, 2))
    np.save(tmp_path / "y.npy", y)
    expected = model.predict(x, verbose=0)
    out = run_python(
        """
        import sys, json
        import keras_nengo as kn
        import numpy as np, tensorflow as tf
        path, folder = sys.argv[1], sys.argv[2]
        model = tf.keras.models.load_model(path, safe_mode=False)
        x = dict(np.load(folder + "/x.npz"))
        np.save(folder + "/loaded.npy", model.predict(x, verbose=0))
        np.savez(folder + "/weights.npz", **{
            k.replace("/", "|"): v for k, v in model.get_named_weights().items()})
        before = int(model.optimizer.iterations.numpy())
        model.fit(x, np.load(folder + "/y.npy"), batch_size=8, epochs=1,
                  shuffle=False, verbose=0)
        np.savez(folder + "/continued.npz", **{
            k.replace("/", "|"): v for k, v in model.get_named_weights().items()})
        print(json.dumps({"type": type(model).__name__, "iterations": before}))
        """,
        path,
        tmp_path,
    )
    info = json.loads(out.strip().splitlines()[-1])
    assert info == {"type": "NengoModel", "iterations": 2}
    assert_close(np.load(tmp_path / "loaded.npy"), expected)
    weights = np.load(tmp_path / "weights.npz")
    for name, value in model.get_named_weights().items():
        np.testing.assert_array_equal(weights[name.replace("/", "|")], value)
    # continuing here gives the same weights: the optimizer state travelled
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    continued = np.load(tmp_path / "continued.npz")
    for name, value in model.get_named_weights().items():
        assert_close(continued[name.replace("/", "|")], value, "weights32")


@pytest.mark.slow
def test_functional_model_with_nengo_layer_loads_in_a_fresh_process(tmp_path):
    net = tutorial_network(n_neurons=10)
    inp = tf.keras.Input((3, 1), name="x")
    hidden = tf.keras.layers.Dense(1, name="pre")(inp)
    out = kn.NengoLayer(net, inputs=[net.stim], outputs=[net.p_out_nofilt])(hidden)
    model = tf.keras.Model(inp, tf.keras.layers.Dense(1, name="post")(out))
    model.compile(optimizer=tf.keras.optimizers.SGD(0.1), loss="mse")
    x = np.random.RandomState(0).uniform(-1, 1, (8, 3, 1)).astype(np.float32)
    model.fit(x, np.sin(x), batch_size=4, epochs=1, verbose=0)
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "functional.keras")
    np.save(tmp_path / "x.npy", x)
    run_python(
        """
        import sys
        import keras_nengo as kn
        import numpy as np, tensorflow as tf
        folder = sys.argv[1]
        model = tf.keras.models.load_model(folder + "/functional.keras",
                                           safe_mode=False)
        assert isinstance(model.layers[2], kn.NengoLayer), model.layers
        np.save(folder + "/loaded.npy",
                model.predict(np.load(folder + "/x.npy"), verbose=0))
        """,
        tmp_path,
    )
    assert_close(np.load(tmp_path / "loaded.npy"), expected)


def servable_network():
    with nengo.Network(seed=2) as net:
        a = nengo.Node(np.zeros(2), label="a")
        b = nengo.Node(np.zeros(1), label="b")
        ens = nengo.Ensemble(40, 3, label="ens")
        nengo.Connection(a, ens[:2], synapse=None)
        nengo.Connection(b, ens[2], synapse=None)
        out = nengo.Node(size_in=3, label="out")
        nengo.Connection(ens, out, synapse=0.005)
        nengo.Probe(out, label="z_out")
        nengo.Probe(ens, label="a_out", synapse=0.01)
    return net


@pytest.mark.slow
def test_exported_model_serves_any_batch_with_tensorflow_only(tmp_path):
    model = kn.NengoModel(servable_network(), seed=0)
    rng = np.random.RandomState(1)
    xa = rng.uniform(-1, 1, (5, 20, 2)).astype(np.float32)
    xb = rng.uniform(-1, 1, (5, 20, 1)).astype(np.float32)
    model.export(tmp_path / "served")
    expected = model.predict({"a": xa, "b": xb}, verbose=0)
    np.savez(tmp_path / "x.npz", a=xa, b=xb)
    run_python(
        """
        import sys, importlib.abc
        # as if only TensorFlow were installed
        BLOCKED = ("nengo", "nengo_dl", "keras_nengo")
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"No module named {name!r}")
        sys.meta_path.insert(0, Block())
        import numpy as np
        import tensorflow as tf
        folder = sys.argv[1]
        served = tf.saved_model.load(folder + "/served")
        x = np.load(folder + "/x.npz")
        for batch in (5, 1, 3):
            out = served.serve(tf.constant(x["a"][:batch]), tf.constant(x["b"][:batch]))
            for name, value in out.items():
                np.save(f"{folder}/{name}_{batch}.npy", value.numpy())
        assert not any(
            m.split(".")[0] in BLOCKED + ("tf_keras",) for m in sys.modules
        ), sorted(sys.modules)
        """,
        tmp_path,
        same_keras=False,
    )
    for batch in (5, 1, 3):
        for name in ("z_out", "a_out"):
            served = np.load(tmp_path / f"{name}_{batch}.npy")
            assert_close(served, expected[name][:batch])


def test_atomic_file_swaps_in_complete_files_only(tmp_path):
    from keras_nengo.saving import atomic_file

    path = tmp_path / "model.keras"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic_file(path) as target:
            pathlib.Path(target).write_text("half")
            raise RuntimeError("interrupted")
    assert path.read_text() == "old"
    assert list(tmp_path.iterdir()) == [path]
    with atomic_file(path) as target:
        assert target != str(path) and target.endswith(".keras")
        pathlib.Path(target).write_text("new")
    assert path.read_text() == "new"
    assert list(tmp_path.iterdir()) == [path]
    # TensorFlow's own formats, and an existing file Keras asks about, go as given
    for target in (tmp_path / "saved_model", tmp_path / "weights.ckpt"):
        with atomic_file(target) as given:
            assert given == target
    with atomic_file(path, overwrite=False) as given:
        assert given == path


def test_save_writes_through_a_partial_file(tmp_path):
    model, x = trained_model()
    path = tmp_path / "model.keras"
    model.save(path)
    # Keras 3 takes weights files by their double extension only
    model.save_weights(tmp_path / "model.weights.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model.keras",
        "model.weights.h5",
    ]
    again = kn.NengoModel(lambda_network(), seed=1)
    again.load_weights(tmp_path / "model.weights.h5")
    assert_close(again.predict(x, verbose=0), model.predict(x, verbose=0))
