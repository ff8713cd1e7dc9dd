"""Batches of a size unknown while tracing, on graphs of a fixed minibatch size.

NengoDL builds every graph for a fixed number of sample rows. A batch whose size
is only known when the graph runs (a symbolic ``None`` batch in a Functional
model, a serving signature, the partial last batch of ``fit``) is run on a graph
of ``size`` rows in one of two ways:

- `run_padded`: the batch has at most ``size`` rows (NengoModel makes ``size``
  its batch size): zero-padded to ``size`` rows, one graph run, padding cut off.
- `run_in_chunks`: any batch: padded to a multiple of ``size`` and run chunk by
  chunk in a ``tf.map_fn`` loop.

Rows never mix in a simulation, so both give the rows' results unchanged.
"""

from __future__ import annotations

import tensorflow as tf


def run_padded(run, fed, size, n_steps, probes, name):
    """``run(fed, size)`` on ``fed`` zero-padded to ``size`` rows.

    Parameters
    ----------
    run : callable
        ``run(fed, size) -> list of tf.Tensor`` (one per probe), for exactly
        ``size`` rows.
    fed : dict of {nengo.Node: tf.Tensor}
        Data ``(batch, n_steps, node.size_out)``, batch unknown while tracing.
    size : int
    n_steps : int or tf.Tensor
    probes : list of nengo.Probe
        The probes ``run`` returns, in order.
    name : str
        The layer's name, for the error message.
    """
    batch = tf.shape(next(iter(fed.values())))[0]
    tf.debugging.assert_less_equal(
        batch,
        size,
        message=(
            f"Layer {name!r} was set to run batches of at most {size} samples "
            "(batches_fit_minibatch=True); set its minibatch_size to the largest "
            "batch size."
        ),
    )
    padded = {}
    for node, value in fed.items():
        value = tf.pad(value, [[0, size - batch], [0, 0], [0, 0]])
        value.set_shape([size, None, node.size_out])
        padded[node] = value
    return [value[:batch] for value in run(padded, size)]


def run_in_chunks(run, fed, size, n_steps, probes, name):
    """``run(fed, size)`` over chunks of ``size`` rows (arguments as `run_padded`)."""
    nodes = list(fed)
    batch = tf.shape(fed[nodes[0]])[0]
    n_chunks = (batch + size - 1) // size
    padding = n_chunks * size - batch
    dtype = fed[nodes[0]].dtype

    def chunked(value):
        value = tf.pad(value, [[0, padding], [0, 0], [0, 0]])
        return tf.reshape(value, [n_chunks, size, n_steps, value.shape[-1]])

    def run_chunk(chunk):
        for node, value in zip(nodes, chunk):
            value.set_shape([size, None, node.size_out])
        return run(dict(zip(nodes, chunk)), size)

    signature = [tf.TensorSpec([size, None, probe.size_in], dtype) for probe in probes]
    outputs = tf.map_fn(
        run_chunk, [chunked(fed[node]) for node in nodes], fn_output_signature=signature
    )
    return [
        tf.reshape(value, [n_chunks * size, n_steps, probe.size_in])[:batch]
        for value, probe in zip(outputs, probes)
    ]
