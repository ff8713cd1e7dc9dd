"""Writes into NengoDL's base arrays as slices instead of scatters.

NengoDL writes an operator's result into a contiguous part of a base array
with ``tensor_scatter_nd_add``/``_update`` and one index pair per element
(batch row × signal element), and reads the gradient back with
``gather_nd``. Where the target is one contiguous slice, joining the
untouched parts and the new part is the same result (element for element:
the same single addition, the rest copied) without the index arithmetic.
Profiled on the bench's ``ff_2x1000`` net, the two scatter-adds of its
DotInc targets were 27 % of the op time of ``fit``. The first write of a step
into a base NengoDL makes with ``scatter_nd`` into zeros; here it is a pad.

`SlicedSignalDict` is NengoDL's ``SignalDict`` with that write; keras_nengo
gives it to the TensorGraphs it builds (`use_sliced_writes`), so NengoDL's own
Simulator keeps NengoDL's behaviour.
"""

from __future__ import annotations

import tensorflow as tf

from keras_nengo._compat import nengo_dl


class SlicedSignalDict(nengo_dl.signals.SignalDict):
    """``SignalDict`` whose writes to one contiguous slice are slices and a concat."""

    def scatter(self, dst, val, mode="update"):
        base = self.bases.get(dst.key)
        if (
            isinstance(base, tuple)
            and mode == "update"
            and len(dst.slices) == 1
            and not (val.dtype.is_floating and val.dtype.base_dtype != self.dtype)
        ):
            # the step's first write into a base: the rest is zeros (as
            # NengoDL's scatter_nd makes it), padded around instead of indexed
            self._first_write(base, dst, val)
            return
        if (
            not isinstance(base, tf.Tensor)
            or len(dst.slices) != 1
            or not base.shape.is_fully_defined()
            or (val.dtype.is_floating and val.dtype.base_dtype != self.dtype)
        ):
            super().scatter(dst, val, mode)
            return
        axis = int(dst.minibatched)
        start, stop = dst.slices[0]
        size = base.shape[axis]
        if start == 0 and stop == size:
            # NengoDL already writes a whole base array without a scatter
            super().scatter(dst, val, mode)
            return
        shape = base.shape.as_list()
        shape[axis] = stop - start
        if val.shape != shape:
            val = tf.reshape(val, shape)

        def part(begin, end):
            begins = [0] * len(shape)
            ends = list(base.shape)
            begins[axis], ends[axis] = begin, end
            return tf.slice(base, begins, [e - b for b, e in zip(begins, ends)])

        middle = part(start, stop) + val if mode == "inc" else val
        parts = [part(0, start)] if start > 0 else []
        parts.append(middle)
        if stop < size:
            parts.append(part(stop, size))
        self.bases[dst.key] = tf.concat(parts, axis=axis)
        self.write_types["sliced_" + ("add" if mode == "inc" else "update")] += 1

    def _first_write(self, shape, dst, val):
        axis = int(dst.minibatched)
        start, stop = dst.slices[0]
        part = list(shape)
        part[axis] = stop - start
        if val.shape != part:
            val = tf.reshape(val, part)
        paddings = [[0, 0]] * len(shape)
        paddings[axis] = [start, shape[axis] - stop]
        self.bases[dst.key] = (
            val if start == 0 and stop == shape[axis] else tf.pad(val, paddings)
        )
        self.write_types["sliced_first"] += 1


def use_sliced_writes(graph):
    """Give the TensorGraph ``graph`` (not built yet) sliced writes."""
    graph.signals.__class__ = SlicedSignalDict
