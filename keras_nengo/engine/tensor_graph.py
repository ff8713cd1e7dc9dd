"""NengoDL's TensorGraph with keras_nengo's time loop and builders.

`TensorGraph` keeps NengoDL's planner and signals (held in pieces within a
step: `keras_nengo.engine.pieces`), builds operators with keras_nengo's
builders where it has them (`keras_nengo.engine.builders`), and
owns the loop body: before each step's operators it writes the input Nodes' data
and the precomputed values of the hoisted, stateless input-driven operators
(`keras_nengo.engine.hoisting`), which no longer run per step.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_nengo._compat import nengo_dl
from keras_nengo.engine.builders import Builder
from keras_nengo.engine.hoisting import Hoisting
from keras_nengo.engine.pieces import use_pieces


class TensorGraph(nengo_dl.tensor_graph.TensorGraph):
    """``nengo_dl.tensor_graph.TensorGraph`` with hoisting (``hoist=True``).

    Parameters are NengoDL's; ``hoist`` runs the stateless input-driven
    operators for all steps before the loop.
    """

    def __init__(self, *args, hoist=True, **kwargs):
        super().__init__(*args, **kwargs)
        use_pieces(self)
        self.op_builder = Builder(self.plan)
        self.hoisting = None
        self._hoisted = {}
        self._hoist_enabled = False
        #: build the next call's steps without a ``tf.while_loop`` (set per call
        #: when the run is known to take one iteration of the loop)
        self.single_iteration = False
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
            full = self.op_builder
            hoisted = Builder(hoisting.plan)
            # operator groups in both plans share one builder (and so the state
            # of NengoDL's post-build, e.g. Python step functions of Processes)
            hoisted.op_builds.update(
                {
                    ops: full.op_builds[ops]
                    for ops in hoisting.plan
                    if ops in full.op_builds
                }
            )
            self._builders = {False: full, True: hoisted}
            self.use_hoisting(True)

    def use_hoisting(self, enabled: bool):
        """Build the next calls with (True) or without the hoisted operators."""
        if self.hoisting is not None:
            self.op_builder = self._builders[bool(enabled)]
            self.plan = self.op_builder.plan
            self._hoist_enabled = bool(enabled)

    def _is_parameter(self, sig) -> bool:
        """Whether ``sig`` is read whole from an unbatched base array."""
        if sig not in self.signals:
            return False
        tensor_sig = self.signals[sig]
        for kind in ("trainable", "non_trainable", "state"):
            init = self.base_arrays_init[kind].get(tensor_sig.key)
            if init is not None and not init[-1]:
                # the stored rows must hold exactly the signal's elements
                # (not, e.g., a broadcast view)
                rows = sum(stop - start for start, stop in tensor_sig.slices)
                trailing = int(np.prod(init[1][0][1:]))
                return rows * trailing == sig.size
        return False

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
        if not self._hoist_enabled or not self.node_inputs:
            return
        values = self.hoisting.values(
            self.node_inputs, self._read_parameter, self.dtype
        )
        for sig, value in values.items():
            steps = value.shape[1]
            if steps == 1:
                # one step (e.g. time folded into the batch): no per-step reads
                self._hoisted[sig] = lambda _, value=value[:, 0]: value
                continue
            steps_first = tf.transpose(value, [1, 0, *range(2, value.shape.rank)])
            array = tf.TensorArray(
                self.dtype,
                size=tf.shape(steps_first)[0] if steps is None else steps,
                element_shape=steps_first.shape[1:],
            ).unstack(steps_first)
            self._hoisted[sig] = array.read

    def _build_loop(self, progress):
        if self.single_iteration:
            # one step (or one unrolled iteration): the step's ops straight,
            # without the loop's per-array Enter/Merge/Switch/Exit and the
            # probes' TensorArrays, which XLA can fuse across
            return self._build_no_loop(progress)
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
                for sig, read in self._hoisted.items():
                    self.signals.scatter(self.signals[sig], read(loop_i))
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
