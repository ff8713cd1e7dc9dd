"""The benchmark runners behind ``keras-nengo bench`` (structure, not speed)."""

import json
import math

import pytest

from keras_nengo import benchmarks, cli

# small enough that a run is dominated by graph tracing, not by simulation
TINY = benchmarks.BenchSizes(
    n_samples=32,
    n_steps=3,
    batch_size=16,
    repeats=1,
    dimensions=2,
    neurons_per_d=10,
    ff_neurons=20,
    jacobian_batch=4,
    jacobian_steps=3,
    jacobian_neurons=10,
    logger_samples=64,
    logger_epochs=2,
    logger_rounds=1,
    memory_networks=(),
)

ROW_KEYS = {"network", "figure", "keras_nengo", "baseline", "ratio", "target", "met"}


def assert_positive_finite(value):
    assert math.isfinite(value) and value > 0, value


def test_run_benchmarks_report_and_table():
    lines = []
    report = benchmarks.run_benchmarks(
        networks=["integrator"], sizes=TINY, log=lines.append
    )
    assert lines == ["integrator: fit/predict throughput", "integrator: jacobian"]
    assert report["machine"]["cpu_count"] >= 1
    assert report["machine"]["versions"]["nengo_dl"] == "3.6.0"
    assert report["sizes"]["dimensions"] == 2
    assert_positive_finite(report["seconds"])
    figures = [row["figure"] for row in report["rows"]]
    assert figures == [
        "fit samples/s",
        "predict samples/s",
        "jacobian ms vs loop",
        "jacobian ms vs batch_jacobian",
    ]
    for row in report["rows"]:
        assert set(row) >= ROW_KEYS
        assert row["network"] == "integrator"
        for key in ("keras_nengo", "baseline", "ratio"):
            assert_positive_finite(row[key])
        assert row["target"] is not None
    # out_dim 2 < 8: the "20x faster than the loop" target does not apply
    assert report["rows"][2]["met"] is None
    assert report["rows"][3]["met"] in (True, False)
    assert json.loads(json.dumps(report)) == report

    table = benchmarks.format_table(report).splitlines()
    assert table[0].startswith("| network | figure | keras_nengo | nengo_dl/baseline")
    assert len(table) == 2 + len(report["rows"])
    assert all(line.count("|") == 8 for line in table)
    assert "| integrator | fit samples/s |" in table[2]


def test_logger_overhead_figures():
    overhead = benchmarks.logger_overhead(
        n_samples=64, batch_size=16, epochs=2, rounds=1
    )
    for key in ("with", "without", "ratio"):
        assert_positive_finite(overhead[key])
    assert math.isclose(overhead["overhead_percent"], 100 * (overhead["ratio"] - 1))


@pytest.mark.slow
def test_memory_subprocesses():
    used = benchmarks.memory("integrator", TINY)
    for side in ("keras_nengo", "nengo_dl"):
        assert_positive_finite(used[side]["build_mib"])
        assert used[side]["peak_mib"] >= used[side]["build_mib"]
        assert used[side]["growth_mib"] >= 0


def test_unknown_network_raises():
    with pytest.raises(ValueError, match="Received: networks=\\['nope'\\]"):
        benchmarks.run_benchmarks(networks=["nope"], sizes=TINY)
    with pytest.raises(ValueError, match="Received: network='nope'"):
        benchmarks.build_network("nope")


def test_cli_bench_help(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["bench", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--quick", "--json PATH", "--networks"):
        assert option in out


def test_cli_bench_rejects_unknown_network(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["bench", "--networks", "tutorial,nope"])
    assert info.value.code == 2
    assert "unknown benchmark networks ['nope']" in capsys.readouterr().err
