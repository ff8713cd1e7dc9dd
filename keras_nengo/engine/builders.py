"""keras_nengo's own operator builders, for its TensorGraphs only.

NengoDL builds each group of merged operators with one builder. For the dot
products of fixed matrices with batched vectors (``DotInc``/``DotSet``: every
encoder, decoder and transform), NengoDL's builder moves the batch axis last
and back around a batched matmul: two transposes per group per step, and two
more in the gradient. Profiled on the bench's integrator network, transposes
were a third of the op time of ``fit``. `DotIncBuilder` computes the same
products batch-first:

- one operator: ``X @ A.T`` (one matmul, no transpose);
- column matrices (``A`` of shape ``(n, 1)``, e.g. 1-D encoders): a broadcast
  product ``X * A``;
- row matrices (``(1, n)``, e.g. 1-D decoders): ``sum(X * A, -1)``;
- otherwise ``einsum("bni,noi->bno")``.

`Builder` is NengoDL's builder registry with these in place; NengoDL's own
``Simulator`` keeps NengoDL's builders. Results equal NengoDL's up to float
rounding (the sums run in another order): ``tests/test_builders.py`` checks
them against NengoDL and ``nengo.Simulator``, in float32 and float64.
"""

from __future__ import annotations

import tensorflow as tf
from nengo.builder.operator import DotInc
from nengo.exceptions import BuildError

from keras_nengo._compat import nengo_dl
from keras_nengo.engine.neurons import OWN_NEURON_BUILDERS


class DotIncBuilder(nengo_dl.op_builders.DotIncBuilder):
    """``DotInc``/``DotSet`` groups of fixed matrices, batch first."""

    def build_pre(self, signals, config):
        super().build_pre(signals, config)
        n_ops, rows, columns = self.A_data.shape
        #: how the products are computed (NengoDL's way for batched matrices)
        self.kind = (
            "nengo_dl"
            if self.A_data.minibatched or not self.X_data.minibatched
            else (
                "matmul"
                if n_ops == 1
                else "column" if columns == 1 else "row" if rows == 1 else "einsum"
            )
        )

    def build_step(self, signals):
        if self.kind == "nengo_dl":
            super().build_step(signals)
            return
        A = signals.gather(self.A_data)  # (n_ops, rows, columns)
        X = signals.gather(self.X_data)  # (batch, n_ops, columns)
        if self.kind == "matmul":
            dot = tf.matmul(X[:, 0], A[0], transpose_b=True)
        elif self.kind == "column":
            dot = X * A[None, :, :, 0]
        elif self.kind == "row":
            dot = tf.reduce_sum(X * A[None, :, 0, :], axis=-1, keepdims=True)
        else:
            dot = tf.einsum("bni,noi->bno", X, A)
        signals.scatter(self.Y_data, dot, mode=self.mode)


OWN_BUILDERS = {
    DotInc: DotIncBuilder,
    nengo_dl.op_builders.DotSet: DotIncBuilder,
    **OWN_NEURON_BUILDERS,
}


class Builder(nengo_dl.builder.Builder):
    """NengoDL's ``Builder`` with keras_nengo's builders where it has them.

    NengoDL's registry is read when a graph is made, so builders that users
    register with ``nengo_dl.builder.Builder.register`` are used as well.
    """

    def __init__(self, plan):  # pylint: disable=super-init-not-called
        self.plan = plan
        self.op_builds = {}
        registry = {**nengo_dl.builder.Builder.builders, **OWN_BUILDERS}
        for ops in plan:
            kind = type(ops[0])
            if kind not in registry:
                raise BuildError(
                    f"No registered builder for operators of type {kind!r}"
                )
            self.op_builds[ops] = registry[kind](ops)

    def name_scope(self, ops):
        return tf.name_scope(
            nengo_dl.utils.sanitize_name(type(self.op_builds[ops]).__name__)
        )
