"""keras_nengo's NIR files in Norse and snnTorch, and theirs in keras_nengo.

The peers run in their own virtualenv (torch is large): ``.ci/peers DIR``
builds it from ``tests/peers/requirements.txt`` and prints its python; set
``KERAS_NENGO_PEERS_PYTHON`` to that path to run the slow tests here, which
call ``tests/peers/run_peer.py`` with it as a real subprocess (``.npy`` in
and out). Without the variable they skip; the fast tests of the naming and
node-kind rules (`keras_nengo._nir_peers`) always run.

What the comparisons show (see `keras_nengo.nir`):

- Norse and snnTorch step every time constant with forward Euler (decay
  ``1 - dt / tau``; snnTorch's exporter writes ``tau = dt / (1 - beta)`` and
  ``r = tau / dt``, with ``dt = 1e-4`` fixed), Nengo exactly (decay
  ``exp(-dt / tau)``). ``to_nir(..., peer=)`` writes ``euler_tau`` and
  ``from_nir(..., peer=)`` reads ``exact_tau``, so both step the same
  numbers; the peers count a spike as a 1 held for a step (area ``dt``).
- Nengo delays the input of each synapse by one step, the peers' CubaLIF
  does not: a peer's spikes come exactly one step earlier per synapse on the
  path, so spike times agree within one step, and exactly after a delay.
"""

import json
import os
import subprocess
from pathlib import Path

import nengo
import nengo_dl
import numpy as np
import pytest
from conftest import assert_close

import keras_nengo as kn

nir = pytest.importorskip("nir")
from keras_nengo._nir_peers import (  # noqa: E402
    PEERS,
    euler_tau,
    exact_tau,
    nir_name,
    peer_problems,
)

knir = kn.nir
PEERS_PYTHON = os.environ.get("KERAS_NENGO_PEERS_PYTHON")
RUNNER = Path(__file__).parent / "peers" / "run_peer.py"
# the time step each peer runs: snnTorch's importer fixes 1e-4, Norse's default
PEER_DT = {"snntorch": 1e-4, "norse": 1e-3}
FILTER_TAU = 0.02  # the Lowpass both outputs are filtered with for comparison

needs_peers = pytest.mark.skipif(
    not PEERS_PYTHON,
    reason="KERAS_NENGO_PEERS_PYTHON is unset: build the peers' virtualenv "
    "with `.ci/peers DIR` and set the variable to the python it prints",
)


def run_peer(command, peer, graph_path, x, folder, dt, *options):
    """Run tests/peers/run_peer.py in the peers' python; (outputs, summary)."""
    x_path, y_path = folder / f"{peer}_x.npy", folder / f"{peer}_y.npy"
    np.save(x_path, x)
    result = subprocess.run(
        [PEERS_PYTHON, str(RUNNER), command, peer, str(graph_path)]
        + [str(x_path), str(y_path), "--dt", repr(dt), *options],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return np.load(y_path), json.loads(result.stdout.strip().splitlines()[-1])


def delayed(y, steps=1):
    """``y`` later by ``steps`` time steps (zeros first)."""
    return np.concatenate([np.zeros_like(y[:, :steps]), y[:, :-steps]], axis=1)


def lowpass(y, tau, dt):
    """Nengo's Lowpass (zero-order hold) over the time axis of (batch, t, d)."""
    decay, state, out = np.exp(-dt / tau), np.zeros_like(y[:, 0]), []
    for step in range(y.shape[1]):
        state = decay * state + (1 - decay) * y[:, step]
        out.append(state)
    return np.stack(out, axis=1)


def spike_steps(spikes):
    """[(sample, neuron) -> array of 0-based spike steps]."""
    return {
        (b, i): np.flatnonzero(spikes[b, :, i] > 0)
        for b in range(spikes.shape[0])
        for i in range(spikes.shape[2])
    }


# -- a trained keras_nengo network -------------------------------------------


def peer_network(n_neurons=20):
    """stim -> a (no synapse: LIF) -> b (Lowpass(0.01): CubaLIF) -> probes.

    b's biases are 0 and not trained: a CubaLIF holds biases as v_leak, which
    snnTorch refuses and Norse also adds to the synaptic current.
    """
    rng = np.random.RandomState(1)
    with nengo.Network(seed=0) as net:
        nengo_dl.configure_settings(trainable=None)
        stim = nengo.Node(np.zeros(1), label="stim")
        a = nengo.Ensemble(n_neurons, 1, neuron_type=knir.nir_lif(0.02), label="a")
        b = nengo.Ensemble(
            n_neurons,
            1,
            neuron_type=knir.nir_lif(0.02),
            gain=rng.uniform(3, 15, n_neurons),
            bias=np.zeros(n_neurons),
            label="b",
        )
        net.config[b.neurons].trainable = False
        nengo.Connection(stim, a, synapse=None)
        nengo.Connection(a, b, function=np.square, synapse=0.01)
        nengo.Probe(b, synapse=None, label="out")
        nengo.Probe(b.neurons, label="spikes")
    return net


@pytest.fixture(scope="module", params=sorted(PEER_DT))
def trained(request):
    """(peer, dt, {probe label: NengoModel with that one output}, test input)."""
    peer, dt = request.param, PEER_DT[request.param]
    net = peer_network()
    probes = {p.label: p for p in net.all_probes}
    model = kn.NengoModel(net, outputs=[probes["out"]], dt=dt, seed=0)
    model.compile(optimizer="adam", loss="mse")
    x = np.random.RandomState(0).uniform(-1, 1, size=(64, 1, 1))
    before = model.get_named_weights()
    model.fit(np.tile(x, (1, 20, 1)), np.tile(x**2, (1, 20, 1)), epochs=2, verbose=0)
    after = model.get_named_weights()
    assert not np.allclose(after["a_to_b/weights"], before["a_to_b/weights"])
    models = {}
    for label, probe in probes.items():
        models[label] = kn.NengoModel(net, outputs=[probe], dt=dt, seed=0)
        models[label].set_named_weights(after, strict=False)
    n_steps = int(round(0.2 / dt))
    stim = np.tile(np.array([-0.8, 0.3, 0.9])[:, None, None], (1, n_steps, 1))
    return peer, dt, models, stim


@pytest.mark.slow
@needs_peers
def test_to_nir_spikes_run_in_peer(trained, tmp_path):
    """The peer's spikes are keras_nengo's one step early (Nengo's synapse delay)."""
    peer, dt, models, stim = trained
    path = tmp_path / "spikes.nir"
    graph = knir.to_nir(models["spikes"], peer=peer, dt=dt)
    assert {type(n).__name__ for n in graph.nodes.values()} <= set(PEERS[peer].kinds)
    assert type(graph.nodes["b"]).__name__ == "CubaLIF"
    nir.write(path, graph)
    ours = models["spikes"].predict(stim, verbose=0) > 0
    theirs, summary = run_peer("run", peer, path, stim, tmp_path, dt)
    theirs = theirs > 0
    assert summary["dt"] == dt and theirs.shape == ours.shape
    assert ours.sum() > 1000
    # exactly: one step of delay for the one synapse (a -> b) on the path
    np.testing.assert_array_equal(delayed(theirs), ours)
    # so each spike time within one step, and counts within one
    for key, steps in spike_steps(ours).items():
        other = spike_steps(theirs)[key]
        assert abs(len(steps) - len(other)) <= 1, key
        common = min(len(steps), len(other))
        assert np.all(np.abs(steps[:common] - other[:common]) <= 1), key


@pytest.mark.slow
@needs_peers
def test_to_nir_decoded_output_runs_in_peer(trained, tmp_path):
    peer, dt, models, stim = trained
    path = tmp_path / "out.nir"
    nir.write(path, knir.to_nir(models["out"], peer=peer, dt=dt))
    ours = models["out"].predict(stim, verbose=0)
    theirs, _ = run_peer("run", peer, path, stim, tmp_path, dt)
    scale = np.abs(ours).max()
    assert scale > 0
    # the same numbers, one step apart (float32 sums)
    np.testing.assert_allclose(delayed(theirs), ours, atol=1e-5 * scale, rtol=0)
    # filtered, the one-step shift moves the output by at most
    # (1 - exp(-dt / tau)) (max |y| + max |filtered y|)
    ours_f, theirs_f = (lowpass(y, FILTER_TAU, dt) for y in (ours, theirs))
    bound = -np.expm1(-dt / FILTER_TAU) * (scale + np.abs(ours_f).max())
    assert np.abs(ours_f - theirs_f).max() <= bound + 1e-5 * scale


@pytest.mark.slow
@needs_peers
@pytest.mark.parametrize(
    "peer, neurons",
    [("norse", "LIF"), ("snntorch", "LIF"), ("snntorch", "CubaLIF")],
)
def test_peer_trained_network_runs_in_keras_nengo(peer, neurons, tmp_path):
    """Linear -> LIF (or snnTorch's Synaptic: CubaLIF) -> Linear trained in the
    peer, exported by its own exporter, imported with from_nir(peer=)."""
    dt = PEER_DT[peer]
    n_steps = 300
    x = np.tile(np.random.RandomState(0).uniform(-1, 1, (4, 1, 2)), (1, n_steps, 1))
    path = tmp_path / f"{peer}.nir"
    options = ["--synaptic"] if neurons == "CubaLIF" else []
    theirs, summary = run_peer("train", peer, path, x, tmp_path, dt, *options)
    assert summary["losses"][-1] < summary["losses"][0]
    assert sorted(summary["nodes"].values()) == sorted(
        ["Affine", "Affine", "Input", neurons, "Output"]
    )
    network = knir.from_nir(nir.read(path), peer=peer, dt=dt)
    model = kn.NengoModel(network, dt=dt, seed=0)
    ours = model.predict({"input": x}, verbose=0)
    assert ours.shape == theirs.shape
    # the output changes with the spikes: the run is not a constant
    assert np.sum(np.diff(theirs, axis=1) != 0) > 100
    if neurons == "CubaLIF":
        # Nengo's synapse hands the current to the next step, snnTorch's
        # Synaptic to the same step: ours is theirs one step later
        ours, theirs = ours[:, 1:], theirs[:, :-1]
    np.testing.assert_allclose(ours, theirs, atol=1e-5 * np.abs(theirs).max(), rtol=0)


# -- the rules, without the peers (fast) --------------------------------------


def test_nir_name_keeps_letters_digits_underscores():
    assert nir_name("sub/inner/a_to_b") == "sub__inner__a_to_b"
    assert nir_name("layer.a-2") == "layer_a_2"
    assert nir_name("ens_1") == "ens_1"


def test_euler_and_exact_tau_are_inverse_and_match_decays():
    for tau, dt in [(0.02, 1e-3), (0.005, 1e-4), (0.1, 1e-3)]:
        written = euler_tau(tau, dt)
        assert written > tau
        assert_close(1 - dt / written, np.exp(-dt / tau), "float64")
        assert_close(exact_tau(written, dt), tau, "float64")


def chain(nodes):
    """Edges through ``nodes`` in their order."""
    names = list(nodes)
    return list(zip(names[:-1], names[1:]))


def nir_graph(*middle):
    """Input -> middle... -> Output as {name: node}."""
    nodes = {"input": nir.Input(np.array([2]))}
    nodes.update({f"n{i}": node for i, node in enumerate(middle)})
    nodes["output"] = nir.Output(np.array([2]))
    return nodes


@pytest.mark.parametrize("peer", sorted(PEERS))
def test_peer_problems_name_each_node_and_fix(peer):
    ones = np.ones(2)
    fine = nir_graph(nir.Linear(np.eye(2)), nir.LIF(ones, ones, 0 * ones, ones))
    assert peer_problems(fine, chain(fine), PEERS[peer]) == []
    nodes = nir_graph(nir.LI(ones, ones, 0 * ones), nir.Scale(ones))
    problems = peer_problems(nodes, chain(nodes), PEERS[peer])
    assert [name for name, _, _ in problems] == ["n0", "n1"]
    assert "NIR LI node" in problems[0][1] and "synapse=None" in problems[0][2]
    assert "NIR Scale node" in problems[1][1]
    cuba = nir.CubaLIF(ones, ones, ones, 0.5 * ones, ones)
    nodes = nir_graph(cuba)
    ((name, problem, fix),) = peer_problems(nodes, chain(nodes), PEERS[peer])
    assert name == "n0" and "v_leak" in problem and "approximate=True" in fix
    two = {**fine, "output_2": nir.Output(np.array([2]))}
    assert "2 Output nodes" in peer_problems(two, chain(fine), PEERS[peer])[0][1]
    dotted = {"a.b" if k == "n0" else k: v for k, v in fine.items()}
    problem = peer_problems(dotted, chain(dotted), PEERS[peer])[0][1]
    assert "'a.b' holds characters" in problem
    looped = chain(fine) + [("n1", "n0")]
    problems = peer_problems(fine, looped, PEERS[peer])
    if peer == "snntorch":
        ((name, problem, fix),) = problems
        assert name == "n0" and "loop n0 -> n1 -> n0" in problem
        assert "Remove the recurrent Connection" in fix
    else:
        assert problems == []


def small_network(bias=0.0, probe_synapse=None, second_probe=False):
    with nengo.Network(seed=2) as net:
        stim = nengo.Node(np.zeros(1), label="stim")
        b = nengo.Ensemble(
            8,
            1,
            neuron_type=knir.nir_lif(0.02),
            gain=np.full(8, 4.0),
            bias=np.full(8, bias),
            label="b",
        )
        nengo.Connection(stim, b, synapse=0.01)
        nengo.Probe(b, synapse=probe_synapse, label="out")
        if second_probe:
            nengo.Probe(b.neurons, label="spikes")
    return net


@pytest.mark.parametrize("peer", sorted(PEERS))
def test_to_nir_for_peer_refuses_what_peer_cannot_run(peer):
    with pytest.raises(
        knir.NIRExportError,
        match=r"(?s)Probe \"out\".*NIR node 'out_synapse'.*NIR LI node.*"
        r"Probe with synapse=None",
    ):
        knir.to_nir(small_network(probe_synapse=0.02), peer=peer)
    with pytest.raises(
        knir.NIRExportError, match=r"(?s)Probe \"spikes\".*2 Output nodes.*outputs="
    ):
        knir.to_nir(small_network(second_probe=True), peer=peer)
    with pytest.raises(
        knir.NIRExportError,
        match=r"(?s)Ensemble 'b'.*NIR node 'b'.*non-zero biases.*CubaLIF holds as "
        r"v_leak.*approximate=True",
    ):
        knir.to_nir(small_network(bias=0.5), peer=peer)
    with pytest.warns(UserWarning, match="biases go through the synapse"):
        graph = knir.to_nir(small_network(bias=0.5), peer=peer, approximate=True)
    assert_close(graph.nodes["b_encoders"].bias, np.full(8, 0.5))
    assert_close(graph.nodes["b"].v_leak, np.zeros(8))


def test_to_nir_for_peer_writes_its_conventions():
    graph = knir.to_nir(small_network(), peer="snntorch")
    cuba = graph.nodes["b"]
    tau_mem, tau_syn = euler_tau(0.02, 1e-4), euler_tau(0.01, 1e-4)
    assert_close(cuba.tau_mem, np.full(8, tau_mem), "float64")
    assert_close(cuba.tau_syn, np.full(8, tau_syn), "float64")
    # snnTorch's importer asserts r == tau_mem / dt; r * w_in stays 1
    assert_close(cuba.r, np.full(8, tau_mem / 1e-4), "float64")
    assert_close(cuba.r * cuba.w_in, np.ones(8), "float64")
    # spikes of area dt: decoders scaled by amplitude / dt
    plain = knir.to_nir(small_network())
    assert_close(
        graph.nodes["out_decoders"].weight, plain.nodes["out_decoders"].weight / 1e-4
    )
    norse = knir.to_nir(small_network(), peer="norse", dt=5e-4)
    assert_close(norse.nodes["b"].tau_mem, np.full(8, euler_tau(0.02, 5e-4)))
    assert_close(norse.nodes["b"].r, np.ones(8))


def test_peer_arguments_are_checked():
    net = small_network()
    with pytest.raises(ValueError, match=r"peer must be one of.*peer='loihi'"):
        knir.to_nir(net, peer="loihi")
    with pytest.raises(ValueError, match=r"needs peer=.*dt=0.001, peer=None"):
        knir.to_nir(net, dt=0.001)
    with pytest.raises(ValueError, match=r"always steps with dt=0.0001.*dt=0.001"):
        knir.to_nir(net, peer="snntorch", dt=0.001)
    with pytest.raises(ValueError, match=r"dt must be > 0.*dt=0"):
        knir.from_nir(knir.to_nir(net), peer="norse", dt=0)
    graph = knir.to_nir(net, peer="norse", dt=0.001)
    with pytest.raises(ValueError, match=r"NIR node 'b' \(CubaLIF\) has tau_mem="):
        knir.from_nir(graph, peer="norse", dt=0.5)


def recurrent_network():
    rng = np.random.RandomState(3)
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.zeros(1), label="stim")
        b = nengo.Ensemble(
            10,
            1,
            neuron_type=knir.nir_lif(0.02),
            gain=rng.uniform(3, 15, 10),
            bias=np.zeros(10),
            label="b",
        )
        nengo.Connection(stim, b, synapse=0.01)
        nengo.Connection(
            b.neurons,
            b.neurons,
            transform=rng.uniform(-0.03, 0.03, (10, 10)),
            synapse=0.01,
        )
        nengo.Probe(b.neurons, label="spikes")
    return net


def test_to_nir_for_snntorch_refuses_loops():
    with pytest.raises(
        knir.NIRExportError,
        match=r"(?s)Connection from <Neurons of <Ensemble 'b'>>.*"
        r"loop b_neurons_to_b_neurons -> b -> b_neurons_to_b_neurons.*NIRTorch",
    ):
        knir.to_nir(recurrent_network(), peer="snntorch")
    assert type(knir.to_nir(recurrent_network(), peer="norse").nodes["b"]).__name__ == (
        "CubaLIF"
    )


@pytest.mark.slow
@needs_peers
def test_recurrent_network_runs_in_norse(tmp_path):
    dt = PEER_DT["norse"]
    model = kn.NengoModel(recurrent_network(), dt=dt, seed=0)
    path = tmp_path / "recurrent.nir"
    nir.write(path, knir.to_nir(model, peer="norse", dt=dt))
    stim = np.tile(np.array([-0.8, 0.3, 0.9])[:, None, None], (1, 200, 1))
    ours = model.predict(stim, verbose=0) > 0
    theirs = run_peer("run", "norse", path, stim, tmp_path, dt)[0] > 0
    assert ours.sum() > 500
    np.testing.assert_array_equal(delayed(theirs), ours)


def run(network, x, dt):
    return kn.NengoModel(network, dt=dt, seed=0).predict(x, verbose=0)


@pytest.mark.parametrize("peer, dt", [("norse", 1e-3), ("snntorch", 1e-4)])
def test_peer_export_reads_back_exactly(peer, dt):
    """from_nir(peer=) inverts to_nir(peer=): the same outputs in keras_nengo."""
    net = small_network()
    x = {"stim": np.tile(np.array([[[0.4]], [[0.9]]]), (1, 300, 1))}
    graph = knir.to_nir(net, peer=peer, dt=dt)
    actual = run(knir.from_nir(graph, peer=peer, dt=dt), x, dt)
    expected = run(net, x, dt)
    scale = np.abs(expected).max()
    assert scale > 0
    np.testing.assert_allclose(actual, expected, atol=1e-5 * scale, rtol=0)


def test_cubalif_round_trip_with_biases():
    """Without a peer a CubaLIF holds the biases as v_leak: exact."""
    net = small_network(bias=0.7, second_probe=True)
    graph = knir.to_nir(net)
    assert type(graph.nodes["b"]).__name__ == "CubaLIF"
    assert_close(graph.nodes["b"].v_leak, np.full(8, 0.7))
    x = {"stim": np.tile(np.array([[[-0.3]], [[0.6]]]), (1, 200, 1))}
    expected, actual = run(net, x, 1e-3), run(knir.from_nir(graph), x, 1e-3)
    assert np.sum(expected["spikes"]) > 0
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], atol=1e-5, rtol=0)
