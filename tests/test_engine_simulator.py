"""keras_nengo.Simulator against nengo.Simulator and nengo_dl.Simulator.

Nengo's own backend suite runs on it too (``tests/nengo_suite``); these tests
cover what that suite takes for granted: runs in pieces continue one run,
probe sampling, built parameters, reset with a new seed, and the errors.
"""

import pickle
import warnings

import nengo
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_close
from nengo.exceptions import (
    ReadonlyError,
    SimulationError,
    SimulatorClosed,
    ValidationError,
)

import keras_nengo as kn
from keras_nengo._compat import nengo_dl

SEED = 3
# rate outputs against nengo.Simulator (float64): relative, as DESIGN §4 states
TOLERANCES = dict(
    float32=dict(rtol=1e-5, atol=1e-6), float64=dict(rtol=1e-10, atol=1e-12)
)


def network(neuron_type, noise=True):
    """A function Node, a noise Process Node (or a constant) into an Ensemble."""
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(lambda t: np.sin(20 * t), label="stim")
        process = nengo.processes.WhiteNoise() if noise else [0.3]
        noise = nengo.Node(process, size_out=1, label="noise")
        ens = nengo.Ensemble(30, 1, neuron_type=neuron_type, label="ens")
        nengo.Connection(stim, ens)
        nengo.Connection(noise, ens, transform=0.1, synapse=None)
        out = nengo.Node(size_in=1, label="out")
        net.conn = nengo.Connection(ens, out, synapse=0.01)
        net.ens = ens
        net.p = dict(
            out=nengo.Probe(out, label="p_out"),
            noise=nengo.Probe(noise, label="p_noise"),
            spikes=nengo.Probe(ens.neurons, sample_every=0.003, label="p_spikes"),
            weights=nengo.Probe(net.conn, "weights", sample_every=0.01),
        )
    return net


def run_in_pieces(sim):
    """53 steps: run(), run_steps() and step() after one another."""
    sim.run(0.02)
    sim.run_steps(30)
    for _ in range(3):
        sim.step()


@pytest.fixture(scope="module")
def lif_runs():
    net = network(nengo.LIF())
    with kn.Simulator(net, seed=SEED) as sim:
        run_in_pieces(sim)
    with nengo_dl.Simulator(net, seed=SEED, progress_bar=False) as ref:
        ref.run_steps(53)
    return net, sim, ref


def test_runs_in_pieces_equal_one_nengo_dl_run(lif_runs):
    net, sim, ref = lif_runs
    assert sim.n_steps == 53 and sim.time == pytest.approx(0.053)
    assert sim.closed
    for name, probe in net.p.items():
        assert sim.data[probe].shape == ref.data[probe].shape, name
        assert_close(sim.data[probe], ref.data[probe], "weights32")
    assert np.abs(sim.data[net.p["out"]]).max() > 0.1
    assert sim.data[net.p["spikes"]].max() > 0  # neurons spiked


def test_trange_and_sampling_as_in_nengo(lif_runs):
    net, sim, _ = lif_runs
    with nengo.Simulator(net, seed=SEED, progress_bar=False) as nengo_sim:
        nengo_sim.run_steps(53)
    assert_close(sim.trange(), nengo_sim.trange())
    assert_close(sim.trange(sample_every=0.003), nengo_sim.trange(sample_every=0.003))
    for probe in net.p.values():
        assert sim.data[probe].shape == nengo_sim.data[probe].shape
    with pytest.warns(DeprecationWarning, match="sample_every"):
        assert_close(sim.trange(dt=0.01), nengo_sim.trange(sample_every=0.01))
    with pytest.raises(ValidationError, match="both `dt` and `sample_every`"):
        sim.trange(dt=0.01, sample_every=0.01)


def test_built_parameters_equal_nengo(lif_runs):
    # built in float32 (keras_nengo's default precision), Nengo in float64
    net, sim, _ = lif_runs
    with nengo.Simulator(net, seed=SEED, progress_bar=False) as nengo_sim:
        pass
    for attr in ("encoders", "gain", "bias", "max_rates", "intercepts"):
        ours, expected = sim.data[net.ens], nengo_sim.data[net.ens]
        assert_close(getattr(ours, attr), getattr(expected, attr), "weights32")
    assert_close(
        sim.data[net.conn].weights, nengo_sim.data[net.conn].weights, "weights32"
    )
    assert net.p["out"] in sim.data and len(sim.data) == len(nengo_sim.data)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rate_network_equals_nengo(dtype):
    net = network(nengo.LIFRate(), noise=False)
    with kn.Simulator(net, seed=SEED, dtype=dtype) as sim:
        run_in_pieces(sim)
    with nengo.Simulator(net, seed=SEED, progress_bar=False) as ref:
        ref.run_steps(53)
    rates = ref.data[net.p["spikes"]]
    assert rates.max() > 10
    for probe in net.p.values():
        expected = ref.data[probe]
        np.testing.assert_allclose(sim.data[probe], expected, **TOLERANCES[dtype])


def test_reset_returns_to_time_zero_and_a_new_seed_draws_new_noise():
    net = network(nengo.LIF())
    probes = (net.p["out"], net.p["noise"])
    with kn.Simulator(net, seed=SEED) as sim:
        sim.run_steps(20)
        first = [sim.data[p] for p in probes]
        encoders = sim.data[net.ens].encoders
        sim.reset()
        assert sim.n_steps == 0 and len(sim.data[probes[0]]) == 0
        sim.run_steps(20)
        again = [sim.data[p] for p in probes]
        sim.reset(seed=SEED + 1)
        sim.run_steps(20)
        reseeded = [sim.data[p] for p in probes]
        assert sim.seed == SEED + 1
        assert_close(sim.data[net.ens].encoders, encoders)
    for value, expected in zip(again, first):
        assert_close(value, expected)
    with nengo_dl.Simulator(net, seed=SEED + 1, progress_bar=False) as ref:
        ref.run_steps(20)
    for value, probe in zip(reseeded, probes):
        assert_close(value, ref.data[probe], "weights32")
    assert not np.allclose(reseeded[1], first[1])


def test_reset_replays_processes_run_in_the_graph():
    """Ensemble noise (a Process NengoDL steps in Python) restarts on reset."""
    with nengo.Network(seed=0) as net:
        ens = nengo.Ensemble(10, 1, noise=nengo.processes.WhiteNoise(), label="ens")
        probe = nengo.Probe(ens.neurons)
    with kn.Simulator(net, seed=SEED) as sim:
        sim.run_steps(20)
        first = sim.data[probe]
        sim.reset()
        sim.run_steps(20)
    with nengo_dl.Simulator(net, seed=SEED, progress_bar=False) as ref:
        ref.run_steps(20)
    assert first.max() > 0
    assert_close(first, ref.data[probe], "weights32")
    assert_close(sim.data[probe], first)


def test_clear_probes_keeps_the_state():
    net = network(nengo.LIF())
    probe = net.p["out"]
    with kn.Simulator(net, seed=SEED) as sim:
        sim.run_steps(10)
        whole = sim.data[probe]
        sim.clear_probes()
        assert sim.data[probe].shape == (0,) and sim.n_steps == 10
        sim.run_steps(5)
    with nengo_dl.Simulator(net, seed=SEED, progress_bar=False) as ref:
        ref.run_steps(15)
    assert_close(whole, ref.data[probe][:10], "weights32")
    assert_close(sim.data[probe], ref.data[probe][10:], "weights32")


def test_notebook_tensor_node_network_runs_as_in_nengo_dl():
    """NengoDL's tensorflow-models notebook, first cell, with kn.Simulator."""
    with nengo.Network() as net:
        node = nengo_dl.TensorNode(lambda t: tf.reshape(tf.sin(t), (1, 1)))
        probe = nengo.Probe(node)
    with kn.Simulator(net, seed=0) as sim:
        sim.run(5.0)
    with nengo_dl.Simulator(net, seed=0, progress_bar=False) as ref:
        ref.run(5.0)
    assert sim.data[probe].shape == (5000, 1)
    assert_close(sim.data[probe], ref.data[probe])
    assert_close(sim.trange(), ref.trange())


# -- errors ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def empty_network():
    with nengo.Network() as net:
        nengo.Ensemble(5, 1)
    return net


def test_closed_simulator_refuses_to_run_and_to_reopen(empty_network):
    with kn.Simulator(empty_network) as sim:
        sim.step()
    assert sim.closed
    for action, call in [
        ("run", lambda: sim.run(0.01)),
        ("run", sim.step),
        ("reset", sim.reset),
    ]:
        with pytest.raises(SimulatorClosed, match=f"Cannot {action}: .* is closed"):
            call()
    with pytest.raises(SimulatorClosed, match="re-open after the simulator is closed"):
        with sim:
            pass


def test_run_length_errors(empty_network):
    with kn.Simulator(empty_network) as sim:
        with pytest.raises(
            ValidationError, match=r"Must be positive.*time_in_seconds=-0.001"
        ):
            sim.run(-0.001)
        with pytest.raises(ValueError, match=r"whole number.*Received: steps=2.5"):
            sim.run_steps(2.5)
        with pytest.warns(UserWarning, match="runs 0 steps"):
            sim.run(0.0004)
        sim.run(0.0006)  # rounds to one step, as in Nengo
        assert sim.n_steps == 1
        with pytest.raises(ReadonlyError, match="dt"):
            sim.dt = 0.01


def test_construction_errors(empty_network):
    with pytest.raises(TypeError, match=r"needs a nengo.Network.*Received: network="):
        kn.Simulator(nengo.Ensemble)
    with pytest.raises(ValueError, match=r"prebuilt Nengo model.*Received: model="):
        kn.Simulator(None, model=nengo.builder.Model())
    with pytest.raises(ValueError, match=r"dt must be a positive.*Received: dt=0"):
        kn.Simulator(empty_network, dt=0)


def test_pickling_is_refused_and_deleting_an_open_simulator_warns(empty_network):
    sim = kn.Simulator(empty_network, progress_bar=False, optimize=False)
    with pytest.raises(NotImplementedError, match="cannot be pickled.*network"):
        pickle.dumps(sim)
    with pytest.warns(ResourceWarning, match="deallocated while open"):
        sim.__del__()
    sim.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sim.__del__()


@pytest.mark.parametrize(
    "value, message", [(None, "returned None"), (np.inf, "returned invalid value inf")]
)
def test_node_returning_an_invalid_value_raises_simulation_error(value, message):
    with nengo.Network() as net:
        node = nengo.Node(lambda t: [1.0] if t < 0.003 else value, label="bad")
        nengo.Probe(node)
    with kn.Simulator(net) as sim:
        sim.run_steps(2)
        with pytest.raises(
            SimulationError,
            match=f"failed while simulating: Function .<lambda>. {message}",
        ):
            sim.run_steps(5)
        # the failed run left the time and data as they were
        assert sim.n_steps == 2
