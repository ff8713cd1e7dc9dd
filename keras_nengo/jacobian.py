"""Jacobians of a simulated network's output, and their norms.

This module knows nothing about Keras models: it differentiates a function
``function(inputs) -> output`` that maps ``{name: (batch, n_steps, d)}`` to one
output ``(batch, n_steps, out_dim)`` in which samples are independent (sample
``b`` of the output depends only on sample ``b`` of the inputs and on shared
variables). `NengoModel.jacobian` builds such a function from the network.

NengoDL runs the simulation in a ``tf.while_loop`` that ``pfor`` (what
``GradientTape.jacobian``/``batch_jacobian`` vectorise with) cannot convert, and
``tf.autodiff.ForwardAccumulator`` fails on the TensorArrays NengoDL feeds its
inputs through. The modes below therefore vectorise through the *batch*
instead:

``reverse`` (inputs)
    One forward pass under a persistent tape, then one backward pass per
    selected output row (``R = n_out_steps * out_dim`` rows), run in-graph with
    ``tf.map_fn``: because samples are independent, the gradient of row ``r``
    summed over the batch holds every sample's own row. This is what
    ``batch_jacobian(experimental_use_pfor=False)`` does, for several inputs
    at once. (Replicating each sample ``R`` times instead, one pass of batch
    ``B * R``, measured about 1.5-2x slower on 2 CPU cores.)
``forward`` (inputs)
    Each sample is replicated once per input column (``C = n_steps * in_dim``,
    summed over the inputs asked for), each replica carrying a one-hot tangent.
    The Jacobian-vector products come from the transpose of the reverse pass
    (the "double backward" trick: ``J v = d/du <J^T u, v>``), one pass of batch
    ``B * C``.
``reverse`` (weights)
    Weights are shared by all samples, so the batch trick does not apply: one
    forward pass, then one backward pass per (sample, output row), run in-graph
    with ``tf.map_fn``.
``forward`` (weights)
    ``tf.autodiff.ForwardAccumulator`` with a one-hot tangent on the weights
    gives the derivative along that direction for every sample at once; one
    pass per weight entry, run in-graph with ``tf.map_fn``.
``auto``
    Inputs: ``forward`` when ``C * FORWARD_INPUT_COST < R``, else ``reverse``
    (see `FORWARD_INPUT_COST`). Weights: ``forward`` when the number of weight
    entries is at most ``B * R``, else ``reverse``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from keras_nengo._keras_apis import tf_variable
from keras_nengo.engine.modes import stepwise_reads

__all__ = ["jacobian", "jacobian_norms", "output_steps"]

_MODES = ("auto", "reverse", "forward")
_NORMS = ("fro", "spectral", "max")

#: Forward mode costs about ``FORWARD_INPUT_COST * C`` against reverse mode's
#: ``R`` (C input columns = n_steps * in_dim, R output rows), so "auto" picks
#: forward when ``FORWARD_INPUT_COST * C < R``. Measured on 2 CPU cores, LIF
#: nets of 2x200 neurons, batch 32, forward/reverse time: C=5, R=8: 1.05;
#: C=20, R=8: 3.3; C=20, R=32: 1.5; C=50, R=8: 6.6; C=20, R=1: 9.3, i.e.
#: forward/reverse ~ 1.1-2.3 * C / R for n_steps >= 5. With a single time step
#: per-op overheads dominate and forward mode won even at C = R (0.6x) -- a
#: case this rule leaves to reverse mode.
FORWARD_INPUT_COST = 1.5

#: Backward passes run concurrently by ``tf.map_fn`` in the row-by-row modes.
_PARALLEL_ROWS = 32


def output_steps(steps, n_steps: int) -> tuple[list[int], bool]:
    """Normalise a ``steps`` argument to a list of output step indices.

    Parameters
    ----------
    steps : int, slice, sequence of int, or None
        Output time steps; negative indices count from the end, None is all.
    n_steps : int
        Number of simulated time steps.

    Returns
    -------
    indices : list of int
        Non-negative step indices, in the order given.
    squeeze : bool
        True when ``steps`` was an int (the step axis is dropped).

    Raises
    ------
    ValueError
        If an index is out of range or the selection is empty.

    Examples
    --------
    >>> output_steps(-1, 10)
    ([9], True)
    >>> output_steps(slice(0, 4, 2), 10)
    ([0, 2], False)
    """
    squeeze = False
    if steps is None:
        indices = list(range(n_steps))
    elif isinstance(steps, slice):
        indices = list(range(n_steps))[steps]
    elif isinstance(steps, (int, np.integer)):
        indices, squeeze = [int(steps)], True
    else:
        indices = [int(step) for step in steps]
    normalised = []
    for step in indices:
        if not -n_steps <= step < n_steps:
            raise ValueError(
                f"Output step {step} is out of range for {n_steps} time steps. "
                f"Received: steps={steps!r}. Expected indices in "
                f"[{-n_steps}, {n_steps - 1}]."
            )
        normalised.append(step % n_steps)
    if not normalised:
        raise ValueError(
            f"steps selects no output time step. Received: steps={steps!r} for "
            f"{n_steps} time steps. Pass an int, a non-empty slice or list, or None."
        )
    return normalised, squeeze


def _select(output, indices):
    """``output[:, indices, :]`` as ``(batch, n_out_steps, out_dim)``."""
    return tf.gather(output, indices, axis=1)


def _backward_rows(tape, target, sources, cotangent, n_rows):
    """One backward pass per row index, in-graph: ``[(n_rows, *source.shape)]``.

    ``cotangent(index)`` is the output gradient of ``target`` for row ``index``;
    ``tape`` must be persistent.
    """
    signature = [tf.TensorSpec(source.shape, source.dtype) for source in sources]

    def row(index):
        return tape.gradient(
            target,
            sources,
            output_gradients=cotangent(index),
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )

    return tf.map_fn(
        row,
        tf.range(n_rows),
        fn_output_signature=signature,
        parallel_iterations=_PARALLEL_ROWS,
    )


def _input_reverse(function, inputs, wrt, indices, out_dim):
    """Reverse mode: one forward pass, one backward pass per output row."""
    batch = inputs[wrt[0]].shape[0]
    rows = len(indices) * out_dim
    with tf.GradientTape(persistent=True) as tape:
        for name in wrt:
            tape.watch(inputs[name])
        out = function(inputs)
        selected = tf.reshape(_select(out, indices), (batch, rows))
    # samples are independent, so the gradient of output row `r` summed over the
    # batch holds each sample's own row
    grads = _backward_rows(
        tape,
        selected,
        [inputs[name] for name in wrt],
        lambda index: tf.tile(
            tf.one_hot(index, rows, dtype=selected.dtype)[None], (batch, 1)
        ),
        rows,
    )
    result = {}
    for name, grad in zip(wrt, grads):
        shape = inputs[name].shape
        # (rows, batch, n_steps, in_dim) -> (batch, n_out, out_dim, n_steps, in_dim)
        grad = tf.transpose(grad, (1, 0, 2, 3))
        result[name] = tf.reshape(
            grad, (batch, len(indices), out_dim, shape[1], shape[2])
        )
    return result, out


def _input_forward(function, inputs, wrt, indices, out_dim):
    """Forward mode through replicated samples with one-hot tangents."""
    batch = inputs[wrt[0]].shape[0]
    dtype = inputs[wrt[0]].dtype
    sizes = [int(np.prod(inputs[name].shape[1:])) for name in wrt]
    columns = sum(sizes)
    replicated = {
        name: tf.repeat(value, columns, axis=0) for name, value in inputs.items()
    }
    # replica c of every sample carries the one-hot tangent e_c over the
    # concatenated (flattened) inputs that are differentiated
    eye = tf.tile(tf.eye(columns, dtype=dtype)[None], (batch, 1, 1))
    tangents = tf.split(tf.reshape(eye, (batch * columns, columns)), sizes, axis=1)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            for name in wrt:
                inner.watch(replicated[name])
            out = function(replicated)
        cotangent = tf.zeros_like(out)
        outer.watch(cotangent)
        transposed = inner.gradient(
            out,
            [replicated[name] for name in wrt],
            output_gradients=cotangent,
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )
        contracted = tf.add_n(
            [
                tf.reduce_sum(tf.reshape(grad, (batch * columns, -1)) * tangent)
                for grad, tangent in zip(transposed, tangents)
            ]
        )
    jvp = outer.gradient(
        contracted, cotangent, unconnected_gradients=tf.UnconnectedGradients.ZERO
    )
    # (batch * columns, n_steps, out_dim) -> (batch, n_out, out_dim, columns)
    jvp = tf.reshape(_select(jvp, indices), (batch, columns, len(indices), out_dim))
    jvp = tf.transpose(jvp, (0, 2, 3, 1))
    result = {}
    for name, part in zip(wrt, tf.split(jvp, sizes, axis=-1)):
        shape = inputs[name].shape
        result[name] = tf.reshape(
            part, (batch, len(indices), out_dim, shape[1], shape[2])
        )
    return result, out[::columns]


def _output_dim(function, inputs):
    """The output size of ``function``, from a trace on one sample."""
    spec = {
        name: tf.TensorSpec((1,) + tuple(value.shape[1:]), value.dtype)
        for name, value in inputs.items()
    }
    return int(tf.function(function).get_concrete_function(spec).output_shapes[-1])


def _weight_reverse(function, inputs, variables, indices):
    names = list(variables)
    with tf.GradientTape(persistent=True) as tape:
        out = function(inputs)
        selected = _select(out, indices)
    batch, n_out, out_dim = selected.shape
    n_rows = batch * n_out * out_dim
    rows = _backward_rows(
        tape,
        selected,
        [variables[name] for name in names],
        lambda index: tf.reshape(
            tf.one_hot(index, n_rows, dtype=selected.dtype), (batch, n_out, out_dim)
        ),
        n_rows,
    )
    result = {
        name: tf.reshape(grad, (batch, n_out, out_dim) + tuple(variables[name].shape))
        for name, grad in zip(names, rows)
    }
    return result, out


def _weight_forward(function, inputs, variables, indices):
    names = list(variables)
    shapes = [tuple(variables[name].shape) for name in names]
    sizes = [int(np.prod(shape)) for shape in shapes]
    total = sum(sizes)
    dtype = tf_variable(variables[names[0]]).dtype
    out = function(inputs)

    def direction(index):
        one_hot = tf.split(tf.one_hot(index, total, dtype=dtype), sizes)
        tangents = [tf.reshape(t, shape) for t, shape in zip(one_hot, shapes)]
        with tf.autodiff.ForwardAccumulator(
            [tf_variable(variables[name]) for name in names], tangents
        ) as accumulator, stepwise_reads():
            value = function(inputs)
        jvp = accumulator.jvp(value, unconnected_gradients="zero")
        return _select(jvp, indices)

    columns = tf.map_fn(
        direction,
        tf.range(total),
        fn_output_signature=out.dtype,
        parallel_iterations=_PARALLEL_ROWS,
    )
    batch, n_out, out_dim = out.shape[0], len(indices), out.shape[-1]
    columns = tf.transpose(columns, (1, 2, 3, 0))
    result = {}
    for name, shape, part in zip(names, shapes, tf.split(columns, sizes, axis=-1)):
        result[name] = tf.reshape(part, (batch, n_out, out_dim) + shape)
    return result, out


def _pick_input_mode(mode, inputs, wrt, n_rows):
    if mode != "auto":
        return mode
    columns = sum(int(np.prod(inputs[name].shape[1:])) for name in wrt)
    return "forward" if columns * FORWARD_INPUT_COST < n_rows else "reverse"


def jacobian(
    function: Callable[[dict], tf.Tensor],
    inputs: dict,
    wrt_inputs: Sequence[str] = (),
    variables: dict | None = None,
    steps=-1,
    mode: str = "auto",
    out_dim: int | None = None,
) -> tuple[dict, dict, tf.Tensor]:
    """Per-sample Jacobians of ``function(inputs)`` w.r.t. inputs and variables.

    Parameters
    ----------
    function : callable
        Maps ``{name: tf.Tensor (batch, n_steps, d)}`` to one tensor
        ``(batch, n_steps, out_dim)``. Samples must be independent, and it must
        accept any static batch size (it is called with replicated batches).
    inputs : dict of {str: tf.Tensor}
        The point at which to differentiate (static shapes).
    wrt_inputs : sequence of str
        Keys of ``inputs`` to differentiate with respect to.
    variables : dict of {str: tf.Variable} or None
        Shared variables read by ``function`` to differentiate with respect to.
    steps : int, slice, sequence of int, or None
        Output time steps (see `output_steps`).
    mode : {"auto", "reverse", "forward"}
        How to compute them (see the module docstring).
    out_dim : int or None
        Size of the output's last axis; None traces ``function`` on one sample
        to find it.

    Returns
    -------
    input_jacobians : dict of {str: tf.Tensor}
        ``(batch, n_out_steps, out_dim, n_steps, in_dim)`` per input (the
        step axis is kept even when ``steps`` is an int).
    variable_jacobians : dict of {str: tf.Tensor}
        ``(batch, n_out_steps, out_dim, *variable.shape)`` per variable.
    outputs : tf.Tensor
        ``function(inputs)``, ``(batch, n_steps, out_dim)``.

    Raises
    ------
    ValueError
        If ``mode`` is unknown, ``steps`` is invalid, or nothing is asked for.

    Examples
    --------
    >>> def function(x):
    ...     return tf.cumsum(2.0 * x["a"], axis=1)
    >>> x = {"a": tf.ones((2, 3, 1))}
    >>> J, _, out = jacobian(function, x, wrt_inputs=["a"], steps=-1)
    >>> J["a"].shape, J["a"][0, 0, 0, :, 0].numpy().tolist()
    (TensorShape([2, 1, 1, 3, 1]), [2.0, 2.0, 2.0])
    """
    if mode not in _MODES:
        raise ValueError(
            f"mode must be one of {_MODES}. Received: mode={mode!r}. Use 'auto' "
            "to pick the cheaper of forward and reverse mode."
        )
    variables = dict(variables or {})
    wrt_inputs = list(wrt_inputs)
    if not wrt_inputs and not variables:
        raise ValueError(
            "Nothing to differentiate with respect to. Received: wrt_inputs=[] "
            "and variables={}. Pass input names and/or variables."
        )
    unknown = [name for name in wrt_inputs if name not in inputs]
    if unknown:
        raise ValueError(
            f"Unknown inputs. Received: wrt_inputs with {unknown}, not keys of "
            f"inputs. Expected keys of inputs: {sorted(inputs)}."
        )
    inputs = {name: tf.convert_to_tensor(value) for name, value in inputs.items()}
    n_steps = next(iter(inputs.values())).shape[1]
    indices, _ = output_steps(steps, n_steps)

    if out_dim is None:
        out_dim = _output_dim(function, inputs)

    input_jacobians, variable_jacobians, outputs = {}, {}, None
    if wrt_inputs:
        chosen = _pick_input_mode(mode, inputs, wrt_inputs, len(indices) * out_dim)
        compute = _input_forward if chosen == "forward" else _input_reverse
        input_jacobians, outputs = compute(
            function, inputs, wrt_inputs, indices, out_dim
        )
    if variables:
        chosen = mode
        if mode == "auto":
            batch = next(iter(inputs.values())).shape[0]
            n_rows = batch * len(indices) * out_dim
            entries = sum(int(np.prod(v.shape)) for v in variables.values())
            chosen = "forward" if entries <= n_rows else "reverse"
        compute = _weight_forward if chosen == "forward" else _weight_reverse
        variable_jacobians, weight_outputs = compute(
            function, inputs, variables, indices
        )
        if outputs is None:
            outputs = weight_outputs
    return input_jacobians, variable_jacobians, outputs


def jacobian_norms(jacobian: tf.Tensor, ord: str = "fro", wrt_ndim=None) -> tf.Tensor:
    """Norm of each sample's Jacobian matrix.

    Each sample's Jacobian is read as a matrix whose rows are the output axes
    (all axes after the batch axis up to and including ``out_dim``) and whose
    columns are the axes of what was differentiated.

    Parameters
    ----------
    jacobian : tf.Tensor
        A Jacobian from `NengoModel.jacobian`: ``(batch, [n_out_steps,]
        out_dim, *wrt_shape)``.
    ord : {"fro", "spectral", "max"}
        Frobenius norm, largest singular value, or largest absolute entry.
    wrt_ndim : int or None
        Number of trailing axes that belong to what was differentiated. None
        means ``ndim - 2`` (one output axis: ``steps`` was an int). Pass it
        for Jacobians with an ``n_out_steps`` axis when ``ord="spectral"``
        (the other norms do not depend on how axes are grouped).

    Returns
    -------
    norms : tf.Tensor
        Shape ``(batch,)``.

    Raises
    ------
    ValueError
        If ``ord`` is unknown or ``jacobian`` has fewer than 2 axes.

    Examples
    --------
    >>> J = tf.constant([[[3.0, 0.0], [0.0, 4.0]]])
    >>> jacobian_norms(J, "fro").numpy(), jacobian_norms(J, "spectral").numpy()
    (array([5.], dtype=float32), array([4.], dtype=float32))
    """
    if ord not in _NORMS:
        raise ValueError(f"ord must be one of {_NORMS}. Received: ord={ord!r}.")
    jacobian = tf.convert_to_tensor(jacobian)
    ndim = jacobian.shape.rank
    if ndim is None or ndim < 2:
        raise ValueError(
            "jacobian must have a batch axis and at least one more axis. "
            f"Received: a tensor of shape {jacobian.shape}."
        )
    batch = tf.shape(jacobian)[0]
    if ord == "fro":
        return tf.sqrt(tf.reduce_sum(tf.square(tf.reshape(jacobian, (batch, -1))), 1))
    if ord == "max":
        return tf.reduce_max(tf.abs(tf.reshape(jacobian, (batch, -1))), axis=1)
    if wrt_ndim is None:
        wrt_ndim = max(ndim - 2, 0)
    n_columns = int(np.prod(jacobian.shape[ndim - wrt_ndim :]))
    matrix = tf.reshape(jacobian, (batch, -1, n_columns))
    return tf.reduce_max(tf.linalg.svd(matrix, compute_uv=False), axis=-1)
