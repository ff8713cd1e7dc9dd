"""Stateless input-driven work, hoisted out of the time loop.

In a step of a Nengo simulation many operators compute from that step's input
data and fixed parameters only: an input Node's output copied into an
Ensemble's input, the encoders' product with it, the bias added, a dense
transform straight into the neurons. None of that depends on the state, so it
can run for all steps at once, as one matmul over ``batch * n_steps`` rows,
before the loop; the loop then reads each step's row block and only the
stateful parts (neurons, synapses, learning) step.

`Hoisting` finds those operators in NengoDL's plan. An operator is hoisted when
it is a `Reset`, `Copy`, `DotInc` or `ElementwiseInc` (or NengoDL's ``Set``
variants), updates nothing, writes a minibatched signal, and reads only
hoisted signals, input Nodes' outputs, and parameters that no operator writes.
A signal is hoisted when every operator writing any part of its base is
hoisted and its sets cover the whole base (so nothing carries over from the
previous step). Signals that a remaining operator (or probe) reads are the
*frontier*: each step writes their precomputed values before the operators.

The operators keep Nengo's semantics, summed in another order than NengoDL:
the same values up to float rounding (checked against the step-by-step run in
``tests/test_hoisting.py``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from nengo.builder.operator import Copy, DotInc, ElementwiseInc, Reset

_KINDS = (Reset, Copy, DotInc, ElementwiseInc)


def _minibatched(sig) -> bool:
    return bool(getattr(sig, "minibatched", False))


def _written(op):
    """The signal ``op`` writes and whether it sets (True) or increments it."""
    if op.sets:
        return op.sets[0], True
    return op.incs[0], False


def _base_indices(sig) -> np.ndarray:
    """Flat element indices of ``sig`` inside its (1-D) base."""
    if not sig.is_view:
        return np.arange(sig.size)
    grids = np.indices(sig.shape) if sig.shape else np.zeros((0,), int)
    strides = np.array(sig.elemstrides, dtype=int).reshape((-1,) + (1,) * sig.ndim)
    return (sig.elemoffset + np.sum(grids * strides, axis=0)).reshape(-1)


def _sliced(indices, selection):
    if selection is None:
        return indices
    return indices[selection].reshape(-1)


class Hoisting:
    """The hoisted part of one TensorGraph's plan.

    Parameters
    ----------
    plan : list of tuple of nengo.builder.Operator
        NengoDL's plan (operator groups in execution order).
    inputs : dict of {nengo.Signal: nengo.Node}
        Output signals of the input Nodes fed each step.
    parameter : callable
        ``parameter(signal) -> bool``: whether an unbatched signal no operator
        writes can be read as a parameter.

    Attributes
    ----------
    ops : list of nengo.builder.Operator
        Hoisted operators, in plan order.
    plan : list of tuple of nengo.builder.Operator
        The plan without them.
    frontier : list of nengo.Signal
        Hoisted signals read by operators that stay in the loop.
    """

    def __init__(self, plan, inputs, parameter):
        self.inputs = dict(inputs)
        ordered = [op for ops in plan for op in ops]
        written = set()
        writers = {}
        for op in ordered:
            for sig in op.sets + op.incs + op.updates:
                written.add(sig.base)
                writers.setdefault(sig.base, []).append(op)
        self._parameter = lambda sig: (
            not _minibatched(sig) and sig.base not in written and parameter(sig)
        )
        roots = {sig.base for sig in self.inputs if sig.base not in written}
        # without input data there is no step axis to compute along: nothing
        # is hoisted (constant chains stay in the loop)
        bases = {
            base
            for base, ops in writers.items()
            if roots and _minibatched(base) and base.ndim == 1
        }
        while True:
            hoisted = self._hoistable(ordered, bases | roots)
            kept = {
                base
                for base in bases
                if all(op in hoisted for op in writers[base])
                and self._covered(base, writers[base])
            }
            if kept == bases:
                break
            bases = kept
        self.bases = bases | roots
        self.ops = [op for op in ordered if op in hoisted]
        self.plan = [
            remaining
            for remaining in (
                tuple(op for op in ops if op not in hoisted) for ops in plan
            )
            if remaining
        ]
        # the loop writes the input Nodes' outputs itself
        frontier = {
            sig: None
            for ops in self.plan
            for op in ops
            for sig in op.reads
            if sig.base in bases
        }
        self.frontier = list(frontier)

    def __bool__(self):
        return bool(self.ops)

    # -- analysis -----------------------------------------------------------------

    def _readable(self, sig, bases) -> bool:
        if _minibatched(sig):
            return sig.base in bases
        return self._parameter(sig)

    def _hoistable(self, ordered, bases) -> set:
        hoisted = set()
        for op in ordered:
            if not isinstance(op, _KINDS) or op.updates:
                continue
            target, _ = _written(op)
            if not _minibatched(target) or target.base not in bases:
                continue
            if not all(self._readable(sig, bases) for sig in op.reads):
                continue
            if any(getattr(sig, "sparse", False) for sig in op.reads):
                continue  # SparseDotInc (a DotInc) keeps NengoDL's builder
            if isinstance(op, DotInc) and not (
                not getattr(op, "reshape", False)
                and op.A.ndim == 2
                and op.X.ndim == 1
                and not _minibatched(op.A)
                and _minibatched(op.X)
            ):
                continue
            if isinstance(op, ElementwiseInc) and not (
                (_minibatched(op.A) or _minibatched(op.X))
                and np.broadcast_shapes(op.A.shape, op.X.shape, op.Y.shape)
                == op.Y.shape
            ):
                continue
            indices = self._target_indices(op)
            if len(np.unique(indices)) != len(indices):
                continue
            hoisted.add(op)
        return hoisted

    @staticmethod
    def _target_indices(op) -> np.ndarray:
        target, _ = _written(op)
        indices = _base_indices(target)
        if isinstance(op, Copy):
            indices = _sliced(indices, op.dst_slice)
        return indices

    def _covered(self, base, ops) -> bool:
        """Whether the sets among ``ops`` write all of ``base`` before any inc."""
        covered = np.zeros(base.size, bool)
        for op in ops:
            indices = self._target_indices(op)
            if _written(op)[1]:
                covered[indices] = True
            elif not covered[indices].all():
                return False
        return bool(covered.all())

    # -- values -------------------------------------------------------------------

    def values(self, node_inputs, read_parameter, dtype) -> dict:
        """Frontier values for all steps: ``{signal: (batch, n_steps, size)}``.

        Parameters
        ----------
        node_inputs : dict of {nengo.Node: tf.Tensor}
            ``(batch, n_steps, size_out)`` per input Node.
        read_parameter : callable
            ``read_parameter(signal) -> tf.Tensor`` of the signal's shape.
        dtype : tf.DType
        """
        first = next(iter(node_inputs.values()))
        batch, steps = first.shape[0], tf.shape(first)[1]
        rows = batch * steps
        values = {}
        for sig, node in self.inputs.items():
            if node in node_inputs and sig.base in self.bases:
                values[sig.base] = tf.reshape(node_inputs[node], [rows, sig.base.size])

        def read(sig):
            if not _minibatched(sig):
                return read_parameter(sig)
            value = values[sig.base]
            indices = _base_indices(sig)
            if np.array_equal(indices, np.arange(sig.base.size)):
                flat = value
            elif np.array_equal(
                indices, np.arange(indices[0], indices[0] + len(indices))
            ):
                flat = value[:, indices[0] : indices[0] + len(indices)]
            else:
                flat = tf.gather(value, indices, axis=1)
            return tf.reshape(flat, [rows, *sig.shape])

        def write(op, value):
            target, is_set = _written(op)
            size = target.base.size
            indices = self._target_indices(op)
            value = tf.reshape(
                (
                    tf.broadcast_to(value, [rows, *value.shape[1:]])
                    if value.shape.rank and value.shape[0] == 1
                    else value
                ),
                [rows, len(indices)],
            )
            old = values.get(target.base)
            if np.array_equal(indices, np.arange(size)):
                values[target.base] = value if is_set or old is None else old + value
                return
            if old is None:
                old = tf.zeros([rows, size], dtype)
            # a permutation of [old, value] that puts value at `indices`
            order = np.arange(size)
            order[indices] = size + np.arange(len(indices))
            if not is_set:
                value = tf.gather(old, indices, axis=1) + value
            values[target.base] = tf.gather(
                tf.concat([old, value], axis=1), order, axis=1
            )

        def aligned(sig, target):
            # (rows or 1, ones..., *sig.shape) with the rank of target's rows
            value = read(sig)
            if not _minibatched(sig):
                value = value[None]
            ones = [1] * (target.ndim - sig.ndim)
            return tf.reshape(value, [tf.shape(value)[0], *ones, *sig.shape])

        for op in self.ops:
            if isinstance(op, Reset):
                shape = _written(op)[0].shape
                value = np.asarray(op.value)
                value = (
                    value.reshape(shape)
                    if value.size == np.prod(shape)
                    else np.broadcast_to(value, shape)
                )
                value = tf.constant(value, dtype)[None]
            elif isinstance(op, Copy):
                src = read(op.src)
                if not _minibatched(op.src):
                    src = src[None]
                flat = tf.reshape(src, [tf.shape(src)[0], -1])
                if op.src_slice is not None:
                    picked = _sliced(np.arange(op.src.size), op.src_slice)
                    flat = tf.gather(flat, picked, axis=1)
                value = flat
            elif isinstance(op, DotInc):
                value = tf.matmul(read(op.X), read(op.A), transpose_b=True)
            else:
                value = aligned(op.A, op.Y) * aligned(op.X, op.Y)
            write(op, value)
        return {
            sig: tf.reshape(read(sig), [batch, steps, *sig.shape])
            for sig in self.frontier
        }
