"""Tests for keras_nengo.nir: NIR export/import against analytic solutions."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import nengo
import numpy as np
import pytest
from conftest import assert_close

import keras_nengo as kn

nir = pytest.importorskip("nir")
knir = kn.nir

DT = 0.001
# the bar for a round trip through NIR (float32 simulations)
ROUND_TRIP = dict(atol=1e-5, rtol=1e-5)


def run(network, n_steps, x=None, simulator="keras_nengo", training=False):
    """{probe label: (n_steps, size)} from keras_nengo (or nengo.Simulator)."""
    if simulator == "nengo":
        for node in network.all_nodes:
            if node.label in (x or {}):
                node.output = nengo.processes.PresentInput(x[node.label][0], DT)
        with nengo.Simulator(network, dt=DT, progress_bar=False) as sim:
            sim.run_steps(n_steps)
        return {p.label: sim.data[p] for p in network.all_probes}
    model = kn.NengoModel(network, dt=DT, seed=0)
    if training:
        outputs = model(
            {k: np.asarray(v, dtype="float32") for k, v in x.items()}, training=True
        )
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return {n: np.asarray(o)[0] for n, o in zip(model.output_names, outputs)}
    outputs = model.predict(x, n_steps=None if x else n_steps, verbose=0)
    outputs = outputs if isinstance(outputs, dict) else {model.output_names[0]: outputs}
    return {name: value[0] for name, value in outputs.items()}


def graph(*nodes, size):
    """Input(size) -> nodes... -> Output as a NIRGraph named in0, n0, n1, ..., out."""
    names = ["in0"] + [f"n{i}" for i in range(len(nodes))] + ["out"]
    out_size = nodes[-1].output_type["output"]
    all_nodes = [nir.Input(np.array([size])), *nodes, nir.Output(out_size)]
    return nir.NIRGraph(
        nodes=dict(zip(names, all_nodes)),
        edges=list(zip(names[:-1], names[1:])),
    )


def spike_steps(spikes):
    return np.flatnonzero(spikes > 0) + 1  # 1-based step numbers


# -- dynamics against the continuous-time solutions ---------------------------


@pytest.mark.parametrize("simulator", ["keras_nengo", "nengo"])
def test_lif_spike_times_match_continuous_solution(simulator):
    tau, r, v_leak, v_th, v_reset, current = 0.02, 2.0, 0.3, 1.5, -0.2, 0.9
    lif = nir.LIF(
        tau=np.array([tau]),
        r=np.array([r]),
        v_leak=np.array([v_leak]),
        v_threshold=np.array([v_th]),
        v_reset=np.array([v_reset]),
    )
    net = knir.from_nir(graph(lif, size=1))
    n_steps = 300
    x = {"in0": np.full((1, n_steps, 1), current)}
    spikes = run(net, n_steps, x, simulator)["out"][:, 0]

    # tau dv/dt = (v_leak - v) + r I relaxes to v_inf; from v0 it reaches the
    # threshold after T = tau ln((v_inf - v0) / (v_inf - v_th))
    v_inf = v_leak + r * current
    first = tau * np.log(v_inf / (v_inf - v_th))  # v0 = 0 (rest)
    period = tau * np.log((v_inf - v_reset) / (v_inf - v_th))
    # documented discretisation: a spike is seen at the end of the crossing step
    first_step = int(np.floor(first / DT)) + 1
    period_steps = int(np.floor(period / DT)) + 1
    expected = np.arange(first_step, n_steps + 1, period_steps)
    np.testing.assert_array_equal(spike_steps(spikes), expected)
    assert_close(spikes[spikes > 0] * DT, 1)  # unit-area spikes
    # each inter-spike interval is the continuous one rounded up to whole steps
    intervals = np.diff(spike_steps(spikes)) * DT
    assert np.all((intervals >= period) & (intervals < period + DT))


@pytest.mark.parametrize("v_leak", [0.0, 0.4])
def test_li_matches_lowpass_solution(v_leak):
    tau, r, current = 0.015, 1.5, 0.7
    li = nir.LI(tau=np.full(2, tau), r=np.full(2, r), v_leak=np.full(2, v_leak))
    net = knir.from_nir(graph(li, size=2))
    n_steps = 100
    x = {"in0": np.full((1, n_steps, 2), current)}
    out = run(net, n_steps, x)["out"]
    t = np.arange(1, n_steps + 1) * DT
    # v(t) = (v_leak + r I)(1 - exp(-t / tau)), seen one step late in Nengo
    expected = (v_leak + r * current) * (1 - np.exp(-(t - DT) / tau))
    assert_close(out, np.tile(expected[:, None], (1, 2)))


def test_integrator_and_if_match_solutions():
    r, current = 3.0, 40.0
    integrator = knir.from_nir(graph(nir.I(r=np.array([r])), size=1))
    n_steps = 50
    x = {"in0": np.full((1, n_steps, 1), current)}
    t = np.arange(1, n_steps + 1) * DT
    expected = r * current * (t - DT)
    assert_close(run(integrator, n_steps, x)["out"][:, 0], expected, "weights32")

    v_th, v_reset = 2.0, 0.0
    if_node = nir.IF(r=np.array([r]), v_threshold=np.array([v_th]))
    net = knir.from_nir(graph(if_node, size=1))
    n_steps = 200
    x = {"in0": np.full((1, n_steps, 1), current)}
    for simulator in ("keras_nengo", "nengo"):
        spikes = run(net, n_steps, x, simulator)["out"][:, 0]
        # dv/dt = r I reaches v_th after T = (v_th - v_reset) / (r I)
        period_steps = int(np.floor((v_th - v_reset) / (r * current) / DT)) + 1
        expected = np.arange(period_steps, n_steps + 1, period_steps)
        np.testing.assert_array_equal(spike_steps(spikes), expected)


def test_affine_linear_scale_orientation():
    rng = np.random.RandomState(1)
    weight, bias = rng.randn(3, 2), rng.randn(3)
    second, scale = rng.randn(4, 3), rng.randn(4)
    nodes = {
        "in0": nir.Input(np.array([2])),
        "affine": nir.Affine(weight=weight, bias=bias),
        "linear": nir.Linear(weight=second),
        "scale": nir.Scale(scale),
        "out": nir.Output(np.array([4])),
    }
    edges = [("in0", "affine"), ("affine", "linear"), ("linear", "scale")]
    net = knir.from_nir(nir.NIRGraph(nodes=nodes, edges=edges + [("scale", "out")]))
    x = rng.randn(1, 5, 2)
    out = run(net, 5, {"in0": x})["out"]
    assert_close(out, ((x[0] @ weight.T + bias) @ second.T) * scale)


def test_recurrent_graph_matches_discrete_reference():
    """snnTorch-style RLeaky subgraph: LIF -> Linear -> LIF, no synapse."""
    rng = np.random.RandomState(2)
    n, tau = 4, 0.01
    w_in, w_rec = rng.uniform(0, 2, size=(n, 1)), rng.uniform(-0.01, 0.01, (n, n))
    inner = nir.NIRGraph(
        nodes={
            "input": nir.Input(np.array([n])),
            "lif": nir.LIF(
                tau=np.full(n, tau),
                r=np.ones(n),
                v_leak=np.zeros(n),
                v_threshold=np.ones(n),
            ),
            "w_rec": nir.Linear(weight=w_rec),
            "output": nir.Output(np.array([n])),
        },
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
    )
    outer = nir.NIRGraph(
        nodes={
            "x": nir.Input(np.array([1])),
            "w_in": nir.Linear(weight=w_in),
            "rec": inner,
            "y": nir.Output(np.array([n])),
        },
        edges=[("x", "w_in"), ("w_in", "rec"), ("rec", "y")],
    )
    net = knir.from_nir(outer)
    n_steps = 120
    x = np.full((1, n_steps, 1), 1.5)
    spikes = run(net, n_steps, {"x": x})["y"]

    # reference: exact-exponential step, reset at the step end, recurrent
    # spikes (area 1 each) acting one step later
    v, previous, expected = np.zeros(n), np.zeros(n), []
    decay = np.exp(-DT / tau)
    for step in range(n_steps):
        current = w_in[:, 0] * x[0, step, 0] + w_rec @ previous
        v = current + (v - current) * decay
        fired = v > 1
        v[fired] = 0
        previous = fired / DT
        expected.append(previous)
    assert_close(spikes * DT, np.array(expected) * DT)
    assert np.sum(spikes) > 0


# -- round trips -------------------------------------------------------------


def lif_network(seed=3):
    with nengo.Network(seed=seed) as net:
        stim = nengo.Node(np.zeros(2), label="stim")
        a = nengo.Ensemble(20, 2, neuron_type=knir.nir_lif(0.02), label="a")
        b = nengo.Ensemble(15, 1, neuron_type=knir.nir_lif(0.01), label="b")
        nengo.Connection(stim, a, synapse=None)
        nengo.Connection(a, b, function=lambda v: v[0] * v[1], synapse=0.01)
        nengo.Connection(
            b.neurons, b.neurons, transform=-0.002 * np.ones((15, 15)), synapse=0.005
        )
        nengo.Connection(b, a[1], synapse=0.02, transform=0.5)
        nengo.Probe(b, synapse=0.02, label="product")
        nengo.Probe(a.neurons, label="spikes")
    return net


@pytest.fixture(scope="module")
def trained_model():
    """A NengoModel whose named weights differ from the built ones."""
    model = kn.NengoModel(lif_network(), dt=DT, seed=0)
    rng = np.random.RandomState(4)
    weights = model.get_named_weights()
    model.set_named_weights(
        {k: v * (1 + 0.1 * rng.randn(*v.shape)) for k, v in weights.items()}
    )
    return model


@pytest.fixture(scope="module")
def stim():
    t = np.arange(1, 201)[None, :, None] * DT
    return np.concatenate([np.sin(10 * t), np.cos(7 * t)], axis=-1)


def test_round_trip_spiking_and_rate(trained_model, stim):
    graph_ = knir.to_nir(trained_model, seed=None)
    model = kn.NengoModel(knir.from_nir(graph_), dt=DT, seed=0)
    assert model.output_names == trained_model.output_names
    expected = trained_model.predict(stim, verbose=0)
    actual = model.predict({"stim": stim}, verbose=0)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], **ROUND_TRIP)
    assert np.sum(expected["spikes"]) > 0
    rates = []
    for m in (trained_model, model):
        outputs = m({"stim": stim.astype("float32")}, training=True)
        if not isinstance(outputs, dict):
            outputs = dict(zip(m.output_names, outputs))
        rates.append({name: np.asarray(value) for name, value in outputs.items()})
    for name in rates[0]:
        np.testing.assert_allclose(rates[1][name], rates[0][name], **ROUND_TRIP)


def test_round_trip_keeps_named_weights(trained_model):
    imported = kn.NengoModel(knir.from_nir(knir.to_nir(trained_model)), seed=0)
    after = imported.get_named_weights()
    # NIR node names hold no "." (torch-based readers refuse it): "_" instead
    before = {
        name.replace(".", "_"): value
        for name, value in trained_model.get_named_weights().items()
    }
    assert "b.neurons_to_b.neurons/weights" in trained_model.get_named_weights()
    # NIR has no probes: an Ensemble probe's decoders become a Connection
    assert set(after) - set(before) == {"product_decoders/weights"}
    gain = nengo.builder.Model()
    nengo.builder.Builder.build(gain, trained_model.network)
    b = [e for e in trained_model.network.all_ensembles if e.label == "b"][0]
    for name, value in before.items():
        if name == "b_neurons_to_b_neurons/weights":
            # NIR's LIF has r=1, so the gain moves into the weights
            value = gain.params[b].gain[:, None] * value
        if name == "b_to_a/weights":
            # the slice a[1] becomes row 1 of a full (2, 15) matrix
            value = np.concatenate([np.zeros_like(value), value])
        assert_close(after[name], value, "weights32")


def test_round_trip_through_file(trained_model, stim, tmp_path):
    path = tmp_path / "network.nir"
    nir.write(path, knir.to_nir(trained_model))
    model = kn.NengoModel(knir.from_nir(nir.read(path)), dt=DT, seed=0)
    expected = trained_model.predict(stim, verbose=0)
    actual = model.predict({"stim": stim}, verbose=0)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], **ROUND_TRIP)


def test_export_matches_nengo_simulator_values():
    net = lif_network()
    exported = knir.to_nir(net)
    model = nengo.builder.Model()
    nengo.builder.Builder.build(model, net)
    a = [e for e in net.all_ensembles if e.label == "a"][0]
    assert_close(exported.nodes["a_encoders"].weight, model.params[a].scaled_encoders)
    assert_close(exported.nodes["a_encoders"].bias, model.params[a].bias)
    assert_close(exported.nodes["a"].tau, np.full(20, 0.02))
    assert_close(exported.nodes["a_to_b_synapse"].tau, np.full(1, 0.01))
    conn = [c for c in net.all_connections if c.label is None and c.pre is a][0]
    assert exported.nodes["a_to_b"].weight.shape == (1, 20)
    assert_close(exported.nodes["a_to_b"].weight, model.params[conn].weights)
    # a slice of the target becomes rows of the (out, in) matrix
    assert_close(exported.nodes["b_to_a"].weight[0], 0)


def test_model_exports_its_outputs_and_what_feeds_them():
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.zeros(1), label="stim")
        a = nengo.Ensemble(5, 1, neuron_type=knir.nir_lif(), label="a")
        b = nengo.Ensemble(5, 1, neuron_type=knir.nir_lif(), label="b")
        nengo.Connection(stim, a, synapse=None)
        nengo.Connection(a, b)
        first = nengo.Probe(a, label="first")
        nengo.Probe(b, label="second")
    assert "b" in knir.to_nir(net).nodes
    graph_ = knir.to_nir(kn.NengoModel(net, outputs=[first], seed=0))
    assert sorted(graph_.nodes) == [
        "a",
        "a_encoders",
        "first",
        "first_decoders",
        "stim",
        "stim_to_a",
    ]
    assert all(b_ != "b" for _, b_ in graph_.edges)


@pytest.mark.parametrize("separator", ["_", "."])
def test_encoders_found_by_name_also_in_older_dotted_files(separator):
    """Two weight nodes feed only `a`: its own encoders become the encoders."""
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.zeros(2), label="stim")
        a = nengo.Ensemble(4, 2, neuron_type=knir.nir_lif(), label="a")
        nengo.Connection(stim, a, synapse=None)
        nengo.Connection(stim, a.neurons, transform=np.ones((4, 2)), synapse=None)
        nengo.Probe(a.neurons, label="spikes")
    graph_ = knir.to_nir(net)
    rename = {"a_encoders": f"a{separator}encoders"}
    graph_ = nir.NIRGraph(
        nodes={rename.get(k, k): v for k, v in graph_.nodes.items()},
        # the other weight node's edge first: the name, not the order, decides
        edges=[(rename.get(s, s), rename.get(d, d)) for s, d in graph_.edges][::-1],
    )
    (ens,) = knir.from_nir(graph_).all_ensembles
    assert_close(ens.encoders, graph_.nodes[f"a{separator}encoders"].weight)


def test_import_needs_no_keras_nengo_seed_for_plain_network():
    assert isinstance(knir.to_nir(lif_network()), nir.NIRGraph)


# -- refusals ----------------------------------------------------------------


def one_ensemble(neuron_type, **node_kwargs):
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.zeros(1), label="stim")
        ens = nengo.Ensemble(5, 1, neuron_type=neuron_type, label="ens")
        nengo.Connection(stim, ens)
    return net


@pytest.mark.parametrize(
    "neuron_type, match",
    [
        (nengo.LIF(tau_ref=0.002, min_voltage=-np.inf), "tau_ref=0.002.*no refractory"),
        (
            nengo.LIF(tau_ref=0, initial_state={"voltage": nengo.dists.Choice([0])}),
            "min_voltage=0.*no voltage floor",
        ),
        (nengo.LIF(tau_ref=0, min_voltage=-np.inf), "start at random.*at rest"),
        (nengo.LIFRate(), "no rate neurons"),
        (nengo.SpikingRectifiedLinear(), "subtracts the threshold"),
    ],
)
def test_inexact_neurons_raise_or_warn(neuron_type, match):
    net = one_ensemble(neuron_type)
    with pytest.raises(knir.NIRExportError, match=f"Ensemble 'ens'.*{match}"):
        knir.to_nir(net)
    with pytest.warns(UserWarning, match=match):
        graph_ = knir.to_nir(net, approximate=True)
    assert type(graph_.nodes["ens"]).__name__ in ("CubaLIF", "IF")


def test_approximate_lif_matches_nengo_without_refractory_period():
    """approximate=True drops tau_ref: the import fires like tau_ref=0."""
    net = one_ensemble(nengo.LIF(tau_rc=0.02, tau_ref=0.002))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported = knir.to_nir(net, approximate=True)
    lif = exported.nodes["ens"]  # its one input synapse makes it a CubaLIF
    np.testing.assert_array_equal(lif.tau_mem, np.full(5, 0.02))
    np.testing.assert_array_equal(lif.v_threshold, np.ones(5))


@pytest.mark.parametrize("neuron_type", [nengo.Sigmoid(), nengo.Direct()])
def test_neuron_types_without_nir_equivalent(neuron_type):
    with pytest.raises(knir.NIRExportError, match="NIR cannot express"):
        knir.to_nir(one_ensemble(neuron_type), approximate=True)


def test_python_node_function_is_refused():
    with nengo.Network() as net:
        stim = nengo.Node(np.zeros(1))
        square = nengo.Node(lambda t, x: x**2, size_in=1, label="square")
        nengo.Connection(stim, square)
    with pytest.raises(knir.NIRExportError, match="'square'.*Python function"):
        knir.to_nir(net)


def test_learning_rule_and_synapse_and_probe_refusals():
    def build(**conn_kwargs):
        with nengo.Network(seed=0) as net:
            a = nengo.Ensemble(5, 1, neuron_type=knir.nir_lif(), label="a")
            b = nengo.Ensemble(5, 1, neuron_type=knir.nir_lif(), label="b")
            nengo.Connection(a, b, **conn_kwargs)
        return net

    with pytest.raises(knir.NIRExportError, match="learning rule.*static"):
        knir.to_nir(build(learning_rule_type=nengo.PES()), approximate=True)
    with pytest.raises(knir.NIRExportError, match="Alpha.*only filter is the"):
        knir.to_nir(build(synapse=nengo.Alpha(0.01)))
    net = build()
    with net:
        nengo.Probe(net.ensembles[0].neurons, "voltage")
    with pytest.raises(knir.NIRExportError, match="records 'voltage'"):
        knir.to_nir(net)
    with pytest.raises(TypeError, match="Received: model_or_network of type str"):
        knir.to_nir("net")
    with pytest.raises(ValueError, match="spike_area=0"):
        knir.to_nir(build(), spike_area=0)


def test_model_without_seed_needs_one_for_gains():
    with nengo.Network() as net:
        stim = nengo.Node(np.zeros(1), label="stim")
        a = nengo.Ensemble(5, 1, neuron_type=knir.nir_lif(), label="a")
        nengo.Connection(stim, a)
        nengo.Connection(a.neurons, a.neurons, transform=np.eye(5), synapse=0.01)
        nengo.Probe(a.neurons)
    model = kn.NengoModel(net, seed=5)
    with pytest.raises(ValueError, match="seed=None and network.seed=None"):
        knir.to_nir(model)
    # the NengoModel's seed gives its gains
    graph_ = knir.to_nir(model, seed=5)
    built = nengo.builder.Model()
    built.seeds[net], built.seeded[net] = 5, False
    nengo.builder.Builder.build(built, net)
    assert_close(
        graph_.nodes["a_neurons_to_a_neurons"].weight, np.diag(built.params[a].gain)
    )


def test_from_nir_refusals():
    with pytest.raises(TypeError, match="node 'n0' is a Threshold"):
        knir.from_nir(graph(nir.Threshold(threshold=np.ones(2)), size=2))
    with pytest.raises(TypeError, match="Received: graph of type dict"):
        knir.from_nir({})
    lif = dict(r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2))
    with pytest.raises(ValueError, match="'n0'.*2 different values of tau"):
        knir.from_nir(graph(nir.LIF(tau=np.array([0.01, 0.02]), **lif), size=2))
    lif["v_reset"] = np.full(2, 1.0)
    with pytest.raises(ValueError, match="v_threshold > v_reset"):
        knir.from_nir(graph(nir.LIF(tau=np.full(2, 0.01), **lif), size=2))
    with pytest.raises(ValueError, match="tau > 0"):
        knir.from_nir(
            graph(nir.LI(tau=np.zeros(2), r=np.ones(2), v_leak=np.zeros(2)), size=2)
        )
    with pytest.raises(ValueError, match="spike_area=-1"):
        knir.from_nir(graph(nir.Scale(np.ones(2)), size=2), spike_area=-1)


def test_import_keras_nengo_does_not_import_nir():
    code = "import sys, keras_nengo; assert 'nir' not in sys.modules; keras_nengo.nir"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


# -- the example (Norse and snnTorch: tests/test_nir_peers.py) -------------


@pytest.mark.slow
def test_example_round_trip_runs():
    script = Path(__file__).parent.parent / "examples" / "nir_roundtrip.py"
    result = subprocess.run(
        [sys.executable, str(script), "--epochs", "1", "--steps", "20"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    error = float(result.stdout.split("max |imported - trained|: ")[1].split()[0])
    assert error < 1e-5
    # with KERAS_NENGO_PEERS_PYTHON set (as in CI) the peer step runs too
    peers = result.stdout.split("max |peer - keras_nengo|: ")[1:]
    if os.environ.get("KERAS_NENGO_PEERS_PYTHON"):
        assert len(peers) == 2, result.stdout[-3000:]
    else:
        assert "Peer step skipped" in result.stdout
    assert all(float(line.split()[0]) < 1e-5 for line in peers)
