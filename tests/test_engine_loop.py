"""Runs of one loop iteration are built without a ``tf.while_loop``.

A run whose number of steps is known when tracing and fits in one iteration
of the loop (one step, a time-folded run, or up to ``unroll_simulation``
steps) builds its steps straight. Checked: which graphs hold a loop, and that
such runs equal one long looped run (spiking, synapses, recurrence; stateful
chunks of one step, unrolled chunks).
"""

import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_close
from test_hoisting import data, linear_lif, mixed

import keras_nengo as kn


def loops(model, x, training=False):
    """How many ``while`` loops the traced call of ``model`` on ``x`` holds."""
    graph = (
        tf.function(lambda x: model(x, training=training))
        .get_concrete_function(
            {k: tf.TensorSpec(v.shape, v.dtype) for k, v in x.items()}
        )
        .graph.as_graph_def()
    )
    ops = [node.op for node in graph.node]
    ops += [node.op for f in graph.library.function for node in f.node_def]
    return sum(op in ("While", "StatelessWhile") for op in ops)


@pytest.mark.parametrize(
    "steps, unroll, expected", [(1, 1, 0), (2, 1, 1), (3, 4, 0), (5, 4, 1)]
)
def test_one_iteration_builds_no_loop(steps, unroll, expected):
    net = mixed()
    model = kn.NengoModel(net, seed=2, unroll_simulation=unroll)
    x = {k: tf.constant(v, tf.float32) for k, v in data(net, 2, steps).items()}
    assert loops(model, x) == expected
    # time folded into the batch (no synapse, neurons as rates): no loop
    net = linear_lif()
    x = {"stim": tf.constant(data(net, 2, steps)["stim"], tf.float32)}
    assert loops(kn.NengoModel(net, seed=2), x, training=True) == 0


def test_one_step_and_unrolled_chunks_equal_one_long_run():
    net = mixed()
    x = {k: tf.constant(v, tf.float32) for k, v in data(net, steps=12).items()}
    want = kn.NengoModel(net, seed=2)(x)
    steps = kn.NengoModel(net, seed=2, stateful=True)
    by_step = [steps({k: v[:, i : i + 1] for k, v in x.items()}) for i in range(12)]
    unrolled = kn.NengoModel(net, seed=2, stateful=True, unroll_simulation=4)
    by_chunk = [unrolled({k: v[:, i : i + 4] for k, v in x.items()}) for i in (0, 4, 8)]
    for name in want:
        for chunks in (by_step, by_chunk):
            got = np.concatenate([chunk[name] for chunk in chunks], axis=1)
            assert_close(got, want[name])
    # the spikes of the recurrent ensemble in the run are not all zero
    assert np.abs(want["p_b"]).max() > 0
