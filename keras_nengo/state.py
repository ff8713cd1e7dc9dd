"""Simulation state carried from one call to the next (``stateful=True``).

`SimulationState` holds, for a fixed number of sample rows, the state a
`keras_nengo.simulation.Simulation` run ends with (neuron voltages and
refractory times, synapse and probe filter states, learning-rule targets, the
step counter) in non-trainable variables, and the number of steps run so far,
so that input Nodes running their own output continue in time. Reading the
state from variables stops gradients at call boundaries: training through a
sequence of calls is truncated backpropagation through time, as with Keras's
stateful RNNs.
"""

from __future__ import annotations

import tensorflow as tf


class SimulationState:
    """The state of ``simulation`` for ``rows`` sample rows.

    Parameters
    ----------
    simulation : keras_nengo.simulation.Simulation
    rows : int
        The batch size, fixed for the life of the state.
    """

    def __init__(self, simulation, rows: int):
        self.rows = int(rows)
        self._initial = simulation.initial_state(self.rows)
        self.node_outputs = simulation.node_outputs(self.rows)
        self._keys = list(self._initial)
        with tf.init_scope():
            self._variables = [
                tf.Variable(self._initial[key], trainable=False, name="nengo_state")
                for key in self._keys
            ]
            self.steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="steps")

    def read(self) -> dict:
        """The current state, as `Simulation.run` takes it."""
        return {key: var.read_value() for key, var in zip(self._keys, self._variables)}

    def write(self, final: dict, n_steps):
        """Keep ``final`` (a run's final state) after a run of ``n_steps`` steps."""
        for key, var in zip(self._keys, self._variables):
            var.assign(final[key])
        self.steps.assign_add(tf.cast(n_steps, tf.int64))

    def node_values(self, node, n_steps, dtype) -> tf.Tensor:
        """``node``'s own output for the next ``n_steps`` steps, continuing in time."""
        outputs = self.node_outputs

        def values(offset, steps):
            return outputs.values(node, int(steps), int(offset))

        value = tf.numpy_function(
            values, [self.steps, tf.cast(n_steps, tf.int64)], dtype, stateful=True
        )
        value.set_shape([self.rows, tf.get_static_value(n_steps), node.size_out])
        return value

    def reset(self):
        """Back to the initial state and time 0."""
        for key, var in zip(self._keys, self._variables):
            var.assign(self._initial[key])
        self.steps.assign(0)
        self.node_outputs.reset()
