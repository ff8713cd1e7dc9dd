"""Time folded into the batch: runs with no state on their path, all steps at once.

A network whose output at a step depends on that step's input only (no synapse
on any connection or output probe, neurons without state in the mode of the
run, no learning rules or noise, no Node computing from time) gives the same
outputs whether its ``n_steps`` steps run one after another or as
``batch * n_steps`` independent one-step rows. This is the common "converted
network" case when training: NengoDL trains spiking neurons through their rate
approximation, which holds no state. Folding replaces the per-step loop (and its
per-step gathers, scatters and transposes) with one step over a large batch.

`why_not_foldable` says, by name, what keeps a network from folding.
"""

from __future__ import annotations

import nengo

from keras_nengo._compat import nengo_dl

# neuron types whose simulation holds no state at all
_RATE = (
    nengo.RectifiedLinear,
    nengo.Sigmoid,
    nengo.Tanh,
    nengo.LIFRate,
    nengo_dl.neurons.SoftLIFRate,
    nengo_dl.neurons.LeakyReLU,
)
# spiking neuron types that NengoDL trains through a stateless rate step
_TRAINED_AS_RATE = (
    nengo.LIF,
    nengo.SpikingRectifiedLinear,
    nengo_dl.neurons.SpikingLeakyReLU,
)


def _exact(obj, types):
    # subclasses (AdaptiveLIF is a LIF) may add state: only the types themselves
    return type(obj) in types


def why_not_foldable(network, probes, training) -> str | None:
    """None if runs of ``network`` can fold time into the batch, else the reason.

    Parameters
    ----------
    network : nengo.Network
    probes : list of nengo.Probe
        The probes whose values are used.
    training : bool or None
        The mode of the run (True: spiking neurons run their rate approximation).
    """
    if training is None:
        return "the mode of the run (training) is not known while tracing"
    neuron_types = _RATE + (_TRAINED_AS_RATE if training else ())
    for ens in network.all_ensembles:
        if not _exact(ens.neuron_type, neuron_types):
            return f"Ensemble {ens} has {type(ens.neuron_type).__name__} neurons"
        if ens.noise is not None:
            return f"Ensemble {ens} has noise"
    for conn in network.all_connections:
        if conn.synapse is not None:
            return f"Connection {conn} has a synapse"
        if conn.learning_rule_type is not None:
            return f"Connection {conn} has a learning rule"
    for probe in probes:
        if probe.synapse is not None:
            return f"Probe {probe} has a synapse"
        if not nengo_dl.config.get_setting(
            network, "keep_history", default=True, obj=probe
        ):
            return f"Probe {probe} keeps no history"
    for node in network.all_nodes:
        if node.size_in == 0 or node.output is None:
            continue  # input Nodes' values are made in advance; passthroughs
        if isinstance(node, nengo_dl.TensorNode):
            if node.pass_time:
                return f"TensorNode {node} reads the simulation time"
            continue
        return f"Node {node} computes its output from time at every step"
    return None
