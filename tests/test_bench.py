"""keras_nengo.bench: the references' maths and the report's structure (not speed)."""

import json
import math

import nengo
import numpy as np
import pytest
import tensorflow as tf

import keras_nengo as kn
from keras_nengo import bench, cli
from keras_nengo.bench import isolated, logger, runners
from keras_nengo.bench.networks import BenchNetwork, feedforward_network
from keras_nengo.bench.references import Reference

# small enough that a run is dominated by graph tracing, not by simulation
TINY = bench.BenchSizes(
    n_samples=32,
    n_steps=3,
    batch_size=16,
    repeats=1,
    dimensions=2,
    neurons_per_d=10,
    ff_neurons=20,
    linear_sizes=(8,),
    spa_dimensions=4,
    jacobian_batch=4,
    jacobian_steps=3,
    jacobian_neurons=10,
    logger_samples=64,
    logger_epochs=2,
    logger_rounds=1,
    memory_networks=(),
    jit_networks=(),
)

ROW_KEYS = {"network", "figure", "keras_nengo", "baseline", "ratio", "target", "met"}


def assert_positive_finite(value):
    assert math.isfinite(value) and value > 0, value


def recurrent_network():
    """An integrator whose neurons fire at rest (so the check is not vacuous)."""
    with nengo.Network(seed=1) as net:
        stim = nengo.Node(np.zeros(2), label="stim")
        ens = nengo.Ensemble(30, 2, label="ens")
        out = nengo.Node(size_in=2, label="out")
        nengo.Connection(stim, ens, transform=0.5, synapse=0.005)
        nengo.Connection(ens, ens, synapse=0.01)
        nengo.Connection(ens[0], out[1], synapse=None)
        probe = nengo.Probe(out, label="p")
    return BenchNetwork(net, [stim], probe, n_steps=6)


def cases():
    yield "tutorial", bench.build_network("tutorial", TINY)
    yield "ff_2x1000", bench.build_network("ff_2x1000", TINY)
    yield "linear_lif_8", bench.build_network("linear_lif_8", TINY)
    yield "spa_cconv2", bench.build_network("spa_cconv2", TINY)
    net = feedforward_network(n_neurons=20, dimensions=2, synapse=0.005)
    yield "ff_synapse", BenchNetwork(net, [net.stim], net.p_out, n_steps=5)
    yield "recurrent", recurrent_network()


@pytest.mark.parametrize(
    "name, network", list(cases()), ids=[name for name, _ in cases()]
)
def test_reference_equals_model(name, network):
    """Same forward output (training mode) and same loss gradients as NengoModel."""
    n_steps = network.n_steps or 4
    x, y = bench.bench_data(network, 4, n_steps)
    model = kn.NengoModel(
        network.network, inputs=network.inputs, outputs=[network.output]
    )
    model.compile(optimizer=tf.keras.optimizers.SGD(1e-4), loss="mse")
    reference = Reference(model, network.inputs, network.output, 1e-4)
    data = x if len(x) > 1 else x[0]
    expected = model(
        tf.nest.map_structure(lambda v: tf.constant(v, tf.float32), data),
        training=True,
    ).numpy()
    assert np.abs(expected).max() > 0, "a vacuous check: the output is zero"
    np.testing.assert_allclose(reference(x).numpy(), expected, atol=1e-5, rtol=1e-4)
    gradients = reference.gradients(x, y)
    for weight, value in model.gradients(data, y).items():
        scale = np.abs(value.numpy()).max() + 1e-12
        np.testing.assert_allclose(
            gradients[weight].numpy() / scale, value.numpy() / scale, atol=1e-4
        )


def test_reference_fit_is_sgd():
    network = bench.build_network("ff_2x1000", TINY)
    model = kn.NengoModel(
        network.network, inputs=network.inputs, outputs=[network.output]
    )
    x, y = bench.bench_data(network, 8, 1)
    reference = Reference(model, network.inputs, network.output, 1e-3)
    before = {name: v.numpy() for name, v in reference.variables.items()}
    gradients = reference.gradients(x, y)
    reference.fit(reference.batches(x, y, batch_size=8))
    for name, gradient in gradients.items():
        np.testing.assert_allclose(
            reference.variables[name].numpy(),
            before[name] - 1e-3 * gradient.numpy(),
            rtol=1e-5,
            atol=1e-7,
        )


def test_run_benchmarks_report_and_table():
    lines = []
    report = bench.run_benchmarks(networks=["integrator"], sizes=TINY, log=lines.append)
    assert lines == [
        "integrator: fit/predict vs nengo_dl and the reference",
        "integrator: jacobian",
    ]
    assert report["machine"]["cpu_count"] >= 1
    assert report["machine"]["versions"]["nengo_dl"] == "3.6.0"
    assert report["sizes"]["dimensions"] == 2
    assert_positive_finite(report["seconds"])
    figures = [row["figure"] for row in report["rows"]]
    assert figures == [
        "fit samples/s",
        "predict samples/s",
        "fit ms/batch vs reference",
        "jacobian ms vs loop",
        "jacobian ms vs batch_jacobian",
    ]
    for row in report["rows"]:
        assert set(row) >= ROW_KEYS
        assert row["network"] == "integrator"
        for key in ("keras_nengo", "baseline", "ratio"):
            assert_positive_finite(row[key])
        assert row["target"] is not None
    assert report["rows"][0]["skipped_batches"] == 0
    # one Dense layer through Keras on the same data, against the same baselines
    for row in report["rows"][:3]:
        assert_positive_finite(row["keras_floor_ratio"])
    # out_dim 2 < 8: the "20x faster than the loop" target does not apply
    assert report["rows"][3]["met"] is None
    assert report["rows"][4]["met"] in (True, False)
    assert json.loads(json.dumps(report)) == report

    table = bench.format_table(report).splitlines()
    assert table[0].startswith("| network | figure | keras_nengo | baseline")
    assert len(table) == 2 + len(report["rows"])
    assert all(line.count("|") == 8 for line in table)
    assert "| integrator | fit samples/s |" in table[2]
    assert "(one Dense layer: " in table[2]


def test_error_text_becomes_the_value():
    row = bench.report.row(
        "n", "fit ms/batch jit_compile vs reference jit", "ValueError: no", 2.0
    )
    assert row["ratio"] is None and row["met"] is False
    assert "ValueError: no" in bench.format_table({"rows": [row]})
    assert runners.error_text(ValueError("first\nsecond")) == "ValueError: first"
    xla = ValueError("Graph execution error:\n\nDetected unsupported operations: X")
    assert runners.error_text(xla) == "ValueError: Detected unsupported operations: X"


def test_jit_fit_records_keras_nengo_or_its_error():
    result = runners.jit_fit(bench.build_network("tutorial", TINY), TINY)
    assert isinstance(result["keras_nengo"], (float, str))
    assert_positive_finite(result["reference"])


def test_logger_figures():
    overhead = logger.logger_overhead(n_samples=64, batch_size=16, epochs=2, rounds=1)
    fresh = logger.fresh_logger_fit(n_samples=32, batch_size=16, repeats=1)
    for figures in (overhead, fresh):
        for key in ("with", "without", "ratio"):
            assert_positive_finite(figures[key])
        assert math.isclose(figures["overhead_percent"], 100 * (figures["ratio"] - 1))


def test_peers_missing_is_a_note(monkeypatch):
    from keras_nengo.bench.peers import peer_step_seconds

    # CI exports the peers' virtualenv for the slow stage; here no peer exists
    monkeypatch.delenv("KERAS_NENGO_PEERS_PYTHON", raising=False)
    value = peer_step_seconds("no_such_snn_library", 4)
    assert value == "not installed (no_such_snn_library)"


@pytest.mark.slow
def test_subprocess_figures():
    used = isolated.memory("integrator", TINY)
    for side in ("keras_nengo", "nengo_dl"):
        assert_positive_finite(used[side]["build_mib"])
        assert used[side]["peak_mib"] >= used[side]["build_mib"]
    seconds = isolated.first_calls("spa_cconv2", TINY)
    assert sorted(seconds) == sorted(
        (kind, side)
        for kind in ("fit", "predict")
        for side in ("keras_nengo", "nengo_dl")
    )
    for value in seconds.values():
        assert_positive_finite(value)


def test_unknown_network_raises():
    with pytest.raises(ValueError, match="Received: networks=\\['nope'\\]"):
        bench.run_benchmarks(networks=["nope"], sizes=TINY)
    with pytest.raises(ValueError, match="Received: network='nope'"):
        bench.build_network("nope")


def test_cli_bench_help(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["bench", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--quick", "--json PATH", "--networks", "--peers"):
        assert option in out


def test_cli_bench_rejects_unknown_network(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["bench", "--networks", "tutorial,nope"])
    assert info.value.code == 2
    assert "unknown benchmark networks ['nope']" in capsys.readouterr().err
