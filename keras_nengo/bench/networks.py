"""The benchmark networks, their sizes and their data.

Each network comes as a `BenchNetwork`: the ``nengo.Network`` with the input
Nodes fed from data, the output Probe trained and read, the data shape and the
SGD learning rate that keeps every training batch finite (see `BenchNetwork`).
"""

from __future__ import annotations

import dataclasses
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


def feedforward_network(
    n_neurons: int = 1000, dimensions: int = 8, seed: int = 0, synapse=None
):
    """x -> ``n_neurons`` LIF -> ``n_neurons`` LIF -> output, all trainable.

    Returns the network with attributes ``stim`` (input Node) and ``p_out``
    (unfiltered probe on the output Node). ``synapse`` is the synapse of the
    connection between the two ensembles (None: none, so one time step
    carries the input through to the output).
    """
    with nengo.Network(seed=seed) as net:
        net.stim = nengo.Node(np.zeros(dimensions), label="stim")
        hidden_a = nengo.Ensemble(n_neurons, dimensions, label="hidden_a")
        hidden_b = nengo.Ensemble(n_neurons, dimensions, label="hidden_b")
        out = nengo.Node(size_in=dimensions, label="output")
        nengo.Connection(net.stim, hidden_a, synapse=None)
        nengo.Connection(hidden_a, hidden_b, synapse=synapse)
        nengo.Connection(hidden_b, out, synapse=None)
        net.p_out = nengo.Probe(out, label="out")
    return net


def linear_lif_network(n: int = 512, seed: int = 0):
    """Input(n) -> Linear(n x n) -> n LIF neurons, the spikes probed.

    The shape of the open-neuromorphic SNN training benchmark: a dense weight
    matrix (the only trainable parameter, ``linear/weights``) feeding LIF
    neurons directly (gain 1, bias 1, no synapse).

    Returns the network with attributes ``stim``, ``lif``, ``linear`` and
    ``p_out`` (the probe on the neurons).
    """
    from keras_nengo._compat import nengo_dl  # pylint: disable=import-outside-toplevel

    rng = np.random.RandomState(seed)
    weights = rng.uniform(-1, 1, size=(n, n)) * (3.0 / np.sqrt(n))
    with nengo.Network(seed=seed) as net:
        nengo_dl.configure_settings(trainable=False)
        net.stim = nengo.Node(np.zeros(n), label="stim")
        net.lif = nengo.Ensemble(
            n, 1, neuron_type=nengo.LIF(), gain=np.ones(n), bias=np.ones(n), label="lif"
        )
        net.linear = nengo.Connection(
            net.stim, net.lif.neurons, transform=weights, synapse=None, label="linear"
        )
        net.config[net.linear].trainable = True
        net.p_out = nengo.Probe(net.lif.neurons, label="spikes")
    return net


def spa_network(dimensions: int = 64, neurons_per_product: int = 50, seed: int = 0):
    """An SPA-style network: ``(a (*) b) (*) c`` with two CircularConvolutions.

    Three input Nodes ``a``, ``b``, ``c`` of ``dimensions`` each, two
    ``nengo.networks.CircularConvolution`` networks in a chain (default
    synapses, as SPA builds them) and a probe ``out`` on the result. Every
    ensemble and connection holds named variables: about 20 per dimension.
    """
    with nengo.Network(seed=seed) as net:
        net.a = nengo.Node(np.zeros(dimensions), label="a")
        net.b = nengo.Node(np.zeros(dimensions), label="b")
        net.c = nengo.Node(np.zeros(dimensions), label="c")
        first = nengo.networks.CircularConvolution(
            neurons_per_product, dimensions, label="bind_ab"
        )
        second = nengo.networks.CircularConvolution(
            neurons_per_product, dimensions, label="bind_abc"
        )
        nengo.Connection(net.a, first.input_a)
        nengo.Connection(net.b, first.input_b)
        nengo.Connection(first.output, second.input_a)
        nengo.Connection(net.c, second.input_b)
        net.p_out = nengo.Probe(second.output, label="out")
    return net


@dataclasses.dataclass(frozen=True)
class BenchSizes:
    """Problem sizes and repeats of one ``keras-nengo bench`` run.

    Parameters
    ----------
    n_samples, n_steps, batch_size : int
        Default data of the ``fit``/``predict`` figures (``n_samples`` a
        multiple of every batch size, as NengoDL needs); networks with their
        own shape (`BenchNetwork`) override ``n_steps`` and ``batch_size``.
    repeats : int
        Timed repeats of each throughput and Jacobian figure (medians reported).
    dimensions, neurons_per_d : int
        Size of NengoDL's ``integrator`` and ``cconv`` benchmark networks.
    ff_neurons : int
        Neurons per ensemble of the feed-forward network (``ff_2x1000``).
    linear_sizes : tuple of int
        ``n`` of the Linear(n x n)+LIF networks (``linear_lif_<n>``).
    spa_dimensions : int
        Vector size of the SPA-style network (``spa_cconv2``).
    jacobian_batch, jacobian_steps : int
        Batch and time steps of the Jacobian figures.
    jacobian_neurons : int
        Neurons per ensemble of the Jacobian network (``jac_2x200``).
    logger_samples, logger_epochs, logger_rounds : int
        Training data size (one time step, as in NengoDL's tutorial), epochs per
        ``fit`` (the first one excluded) and rounds of the logger figures.
    jacobian_networks, memory_networks : tuple of str or None
        Networks that get the Jacobian / memory figures (None: all).
        ``jac_2x200`` always gets its Jacobian figures.
    jit_networks : tuple of str or None
        Networks that get the ``jit_compile=True`` figure (None: all).
    """

    n_samples: int = 1024
    n_steps: int = 10
    batch_size: int = 32
    repeats: int = 5
    dimensions: int = 16
    neurons_per_d: int = 64
    ff_neurons: int = 1000
    linear_sizes: tuple = (512, 2048)
    spa_dimensions: int = 64
    jacobian_batch: int = 16
    jacobian_steps: int = 10
    jacobian_neurons: int = 200
    logger_samples: int = 4096
    logger_epochs: int = 6
    logger_rounds: int = 3
    jacobian_networks: tuple | None = None
    memory_networks: tuple | None = None
    jit_networks: tuple | None = None


FULL = BenchSizes()
QUICK = BenchSizes(
    n_samples=256,
    repeats=3,
    dimensions=4,
    neurons_per_d=32,
    spa_dimensions=16,
    jacobian_batch=8,
    logger_epochs=3,
    jacobian_networks=("tutorial",),
    memory_networks=("ff_2x1000",),
    jit_networks=("tutorial", "ff_2x1000", "linear_lif_512"),
)


@dataclasses.dataclass
class BenchNetwork:
    """A benchmark network with the Nodes fed from data and the Probe trained.

    ``n_steps``/``batch_size`` (None: the run's `BenchSizes`) fix the data
    shape of networks that are defined by it. ``learning_rate`` is the SGD
    step: these networks' outputs are firing rates in Hz (or decoded from
    them), so the loss curvature in the weights is ~ n_neurons * rate**2 and
    SGD diverges (non-finite batches, which NengoModel skips) unless the step
    is below ~ 1 / curvature.
    """

    network: nengo.Network
    inputs: list
    output: nengo.Probe
    n_steps: int | None = None
    batch_size: int | None = None
    learning_rate: float = 1e-4
    samples: int | None = None


def _tutorial(sizes):
    net = tutorial_network()
    return BenchNetwork(net, [net.stim], net.p_out_nofilt)


def _integrator(sizes):
    from nengo_dl.benchmarks import integrator

    net = integrator(sizes.dimensions, sizes.neurons_per_d, nengo.LIF())
    return BenchNetwork(net, [net.inp], net.p, learning_rate=1e-6)


def _cconv(sizes):
    from nengo_dl.benchmarks import cconv

    net = cconv(sizes.dimensions, sizes.neurons_per_d, nengo.LIF())
    return BenchNetwork(net, [net.inp_a, net.inp_b], net.p, learning_rate=1e-6)


def _feedforward(sizes):
    net = feedforward_network(n_neurons=sizes.ff_neurons)
    return BenchNetwork(
        net, [net.stim], net.p_out, n_steps=1, batch_size=64, learning_rate=1e-8
    )


def _linear_lif(n):
    def build(sizes):
        net = linear_lif_network(n)
        # 16 batches per epoch at n=512, so that Keras's fixed cost per fit
        # call (~30 ms) weighs as in real epochs; 4 at n=2048 (~0.3 s a batch)
        return BenchNetwork(
            net,
            [net.stim],
            net.p_out,
            n_steps=100,
            batch_size=16,
            learning_rate=1e-7,
            samples=256 if n <= 512 else 64,
        )

    return build


def _spa(sizes):
    net = spa_network(sizes.spa_dimensions)
    return BenchNetwork(
        net, [net.a, net.b, net.c], net.p_out, n_steps=10, learning_rate=1e-6
    )


def network_names(sizes: BenchSizes) -> tuple:
    """Names of the fit/predict networks at ``sizes``, in run order."""
    linear = tuple(f"linear_lif_{n}" for n in sizes.linear_sizes)
    return ("tutorial", "integrator", "cconv", "ff_2x1000") + linear + ("spa_cconv2",)


def _builders(sizes) -> dict[str, Callable[[BenchSizes], BenchNetwork]]:
    builders = {
        "tutorial": _tutorial,
        "integrator": _integrator,
        "cconv": _cconv,
        "ff_2x1000": _feedforward,
        "spa_cconv2": _spa,
    }
    for n in sizes.linear_sizes:
        builders[f"linear_lif_{n}"] = _linear_lif(n)
    return builders


def build_network(name: str, sizes: BenchSizes = FULL) -> BenchNetwork:
    """Build the benchmark network ``name`` (one of `network_names`) at ``sizes``."""
    builders = _builders(sizes)
    if name not in builders:
        raise ValueError(
            f"Unknown benchmark network. Expected one of {list(builders)}. "
            f"Received: network={name!r}."
        )
    return builders[name](sizes)


def data_shape(bench: BenchNetwork, sizes: BenchSizes) -> tuple[int, int, int]:
    """``(n_samples, n_steps, batch_size)`` of ``bench``'s fit/predict data."""
    batch_size = bench.batch_size or sizes.batch_size
    n_samples = bench.samples or sizes.n_samples
    n_samples = max(batch_size, n_samples - n_samples % batch_size)
    return n_samples, bench.n_steps or sizes.n_steps, batch_size


def bench_data(bench: BenchNetwork, n_samples: int, n_steps: int, seed: int = 0):
    """Uniform(-1, 1) inputs (a list in ``bench.inputs`` order) and targets."""
    rng = np.random.RandomState(seed)
    x = [
        rng.uniform(-1, 1, size=(n_samples, n_steps, node.size_out))
        for node in bench.inputs
    ]
    y = rng.uniform(-1, 1, size=(n_samples, n_steps, bench.output.size_in))
    return x, y


def jacobian_network(n_neurons: int = 200, out_dim: int = 8, in_dim: int = 1):
    """input (``in_dim``) -> LIF -> LIF -> output Node (``out_dim``), probe ``p``."""
    with nengo.Network(seed=0) as net:
        net.stim = nengo.Node(np.zeros(in_dim), label="stim")
        a = nengo.Ensemble(n_neurons, in_dim, label="a")
        b = nengo.Ensemble(n_neurons, out_dim, label="b")
        out = nengo.Node(size_in=out_dim, label="out")
        nengo.Connection(net.stim, a, synapse=None)
        nengo.Connection(a, b, transform=np.ones((out_dim, in_dim)), synapse=None)
        nengo.Connection(b, out, synapse=None)
        net.p = nengo.Probe(out, label="p")
    return net
