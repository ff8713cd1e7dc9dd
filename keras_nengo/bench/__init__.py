"""Benchmarks behind ``keras-nengo bench`` (DESIGN.md section 5).

- `keras_nengo.bench.networks`: the networks, their sizes and data;
- `keras_nengo.bench.references`: the same maths hand-written in TensorFlow;
- `keras_nengo.bench.runners`: side-by-side timed runs;
- `keras_nengo.bench.isolated`: memory and first-call figures (fresh processes);
- `keras_nengo.bench.peers`: optional snnTorch / Norse rows;
- `keras_nengo.bench.report`: `run_benchmarks` and `format_table`.
"""

from keras_nengo.bench.networks import (
    FULL,
    QUICK,
    BenchNetwork,
    BenchSizes,
    bench_data,
    build_network,
    feedforward_network,
    linear_lif_network,
    spa_network,
    tutorial_network,
)
from keras_nengo.bench.report import all_networks, format_table, run_benchmarks

__all__ = [
    "FULL",
    "QUICK",
    "BenchNetwork",
    "BenchSizes",
    "all_networks",
    "bench_data",
    "build_network",
    "feedforward_network",
    "format_table",
    "linear_lif_network",
    "run_benchmarks",
    "spa_network",
    "tutorial_network",
]
