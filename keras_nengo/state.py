"""Simulation state carried from one call to the next (``stateful=True``).

`SimulationState` holds, for a fixed number of sample rows, the state a
`keras_nengo.simulation.Simulation` run ends with (neuron voltages and
refractory times, synapse and probe filter states, learning-rule targets, the
step counter) in non-trainable variables, and the number of steps run so far,
so that input Nodes running their own output continue in time. Reading the
state from variables stops gradients at call boundaries: training through a
sequence of calls is truncated backpropagation through time, as with Keras's
stateful RNNs.

`StatefulLayerMixin` is the part of `keras_nengo.NengoLayer` that runs on from
that state (``stateful=True``) and checks the batch size it fixes, once in
Python where the size is known and, for a batch of unknown size, in the graph
before the simulation reads the data.
"""

from __future__ import annotations

import tensorflow as tf

from keras_nengo._compat import in_functional_construction
from keras_nengo._keras_apis import set_untracked
from keras_nengo.simulation import outside_trace


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


class StatefulLayerMixin:
    """Calls of a stateful `keras_nengo.NengoLayer`: on from the last state."""

    def _run_stateful(self, fed, training, n_steps):
        """Run on from the state the previous call ended with, then keep the new one."""
        first = next(iter(fed.values()), None)
        batch = 1 if first is None else first.shape[0]
        if first is not None:
            n_steps = (
                first.shape[1] if first.shape[1] is not None else tf.shape(first)[1]
            )
        if batch is not None:
            self.check_batch_size(batch)
        if in_functional_construction():
            # Keras works out a Functional model's structure: nothing runs, so
            # no state; a batch size given to the model's Input fixes the size
            set_untracked(self, "_declared_batch_size", batch)
            return self._run(fed, batch or self._minibatch_size, n_steps, training)
        rows = (
            self.fixed_batch_size
            or batch
            or getattr(self, "_declared_batch_size", None)
            or self._minibatch_size
        )
        static_steps = tf.get_static_value(n_steps)
        unroll = self.simulation.unroll_simulation
        if unroll > 1 and (static_steps is None or static_steps % unroll):
            raise ValueError(
                f"Layer {self.name!r} is stateful with unroll_simulation={unroll}, "
                "so every call must run a multiple of that many steps (a run takes "
                f"whole loop iterations). Received: n_steps={static_steps}."
            )
        if self._state is None:
            self._state = outside_trace(lambda: SimulationState(self.simulation, rows))
        checks = []
        if first is not None and batch is None:
            # the size is known only when the graph runs: check it before the
            # state is read or written and before the simulation reads the data
            # (or TensorFlow fails first, on a shape deep in the simulation)
            checks.append(
                tf.debugging.assert_equal(
                    tf.shape(first)[0],
                    rows,
                    message=self._batch_size_message(rows, "another size"),
                )
            )
        if checks:
            # nothing may read the data before the check: no hoisting
            self._checked_in_graph = True
        with tf.control_dependencies(checks):
            fed = {node: tf.identity(value) for node, value in fed.items()}
            for node, value in fed.items():
                value.set_shape([rows, None, node.size_out])
            outputs = self._state.node_outputs
            for node in self.simulation.graph(rows).invariant_inputs:
                if node not in fed and not outputs.is_constant(node):
                    fed[node] = self._state.node_values(node, n_steps, self.dtype)
            state = self._state.read()
            results, final = self._run(fed, rows, n_steps, training, state)
            self._state.write(final, n_steps)
        if checks:
            # outputs keep the batch size unknown, as their input's: a static
            # size would let ops on their shape (a loss's gradient against
            # targets of the size received) run, and fail, before the check
            results = [
                tf.compat.v1.placeholder_with_default(value, [None, *value.shape[1:]])
                for value in results
            ]
        return results

    @property
    def fixed_batch_size(self) -> int | None:
        """The batch size a stateful layer's first call fixed; None before it."""
        return self._state.rows if self._state is not None else None

    def _batch_size_message(self, rows, received) -> str:
        return (
            f"Layer {self.name!r} is stateful and its batch size was fixed to "
            f"{rows} by its first call; each sample row carries its own state. "
            f"Received: a batch of {received}. Call it with batches of {rows} "
            f"(batch_size={rows} in fit/evaluate/predict, with a multiple of {rows} "
            "samples), or make a new layer for another batch size (in a Functional "
            "model, give its Input the batch size: tf.keras.Input(..., "
            "batch_size=N); else a batch of unknown size fixes minibatch_size rows)."
        )

    def check_batch_size(self, batch: int) -> None:
        """Raise if this layer is stateful and fixed to another batch size.

        Parameters
        ----------
        batch : int
            Rows of a batch about to be run.

        Raises
        ------
        ValueError
            If the layer is stateful, its first call fixed another batch size.
        """
        rows = self.fixed_batch_size
        if self.stateful and rows is not None and int(batch) != rows:
            raise ValueError(self._batch_size_message(rows, int(batch)))

    def reset_states(self):
        """Return to the initial simulation state and time 0 (``stateful=True``).

        Processes that NengoDL steps in Python (Ensemble noise) restart their
        random streams too, so a reset run replays the first one.
        """
        if self._state is not None:
            self._state.reset()
        self.simulation.restart_processes()
