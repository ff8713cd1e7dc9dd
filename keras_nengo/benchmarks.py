"""Reproducible benchmark networks and the runners behind ``keras-nengo bench``.

Every figure compares keras_nengo with a baseline measured in the same run, on
the same network, data and minibatch size, so that the ratios stay meaningful
on a busy machine (the absolute numbers do not). Times are medians over
repeats, after a warm-up call that traces the graphs.

Figures (see DESIGN.md §5 for the targets):

- ``fit samples/s`` and ``predict samples/s``: `NengoModel` vs
  ``nengo_dl.Simulator``; ratio = keras_nengo / nengo_dl (higher is better).
- ``jacobian ms vs loop``: ``model.jacobian(x, wrt="inputs")`` at the last step
  vs one eager ``GradientTape.gradient`` per output unit; ratio = loop /
  jacobian (the speed-up).
- ``jacobian ms vs batch_jacobian``: vs a hand-written ``tf.function`` +
  ``GradientTape.batch_jacobian(experimental_use_pfor=False)``; ratio =
  jacobian / batch_jacobian (lower is better).
- ``logger epoch ms``: a ``fit`` epoch with vs without a default
  `JacobianNormLogger` (fro norm, wrt inputs and weights, 16 probe samples,
  every epoch); an epoch's time is the interval between consecutive
  ``on_epoch_end`` calls (so it includes the logger), the first epoch excluded.
- ``fit RSS growth MiB``: each side runs in its own subprocess (see
  `fit_memory`); the growth is the peak resident set size during one ``fit``
  epoch (tracing included) minus the resident set size right before it, after
  imports, model build and ``compile`` — the memory ``fit`` itself needs.
  ``fit peak RSS MiB`` is that peak itself, for context (it is dominated by
  TensorFlow). Ratio = keras_nengo / nengo_dl (lower is better).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from typing import Callable

import nengo
import numpy as np


def tutorial_network(seed: int = 0, n_neurons: int = 20, tensor_node: bool = False):
    """NengoDL's "coming from Nengo" network: x -> x**2 -> sin(x**2).

    Prepared for training as in the tutorial: all synapses removed, an unfiltered
    output probe ``out_nofilt`` for training and the filtered ``out``
    (synapse 0.04) for spiking tests; only encoders and biases trainable.

    Parameters
    ----------
    seed : int
        Network seed.
    n_neurons : int
        Neurons in each of the two ensembles.
    tensor_node : bool
        If True, also add the tutorial's TensorNode computing ``exp`` of the
        output, probed as ``exp``.

    Returns
    -------
    net : nengo.Network
        The network, with attributes ``stim``, ``square``, ``sin``, ``out_node``,
        ``p_in``, ``p_out``, ``p_out_nofilt`` (and ``p_exp`` with ``tensor_node``).
    """
    from keras_nengo._compat import nengo_dl  # pylint: disable=import-outside-toplevel

    with nengo.Network(seed=seed) as net:
        nengo_dl.configure_settings(trainable=False)
        net.config[nengo.Ensemble].trainable = True
        net.stim = nengo.Node(nengo.processes.WhiteSignal(1, 5, rms=0.3), label="stim")
        net.square = nengo.Ensemble(n_neurons, 1, label="square")
        net.sin = nengo.Ensemble(n_neurons, 1, label="sin")
        net.out_node = nengo.Node(size_in=1, label="output")
        nengo.Connection(net.stim, net.square, synapse=None)
        nengo.Connection(net.square, net.sin, function=np.square, synapse=None)
        nengo.Connection(net.sin, net.out_node, function=np.sin, synapse=None)
        net.p_in = nengo.Probe(net.stim, label="in")
        net.p_out = nengo.Probe(net.out_node, synapse=0.04, label="out")
        net.p_out_nofilt = nengo.Probe(net.out_node, label="out_nofilt")
        if tensor_node:
            import tensorflow as tf  # pylint: disable=import-outside-toplevel

            exp = nengo_dl.TensorNode(
                lambda t, x: tf.exp(x), shape_in=(1,), label="exp"
            )
            nengo.Connection(net.out_node, exp, synapse=None)
            net.p_exp = nengo.Probe(exp, label="exp")
    return net


def feedforward_network(n_neurons: int = 1000, dimensions: int = 4, seed: int = 0):
    """Two ``n_neurons`` LIF ensembles in a feed-forward chain (all trainable).

    Returns the network with attributes ``stim`` (input Node) and ``p_out``
    (unfiltered probe on the output Node).
    """
    with nengo.Network(seed=seed) as net:
        net.stim = nengo.Node(np.zeros(dimensions), label="stim")
        hidden_a = nengo.Ensemble(n_neurons, dimensions, label="hidden_a")
        hidden_b = nengo.Ensemble(n_neurons, dimensions, label="hidden_b")
        out = nengo.Node(size_in=dimensions, label="output")
        nengo.Connection(net.stim, hidden_a, synapse=None)
        nengo.Connection(hidden_a, hidden_b, synapse=0.005)
        nengo.Connection(hidden_b, out, synapse=None)
        net.p_out = nengo.Probe(out, label="out")
    return net


@dataclasses.dataclass(frozen=True)
class BenchSizes:
    """Problem sizes and repeats of one ``keras-nengo bench`` run.

    Parameters
    ----------
    n_samples, n_steps, batch_size : int
        Data of the ``fit``/``predict`` throughput and memory figures
        (``n_samples`` must be a multiple of ``batch_size``, as NengoDL needs).
    repeats : int
        Timed repeats of each throughput and Jacobian figure (medians reported).
    dimensions, neurons_per_d : int
        Size of NengoDL's ``integrator`` and ``cconv`` benchmark networks.
    ff_neurons : int
        Neurons per ensemble of the feed-forward network (``ff_2x1000``).
    jacobian_batch, jacobian_steps : int
        Batch and time steps of the Jacobian figures.
    jacobian_neurons : int
        Neurons per ensemble of `benchmark_jacobian`'s network (``jac_2x200``).
    logger_samples, logger_epochs, logger_rounds : int
        Training data size (one time step, as in NengoDL's tutorial), epochs per
        ``fit`` (the first one excluded) and rounds of `logger_overhead`.
    jacobian_networks, memory_networks : tuple of str or None
        Networks that get the Jacobian / memory figures (None: all).
        ``jac_2x200`` always gets its Jacobian figures.
    """

    n_samples: int = 1024
    n_steps: int = 10
    batch_size: int = 32
    repeats: int = 5
    dimensions: int = 16
    neurons_per_d: int = 64
    ff_neurons: int = 1000
    jacobian_batch: int = 16
    jacobian_steps: int = 10
    jacobian_neurons: int = 200
    logger_samples: int = 4096
    logger_epochs: int = 6
    logger_rounds: int = 3
    jacobian_networks: tuple | None = None
    memory_networks: tuple | None = None


FULL = BenchSizes()
QUICK = BenchSizes(
    n_samples=256,
    repeats=3,
    dimensions=4,
    neurons_per_d=32,
    jacobian_batch=8,
    logger_epochs=3,
    jacobian_networks=("tutorial",),
    memory_networks=("ff_2x1000",),
)


@dataclasses.dataclass
class BenchNetwork:
    """A benchmark network with the input Nodes and the output Probe to use."""

    network: nengo.Network
    inputs: list
    output: nengo.Probe


def _tutorial(sizes):
    net = tutorial_network()
    return BenchNetwork(net, [net.stim], net.p_out_nofilt)


def _integrator(sizes):
    from nengo_dl.benchmarks import integrator

    net = integrator(sizes.dimensions, sizes.neurons_per_d, nengo.LIF())
    return BenchNetwork(net, [net.inp], net.p)


def _cconv(sizes):
    from nengo_dl.benchmarks import cconv

    net = cconv(sizes.dimensions, sizes.neurons_per_d, nengo.LIF())
    return BenchNetwork(net, [net.inp_a, net.inp_b], net.p)


def _feedforward(sizes):
    net = feedforward_network(n_neurons=sizes.ff_neurons)
    return BenchNetwork(net, [net.stim], net.p_out)


# NengoDL's benchmark networks feed their input Nodes constants; here the same
# Nodes are fed from data on both sides
NETWORKS: dict[str, Callable[[BenchSizes], BenchNetwork]] = {
    "tutorial": _tutorial,
    "integrator": _integrator,
    "cconv": _cconv,
    "ff_2x1000": _feedforward,
}
# `benchmark_jacobian`'s 2x200-neuron network (out_dim 8): Jacobian figures only
JACOBIAN_NETWORK = "jac_2x200"
ALL_NETWORKS = tuple(NETWORKS) + (JACOBIAN_NETWORK,)

# DESIGN.md §5: (comparison, bound) on the ratio column
TARGETS = {
    "fit samples/s": (">=", 0.95),
    "predict samples/s": (">=", 0.95),
    "jacobian ms vs loop": (">=", 20.0),
    "jacobian ms vs batch_jacobian": ("<=", 1.2),
    "logger epoch ms": ("<=", 1.05),
    "fit RSS growth MiB": ("<=", 1.1),
}


def build_network(name: str, sizes: BenchSizes = FULL) -> BenchNetwork:
    """Build the benchmark network ``name`` (a key of `NETWORKS`) at ``sizes``."""
    if name not in NETWORKS:
        raise ValueError(
            f"Unknown benchmark network. Expected one of {sorted(NETWORKS)}. "
            f"Received: network={name!r}."
        )
    return NETWORKS[name](sizes)


def _data(bench, n_samples, n_steps, seed=0):
    rng = np.random.RandomState(seed)
    x = [
        rng.uniform(-1, 1, size=(n_samples, n_steps, node.size_out))
        for node in bench.inputs
    ]
    y = rng.uniform(-1, 1, size=(n_samples, n_steps, bench.output.size_in))
    return x, y


def _median_seconds(functions, repeats, warmups=None):
    """Median seconds per call of each function, the timed calls interleaved.

    Interleaving (a, b, a, b, ...) makes the two sides share whatever else the
    machine is doing, so their ratio stays meaningful on a busy machine.
    ``warmups`` maps a name to its number of untimed first calls (default 1).
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    warmups = warmups or {}
    for name, function in functions.items():
        for _ in range(warmups.get(name, 1)):
            function()
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            tf.nest.map_structure(np.asarray, function())
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(values)) for name, values in times.items()}


def throughput(
    network: str | BenchNetwork = "tutorial",
    n_samples: int = 1024,
    n_steps: int = 10,
    batch_size: int = 32,
    repeats: int = 3,
    sizes: BenchSizes = FULL,
) -> dict:
    """``fit``/``predict`` samples per second of NengoModel and nengo_dl.Simulator.

    Both run the same network, input Nodes, output Probe, data and minibatch size
    in the same process; each figure is the median of ``repeats`` calls after one
    warm-up call (which traces the graphs). ``fit`` runs one epoch of SGD with
    MSE loss.

    Parameters
    ----------
    network : str or BenchNetwork
        A key of `NETWORKS` (built at ``sizes``) or a prepared network.
    n_samples, n_steps, batch_size : int
        Data size and minibatch size (``n_samples`` a multiple of it).
    repeats : int
        Timed calls per figure.
    sizes : BenchSizes
        Network sizes used when ``network`` is a name.

    Returns
    -------
    dict
        ``{"fit": {"keras_nengo": s/s, "nengo_dl": s/s, "ratio": kn/dl},
        "predict": {...}}``.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from keras_nengo import NengoModel  # pylint: disable=import-outside-toplevel
    from keras_nengo._compat import (  # pylint: disable=import-outside-toplevel
        nengo_dl,
    )

    bench = build_network(network, sizes) if isinstance(network, str) else network
    x, y = _data(bench, n_samples, n_steps)

    model = NengoModel(bench.network, inputs=bench.inputs, outputs=[bench.output])
    model.compile(optimizer=tf.keras.optimizers.SGD(1e-4), loss="mse")
    x_dl = dict(zip(bench.inputs, x))
    with nengo_dl.Simulator(
        bench.network, minibatch_size=batch_size, progress_bar=False
    ) as sim:
        sim.compile(optimizer=tf.keras.optimizers.SGD(1e-4), loss={bench.output: "mse"})
        seconds = _median_seconds(
            {
                ("fit", "keras_nengo"): lambda: model.fit(
                    x, y, batch_size=batch_size, epochs=1, verbose=0
                ).history,
                ("fit", "nengo_dl"): lambda: sim.fit(
                    x_dl, {bench.output: y}, epochs=1, verbose=0
                ).history,
                ("predict", "keras_nengo"): lambda: model.predict(
                    x, batch_size=batch_size, verbose=0
                ),
                # a dict keyed by every Probe of the network
                ("predict", "nengo_dl"): lambda: list(
                    sim.predict(x_dl, verbose=0).values()
                ),
            },
            repeats,
        )
    results = {"fit": {}, "predict": {}}
    for (kind, side), value in seconds.items():
        results[kind][side] = n_samples / value
    for figures in results.values():
        figures["ratio"] = figures["keras_nengo"] / figures["nengo_dl"]
    return results


def jacobian_times(
    model, x: dict, repeats: int = 5, baselines: bool = True
) -> dict[str, float]:
    """Time ``model.jacobian(x, wrt="inputs")`` against hand-written alternatives.

    The Jacobian of the model's (single) output at the last time step, with
    ``training=True`` (rate approximation).

    Parameters
    ----------
    model : NengoModel
        A model with data inputs and one output.
    x : dict of {str: tf.Tensor}
        ``(batch, n_steps, in_dim)`` per input name.
    repeats : int
        Timed repeats after one warm-up call; medians are reported.
    baselines : bool
        Also time (a) one eager ``GradientTape.gradient`` per output unit and
        (b) ``tf.function`` + ``GradientTape.batch_jacobian`` (pfor fails on
        NengoDL's while loop, so ``experimental_use_pfor=False``).

    Returns
    -------
    seconds : dict of {str: float}
        Median seconds per call for ``"jacobian"`` (and ``"loop"``,
        ``"batch_jacobian"``).
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    layer = model.nengo_layer
    names = list(x)
    out_dim = int(model.output_probes[0].size_in)

    functions = {"jacobian": lambda: model.jacobian(x, wrt="inputs")}
    if baselines:

        def loop():
            rows = []
            for k in range(out_dim):
                with tf.GradientTape() as tape:
                    tape.watch(list(x.values()))
                    value = layer(x, training=True)[0][:, -1, k]
                rows.append(tape.gradient(value, x))
            return {name: tf.stack([row[name] for row in rows], 1) for name in names}

        @tf.function
        def batch_jacobian(x):
            with tf.GradientTape(persistent=True) as tape:
                tape.watch(list(x.values()))
                value = layer(x, training=True)[0][:, -1]
            return {
                name: tape.batch_jacobian(value, x[name], experimental_use_pfor=False)
                for name in names
            }

        functions["batch_jacobian"] = lambda: batch_jacobian(x)
    # traced functions: the second call may still retrace
    seconds = _median_seconds(
        functions, repeats, warmups={"jacobian": 2, "batch_jacobian": 2}
    )
    if baselines:
        # timed apart: an eager call of the layer makes the next traced calls
        # retrace, which interleaving would put into every timed call
        seconds.update(_median_seconds({"loop": loop}, repeats))
    return seconds


def benchmark_jacobian(
    n_neurons: int = 200,
    batch: int = 32,
    out_dim: int = 8,
    in_dim: int = 1,
    n_steps: int = 20,
    repeats: int = 5,
    baselines: bool = True,
) -> dict[str, float]:
    """`jacobian_times` on an input -> LIF -> LIF -> output Node network.

    The network is input (``in_dim``) -> LIF (``n_neurons``) -> LIF
    (``n_neurons``) -> output Node (``out_dim``), float32.

    Parameters
    ----------
    n_neurons, batch, out_dim, in_dim, n_steps : int
        Problem size.
    repeats : int
        Timed repeats after one warm-up call; medians are reported.
    baselines : bool
        Also time the per-output loop and ``batch_jacobian`` (see
        `jacobian_times`).

    Returns
    -------
    seconds : dict of {str: float}
        Median seconds per call for ``"jacobian"`` (and ``"loop"``,
        ``"batch_jacobian"``).
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from keras_nengo.model import (  # pylint: disable=import-outside-toplevel
        NengoModel,
    )

    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.zeros(in_dim), label="stim")
        a = nengo.Ensemble(n_neurons, in_dim, label="a")
        b = nengo.Ensemble(n_neurons, out_dim, label="b")
        out = nengo.Node(size_in=out_dim, label="out")
        nengo.Connection(stim, a, synapse=None)
        nengo.Connection(a, b, transform=np.ones((out_dim, in_dim)), synapse=None)
        nengo.Connection(b, out, synapse=None)
        nengo.Probe(out, label="p")
    model = NengoModel(net)
    x = tf.constant(
        np.random.RandomState(0).uniform(-0.5, 0.5, (batch, n_steps, in_dim)),
        tf.float32,
    )
    return jacobian_times(model, {"stim": x}, repeats=repeats, baselines=baselines)


def logger_overhead(
    n_samples: int = 4096, batch_size: int = 32, epochs: int = 6, rounds: int = 3
) -> dict[str, float]:
    """Epoch time of the tutorial network with and without a JacobianNormLogger.

    The logger has its default settings (fro norm, wrt inputs and weights, every
    epoch) on a 16-sample probe batch, writing to a temporary directory. Each of
    ``rounds`` rounds runs one ``fit`` of ``epochs`` epochs without the logger and
    one with it, on the same compiled model; an epoch's time is the interval
    between consecutive ``on_epoch_end`` calls, the first epoch of every ``fit``
    excluded (it traces).

    Returns
    -------
    dict
        ``"without"`` and ``"with"`` (median seconds per epoch), ``"ratio"``
        (with / without) and ``"overhead_percent"``.
    """
    import tempfile  # pylint: disable=import-outside-toplevel

    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from keras_nengo import NengoModel  # pylint: disable=import-outside-toplevel
    from keras_nengo.callbacks import (  # pylint: disable=import-outside-toplevel
        JacobianNormLogger,
    )

    net = tutorial_network()
    model = NengoModel(net, inputs=[net.stim], outputs=[net.p_out_nofilt])
    model.compile(optimizer=tf.keras.optimizers.RMSprop(1e-3), loss="mse")
    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, size=(n_samples, 1, 1))
    y = np.sin(x**2)

    class EpochEnds(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter())

    def epoch_times(callbacks):
        ends = EpochEnds()
        model.fit(
            x,
            y,
            batch_size=batch_size,
            epochs=epochs,
            verbose=0,
            callbacks=callbacks + [ends],
        )
        return list(np.diff(ends.times))

    times = {"without": [], "with": []}
    with tempfile.TemporaryDirectory() as log_dir:
        for _ in range(rounds):
            times["without"] += epoch_times([])
            logger = JacobianNormLogger(x[:16], log_dir=log_dir)
            times["with"] += epoch_times([logger])
    result = {key: float(np.median(value)) for key, value in times.items()}
    result["ratio"] = result["with"] / result["without"]
    result["overhead_percent"] = 100.0 * (result["ratio"] - 1.0)
    return result


def fit_memory(side: str, network: str, sizes: BenchSizes = FULL) -> dict:
    """Resident memory of one ``fit`` epoch, measured in this process.

    Meant for a fresh subprocess (see `memory`). After imports, network build and
    ``compile`` the current RSS is read and the kernel's peak-RSS counter is reset
    (``/proc/self/clear_refs``); after one ``fit`` epoch (which includes tracing)
    the peak since the reset is read. Where the counter cannot be reset, the
    lifetime peak (``ru_maxrss``) is used instead, which may hide ``fit`` behind
    the peak of importing TensorFlow.

    Parameters
    ----------
    side : {"keras_nengo", "nengo_dl"}
        Train a `NengoModel` or a ``nengo_dl.Simulator``.
    network : str
        A key of `NETWORKS`.
    sizes : BenchSizes
        Network and data sizes.

    Returns
    -------
    dict
        ``"build_mib"`` (RSS before ``fit``), ``"peak_mib"`` (peak RSS during
        ``fit``), ``"growth_mib"`` (their difference), ``"lifetime_peak_mib"``
        (``ru_maxrss``) and ``"peak_reset"`` (whether the counter was reset).
    """
    import resource  # pylint: disable=import-outside-toplevel

    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from keras_nengo import NengoModel  # pylint: disable=import-outside-toplevel
    from keras_nengo._compat import (  # pylint: disable=import-outside-toplevel
        nengo_dl,
    )

    if side not in ("keras_nengo", "nengo_dl"):
        raise ValueError(
            f"side must be 'keras_nengo' or 'nengo_dl'. Received: side={side!r}."
        )

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

    bench = build_network(network, sizes)
    x, y = _data(bench, sizes.n_samples, sizes.n_steps)
    optimizer = tf.keras.optimizers.SGD(1e-4)
    if side == "keras_nengo":
        model = NengoModel(bench.network, inputs=bench.inputs, outputs=[bench.output])
        model.compile(optimizer=optimizer, loss="mse")

        def fit():
            model.fit(x, y, batch_size=sizes.batch_size, epochs=1, verbose=0)

    else:
        sim = nengo_dl.Simulator(
            bench.network, minibatch_size=sizes.batch_size, progress_bar=False
        )
        sim.compile(optimizer=optimizer, loss={bench.output: "mse"})

        def fit():
            sim.fit(dict(zip(bench.inputs, x)), {bench.output: y}, epochs=1, verbose=0)

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


def memory(network: str, sizes: BenchSizes = FULL) -> dict:
    """`fit_memory` of both sides, each in its own fresh Python process.

    The two processes run at the same time (peak RSS does not depend on speed).

    Returns
    -------
    dict
        ``{"keras_nengo": fit_memory(...), "nengo_dl": fit_memory(...)}``.
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    processes = {
        side: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "keras_nengo.benchmarks",
                side,
                network,
                json.dumps(dataclasses.asdict(sizes)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for side in ("keras_nengo", "nengo_dl")
    }
    results = {}
    for side, process in processes.items():
        out, err = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(
                f"The {side} memory subprocess for {network!r} failed "
                f"(exit code {process.returncode}):\n{err[-3000:]}"
            )
        results[side] = json.loads(out.strip().splitlines()[-1])
    return results


def machine_info() -> dict:
    """CPU count, platform, load average and the versions of the stack."""
    import keras_nengo  # pylint: disable=import-outside-toplevel
    import nengo_dl  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    import tf_keras  # pylint: disable=import-outside-toplevel

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


def _row(network, figure, keras_nengo, baseline, ratio, applies=True, **extra):
    comparison, bound = TARGETS.get(figure, (None, None))
    met = None
    if comparison is not None and applies and ratio is not None:
        met = bool(ratio >= bound if comparison == ">=" else ratio <= bound)
    row = {
        "network": network,
        "figure": figure,
        "keras_nengo": float(keras_nengo),
        "baseline": float(baseline),
        "ratio": None if ratio is None else float(ratio),
        "target": None if comparison is None else f"{comparison} {bound:g}x",
        "met": met,
    }
    row.update(extra)
    return row


def _jacobian_rows(network, seconds, out_dim):
    return [
        _row(
            network,
            "jacobian ms vs loop",
            1e3 * seconds["jacobian"],
            1e3 * seconds["loop"],
            seconds["loop"] / seconds["jacobian"],
            applies=out_dim >= 8,
            out_dim=out_dim,
        ),
        _row(
            network,
            "jacobian ms vs batch_jacobian",
            1e3 * seconds["jacobian"],
            1e3 * seconds["batch_jacobian"],
            seconds["jacobian"] / seconds["batch_jacobian"],
            out_dim=out_dim,
        ),
    ]


def _selected(name, names):
    return names is None or name in names


def _jacobian_figures(name, sizes, log):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from keras_nengo import NengoModel  # pylint: disable=import-outside-toplevel

    log(f"{name}: jacobian")
    bench = build_network(name, sizes)
    model = NengoModel(bench.network, inputs=bench.inputs, outputs=[bench.output])
    x, _ = _data(bench, sizes.jacobian_batch, sizes.jacobian_steps)
    x = {
        input_name: tf.constant(value, tf.float32)
        for input_name, value in zip(model.input_names, x)
    }
    seconds = jacobian_times(model, x, repeats=sizes.repeats)
    tf.keras.backend.clear_session()
    return _jacobian_rows(name, seconds, out_dim=int(bench.output.size_in))


def _network_rows(name, sizes, log):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    rows = []
    if name == JACOBIAN_NETWORK:
        log(f"{name}: jacobian")
        seconds = benchmark_jacobian(
            n_neurons=sizes.jacobian_neurons,
            batch=sizes.jacobian_batch,
            n_steps=sizes.jacobian_steps,
            repeats=sizes.repeats,
        )
        return _jacobian_rows(name, seconds, out_dim=8)

    log(f"{name}: fit/predict throughput")
    bench = build_network(name, sizes)
    figures = throughput(
        bench, sizes.n_samples, sizes.n_steps, sizes.batch_size, sizes.repeats
    )
    for kind, values in figures.items():
        rows.append(
            _row(
                name,
                f"{kind} samples/s",
                values["keras_nengo"],
                values["nengo_dl"],
                values["ratio"],
            )
        )
    tf.keras.backend.clear_session()

    if _selected(name, sizes.jacobian_networks):
        rows += _jacobian_figures(name, sizes, log)

    if name == "tutorial":
        log(f"{name}: JacobianNormLogger overhead")
        overhead = logger_overhead(
            sizes.logger_samples,
            sizes.batch_size,
            sizes.logger_epochs,
            sizes.logger_rounds,
        )
        rows.append(
            _row(
                name,
                "logger epoch ms",
                1e3 * overhead["with"],
                1e3 * overhead["without"],
                overhead["ratio"],
                overhead_percent=overhead["overhead_percent"],
            )
        )
        tf.keras.backend.clear_session()

    if _selected(name, sizes.memory_networks):
        log(f"{name}: fit memory (subprocesses)")
        used = memory(name, sizes)
        kn, dl = used["keras_nengo"], used["nengo_dl"]
        rows.append(
            _row(
                name,
                "fit RSS growth MiB",
                kn["growth_mib"],
                dl["growth_mib"],
                kn["growth_mib"] / dl["growth_mib"] if dl["growth_mib"] > 0 else None,
            )
        )
        rows.append(
            _row(
                name,
                "fit peak RSS MiB",
                kn["peak_mib"],
                dl["peak_mib"],
                kn["peak_mib"] / dl["peak_mib"],
                details={"keras_nengo": kn, "nengo_dl": dl},
            )
        )
    return rows


def run_benchmarks(
    networks: list[str] | None = None,
    quick: bool = False,
    sizes: BenchSizes | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Run the §5 benchmarks (what ``keras-nengo bench`` prints).

    Parameters
    ----------
    networks : list of str or None
        Names from `ALL_NETWORKS` (`NETWORKS` plus ``"jac_2x200"``, the
        Jacobian-only network of `benchmark_jacobian`); None runs all.
    quick : bool
        Use the `QUICK` sizes instead of `FULL`.
    sizes : BenchSizes or None
        Explicit sizes (overrides ``quick``).
    log : callable or None
        Called with a progress line before each step.

    Returns
    -------
    report : dict
        ``"machine"`` (`machine_info`), ``"sizes"``, ``"seconds"`` (wall time)
        and ``"rows"``: one dict per figure with ``network``, ``figure``,
        ``keras_nengo``, ``baseline``, ``ratio``, ``target`` (or None) and
        ``met`` (None where no target applies).

    Raises
    ------
    ValueError
        For an unknown network name.
    """
    networks = list(ALL_NETWORKS) if networks is None else list(networks)
    unknown = [name for name in networks if name not in ALL_NETWORKS]
    if unknown or not networks:
        raise ValueError(
            f"Unknown benchmark networks {unknown}. Expected a non-empty subset of "
            f"{list(ALL_NETWORKS)}. Received: networks={networks!r}."
        )
    if sizes is None:
        sizes = QUICK if quick else FULL
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
            rows += _network_rows(name, sizes, log)
    report["rows"] = rows
    report["seconds"] = time.perf_counter() - start
    return report


def format_table(report: dict) -> str:
    """The rows of a `run_benchmarks` report as a markdown table."""
    lines = [
        "| network | figure | keras_nengo | nengo_dl/baseline | ratio | target | met |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for row in report["rows"]:
        ratio = "n/a" if row["ratio"] is None else f"{row['ratio']:.3g}x"
        if "overhead_percent" in row:
            ratio += f" ({row['overhead_percent']:+.1f} %)"
        met = {None: "-", True: "yes", False: "MISSED"}[row["met"]]
        lines.append(
            f"| {row['network']} | {row['figure']} | {row['keras_nengo']:.4g} "
            f"| {row['baseline']:.4g} | {ratio} | {row['target'] or '-'} | {met} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    # the memory subprocess: python -m keras_nengo.benchmarks SIDE NETWORK SIZES
    _side, _network, _sizes = sys.argv[1:4]
    print(json.dumps(fit_memory(_side, _network, BenchSizes(**json.loads(_sizes)))))
