"""NengoDL's TensorGraph with keras_nengo's time loop.

`TensorGraph` keeps NengoDL's planner, signals and operator builders, and owns
the loop body: before each step's operators it writes the input Nodes' data
and the precomputed values of the hoisted, stateless input-driven operators
(`keras_nengo.engine.hoisting`), which no longer run per step.
"""

from __future__ import annotations

import tensorflow as tf

from keras_nengo._compat import nengo_dl
from keras_nengo.engine.hoisting import Hoisting


class TensorGraph(nengo_dl.tensor_graph.TensorGraph):
    """``nengo_dl.tensor_graph.TensorGraph`` with hoisting (``hoist=True``).

    Parameters are NengoDL's; ``hoist`` runs the stateless input-driven
    operators for all steps before the loop.
    """

    def __init__(self, *args, hoist=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.hoisting = None
        self._hoisted = {}
        if not hoist:
            return
        inputs = {
            self.model.sig[node]["out"]: node
            for node in self.invariant_inputs
            if self.model.sig[node]["out"] in self.signals
        }
        hoisting = Hoisting(self.plan, inputs, self._is_parameter)
        if hoisting:
            self.hoisting = hoisting
            self.plan = hoisting.plan
            self.op_builder = nengo_dl.builder.Builder(self.plan)

    def _is_parameter(self, sig) -> bool:
        if sig not in self.signals:
            return False
        key = self.signals[sig].key
        return any(
            key in self.base_arrays_init[kind]
            and not self.base_arrays_init[kind][key][-1]
            for kind in ("trainable", "non_trainable", "state")
        )

    def _read_parameter(self, sig):
        tensor_sig = self.signals[sig]
        base = self.base_params.get(tensor_sig.key)
        if base is None:
            base = self.saved_state[tensor_sig.key]
        if len(tensor_sig.slices) == 1:
            start, stop = tensor_sig.slices[0]
            rows = base if (start, stop) == (0, base.shape[0]) else base[start:stop]
        else:
            rows = tf.gather(base, tensor_sig.tf_indices)
        return tf.reshape(rows, sig.shape)

    def _hoist(self):
        self._hoisted = {}
        if self.hoisting is None or not self.node_inputs:
            return
        values = self.hoisting.values(
            self.node_inputs, self._read_parameter, self.dtype
        )
        for sig, value in values.items():
            steps_first = tf.transpose(value, [1, 0, *range(2, value.shape.rank)])
            size = steps_first.shape[0]
            array = tf.TensorArray(
                self.dtype,
                size=tf.shape(steps_first)[0] if size is None else size,
                element_shape=steps_first.shape[1:],
            )
            self._hoisted[sig] = array.unstack(steps_first)

    def _build_loop(self, progress):
        self._hoist()
        return super()._build_loop(progress)

    def _build_no_loop(self, progress):
        self._hoist()
        return super()._build_no_loop(progress)

    def _build_inner_loop(self, loop_i, update_probes, progress):
        # NengoDL's loop body, plus the hoisted values written before the step
        for unroll_iter in range(self.unroll):
            with tf.name_scope(f"iteration_{unroll_iter}"):
                for node, vals in self.node_inputs.items():
                    if self.model.sig[node]["out"] in self.signals:
                        self.signals.scatter(
                            self.signals[self.model.sig[node]["out"]], vals[:, loop_i]
                        )
                for sig, array in self._hoisted.items():
                    self.signals.scatter(self.signals[sig], array.read(loop_i))
                with tf.control_dependencies([loop_i]):
                    side_effects = self.op_builder.build_step(self.signals, progress)
                    probe_tensors = [
                        self.signals.gather(self.signals[self.model.sig[p]["in"]])
                        for p in self.model.probes
                    ]
                update_probes(probe_tensors, loop_i)
                with tf.control_dependencies(side_effects + probe_tensors):
                    loop_i += 1
        return loop_i
