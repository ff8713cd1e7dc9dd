"""JacobianNormLogger and per-weight gradient norms, read back from event files."""

import copy
import glob
import os

import numpy as np
import pytest
import tensorflow as tf

import keras_nengo as kn
from keras_nengo._compat import KERAS_3
from keras_nengo.bench import tutorial_network
from keras_nengo.callbacks import JacobianNormLogger


def read_events(directory):
    """``{tag: [(step, value), ...]}`` from all event files under ``directory``."""
    events = {}
    for path in sorted(glob.glob(os.path.join(directory, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.HasField("tensor"):
                    data = tf.make_ndarray(value.tensor)
                else:
                    data = value.simple_value
                events.setdefault(value.tag, []).append((event.step, data))
    return events


@pytest.fixture
def setup():
    net = tutorial_network(n_neurons=10)
    model = kn.NengoModel(net, outputs=[net.p_out_nofilt], seed=0)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="mse")
    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, size=(32, 1, 1))
    return net, model, x, np.sin(x**2)


def test_norms_reach_history_and_event_files(tmp_path, setup):
    net, model, x, y = setup
    logger = JacobianNormLogger(x[:4], wrt=("inputs", "weights"), norms=("fro", "max"))
    board = tf.keras.callbacks.TensorBoard(str(tmp_path))
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[board, logger])

    keys = {
        "jacobian/stim/fro",
        "jacobian/stim/max",
        "jacobian/square/encoders/fro",
        "jacobian/sin/encoders/max",
    }
    assert keys <= set(history.history)
    events = read_events(str(tmp_path / "train"))
    assert "epoch_loss" in events
    for key in keys:
        steps = [step for step, _ in events[key]]
        values = [float(value) for _, value in events[key]]
        assert steps == [0, 1, 2]
        assert all(np.isfinite(values)) and all(v > 0 for v in values)
        np.testing.assert_allclose(values, history.history[key], rtol=1e-6)

    # the last logged value is the norm of the final model's Jacobian
    jac = model.jacobian(x[:4], wrt="square/encoders")
    expected = np.mean(kn.jacobian_norms(jac, ord="fro"))
    assert np.isclose(history.history["jacobian/square/encoders/fro"][-1], expected)


def test_fresh_loggers_share_one_traced_function(tmp_path, setup):
    """A fresh (or deep-copied) logger does not trace the Jacobian graph again."""
    from keras_nengo import callbacks

    net, model, x, y = setup
    loggers = [JacobianNormLogger(x[:4], log_dir=str(tmp_path)) for _ in range(2)]
    loggers.append(copy.deepcopy(loggers[0]))
    # same shape, other values: the same traced function, its own numbers
    loggers.append(JacobianNormLogger(x[4:8], log_dir=str(tmp_path)))
    histories = [
        model.fit(x, y, epochs=1, verbose=0, callbacks=[logger]).history
        for logger in loggers
    ]
    functions = callbacks._NORM_FUNCTIONS[model]
    assert len(functions) == 1
    (compute,) = functions.values()
    assert compute.experimental_get_tracing_count() == 1
    for history, probe in ((histories[2], x[:4]), (histories[3], x[4:8])):
        jacobian = model.jacobian(probe, wrt="stim")
        expected = float(np.mean(kn.jacobian_norms(jacobian, ord="fro")))
        assert not np.isclose(expected, 0.0)
    # the last fit's logger saw the final weights and its own probe batch
    np.testing.assert_allclose(
        histories[3]["jacobian/stim/fro"][-1], expected, rtol=1e-5
    )
    assert not np.isclose(
        histories[3]["jacobian/stim/fro"][-1], histories[2]["jacobian/stim/fro"][-1]
    )


def test_every_n_epochs_and_default_log_dir(tmp_path, setup, monkeypatch):
    net, model, x, y = setup
    monkeypatch.chdir(tmp_path)
    logger = JacobianNormLogger(x[:2], wrt="inputs", every_n_epochs=2)
    history = model.fit(x, y, epochs=4, verbose=0, callbacks=[logger])
    events = read_events(str(tmp_path / "logs" / "train"))
    assert [step for step, _ in events["jacobian/stim/fro"]] == [1, 3]
    assert "jacobian/stim/fro" in history.history


def test_images(tmp_path, setup):
    net, model, x, y = setup
    logger = JacobianNormLogger(
        x[:2], wrt=("inputs", "square/encoders"), log_dir=str(tmp_path), images=True
    )
    model.fit(x, y, epochs=1, verbose=0, callbacks=[logger])
    events = read_events(str(tmp_path / "train"))
    image = events["jacobian_image/square/encoders"][0][1]
    width, height = int(image[0]), int(image[1])
    decoded = tf.io.decode_png(image[2]).numpy()
    # one output row, 10 neurons x 1 dimension of encoders as columns
    assert (height, width) == (1, 10)
    assert decoded.shape == (1, 10, 3)
    assert "jacobian_image/stim" in events


def test_survives_deepcopy(tmp_path, setup):
    net, model, x, y = setup
    logger = JacobianNormLogger(x[:2], wrt="inputs", log_dir=str(tmp_path / "a"))
    model.fit(x, y, epochs=1, verbose=0, callbacks=[logger])
    clone = copy.deepcopy(logger)
    assert clone.model is None and clone._writer is None
    clone.log_dir = str(tmp_path / "b")
    model.fit(x, y, epochs=1, verbose=0, callbacks=[clone])
    assert "jacobian/stim/fro" in read_events(str(tmp_path / "b" / "train"))


def test_bad_input_fails_before_training(setup):
    net, model, x, y = setup
    before = model.get_named_weights()
    with pytest.raises(ValueError, match="Unknown norms"):
        JacobianNormLogger(x, norms=("l7",))
    with pytest.raises(ValueError, match="every_n_epochs"):
        JacobianNormLogger(x, every_n_epochs=0)
    with pytest.raises(ValueError, match="expects data of shape"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[JacobianNormLogger(x[:, :, 0])])
    with pytest.raises(ValueError, match="nope"):
        model.fit(
            x, y, epochs=1, verbose=0, callbacks=[JacobianNormLogger(x, wrt="nope")]
        )
    with pytest.raises(TypeError, match="works with keras_nengo.NengoModel"):
        JacobianNormLogger(x).set_model(tf.keras.Sequential())
    for name, value in model.get_named_weights().items():
        np.testing.assert_array_equal(value, before[name])


def test_gradient_norms_and_histograms_in_tensorboard(tmp_path):
    net = tutorial_network(n_neurons=10)
    model = kn.NengoModel(net, outputs=[net.p_out_nofilt], gradient_norms=True)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="mse")
    x = np.random.RandomState(1).uniform(-1, 1, size=(16, 1, 1))
    board = tf.keras.callbacks.TensorBoard(str(tmp_path), histogram_freq=1)
    history = model.fit(x, np.sin(x**2), epochs=2, verbose=0, callbacks=[board])
    assert "grad_norm/square/encoders" in history.history
    events = read_events(str(tmp_path / "train"))
    logged = [float(v) for _, v in events["epoch_grad_norm/square/encoders"]]
    np.testing.assert_allclose(logged, history.history["grad_norm/square/encoders"])
    assert all(v > 0 for v in logged)
    # tagged by the variable's name (tf-keras) or path (Keras 3: after its layer)
    tag = "nengo/square/encoders/histogram" if KERAS_3 else "square/encoders"
    histograms = [name for name in events if name.startswith(tag)]
    assert histograms, sorted(events)
