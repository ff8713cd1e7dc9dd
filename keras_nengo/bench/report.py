"""``run_benchmarks``: every figure of DESIGN.md section 5 as a report row.

A row compares keras_nengo with a baseline measured in the same run:
``ratio`` is keras_nengo / baseline for speeds (samples/s, higher is better)
and for times, memory and overheads (lower is better); ``target`` says which.
Where keras_nengo could not run (e.g. ``jit_compile=True`` raising), its value
is the error text and the ratio is None, so the row lights up once it runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
import warnings
from typing import Callable

from keras_nengo.bench import isolated, logger, runners
from keras_nengo.bench.networks import (
    FULL,
    QUICK,
    BenchSizes,
    build_network,
    network_names,
)

#: DESIGN.md section 5: (comparison, bound) on the ratio column
TARGETS = {
    "fit samples/s": (">=", 2.0),
    "predict samples/s": (">=", 2.0),
    "fit ms/batch vs reference": ("<=", 1.5),
    "fit ms/batch jit_compile vs reference jit": ("<=", 1.2),
    "jacobian ms vs loop": (">=", 20.0),
    "jacobian ms vs batch_jacobian": ("<=", 1.0),
    "logger epoch ms": ("<=", 1.05),
    "fresh logger 1-epoch fit ms": ("<=", 1.10),
    "first fit s (build+trace)": ("<=", 1.5),
    "first predict s (build+trace)": ("<=", 1.5),
    "fit RSS growth MiB": ("<=", 1.0),
}

JACOBIAN_NETWORK = "jac_2x200"


def all_networks(sizes: BenchSizes = FULL) -> tuple:
    """Every network name `run_benchmarks` accepts at ``sizes``."""
    return network_names(sizes) + (JACOBIAN_NETWORK,)


def machine_info() -> dict:
    """CPU count, platform, load average and the versions of the stack."""
    import nengo  # pylint: disable=import-outside-toplevel
    import nengo_dl  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    import tf_keras  # pylint: disable=import-outside-toplevel

    import keras_nengo  # pylint: disable=import-outside-toplevel

    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "load_average": list(os.getloadavg()),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "versions": {
            "keras_nengo": keras_nengo.__version__,
            "tensorflow": tf.__version__,
            "tf_keras": tf_keras.__version__,
            "nengo": nengo.__version__,
            "nengo_dl": nengo_dl.__version__,
            "numpy": np.__version__,
        },
    }


def row(
    network, figure, keras_nengo, baseline, applies=True, speedup=False, **extra
) -> dict:
    """One report row; ``keras_nengo``/``baseline`` are numbers or error texts.

    The ratio is keras_nengo / baseline, or baseline / keras_nengo with
    ``speedup`` (times where keras_nengo should be the faster one).
    """
    comparison, bound = TARGETS.get(figure, (None, None))
    numbers = all(isinstance(v, (int, float)) for v in (keras_nengo, baseline))
    ratio = None
    if numbers and baseline and keras_nengo:
        ratio = float(keras_nengo) / float(baseline)
        ratio = 1.0 / ratio if speedup else ratio
    met = None
    if comparison is not None and applies:
        if ratio is not None:
            met = bool(ratio >= bound if comparison == ">=" else ratio <= bound)
        elif isinstance(keras_nengo, str):
            met = False
    result = {
        "network": network,
        "figure": figure,
        "keras_nengo": (
            keras_nengo if isinstance(keras_nengo, str) else float(keras_nengo)
        ),
        "baseline": baseline if isinstance(baseline, str) else float(baseline),
        "ratio": ratio,
        "target": None if comparison is None else f"{comparison} {bound:g}x",
        "met": met,
    }
    result.update(extra)
    return result


def _jacobian_rows(network, seconds, out_dim):
    return [
        row(
            network,
            "jacobian ms vs loop",
            1e3 * seconds["jacobian"],
            1e3 * seconds["loop"],
            applies=out_dim >= 8,
            speedup=True,
            out_dim=out_dim,
        ),
        row(
            network,
            "jacobian ms vs batch_jacobian",
            1e3 * seconds["jacobian"],
            1e3 * seconds["batch_jacobian"],
            out_dim=out_dim,
        ),
    ]


def _selected(name, names):
    return names is None or name in names


def _fit_rows(name, bench, sizes):
    figures = runners.throughput(bench, sizes)
    seconds, samples = figures["seconds"], figures["n_samples"]
    batches = samples // figures["batch_size"]
    extra = {
        "shape": [samples, figures["n_steps"], figures["batch_size"]],
        "skipped_batches": figures["skipped"],
    }
    rows = [
        row(
            name,
            f"{kind} samples/s",
            samples / seconds[(kind, "keras_nengo")],
            samples / seconds[(kind, "nengo_dl")],
            # the same ratio for one Dense layer: the most Keras allows here
            keras_floor_ratio=seconds[(kind, "nengo_dl")]
            / seconds[(kind, "keras_floor")],
            **extra,
        )
        for kind in ("fit", "predict")
    ]
    reference = seconds.get(("fit", "reference"), figures["reference_error"])
    if not isinstance(reference, str):
        reference = 1e3 * reference / batches
    rows.append(
        row(
            name,
            "fit ms/batch vs reference",
            1e3
            * seconds.get(
                ("fit_batched", "keras_nengo"), seconds[("fit", "keras_nengo")]
            )
            / batches,
            reference,
            keras_floor_ratio=(
                None
                if isinstance(reference, str)
                else 1e3 * seconds[("fit_batched", "keras_floor")] / batches / reference
            ),
            **extra,
        )
    )
    return rows


def _jit_row(name, bench, sizes):
    result = runners.jit_fit(bench, sizes)
    value = result["keras_nengo"]
    if not isinstance(value, str):
        value = 1e3 * value / result["batches"]
    return row(
        name,
        "fit ms/batch jit_compile vs reference jit",
        value,
        1e3 * result["reference"] / result["batches"],
    )


def _first_call_rows(name, sizes):
    seconds = isolated.first_calls(name, sizes)
    return [
        row(
            name,
            f"first {kind} s (build+trace)",
            seconds[(kind, "keras_nengo")],
            seconds[(kind, "nengo_dl")],
        )
        for kind in ("fit", "predict")
    ]


def _memory_rows(name, sizes):
    used = isolated.memory(name, sizes)
    kn, dl = used["keras_nengo"], used["nengo_dl"]
    return [
        row(name, "fit RSS growth MiB", kn["growth_mib"], dl["growth_mib"]),
        row(
            name,
            "fit peak RSS MiB",
            kn["peak_mib"],
            dl["peak_mib"],
            details={"keras_nengo": kn, "nengo_dl": dl},
        ),
    ]


def _peer_rows(name, fit_row, n):
    from keras_nengo.bench.peers import (  # pylint: disable=import-outside-toplevel
        PEERS,
        peer_step_seconds,
    )

    rows = []
    for library in PEERS:
        seconds = peer_step_seconds(library, n)
        baseline = seconds if isinstance(seconds, str) else 1e3 * seconds
        rows.append(
            row(name, f"fit ms/batch vs {library}", fit_row["keras_nengo"], baseline)
        )
    return rows


def _logger_rows(sizes):
    overhead = logger.logger_overhead(
        sizes.logger_samples, sizes.batch_size, sizes.logger_epochs, sizes.logger_rounds
    )
    fresh = logger.fresh_logger_fit(
        sizes.logger_samples // 2, sizes.batch_size, sizes.repeats
    )
    return [
        row(
            "tutorial",
            "logger epoch ms",
            1e3 * overhead["with"],
            1e3 * overhead["without"],
            overhead_percent=overhead["overhead_percent"],
        ),
        row(
            "tutorial",
            "fresh logger 1-epoch fit ms",
            1e3 * fresh["with"],
            1e3 * fresh["without"],
            overhead_percent=fresh["overhead_percent"],
        ),
    ]


def _network_rows(name, sizes, log, peers):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from keras_nengo import NengoModel  # pylint: disable=import-outside-toplevel

    if name == JACOBIAN_NETWORK:
        log(f"{name}: jacobian")
        seconds = runners.benchmark_jacobian(
            n_neurons=sizes.jacobian_neurons,
            batch=sizes.jacobian_batch,
            n_steps=sizes.jacobian_steps,
            repeats=sizes.repeats,
        )
        return _jacobian_rows(name, seconds, out_dim=8)

    log(f"{name}: fit/predict vs nengo_dl and the reference")
    bench = build_network(name, sizes)
    rows = _fit_rows(name, bench, sizes)
    tf.keras.backend.clear_session()
    if _selected(name, sizes.jit_networks):
        log(f"{name}: jit_compile")
        rows.append(_jit_row(name, build_network(name, sizes), sizes))
        tf.keras.backend.clear_session()
    if peers and name.startswith("linear_lif_"):
        log(f"{name}: peers")
        rows += _peer_rows(name, rows[2], int(name.rsplit("_", 1)[1]))
    if name == "spa_cconv2":
        log(f"{name}: first fit/predict (subprocesses)")
        rows += _first_call_rows(name, sizes)
    if _selected(name, sizes.jacobian_networks) and not name.startswith("linear"):
        log(f"{name}: jacobian")
        model = NengoModel(bench.network, inputs=bench.inputs, outputs=[bench.output])
        x, _ = runners.bench_data(bench, sizes.jacobian_batch, sizes.jacobian_steps)
        x = {n: tf.constant(v, tf.float32) for n, v in zip(model.input_names, x)}
        seconds = runners.jacobian_times(model, x, repeats=sizes.repeats)
        rows += _jacobian_rows(name, seconds, out_dim=int(bench.output.size_in))
        tf.keras.backend.clear_session()
    if name == "tutorial":
        log(f"{name}: JacobianNormLogger overhead")
        rows += _logger_rows(sizes)
        tf.keras.backend.clear_session()
    if _selected(name, sizes.memory_networks):
        log(f"{name}: fit memory (subprocesses)")
        rows += _memory_rows(name, sizes)
    return rows


def run_benchmarks(
    networks: list[str] | None = None,
    quick: bool = False,
    sizes: BenchSizes | None = None,
    log: Callable[[str], None] | None = None,
    peers: bool = False,
) -> dict:
    """Run the section 5 benchmarks (what ``keras-nengo bench`` prints).

    Parameters
    ----------
    networks : list of str or None
        Names from `all_networks` (None: all).
    quick : bool
        Use the `QUICK` sizes instead of `FULL`.
    sizes : BenchSizes or None
        Explicit sizes (overrides ``quick``).
    log : callable or None
        Called with a progress line before each step.
    peers : bool
        Add snnTorch / Norse rows on the Linear+LIF networks.

    Returns
    -------
    report : dict
        ``"machine"`` (`machine_info`), ``"sizes"``, ``"seconds"`` (wall time)
        and ``"rows"`` (see `row`).

    Raises
    ------
    ValueError
        For an unknown network name.
    """
    if sizes is None:
        sizes = QUICK if quick else FULL
    known = all_networks(sizes)
    networks = list(known) if networks is None else list(networks)
    unknown = [name for name in networks if name not in known]
    if unknown or not networks:
        raise ValueError(
            f"Unknown benchmark networks {unknown}. Expected a non-empty subset of "
            f"{list(known)}. Received: networks={networks!r}."
        )
    log = log or (lambda line: None)
    start = time.perf_counter()
    report = {
        "machine": machine_info(),
        # tuples as lists, so that the report survives a JSON round trip
        "sizes": json.loads(json.dumps(dataclasses.asdict(sizes))),
    }
    rows = []
    with warnings.catch_warnings():
        # NengoDL's integrator/cconv draw gains of -1, for which Nengo warns
        # about non-finite max_rates; that is how NengoDL benchmarks them
        warnings.filterwarnings("ignore", "invalid value encountered in log1p")
        warnings.filterwarnings("ignore", "Non-finite values detected in")
        for name in networks:
            rows += _network_rows(name, sizes, log, peers)
    report["rows"] = rows
    report["seconds"] = time.perf_counter() - start
    return report


def _cell(value):
    return value if isinstance(value, str) else f"{value:.4g}"


def format_table(report: dict) -> str:
    """The rows of a `run_benchmarks` report as a markdown table."""
    lines = [
        "| network | figure | keras_nengo | baseline | ratio | target | met |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for entry in report["rows"]:
        ratio = "n/a" if entry["ratio"] is None else f"{entry['ratio']:.3g}x"
        if "overhead_percent" in entry:
            ratio += f" ({entry['overhead_percent']:+.1f} %)"
        if entry.get("keras_floor_ratio") is not None:
            ratio += f" (one Dense layer: {entry['keras_floor_ratio']:.3g}x)"
        if entry.get("skipped_batches"):
            ratio += f" ({entry['skipped_batches']} batches skipped)"
        met = {None: "-", True: "yes", False: "MISSED"}[entry["met"]]
        cells = [_cell(entry["keras_nengo"]), _cell(entry["baseline"])]
        cells = [cell.replace("|", "/") for cell in cells]
        lines.append(
            f"| {entry['network']} | {entry['figure']} | {cells[0]} | {cells[1]} "
            f"| {ratio} | {entry['target'] or '-'} | {met} |"
        )
    return "\n".join(lines)
