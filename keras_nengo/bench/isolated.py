"""Figures that need a fresh process: ``fit`` memory and first-call time.

``python -m keras_nengo.bench.isolated FIGURE SIDE NETWORK SIZES`` runs one
side in this process and prints one JSON line; `memory` and `first_calls`
start those processes and collect the lines.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time

from keras_nengo.bench.networks import (
    FULL,
    BenchSizes,
    bench_data,
    build_network,
    data_shape,
)

_SIDES = ("keras_nengo", "nengo_dl")


def _check_side(side):
    if side not in _SIDES:
        raise ValueError(
            f"side must be 'keras_nengo' or 'nengo_dl'. Received: side={side!r}."
        )


def _trainer(side, bench, sizes):
    """Build and compile one side; returns ``(fit, predict)`` callables."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from keras_nengo import NengoModel  # pylint: disable=import-outside-toplevel
    from keras_nengo._compat import (  # pylint: disable=import-outside-toplevel
        nengo_dl,
        tf_keras,
    )

    n_samples, n_steps, batch_size = data_shape(bench, sizes)
    x, y = bench_data(bench, n_samples, n_steps)
    # each side gets an optimizer of its Keras (NengoDL's is always tf-keras)
    optimizer = (tf.keras if side == "keras_nengo" else tf_keras).optimizers.SGD(
        bench.learning_rate
    )
    if side == "keras_nengo":
        model = NengoModel(bench.network, inputs=bench.inputs, outputs=[bench.output])
        model.compile(optimizer=optimizer, loss="mse")
        data = x if len(x) > 1 else x[0]
        return (
            lambda: model.fit(data, y, batch_size=batch_size, epochs=1, verbose=0),
            lambda: model.predict(data, batch_size=batch_size, verbose=0),
        )
    sim = nengo_dl.Simulator(
        bench.network, minibatch_size=batch_size, progress_bar=False
    )
    sim.compile(optimizer=optimizer, loss={bench.output: "mse"})
    x_dl = dict(zip(bench.inputs, x))
    return (
        lambda: sim.fit(x_dl, {bench.output: y}, epochs=1, verbose=0),
        lambda: sim.predict(x_dl, verbose=0),
    )


def first_call(side: str, network: str, kind: str, sizes: BenchSizes = FULL) -> dict:
    """Seconds from nothing to the end of the first ``fit`` (or ``predict``).

    Meant for a fresh process (see `first_calls`): includes building the
    network, the simulation graphs and the variables, ``compile`` and tracing,
    after TensorFlow, Nengo and NengoDL are imported and initialised.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    _check_side(side)
    bench = build_network(network, sizes)
    tf.constant(0.0).numpy()
    start = time.perf_counter()
    fit, predict = _trainer(side, bench, sizes)
    (fit if kind == "fit" else predict)()
    return {"seconds": time.perf_counter() - start}


def fit_memory(side: str, network: str, sizes: BenchSizes = FULL) -> dict:
    """Resident memory of one ``fit`` epoch, measured in this process.

    After imports, network build and ``compile`` the current RSS is read and the
    kernel's peak-RSS counter is reset (``/proc/self/clear_refs``); after one
    ``fit`` epoch (which includes tracing) the peak since the reset is read.
    Where the counter cannot be reset, the lifetime peak (``ru_maxrss``) is
    used instead.

    Returns
    -------
    dict
        ``"build_mib"`` (RSS before ``fit``), ``"peak_mib"`` (peak RSS during
        ``fit``), ``"growth_mib"`` (their difference), ``"lifetime_peak_mib"``
        and ``"peak_reset"`` (whether the counter was reset).
    """
    import resource  # pylint: disable=import-outside-toplevel

    _check_side(side)

    def lifetime_peak_mib():
        # Linux reports ru_maxrss in KiB
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    def status_mib(key):
        try:
            with open("/proc/self/status", encoding="ascii") as file:
                for line in file:
                    if line.startswith(key + ":"):
                        return int(line.split()[1]) / 1024.0
        except OSError:
            pass
        return None

    fit, _ = _trainer(side, build_network(network, sizes), sizes)
    build = status_mib("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as file:
            file.write("5")
        reset = build is not None
    except OSError:
        reset = False
    if not reset:
        build = lifetime_peak_mib()
    fit()
    peak = status_mib("VmHWM") if reset else lifetime_peak_mib()
    return {
        "build_mib": build,
        "peak_mib": peak,
        "growth_mib": peak - build,
        "lifetime_peak_mib": lifetime_peak_mib(),
        "peak_reset": reset,
    }


def _start(figure, side, network, sizes, extra=()):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "keras_nengo.bench.isolated",
            figure,
            side,
            network,
            json.dumps(dataclasses.asdict(sizes)),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _collect(process, what):
    out, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(
            f"The {what} subprocess failed (exit code {process.returncode}):\n"
            f"{err[-3000:]}"
        )
    return json.loads(out.strip().splitlines()[-1])


def memory(network: str, sizes: BenchSizes = FULL) -> dict:
    """`fit_memory` of both sides, each in its own fresh process, side by side.

    Peak RSS does not depend on speed, so the two processes run at once.
    """
    processes = {side: _start("memory", side, network, sizes) for side in _SIDES}
    return {
        side: _collect(process, f"{side} memory for {network!r}")
        for side, process in processes.items()
    }


def first_calls(network: str, sizes: BenchSizes = FULL) -> dict:
    """`first_call` for fit and predict on both sides, one fresh process each.

    The processes run one after the other (these are timings).

    Returns ``{(kind, side): seconds}``.
    """
    results = {}
    for kind in ("fit", "predict"):
        for side in _SIDES:
            process = _start("first", side, network, sizes, (kind,))
            what = f"{side} first {kind} for {network!r}"
            results[(kind, side)] = _collect(process, what)["seconds"]
    return results


def _main(argv):
    figure, side, network, sizes = argv[:4]
    sizes = BenchSizes(
        **{
            key: tuple(value) if isinstance(value, list) else value
            for key, value in json.loads(sizes).items()
        }
    )
    if figure == "memory":
        return fit_memory(side, network, sizes)
    return first_call(side, network, argv[4], sizes)


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    print(json.dumps(_main(sys.argv[1:])))
