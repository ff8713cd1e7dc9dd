import doctest
import inspect
import os
import subprocess
import sys
import warnings
from pathlib import Path

import nengo
import pytest

from keras_nengo import naming
from keras_nengo.naming import NameTable, sanitize

NAMING_PY = Path(naming.__file__)


def object_names(table, network):
    """Names of all objects of ``network``, in Nengo's ``all_objects`` order."""
    return [table.name(obj) for obj in network.all_objects]


def parameter_names(table):
    return [name for name, _, _ in table.parameters()]


@pytest.mark.parametrize(
    "label, expected",
    [
        ("hidden", "hidden"),
        ("hidden layer", "hidden_layer"),
        ("sub/ens", "sub_ens"),
        ("a  /  b", "a_b"),
        ("a__b", "a_b"),
        ("__private__", "private"),
        ("-neg", "neg"),
        ("x-1.5", "x-1.5"),
        ("v2.weights", "v2.weights"),
        ("café", "caf"),
        ("ensemble α", "ensemble"),
        ("tab\there", "tab_here"),
        ("...", ""),
        ("?!", ""),
        ("", ""),
    ],
)
def test_sanitize(label, expected):
    assert sanitize(label) == expected


def test_sanitize_rejects_non_strings():
    with pytest.raises(TypeError, match=r"Received: label=None of type NoneType"):
        sanitize(None)


def test_nested_networks():
    with nengo.Network(label="top") as net:
        stim = nengo.Node([0.0], label="stim")
        with nengo.Network(label="sub") as sub:
            a = nengo.Ensemble(5, 1, label="a")
            with nengo.Network(label="inner") as inner:
                b = nengo.Ensemble(5, 1, label="b")
                node = nengo.Node(size_in=1, label="out")

    table = NameTable(net)
    assert table.name(stim) == "stim"
    assert table.name(sub) == "sub"
    assert table.name(a) == "sub/a"
    assert table.name(inner) == "sub/inner"
    assert table.name(b) == "sub/inner/b"
    assert table.name(node) == "sub/inner/out"

    # the network given to NameTable decides where names start
    sub_table = NameTable(sub)
    assert sub_table.name(a) == "a"
    assert sub_table.name(b) == "inner/b"


def test_unlabelled_objects_counted_per_scope_and_kind():
    with nengo.Network() as net:
        e0 = nengo.Ensemble(5, 1)
        labelled = nengo.Ensemble(5, 1, label="x")
        e1 = nengo.Ensemble(5, 1)
        n0 = nengo.Node([0])
        empty_label = nengo.Node([0], label="__")
        with nengo.Network() as sub0:
            sub_e0 = nengo.Ensemble(5, 1)
        with nengo.Network() as sub1:
            sub1_e0 = nengo.Ensemble(5, 1)

    table = NameTable(net)
    assert [table.name(obj) for obj in (e0, labelled, e1)] == [
        "ensemble_0",
        "x",
        "ensemble_1",
    ]
    assert table.name(n0) == "node_0"
    assert table.name(empty_label) == "node_1"
    assert table.name(sub0) == "network_0"
    assert table.name(sub1) == "network_1"
    assert table.name(sub_e0) == "network_0/ensemble_0"
    assert table.name(sub1_e0) == "network_1/ensemble_0"


def make_two_subnetworks(extra_in_first):
    with nengo.Network() as net:
        with nengo.Network(label="first"):
            nengo.Ensemble(5, 1)
            if extra_in_first:
                nengo.Ensemble(5, 1)
        with nengo.Network(label="second") as second:
            ens = nengo.Ensemble(5, 1)
            nengo.Connection(ens, nengo.Node(size_in=1))
    return net, second


def test_adding_an_object_does_not_rename_other_scopes():
    net, second = make_two_subnetworks(extra_in_first=False)
    net_more, second_more = make_two_subnetworks(extra_in_first=True)
    table, table_more = NameTable(net), NameTable(net_more)

    assert len(net_more.all_objects) == len(net.all_objects) + 1
    assert object_names(table, second) == object_names(table_more, second_more)
    assert object_names(table, second) == [
        "second/ensemble_0",
        "second/node_0",
        "second/ensemble_0_to_node_0",
    ]


def test_duplicate_labels():
    with nengo.Network() as net:
        ens = [nengo.Ensemble(5, 1, label="a") for _ in range(3)]
        x_ens = nengo.Ensemble(5, 1, label="x")
        x_node = nengo.Node([0], label="x")
        with nengo.Network(label="x") as x_net:
            inner_a = nengo.Ensemble(5, 1, label="a")

    table = NameTable(net)
    assert [table.name(e) for e in ens] == ["a", "a_2", "a_3"]
    # ensembles, nodes and subnetworks share the namespace of their scope
    assert table.name(x_ens) == "x"
    assert table.name(x_node) == "x_2"
    assert table.name(x_net) == "x_3"
    # different scopes are not de-duplicated against each other
    assert table.name(inner_a) == "x_3/a"


def test_labels_win_over_auto_names_and_suffixes():
    with nengo.Network() as net:
        auto = nengo.Ensemble(5, 1)
        looks_auto = nengo.Ensemble(5, 1, label="ensemble_0")
        a = nengo.Ensemble(5, 1, label="a")
        a_dup = nengo.Ensemble(5, 1, label="a")
        a_2 = nengo.Ensemble(5, 1, label="a_2")

    table = NameTable(net)
    assert table.name(looks_auto) == "ensemble_0"
    assert table.name(auto) == "ensemble_0_2"
    assert table.name(a) == "a"
    assert table.name(a_2) == "a_2"
    assert table.name(a_dup) == "a_3"


def test_odd_characters_in_labels():
    with nengo.Network() as net:
        spaced = nengo.Ensemble(5, 1, label="my ensemble")
        slashed = nengo.Ensemble(5, 1, label="layer/1")
        greek = nengo.Ensemble(5, 1, label="ensemble α")
        private = nengo.Node([0], label="_input")
        with nengo.Network(label="sub net/β") as sub:
            inner = nengo.Ensemble(5, 1, label=" ")

    table = NameTable(net)
    assert table.name(spaced) == "my_ensemble"
    assert table.name(slashed) == "layer_1"
    assert table.name(greek) == "ensemble"
    assert table.name(private) == "input"
    assert table.name(sub) == "sub_net"
    assert table.name(inner) == "sub_net/ensemble_0"
    assert table.lookup("layer_1") is slashed


def test_connection_names():
    with nengo.Network() as net:
        a = nengo.Ensemble(5, 2, label="a")
        b = nengo.Ensemble(5, 2, label="b")
        n = nengo.Node(size_in=2, label="n")
        plain = nengo.Connection(a, b)
        again = nengo.Connection(a, b)
        neurons = nengo.Connection(a.neurons, b.neurons)
        to_neurons = nengo.Connection(a, b.neurons, transform=[[1, 0]] * 5)
        sliced = nengo.Connection(a[0], b[1])
        neuron_slice = nengo.Connection(a.neurons[:2], n)
        labelled = nengo.Connection(n, a, label="feedback loop")

    table = NameTable(net)
    assert table.name(plain) == "a_to_b"
    assert table.name(again) == "a_to_b_2"
    assert table.name(neurons) == "a.neurons_to_b.neurons"
    assert table.name(to_neurons) == "a_to_b.neurons"
    assert table.name(sliced) == "a_to_b_3"
    assert table.name(neuron_slice) == "a.neurons_to_n"
    assert table.name(labelled) == "feedback_loop"


def test_connection_names_across_scopes():
    with nengo.Network() as net:
        top = nengo.Node(size_in=1, label="top")
        with nengo.Network(label="sub") as sub:
            a = nengo.Ensemble(5, 1, label="a")
            with nengo.Network(label="inner"):
                deep = nengo.Ensemble(5, 1, label="deep")
            into_sub = nengo.Connection(top, a)
            from_inner = nengo.Connection(deep, a)
        out_of_sub = nengo.Connection(a, top, transform=1)
        from_deep = nengo.Connection(deep, top, transform=1)

    table = NameTable(net)
    assert table.name(into_sub) == "sub/top_to_a"
    assert table.name(from_inner) == "sub/inner.deep_to_a"
    assert table.name(out_of_sub) == "sub.a_to_top"
    assert table.name(from_deep) == "sub.inner.deep_to_top"
    assert table.name(sub) == "sub"


def test_probe_names():
    with nengo.Network() as net:
        a = nengo.Ensemble(5, 2, label="a")
        node = nengo.Node([0, 0], label="stim")
        conn = nengo.Connection(node, a)
        with nengo.Network(label="sub"):
            b = nengo.Ensemble(5, 1, label="b")
            inner_probe = nengo.Probe(b)
        p_ens = nengo.Probe(a)
        p_spikes = nengo.Probe(a.neurons)
        p_node = nengo.Probe(node)
        p_conn = nengo.Probe(conn, "weights")
        p_view = nengo.Probe(a[0])
        p_dup = nengo.Probe(a, "decoded_output", synapse=0.01)
        p_labelled = nengo.Probe(a, label="output probe")
        p_other_scope = nengo.Probe(b)

    table = NameTable(net)
    assert table.name(p_ens) == "a_probe"
    assert table.name(p_spikes) == "a.neurons_probe"
    assert table.name(p_node) == "stim_probe"
    assert table.name(p_conn) == "stim_to_a_probe"
    assert table.name(p_view) == "a_probe_2"
    assert table.name(p_dup) == "a_probe_3"
    assert table.name(p_labelled) == "output_probe"
    assert table.name(inner_probe) == "sub/b_probe"
    assert table.name(p_other_scope) == "sub.b_probe"
    assert table.probe_name(p_spikes) == "a.neurons_probe"


def test_input_name_is_the_node_name():
    with nengo.Network() as net:
        unlabelled = nengo.Node([0])
        labelled = nengo.Node([0], label="image input")
        with nengo.Network(label="sub"):
            inner = nengo.Node([0])

    table = NameTable(net)
    assert table.input_name(unlabelled) == "node_0"
    assert table.input_name(labelled) == "image_input"
    assert table.input_name(inner) == "sub/node_0"
    for node in (unlabelled, labelled, inner):
        assert table.input_name(node) == table.name(node)


def test_learning_rule_names():
    with nengo.Network() as net:
        err = nengo.Node([0], label="err")
        with nengo.Network(label="sub"):
            a = nengo.Ensemble(5, 1, label="a")
            b = nengo.Ensemble(5, 1, label="b")
            learned = nengo.Connection(a, b, learning_rule_type=nengo.PES())
            keyed = nengo.Connection(
                a,
                b,
                label="keyed",
                learning_rule_type={
                    "my rule": nengo.PES(),
                    "slow": nengo.PES(learning_rate=1e-6),
                },
            )
        # named after a connection in a scope that is named later
        err_conn = nengo.Connection(err, learned.learning_rule)
        err_keyed = nengo.Connection(err, keyed.learning_rule["slow"])
        delta = nengo.Probe(learned.learning_rule, "delta")

    table = NameTable(net)
    assert table.name(learned) == "sub/a_to_b"
    assert table.name(learned.learning_rule) == "sub/a_to_b.learning_rule"
    assert (
        table.name(keyed.learning_rule["my rule"]) == "sub/keyed.learning_rule.my_rule"
    )
    assert table.name(err_conn) == "err_to_sub.a_to_b.learning_rule"
    assert table.name(err_keyed) == "err_to_sub.keyed.learning_rule.slow"
    assert table.name(delta) == "sub.a_to_b.learning_rule_probe"
    assert table.lookup("sub/a_to_b.learning_rule") == learned.learning_rule


def test_derived_names_never_collide_with_labels():
    with nengo.Network() as net:
        a = nengo.Ensemble(5, 1, label="a")
        fake = nengo.Node([0], label="a.neurons")
        auto = nengo.Ensemble(5, 1)
        fake_auto = nengo.Node([0], label="ensemble_0.neurons")

    table = NameTable(net)
    assert table.name(a.neurons) == "a.neurons"
    assert table.name(fake) == "a.neurons_2"
    assert table.name(fake_auto) == "ensemble_0.neurons"
    assert table.name(auto) == "ensemble_0_2"
    assert table.name(auto.neurons) == "ensemble_0_2.neurons"


def make_pathological_network():
    with nengo.Network(label="top") as net:
        a = nengo.Ensemble(5, 1, label="a")
        nengo.Node([0], label="a")
        nengo.Ensemble(5, 1, label="encoders")
        with nengo.Network(label="a"):
            enc = nengo.Ensemble(5, 1, label="encoders")
            bias = nengo.Ensemble(5, 1, label="bias")
            nengo.Connection(enc, bias, label="weights")
        with nengo.Network(label="a_2"):
            nengo.Ensemble(5, 1, label="encoders")
        nengo.Connection(a, enc, label="a_to_a.encoders")
        nengo.Connection(a, enc)
        nengo.Probe(a, label="a")
        nengo.Probe(a)
    return net


def test_all_names_unique_and_invertible():
    net = make_pathological_network()
    table = NameTable(net)
    names = object_names(table, net)
    params = parameter_names(table)

    assert len(set(names)) == len(names) == len(net.all_objects)
    assert len(set(params)) == len(params)
    assert not set(names) & set(params)
    for obj in net.all_objects:
        assert table.lookup(table.name(obj)) is obj
    for ens in net.all_ensembles:
        assert table.lookup(table.name(ens.neurons)) == ens.neurons


def make_tutorial_like_network():
    with nengo.Network(seed=0) as net:
        net.config[nengo.Ensemble].neuron_type = nengo.RectifiedLinear()
        stim = nengo.Node([0.3, 0.1])
        with nengo.Network(label="hidden layers"):
            h1 = nengo.Ensemble(20, 2)
            h2 = nengo.Ensemble(20, 1, label="h2")
            nengo.Connection(h1, h2, function=lambda x: x[0] * x[1])
        direct = nengo.Ensemble(1, 1, neuron_type=nengo.Direct(), label="direct")
        out = nengo.Node(size_in=1, label="out")
        nengo.Connection(stim, h1)
        nengo.Connection(h2, direct)
        nengo.Connection(direct, out)
        nengo.Connection(h2.neurons, out, transform=[[0.1] * 20])
        nengo.Probe(out)
        nengo.Probe(h2.neurons)
    return net


TUTORIAL_OBJECT_NAMES = [
    "direct",
    "hidden_layers/ensemble_0",
    "hidden_layers/h2",
    "node_0",
    "out",
    "node_0_to_hidden_layers.ensemble_0",
    "hidden_layers.h2_to_direct",
    "direct_to_out",
    "hidden_layers.h2.neurons_to_out",
    "hidden_layers/ensemble_0_to_h2",
    "hidden_layers",
    "out_probe",
    "hidden_layers.h2.neurons_probe",
]

TUTORIAL_PARAMETER_NAMES = [
    "direct/encoders",
    "hidden_layers/ensemble_0/encoders",
    "hidden_layers/ensemble_0/bias",
    "hidden_layers/h2/encoders",
    "hidden_layers/h2/bias",
    "hidden_layers/ensemble_0_to_h2/weights",
    "hidden_layers.h2_to_direct/weights",
    "hidden_layers.h2.neurons_to_out/weights",
]


def test_same_network_code_gives_same_names():
    first = make_tutorial_like_network()
    # unrelated objects in between shift ids and hashes of the second build
    unrelated = [make_pathological_network() for _ in range(3)]
    second = make_tutorial_like_network()

    table_1, table_2 = NameTable(first), NameTable(second)
    assert unrelated[0] is not unrelated[1]
    assert object_names(table_1, first) == TUTORIAL_OBJECT_NAMES
    assert object_names(table_2, second) == TUTORIAL_OBJECT_NAMES
    assert parameter_names(table_1) == TUTORIAL_PARAMETER_NAMES
    assert parameter_names(table_2) == TUTORIAL_PARAMETER_NAMES


def test_names_do_not_depend_on_hash_seed_and_need_no_tensorflow():
    # naming.py is loaded by path, and the network code copied in, so that the
    # package (which imports TensorFlow) is not imported in the child process.
    script = "\n".join(
        [
            "import importlib.util, sys",
            "import nengo",
            # parameter_names.py first, under its name, so that naming.py's
            # import of it does not import the package
            f"path = {str(NAMING_PY.with_name('parameter_names.py'))!r}",
            "name = 'keras_nengo.parameter_names'",
            "spec = importlib.util.spec_from_file_location(name, path)",
            "sys.modules[name] = importlib.util.module_from_spec(spec)",
            "spec.loader.exec_module(sys.modules[name])",
            f"path = {str(NAMING_PY)!r}",
            "spec = importlib.util.spec_from_file_location('naming', path)",
            "naming = importlib.util.module_from_spec(spec)",
            "spec.loader.exec_module(naming)",
            inspect.getsource(make_tutorial_like_network),
            inspect.getsource(object_names),
            "net = make_tutorial_like_network()",
            "table = naming.NameTable(net)",
            "print(object_names(table, net))",
            "print([name for name, _, _ in table.parameters()])",
            "assert 'tensorflow' not in sys.modules, 'naming.py imported TensorFlow'",
            "assert 'keras_nengo' not in sys.modules, 'naming.py imported the package'",
        ]
    )
    expected = f"{TUTORIAL_OBJECT_NAMES}\n{TUTORIAL_PARAMETER_NAMES}\n"
    for seed in ("1", "2"):
        result = subprocess.run(
            [sys.executable, "-c", script],
            env=dict(os.environ, PYTHONHASHSEED=seed),
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == expected


def test_parameters_in_build_order():
    with nengo.Network() as net:
        late_node = nengo.Node([0], label="n")
        first = nengo.Ensemble(5, 1, label="first")
        with nengo.Network(label="sub"):
            inner = nengo.Ensemble(5, 1, label="inner")
        conn = nengo.Connection(first, inner)
        second = nengo.Ensemble(5, 1, label="second")

    table = NameTable(net)
    assert table.parameters() == [
        ("first/encoders", first, "encoders"),
        ("first/bias", first.neurons, "bias"),
        ("second/encoders", second, "encoders"),
        ("second/bias", second.neurons, "bias"),
        ("sub/inner/encoders", inner, "encoders"),
        ("sub/inner/bias", inner.neurons, "bias"),
        ("first_to_sub.inner/weights", conn, "weights"),
    ]
    assert table.name(late_node) == "n"
    # callers cannot change the table through the returned list
    table.parameters().clear()
    assert len(table.parameters()) == 7


def test_direct_ensembles_have_no_bias():
    with nengo.Network() as net:
        direct = nengo.Ensemble(1, 2, neuron_type=nengo.Direct(), label="d")
        out = nengo.Node(size_in=2)
        nengo.Connection(direct, out)

    table = NameTable(net)
    assert table.parameters() == [("d/encoders", direct, "encoders")]
    with pytest.raises(ValueError, match=r"Direct-mode ensembles have no neurons"):
        table.parameter_name(direct, "bias")
    with pytest.raises(ValueError, match=r"Direct-mode ensembles have no neurons"):
        table.parameter_name(direct.neurons, "bias")


def test_which_connections_have_weights():
    with nengo.Network() as net:
        a = nengo.Ensemble(5, 1, label="a")
        b = nengo.Ensemble(5, 1, label="b")
        n1 = nengo.Node([0], label="n1")
        n2 = nengo.Node(size_in=1, label="n2")
        passthrough = nengo.Connection(n1, n2)
        node_to_ens = nengo.Connection(n1, a)
        neurons = nengo.Connection(a.neurons, b.neurons)
        scaled = nengo.Connection(n1, n2, transform=2)
        decoded = nengo.Connection(a, n2)
        neuron_weights = nengo.Connection(a.neurons, b.neurons, transform=[[1] * 5] * 5)

    table = NameTable(net)
    with_weights = [obj for _, obj, attr in table.parameters() if attr == "weights"]
    assert with_weights == [scaled, decoded, neuron_weights]
    for conn in (passthrough, node_to_ens, neurons):
        with pytest.raises(ValueError, match=r"has no trainable parameter 'weights'"):
            table.parameter_name(conn, "weights")
    assert table.parameter_name(scaled, "weights") == "n1_to_n2_2/weights"


def test_parameters_match_nengo_dl_trainable_signals():
    nengo_dl = pytest.importorskip("nengo_dl")
    net = make_tutorial_like_network()
    with net:
        a = nengo.Ensemble(5, 1)
        nengo.Connection(a, a.neurons, transform=[[1]] * 5)
        nengo.Connection(a.neurons, a.neurons)
        nengo.Probe(a, "decoded_output")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with nengo_dl.Simulator(net, progress_bar=False) as sim:
            trainable = [
                (obj, attr)
                for obj, signals in sim.model.sig.items()
                for attr, signal in signals.items()
                if getattr(signal, "trainable", None)
            ]
    ours = [(obj, attr) for _, obj, attr in NameTable(net).parameters()]
    assert len(ours) == len(trainable) == 11
    assert set(ours) == set(trainable)


def test_parameter_name():
    with nengo.Network() as net:
        with nengo.Network(label="sub"):
            ens = nengo.Ensemble(5, 1, label="hidden")
        conn = nengo.Connection(ens, ens)

    table = NameTable(net)
    assert table.parameter_name(ens, "encoders") == "sub/hidden/encoders"
    assert table.parameter_name(ens, "bias") == "sub/hidden/bias"
    assert table.parameter_name(ens.neurons, "bias") == "sub/hidden/bias"
    assert table.parameter_name(conn, "weights") == "sub.hidden_to_sub.hidden/weights"
    assert sorted(parameter_names(table)) == sorted(
        [
            table.parameter_name(ens, "encoders"),
            table.parameter_name(ens, "bias"),
            table.parameter_name(conn, "weights"),
        ]
    )


def test_parameter_name_errors():
    with nengo.Network() as net:
        ens = nengo.Ensemble(5, 2, label="hidden")
        node = nengo.Node([0, 0], label="stim")
    with nengo.Network():
        stranger = nengo.Ensemble(5, 1, label="stranger")

    table = NameTable(net)
    with pytest.raises(ValueError, match=r"Expected one of: 'encoders', 'bias'"):
        table.parameter_name(ens, "gain")
    with pytest.raises(ValueError, match=r"Encoders belong to the ensemble"):
        table.parameter_name(ens.neurons, "encoders")
    with pytest.raises(ValueError, match=r"Only ensembles and connections"):
        table.parameter_name(node, "weights")
    with pytest.raises(ValueError, match=r"Pass the viewed object, `obj.obj`"):
        table.parameter_name(ens[0], "encoders")
    with pytest.raises(ValueError, match=r"not an object of this network"):
        table.parameter_name(stranger, "encoders")


def test_name_of_views_and_neurons():
    with nengo.Network() as net:
        ens = nengo.Ensemble(5, 2, label="hidden")
        node = nengo.Node([0, 0, 0], label="stim")

    table = NameTable(net)
    assert table.name(ens[0]) == "hidden"
    assert table.name(node[:2]) == "stim"
    assert table.name(ens.neurons) == "hidden.neurons"
    assert table.name(ens.neurons[1:3]) == "hidden.neurons"
    assert table.lookup("hidden.neurons") == ens.neurons


def test_name_errors():
    with nengo.Network() as net:
        nengo.Ensemble(5, 1, label="hidden")
    with nengo.Network():
        stranger = nengo.Ensemble(5, 1, label="stranger")

    table = NameTable(net)
    with net:
        late = nengo.Ensemble(5, 1, label="late")

    with pytest.raises(ValueError, match=r"Received: obj=<Ensemble 'stranger'.*"):
        table.name(stranger)
    with pytest.raises(ValueError, match=r"Expected: an object of this network"):
        table.name(stranger[0])
    with pytest.raises(ValueError, match=r"create a new NameTable"):
        table.name(late)
    with pytest.raises(ValueError, match=r"use NameTable.lookup"):
        table.name("hidden")
    with pytest.raises(ValueError, match=r"top-level network has no name"):
        table.name(net)
    with pytest.raises(ValueError, match=r"not an object of this network"):
        table.name([1, 2])


def test_input_and_probe_name_type_errors():
    with nengo.Network() as net:
        ens = nengo.Ensemble(5, 1, label="hidden")
        probe = nengo.Probe(ens)

    table = NameTable(net)
    with pytest.raises(ValueError, match=r"Inputs must be nengo.Node.*Ensemble"):
        table.input_name(ens)
    with pytest.raises(ValueError, match=r"Outputs must be nengo.Probe.*Ensemble"):
        table.probe_name(ens)
    assert table.probe_name(probe) == "hidden_probe"


def test_lookup_errors():
    with nengo.Network() as net:
        with nengo.Network(label="sub"):
            nengo.Ensemble(5, 1, label="hidden")
        nengo.Node([0], label="stim")

    table = NameTable(net)
    with pytest.raises(KeyError, match=r"Close names: 'sub/hidden'"):
        table.lookup("sub/hiden")
    with pytest.raises(KeyError, match=r"is the name of a parameter \('bias'\)"):
        table.lookup("sub/hidden/bias")
    with pytest.raises(KeyError, match=r"Valid names: 'stim', 'sub', 'sub/hidden'"):
        table.lookup("zzzzzzzzzzzz")


def test_lookup_lists_at_most_20_valid_names():
    with nengo.Network() as net:
        for i in range(25):
            nengo.Node([0], label=f"n{i}")

    with pytest.raises(KeyError, match=r"'n19' and 5 more\."):
        NameTable(net).lookup("qqqqqqqqqqqqqqqqq")


def test_objects_outside_the_network():
    with nengo.Network():
        outside = nengo.Ensemble(5, 1, label="outside")
    with nengo.Network() as net:
        inside = nengo.Ensemble(5, 1, label="inside")
        nengo.Connection(outside, inside)
    with pytest.raises(ValueError, match=r"refers to <Ensemble 'outside'>"):
        NameTable(net)

    with nengo.Network() as net:
        nengo.Probe(outside)
    with pytest.raises(ValueError, match=r"not an object of this network"):
        NameTable(net)


def test_name_table_needs_a_network():
    with pytest.raises(TypeError, match=r"Received: network=\[\] of type list"):
        NameTable([])


def test_ensemble_array_names():
    with nengo.Network() as net:
        ea = nengo.networks.EnsembleArray(5, n_ensembles=2, label="ea")

    table = NameTable(net)
    assert table.name(ea.input) == "ea/input"
    assert table.name(ea.ea_ensembles[1]) == "ea/ea_1"
    assert parameter_names(table)[-2:] == [
        "ea/ea_0_to_output/weights",
        "ea/ea_1_to_output/weights",
    ]


def test_docstring_examples():
    result = doctest.testmod(naming, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 10
    assert result.failed == 0


def test_tensor_nodes_in_build_order_with_their_names():
    import tensorflow as tf

    from keras_nengo._compat import nengo_dl

    shared = tf.keras.layers.Dense(2)
    with nengo.Network() as net:
        nengo_dl.configure_settings(trainable=None)
        stim = nengo.Node([0.0, 0.0], label="stim")
        with nengo.Network(label="sub"):
            conv = nengo_dl.Layer(tf.keras.layers.Dense(3))(stim, label="conv")
            plain = nengo_dl.TensorNode(lambda x: x, shape_in=(2,), pass_time=False)
        first = nengo_dl.Layer(shared)(stim)
        second = nengo_dl.Layer(shared)(stim)
    table = NameTable(net)
    assert table.tensor_nodes() == [
        ("node_0", first),
        ("node_1", second),
        ("sub/conv", conv),
        ("sub/node_0", plain),
    ]
    assert [name for name, _ in table.tensor_nodes()] == [
        table.name(node) for _, node in table.tensor_nodes()
    ]
