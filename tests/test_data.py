"""keras_nengo.data: input/output Nodes and Probes, and data keyed by them."""

import nengo
import numpy as np
import pytest
import tensorflow as tf

from keras_nengo import data
from keras_nengo._compat import nengo_dl
from keras_nengo.naming import NameTable


def network():
    with nengo.Network(seed=0) as net:
        net.a = nengo.Node(np.zeros(2), label="a")
        net.b = nengo.Node(lambda t: [t], label="b")
        net.noise = nengo.Node(nengo.processes.WhiteNoise(), size_out=1)
        net.sink = nengo.Node(lambda t: None, size_in=0, size_out=0, label="sink")
        net.dense = nengo_dl.Layer(tf.keras.layers.Dense(2))(net.a)
        ens = nengo.Ensemble(10, 3, label="ens")
        nengo.Connection(net.a, ens[:2])
        nengo.Connection(net.b, ens[2])
        net.p_ens = nengo.Probe(ens, label="zeta")
        net.p_dense = nengo.Probe(net.dense)
    return net


def signature(net, inputs=None, outputs=None):
    names = NameTable(net)
    nodes = data.default_inputs(net, inputs)
    probes = data.default_outputs(net, outputs)
    return data.Signature(
        nodes,
        [names.input_name(node) for node in nodes],
        probes,
        [names.probe_name(probe) for probe in probes],
    )


@pytest.fixture(scope="module")
def net():
    return network()


def test_default_inputs_are_nengo_dl_input_nodes_with_outputs(net):
    with nengo_dl.Simulator(net, progress_bar=False) as sim:
        reference = [n for n in sim.tensor_graph.invariant_inputs if n.size_out > 0]
    inputs = data.default_inputs(net)
    assert inputs == reference
    assert net.dense not in inputs and net.sink not in inputs
    assert data.default_outputs(net) == list(net.all_probes)


def test_inputs_and_outputs_are_checked(net):
    ens = net.all_ensembles[0]
    with pytest.raises(ValueError, match=r"nengo.Node of the network.*Received: "):
        data.default_inputs(net, [ens])
    with nengo.Network():
        stranger = nengo.Node([0.0])
    with pytest.raises(ValueError, match="Pass Nodes created inside the network"):
        data.default_inputs(net, [stranger])
    with pytest.raises(ValueError, match=r"size_in=2.*TensorNode"):
        data.default_inputs(net, [net.dense])
    with pytest.raises(ValueError, match="nengo.Probe of the network"):
        data.default_outputs(net, [net.a])


def test_keys_by_object_name_and_label(net):
    sig = signature(net)
    assert sig.input_names == ["a", "b", "node_0"]
    # the TensorNode is the network's second unlabelled Node
    assert sig.output_names == ["zeta", "node_1_probe"]
    for key in (net.a, "a"):
        assert sig.input_key(key) == "a"
    assert sig.input_key(net.noise) == "node_0"
    assert sig.output_key(net.p_ens) == sig.output_key("zeta") == "zeta"
    assert sig.outputs_by_name({net.p_ens: 1, "node_1_probe": 2}) == {
        "zeta": 1,
        "node_1_probe": 2,
    }
    with pytest.raises(ValueError, match=r"Unknown input 'c'.*Nodes.*\['a', 'b'"):
        sig.input_key("c")
    with pytest.raises(ValueError, match=r"Unknown output .*Probes"):
        sig.output_key(net.a)


def test_single_array_goes_to_the_first_input(net):
    sig = signature(net)
    x = np.zeros((3, 4, 2))
    checked = sig.check_x(x)
    assert list(checked) == ["a"]
    np.testing.assert_array_equal(checked["a"], x)
    # nodes without data are left out: they run their own output
    assert list(sig.check_x({"b": np.zeros((3, 4, 1))})) == ["b"]
    assert sig.check_x(None) == {}
    assert data.n_samples(checked) == 3 and data.n_samples({}) is None


def test_wrong_shape_names_the_node_and_where_a_single_array_went(net):
    sig = signature(net)
    with pytest.raises(
        ValueError,
        match=r"Input 'a' \(Node <Node 'a'.*\(batch, n_steps, 2\). Received: shape "
        r"\(3, 4, 1\). A single array goes to the first input 'a'",
    ):
        sig.check_x(np.zeros((3, 4, 1)))
    with pytest.raises(ValueError, match=r"Received: shape \(3, 2\)\.$"):
        sig.check_x({"a": np.zeros((3, 2))})


def test_inputs_must_agree_on_batch_and_steps(net):
    sig = signature(net)
    with pytest.raises(ValueError, match=r"'a' with shape\[:2\]=\(3, 4\).*'b'"):
        sig.check_x({"a": np.zeros((3, 4, 2)), "b": np.zeros((3, 5, 1))})
    with pytest.raises(ValueError, match="a list of 2 items"):
        sig.check_x([np.zeros((3, 4, 2)), np.zeros((3, 4, 1))])


def test_network_without_inputs_takes_no_array(net):
    sig = signature(net, inputs=[])
    with pytest.raises(ValueError, match=r"no input Nodes.*Pass None and n_steps"):
        sig.check_x(np.zeros((1, 2, 1)))


def test_targets_accept_probe_size_or_integer_labels(net):
    sig = signature(net)
    size = net.p_dense.size_in
    y = {net.p_ens: np.zeros((3, 4, 3)), "node_1_probe": np.zeros((3, 4, 1))}
    checked = sig.check_y(y, 3)
    assert sorted(checked) == sorted(sig.output_names)
    checked = sig.check_y([np.zeros((3, 4, 1)), np.zeros((3, 4, size))], 3)
    assert checked["zeta"].shape == (3, 4, 1)
    single = signature(net, outputs=[net.p_ens])
    labels = np.ones((3, 4, 1), dtype=np.int64)
    assert single.check_y(labels, 3) is not None
    assert single.check_y(labels, 3).dtype == np.int64
    assert single.check_y(None, 3) is None


def test_target_errors(net):
    sig = signature(net)
    with pytest.raises(ValueError, match=r"2 outputs .* must be a dict"):
        sig.check_y(np.zeros((3, 4, 3)), 3)
    with pytest.raises(ValueError, match="a list of 1"):
        sig.check_y([np.zeros((3, 4, 3))], 3)
    with pytest.raises(
        ValueError,
        match=r"Target 'zeta' \(Probe .*\(batch, n_steps, 3\), or \(batch, n_steps, "
        r"1\) for integer labels. Received: shape \(3, 4, 2\)",
    ):
        sig.check_y({"zeta": np.zeros((3, 4, 2))}, 3)
    with pytest.raises(ValueError, match=r"3 samples in x and 2 in y for 'zeta'"):
        sig.check_y({"zeta": np.zeros((2, 4, 3))}, 3)


def test_as_tensors_keeps_the_model_dtype():
    values = {
        "x": np.ones((2, 1, 1), np.float64),
        "labels": np.ones((2, 1, 1), np.int32),
        "tensor": tf.ones(1),
    }
    converted = data.as_tensors(values, "float64")
    assert tf.is_tensor(converted["x"]) and converted["x"].dtype == tf.float64
    assert converted["labels"] is values["labels"]
    assert converted["tensor"] is values["tensor"]
