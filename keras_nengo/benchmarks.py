"""Reproducible benchmark networks (and, later, their runners)."""

from __future__ import annotations

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
