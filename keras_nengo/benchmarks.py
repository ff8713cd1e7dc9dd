"""Reproducible benchmark networks (and, later, their runners)."""

from __future__ import annotations

import time

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


NETWORKS = {
    "tutorial": lambda: _with_probe(tutorial_network(), "p_out_nofilt"),
    "ff_2x1000": feedforward_network,
}


def _with_probe(net, attr):
    net.p_out = getattr(net, attr)
    return net


def _median_rate(function, n_samples, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return n_samples / float(np.median(times))


def throughput(
    network: str = "tutorial",
    n_samples: int = 1024,
    n_steps: int = 10,
    batch_size: int = 32,
    repeats: int = 3,
) -> dict:
    """``fit``/``predict`` samples per second of NengoModel and nengo_dl.Simulator.

    Both run the same network, data and minibatch size in the same process;
    each figure is the median of ``repeats`` calls after one warm-up call (which
    traces the graphs). ``fit`` runs one epoch of SGD with MSE loss.

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

    net = NETWORKS[network]()
    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, size=(n_samples, n_steps, net.stim.size_out))
    y = rng.uniform(-1, 1, size=(n_samples, n_steps, net.p_out.size_in))
    results = {"fit": {}, "predict": {}}

    model = NengoModel(net, inputs=[net.stim], outputs=[net.p_out], seed=0)
    model.compile(optimizer=tf.keras.optimizers.SGD(1e-4), loss="mse")
    fit = lambda: model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    predict = lambda: model.predict(x, batch_size=batch_size, verbose=0)
    fit()
    predict()
    results["fit"]["keras_nengo"] = _median_rate(fit, n_samples, repeats)
    results["predict"]["keras_nengo"] = _median_rate(predict, n_samples, repeats)

    with nengo_dl.Simulator(
        net, minibatch_size=batch_size, seed=0, progress_bar=False
    ) as sim:
        sim.compile(optimizer=tf.keras.optimizers.SGD(1e-4), loss={net.p_out: "mse"})
        fit = lambda: sim.fit({net.stim: x}, {net.p_out: y}, epochs=1, verbose=0)
        predict = lambda: sim.predict({net.stim: x}, verbose=0)
        fit()
        predict()
        results["fit"]["nengo_dl"] = _median_rate(fit, n_samples, repeats)
        results["predict"]["nengo_dl"] = _median_rate(predict, n_samples, repeats)
    for figures in results.values():
        figures["ratio"] = figures["keras_nengo"] / figures["nengo_dl"]
    return results


def benchmark_jacobian(
    n_neurons: int = 200,
    batch: int = 32,
    out_dim: int = 8,
    in_dim: int = 1,
    n_steps: int = 20,
    repeats: int = 5,
    baselines: bool = True,
) -> dict:
    """Time ``model.jacobian(wrt="inputs")`` against hand-written alternatives.

    The network is input (``in_dim``) -> LIF (``n_neurons``) -> LIF
    (``n_neurons``) -> output Node (``out_dim``), run with ``training=True``
    (rate approximation), float32; the Jacobian is taken at the last step.

    Parameters
    ----------
    n_neurons, batch, out_dim, in_dim, n_steps : int
        Problem size.
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
    import nengo  # pylint: disable=import-outside-toplevel

    from keras_nengo.model import (  # pylint: disable=import-outside-toplevel
        NengoModel,
    )
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

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
    layer = model.nengo_layer

    def timed(function):
        function()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            tf.nest.map_structure(lambda t: t.numpy(), function())
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    seconds = {"jacobian": timed(lambda: model.jacobian(x, wrt="stim"))}
    if baselines:

        def loop():
            rows = []
            for k in range(out_dim):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    value = layer({"stim": x}, training=True)[0][:, -1, k]
                rows.append(tape.gradient(value, x))
            return tf.stack(rows, axis=1)

        @tf.function
        def batch_jacobian(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                value = layer({"stim": x}, training=True)[0][:, -1]
            return tape.batch_jacobian(value, x, experimental_use_pfor=False)

        seconds["loop"] = timed(loop)
        seconds["batch_jacobian"] = timed(lambda: batch_jacobian(x))
    return seconds
