"""NengoModel's data checks and minibatch sizing (`keras_nengo.model_data`)."""

import nengo
import numpy as np
from conftest import assert_close

import keras_nengo as kn


def test_predict_with_a_node_running_its_own_output_over_changing_steps():
    """Keras retraces for relaxed shapes on a second shape; the output of a Node
    given no data needs a fixed number of steps, so each number gets a trace."""
    with nengo.Network(seed=0) as net:
        a = nengo.Node(np.zeros(1), label="a")
        b = nengo.Node(lambda t: np.sin(10 * t), label="b")
        ens = nengo.Ensemble(10, 2, neuron_type=nengo.RectifiedLinear())
        nengo.Connection(a, ens[0], synapse=None)
        nengo.Connection(b, ens[1], synapse=None)
        nengo.Probe(ens, label="out")
    model = kn.NengoModel(net, seed=0)
    x = np.random.RandomState(0).uniform(-1, 1, (2, 6, 1)).astype(np.float32)
    for steps in (3, 4, 5, 6):
        out = model.predict({"a": x[:, :steps]}, batch_size=2, verbose=0)
        assert_close(out, model({"a": x[:, :steps]}, training=False))
    # the same Node outputs over time as a longer run
    assert_close(out[:, :3], model.predict({"a": x[:, :3]}, verbose=0))


def test_direct_call_takes_a_dict_keyed_by_node():
    with nengo.Network(seed=0) as net:
        a = nengo.Node(np.zeros(1), label="a")
        ens = nengo.Ensemble(10, 1)
        nengo.Connection(a, ens, synapse=None)
        nengo.Probe(ens, label="out")
    model = kn.NengoModel(net, seed=0)
    x = np.ones((2, 3, 1), np.float32)
    assert_close(model({a: x}), model({"a": x}))
    assert_close(model.nengo_layer({a: x}), model({"a": x}))
