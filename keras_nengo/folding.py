"""Time folded into the batch: runs with no state on their path, all steps at once.

A network whose output at a step depends on that step's input only (no synapse
on any connection or output probe, neurons without state in the mode of the
run, no learning rules or noise, no Node computing from time) gives the same
outputs whether its ``n_steps`` steps run one after another or as
``batch * n_steps`` independent one-step rows. This is the common "converted
network" case when training: NengoDL trains spiking neurons through their rate
approximation, which holds no state. Folding replaces the per-step loop (and its
per-step gathers, scatters and transposes) with one step over a large batch.

Folding must never change what a TensorNode's function sees, so a TensorNode
allows it only when it does not read the time and its function is known to
compute each sample row from that row alone: a Keras layer of a row-wise type
(`ROW_WISE_LAYERS`). Any other function may depend on the batch it is given
(the tensorflow-models notebook's ``tf.reshape(tf.sin(t), (1, 1))``).

`why_not_foldable` says, by name, what keeps a network from folding.
"""

from __future__ import annotations

import nengo

from keras_nengo._compat import nengo_dl, tf_keras

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


# Keras layers whose call computes each sample row from that row alone, in both
# modes; subclasses may override call, so only these types themselves
ROW_WISE_LAYERS = tuple(
    getattr(tf_keras.layers, name)
    for name in (
        "Activation",
        "AveragePooling1D",
        "AveragePooling2D",
        "AveragePooling3D",
        "Conv1D",
        "Conv1DTranspose",
        "Conv2D",
        "Conv2DTranspose",
        "Conv3D",
        "Conv3DTranspose",
        "Cropping1D",
        "Cropping2D",
        "Cropping3D",
        "Dense",
        "DepthwiseConv1D",
        "DepthwiseConv2D",
        "ELU",
        "Flatten",
        "GlobalAveragePooling1D",
        "GlobalAveragePooling2D",
        "GlobalAveragePooling3D",
        "GlobalMaxPooling1D",
        "GlobalMaxPooling2D",
        "GlobalMaxPooling3D",
        "LayerNormalization",
        "LeakyReLU",
        "MaxPooling1D",
        "MaxPooling2D",
        "MaxPooling3D",
        "Permute",
        "PReLU",
        "ReLU",
        "Reshape",
        "SeparableConv1D",
        "SeparableConv2D",
        "Softmax",
        "UpSampling1D",
        "UpSampling2D",
        "UpSampling3D",
        "ZeroPadding1D",
        "ZeroPadding2D",
        "ZeroPadding3D",
    )
    if hasattr(tf_keras.layers, name)
)
# row-wise only when not training (training normalizes by the batch's statistics)
_ROW_WISE_IN_INFERENCE = (tf_keras.layers.BatchNormalization,)


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
        if isinstance(node, nengo_dl.TensorNode):
            reason = _tensor_node_reason(node, training)
            if reason is not None:
                return reason
            continue
        if node.size_in == 0 or node.output is None:
            continue  # input Nodes' values are made in advance; passthroughs
        return f"Node {node} computes its output from time at every step"
    return None


def _tensor_node_reason(node, training):
    """Why ``node`` (a TensorNode) keeps runs from folding, or None."""
    if node.pass_time:
        return f"TensorNode {node} reads the simulation time"
    func = node.tensor_func
    if _exact(func, ROW_WISE_LAYERS):
        return None
    if _exact(func, _ROW_WISE_IN_INFERENCE) and not training:
        return None
    kind = type(func).__name__ if isinstance(func, tf_keras.layers.Layer) else None
    what = f"a {kind} layer" if kind else f"the function {func!r}"
    return (
        f"TensorNode {node} runs {what}, which is not known to compute each "
        "sample row on its own; folding would change the batch it sees"
    )
