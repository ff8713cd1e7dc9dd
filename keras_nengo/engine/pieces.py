"""Base arrays held in pieces during a simulation step.

NengoDL keeps all signals of one kind in one base array and reads and writes
them by index: a read is a strided slice (or a gather) of the whole array, a
write a scatter (or, in keras_nengo before, a pad or a concat of the whole
array). Every access then costs the width of the whole base array, forward
and backward: the gradient of a slice is the whole array again, zeros but for
the slice, and the gradients of all reads of one array are summed. Profiled on
the bench's ``ff_2x1000`` net (one step, batch 64), those whole-width pads and
slice gradients were 40 % of a training step's op time.

Here a base array is held as contiguous pieces along its signal axis while a
step is built. A read or write is cut out of the pieces once (one split);
reads of a piece already cut are the piece itself; a write replaces pieces.
The pieces are joined (one concat) only when the whole array is needed: when
the step ends and the array goes on to the next step. An array only read in
a step goes on as it came. Reads and writes of a few slices (merged
operators) read and write each slice as a piece: no index arrays. Accesses of
more slices (`MAX_SLICES`) join the pieces and index as NengoDL does: on the
SPA bench net, cutting each of tens of scattered slices doubled the graph
(8,059 ops against NengoDL's 3,845; 3,570 with the cap).

The values are NengoDL's element for element: a write replaces or adds to
the same elements, in the same order of operators.
"""

from __future__ import annotations

import bisect

import tensorflow as tf

from keras_nengo._compat import nengo_dl

#: accesses of more slices than this (merged operators on many small, scattered
#: signals) join the pieces and index as NengoDL does: one gather or scatter
#: instead of a split and a concat per slice
MAX_SLICES = 4


class _Pieces:
    """One base array as ``[start, stop)`` pieces along its signal ``axis``.

    A piece's value is a tensor, or None for zeros (a base array NengoDL
    starts each step from zeros). ``origin`` is the array the pieces were cut
    from while no piece has been written (then it is the whole array).
    """

    def __init__(self, shape, axis, origin, dtype):
        self.shape = list(shape)
        self.axis = axis
        self.dtype = dtype
        self.origin = origin
        self.starts = [0]
        self.pieces = [(0, self.shape[axis], origin)]

    def part_shape(self, size):
        """The shape of ``size`` elements along the signal axis."""
        shape = list(self.shape)
        shape[self.axis] = size
        return shape

    def _cut(self, start, stop):
        """Piece boundaries at ``start`` and ``stop``: at most one split each."""
        for point in (start, stop):
            index = bisect.bisect_right(self.starts, point) - 1
            first, last, value = self.pieces[index]
            if point in (first, last):
                continue
            edges = [first, point, last]
            if point == start and first < stop < last:
                edges = [first, start, stop, last]  # both in one piece: one split
            sizes = [b - a for a, b in zip(edges, edges[1:])]
            parts = (
                [None] * len(sizes)
                if value is None
                else tf.split(value, sizes, axis=self.axis)
            )
            self.pieces[index : index + 1] = list(zip(edges, edges[1:], parts))
            self.starts[index : index + 1] = edges[:-1]

    def _span(self, start, stop):
        self._cut(start, stop)
        return bisect.bisect_left(self.starts, start), bisect.bisect_left(
            self.starts, stop
        )

    def _value(self, piece):
        start, stop, value = piece
        return (
            tf.zeros(self.part_shape(stop - start), self.dtype)
            if value is None
            else value
        )

    def _join(self, pieces):
        values = [self._value(piece) for piece in pieces]
        return values[0] if len(values) == 1 else tf.concat(values, axis=self.axis)

    def read(self, start, stop):
        """The elements ``[start, stop)``."""
        if start == stop:
            return tf.zeros(self.part_shape(0), self.dtype)
        first, last = self._span(start, stop)
        return self._join(self.pieces[first:last])

    def write(self, start, stop, value, add):
        """Replace (or with ``add``, add to) the elements ``[start, stop)``."""
        if start == stop:
            return
        first, last = self._span(start, stop)
        old = self.pieces[first:last]
        if add and any(piece[2] is not None for piece in old):
            value = self._join(old) + value
        self.pieces[first:last] = [(start, stop, value)]
        self.starts[first:last] = [start]
        self.origin = None

    def whole(self):
        """The whole array (the array cut from, if nothing was written)."""
        if self.origin is None:
            self.origin = self._join(self.pieces)
            self.starts = [0]
            self.pieces = [(0, self.shape[self.axis], self.origin)]
        return self.origin


class _Bases(dict):
    """NengoDL's ``SignalDict.bases``, whose arrays held in pieces join on reading."""

    def __init__(self, *args):
        super().__init__(*args)
        self.pieces = {}

    def __setitem__(self, key, value):
        self.pieces.pop(key, None)
        super().__setitem__(key, value)

    def __getitem__(self, key):
        held = self.pieces.get(key)
        return super().__getitem__(key) if held is None else held.whole()

    def get(self, key, default=None):
        return self[key] if key in self else default

    def values(self):
        return [self[key] for key in self]

    def items(self):
        return [(key, self[key]) for key in self]


def _overlapping(slices):
    ordered = sorted(slices)
    return any(b[0] < a[1] for a, b in zip(ordered, ordered[1:]))


class PiecewiseSignalDict(nengo_dl.signals.SignalDict):
    """``SignalDict`` reading and writing base arrays as pieces (`_Pieces`)."""

    def reset(self):
        super().reset()
        self.bases = _Bases()

    def _held(self, sig, as_pieces=True):
        """``sig``'s base array in pieces, or None where NengoDL's indexing runs
        (``as_pieces`` False, or a base that is not a fully defined tensor); the
        pieces are then joined into one tensor first."""
        held = self.bases.pieces.get(sig.key)
        if not as_pieces:
            if held is not None:
                self.bases[sig.key] = held.whole()
            return None
        if held is not None:
            return held
        base = dict.get(self.bases, sig.key)
        if isinstance(base, tuple):
            shape, origin = base, None
        elif (
            isinstance(base, tf.Tensor)
            and not isinstance(base, tf.Variable)
            and base.shape.is_fully_defined()
        ):
            shape, origin = base.shape.as_list(), base
        else:
            return None
        held = _Pieces(shape, int(sig.minibatched), origin, sig.dtype)
        self.bases.pieces[sig.key] = held
        return held

    def gather(self, src, force_copy=False):
        held = self._held(src, as_pieces=len(src.slices) <= MAX_SLICES)
        if held is None:
            return super().gather(src, force_copy)
        values = [held.read(start, stop) for start, stop in src.slices]
        result = values[0] if len(values) == 1 else tf.concat(values, axis=held.axis)
        self.read_types["pieces"] += 1
        if result.shape != src.full_shape:
            result = tf.reshape(result, src.tf_shape)
        return result

    def scatter(self, dst, val, mode="update"):
        held = self._held(
            dst,
            as_pieces=len(dst.slices) <= MAX_SLICES and not _overlapping(dst.slices)
            # a wrong dtype: NengoDL's error
            and not (val.dtype.is_floating and val.dtype.base_dtype != self.dtype),
        )
        if held is None:
            super().scatter(dst, val, mode)
            return
        sizes = [stop - start for start, stop in dst.slices]
        shape = held.part_shape(sum(sizes))
        if val.shape != shape:
            val = tf.reshape(val, shape)
        parts = [val] if len(sizes) == 1 else tf.split(val, sizes, axis=held.axis)
        for (start, stop), part in zip(dst.slices, parts):
            held.write(start, stop, part, add=mode == "inc")
        self.write_types["pieces_" + mode] += 1


def use_pieces(graph):
    """Give the TensorGraph ``graph`` (not built yet) base arrays in pieces."""
    graph.signals.__class__ = PiecewiseSignalDict
    graph.signals.bases = _Bases(graph.signals.bases)
