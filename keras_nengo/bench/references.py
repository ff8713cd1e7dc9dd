"""Hand-written TensorFlow references: the compute limit of each network.

`Reference` writes a network's training-mode maths directly in TensorFlow,
as a strong TensorFlow engineer would for that one network: the weights
Nengo built (copied from a `NengoModel`'s named weights, so both start
equal), the neuron equations NengoDL trains with (LIF as its rate
approximation, as ``nengo_dl``'s ``LIFRateBuilder``), Nengo's synapses
(``y[t] = a y[t-1] + (1 - a) u[t]``, read by the target one step later), MSE
loss and plain SGD, in one ``tf.function`` per training step.

A network with no synapse and no state (the tutorial network, the
feed-forward and the Linear+LIF nets) folds time into the batch: one pass
of matrix products over ``batch * n_steps`` rows. Otherwise one
``tf.while_loop`` (``tf.scan``) runs the steps, carrying only the synapse
states. No gathers or scatters of merged signals, no per-step bookkeeping.
"""

from __future__ import annotations

import graphlib

import nengo
import numpy as np
import tensorflow as tf
from nengo.ensemble import Neurons

from keras_nengo._compat import nengo_dl
from keras_nengo.naming import NameTable


def _base(obj):
    return obj.obj if isinstance(obj, nengo.base.ObjView) else obj


def _owner(obj):
    """The Ensemble or Node whose output ``obj`` (pre or post) refers to."""
    return obj.ensemble if isinstance(obj, Neurons) else obj


class _Connection:
    def __init__(self, conn, weights, gains, dt):
        self.pre = _owner(conn.pre_obj)
        self.post = _owner(conn.post_obj)
        self.to_neurons = isinstance(conn.post_obj, Neurons)
        self.decoded_pre = isinstance(conn.pre_obj, nengo.Ensemble)
        pre_size = conn.pre_obj.size_out
        self.post_size = conn.post_obj.size_in
        self.pre_slice = None
        if not self.decoded_pre:
            self.pre_slice = _indices(conn.pre_slice, pre_size)
        self.post_slice = _indices(conn.post_slice, self.post_size)
        self.weights = weights
        self.gains = gains
        self.decay = None
        if conn.synapse is not None:
            if not isinstance(conn.synapse, nengo.Lowpass):
                raise NotImplementedError(
                    f"The reference implements Lowpass synapses only. Received: "
                    f"{conn.synapse} on {conn}."
                )
            self.decay = float(np.exp(-dt / conn.synapse.tau))


def _indices(selection, size):
    """The indices a pre/post slice selects, or None for all of them in order."""
    indices = np.arange(size)[selection]
    if np.array_equal(indices, np.arange(size)):
        return None
    return np.atleast_1d(indices)


class Reference:
    """A network's training-mode maths, written out in TensorFlow.

    Parameters
    ----------
    model : keras_nengo.NengoModel
        The model whose named weights (their current values) are copied.
    inputs : list of nengo.Node
        Nodes fed from data, in the order of ``x``.
    output : nengo.Probe
        The probe trained (no synapse).
    learning_rate : float
        SGD step.
    jit_compile : bool
        Compile the training step with XLA.

    Examples
    --------
    >>> reference = Reference(model, [net.stim], net.p_out, 1e-4)  # doctest: +SKIP
    >>> reference.fit(x, y, batch_size=32)  # doctest: +SKIP
    """

    def __init__(
        self, model, inputs, output, learning_rate, jit_compile=False, dt=0.001
    ):
        network = model.network
        self._network = network
        self._dt = float(dt)
        self.inputs = list(inputs)
        self.output = output
        self.learning_rate = float(learning_rate)
        if output.synapse is not None:
            raise NotImplementedError("The reference reads unfiltered probes only.")
        names = NameTable(network)
        named = model.named_weights
        self.variables = {
            name: tf.Variable(var.numpy(), trainable=var.trainable, name=name)
            for name, var in named.items()
        }
        self.trainable = [v for v in self.variables.values() if v.trainable]
        self._built = None

        def parameter(obj, attr, built):
            name = names.parameter_name(obj, attr)
            if name in self.variables:
                return self.variables[name]
            return tf.constant(built(), tf.float32)

        self.ensembles = {}
        smoothing = nengo_dl.config.get_setting(network, "lif_smoothing")
        for ens in network.all_ensembles:
            self.ensembles[ens] = (
                parameter(
                    ens,
                    "encoders",
                    lambda e=ens: self._params().params[e].scaled_encoders,
                ),
                parameter(
                    ens.neurons, "bias", lambda e=ens: self._params().params[e].bias
                ),
                _neuron_function(ens.neuron_type, smoothing),
            )
        self.connections = []
        for conn in network.all_connections:
            weights = None
            if conn.has_weights:
                weights = parameter(
                    conn,
                    "weights",
                    lambda c=conn: self._params().sig[c]["weights"].initial_value,
                )
            gains = None
            if isinstance(conn.post_obj, Neurons):
                ens = conn.post_obj.ensemble
                gains = ens.gain
                if not isinstance(gains, np.ndarray):
                    gains = self._params().params[ens].gain
                gains = gains if conn.post_slice is None else gains[conn.post_slice]
                gains = None if np.all(gains == 1) else tf.constant(gains, tf.float32)
            self.connections.append(_Connection(conn, weights, gains, self._dt))
        for node in network.all_nodes:
            if node.size_in > 0 and node.output is not None:
                raise NotImplementedError(f"Node {node} computes a function.")
        self.stateful = any(c.decay is not None for c in self.connections)
        order = graphlib.TopologicalSorter()
        for obj in list(self.ensembles) + network.all_nodes:
            order.add(obj)
        for conn in self.connections:
            if conn.decay is None:
                order.add(conn.post, conn.pre)
        self.order = list(order.static_order())
        self._train = tf.function(self._train_step, jit_compile=jit_compile)

    def _params(self):
        """The network built by Nengo (only for values that are not named weights)."""
        if self._built is None:
            self._built = nengo.builder.Model(dt=self._dt)
            self._built.build(self._network)
        return self._built

    # -- forward ------------------------------------------------------------------

    def _contribution(self, conn, value):
        if not conn.decoded_pre and conn.pre_slice is not None:
            value = tf.gather(value, conn.pre_slice, axis=-1)
        weights = conn.weights
        if weights is None:
            return value
        if weights.shape.rank == 2:
            value = tf.matmul(value, weights, transpose_b=True)
        else:
            value = value * weights
        return value

    def _place(self, conn, value):
        """``value`` (sliced post) as a full-size post input."""
        if conn.gains is not None:
            value = value * conn.gains
        if conn.post_slice is None:
            return value
        select = np.zeros((len(conn.post_slice), conn.post_size), np.float32)
        select[np.arange(len(conn.post_slice)), conn.post_slice] = 1
        return tf.matmul(value, select)

    def _step(self, data, states):
        """One time step (or all of them, folded): output and new synapse states."""
        values, decoded_in, neuron_in = {}, {}, {}

        def add(target, obj, value):
            target[obj] = value if obj not in target else target[obj] + value

        for conn, state in zip(self.connections, states):
            if conn.decay is not None:
                add(neuron_in if conn.to_neurons else decoded_in, conn.post, state)
        outgoing = {}
        for conn in self.connections:
            outgoing.setdefault(conn.pre, []).append(conn)
        for obj in self.order:
            if obj in data:
                value = data[obj]
            elif obj in self.ensembles:
                encoders, bias, neurons = self.ensembles[obj]
                current = bias
                if obj in decoded_in:
                    current = current + tf.matmul(
                        decoded_in[obj], encoders, transpose_b=True
                    )
                if obj in neuron_in:
                    current = current + neuron_in[obj]
                value = neurons(current)
            elif obj.size_in > 0:
                value = decoded_in.get(obj)
            else:
                value = tf.constant(np.asarray(obj.output, np.float32))
            values[obj] = value
            for conn in outgoing.get(obj, ()):
                if conn.decay is None and value is not None:
                    placed = self._place(conn, self._contribution(conn, value))
                    add(neuron_in if conn.to_neurons else decoded_in, conn.post, placed)
        new_states = []
        for conn, state in zip(self.connections, states):
            if conn.decay is not None:
                update = self._place(conn, self._contribution(conn, values[conn.pre]))
                state = conn.decay * state + (1.0 - conn.decay) * update
            new_states.append(state)
        target = _owner(_base(self.output.target))
        return values[target], new_states

    def __call__(self, x):
        """Training-mode output ``(batch, n_steps, probe size)`` for ``x``."""
        x = [tf.convert_to_tensor(value, tf.float32) for value in x]
        batch, n_steps = x[0].shape[0], x[0].shape[1]
        if not self.stateful:
            data = {
                node: tf.reshape(value, (batch * n_steps, -1))
                for node, value in zip(self.inputs, x)
            }
            out, _ = self._step(data, [None] * len(self.connections))
            return tf.reshape(out, (batch, n_steps, -1))
        states = [
            tf.zeros((batch, c.post_size), tf.float32) if c.decay is not None else None
            for c in self.connections
        ]
        stateful = [i for i, c in enumerate(self.connections) if c.decay is not None]

        def step(carry, inputs):
            full = [None] * len(self.connections)
            for i, value in zip(stateful, carry[1]):
                full[i] = value
            out, new = self._step(dict(zip(self.inputs, inputs)), full)
            return out, [new[i] for i in stateful]

        probe_size = self.output.size_in
        initial = (tf.zeros((batch, probe_size)), [states[i] for i in stateful])
        outputs, _ = tf.scan(
            step, [tf.transpose(value, (1, 0, 2)) for value in x], initializer=initial
        )
        return tf.transpose(outputs, (1, 0, 2))

    # -- training -----------------------------------------------------------------

    def _train_step(self, x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(self(x) - y))
        gradients = tape.gradient(loss, self.trainable)
        for variable, gradient in zip(self.trainable, gradients):
            if gradient is not None:
                variable.assign_sub(self.learning_rate * gradient)
        return loss

    def gradients(self, x, y) -> dict:
        """``{weight name: gradient}`` of the MSE loss (as ``model.gradients``)."""
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(self(x) - tf.cast(y, tf.float32)))
        names = [name for name, v in self.variables.items() if v.trainable]
        grads = tape.gradient(loss, [self.variables[name] for name in names])
        return {
            name: tf.zeros_like(self.variables[name]) if g is None else g
            for name, g in zip(names, grads)
        }

    def batches(self, x, y, batch_size):
        """``x``, ``y`` cut into float32 batches, ready for `fit`."""
        n_samples = len(y)
        return [
            (
                [tf.constant(value[i : i + batch_size], tf.float32) for value in x],
                tf.constant(y[i : i + batch_size], tf.float32),
            )
            for i in range(0, n_samples - batch_size + 1, batch_size)
        ]

    def fit(self, batches) -> float:
        """One epoch of SGD over prepared `batches`; returns the last loss."""
        loss = None
        for x, y in batches:
            loss = self._train(x, y)
        return float(loss)


def _neuron_function(neuron_type, smoothing):
    """The training-mode neuron equation NengoDL uses for ``neuron_type``."""
    if isinstance(neuron_type, (nengo.LIF, nengo.LIFRate)):
        tau_rc, tau_ref = neuron_type.tau_rc, neuron_type.tau_ref
        amplitude = neuron_type.amplitude
        if smoothing and isinstance(neuron_type, nengo.LIF):
            sigma = float(smoothing)

            def soft_lif(current):
                js = (current - 1.0) / sigma
                valid = js > -20
                z = tf.nn.softplus(tf.where(valid, js, tf.zeros_like(js))) * sigma
                q = tf.where(valid, tf.math.log1p(1.0 / z), -js - np.log(sigma))
                return amplitude / (tau_ref + tau_rc * q)

            return soft_lif

        def lif_rate(current):
            j = current - 1.0
            rates = amplitude / (
                tau_ref + tau_rc * tf.math.log1p(1.0 / tf.maximum(j, 1e-15))
            )
            return tf.where(j > 0, rates, tf.zeros_like(rates))

        return lif_rate
    if isinstance(neuron_type, (nengo.RectifiedLinear, nengo.SpikingRectifiedLinear)):
        amplitude = neuron_type.amplitude
        return lambda current: amplitude * tf.nn.relu(current)
    raise NotImplementedError(
        f"The reference has no equation for {type(neuron_type).__name__} neurons."
    )
