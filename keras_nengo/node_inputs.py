"""Outputs of input Nodes that are not fed from data, as NengoDL makes them.

An input Node (``size_in == 0``) given no data runs its own output: a constant,
a function of time, or a `nengo.Process`. As in ``nengo_dl.Simulator``, Process
Nodes draw from one random state shared in the graph's Node order, with one
step function per sample row; a run continuing an earlier one (stateful) sees
the later times and the processes' continued steps.
"""

from __future__ import annotations

import nengo
import numpy as np

from keras_nengo._compat import nengo_dl


class NodeOutputs:
    """Values of ``nodes`` for ``rows`` sample rows, step by step.

    Parameters
    ----------
    nodes : list of nengo.Node
        Input Nodes, in NengoDL's order (``TensorGraph.invariant_inputs``).
    rows : int
        Sample rows (the minibatch size).
    dt : float
    seed : int
        Seed of the shared random state (the simulation's seed).
    dtype : str
    """

    def __init__(self, nodes, rows, dt, seed, dtype):
        self.nodes = list(nodes)
        self.rows = int(rows)
        self.dt = float(dt)
        self.seed = int(seed)
        self.dtype = np.dtype(dtype)
        self.reset()

    def reset(self):
        """Back to time 0, with the processes' step functions made anew."""
        rng = np.random.RandomState(self.seed)
        self._steps = {}
        for node in self.nodes:
            output = node.output
            if isinstance(output, nengo.Process):
                shape_out = (node.size_out,)
                self._steps[node] = [
                    output.make_step(
                        (0,),
                        shape_out,
                        self.dt,
                        output.get_rng(rng),
                        output.make_state((0,), shape_out, self.dt),
                    )
                    for _ in range(self.rows)
                ]

    def is_constant(self, node) -> bool:
        """True if ``node``'s output does not change with time."""
        output = node.output
        return not (isinstance(output, nengo.Process) or callable(output))

    def values(self, node, n_steps: int, offset: int = 0) -> np.ndarray:
        """``node``'s output at steps ``offset + 1 ... offset + n_steps``.

        Returns an array ``(rows, n_steps, node.size_out)``; Process step
        functions advance by ``n_steps``. Functions of Nodes with no output are
        called for their side effects.

        Raises
        ------
        nengo.exceptions.SimulationError
            If a Node's function returns None, a non-finite or non-numeric value.
        """
        shape = (self.rows, n_steps, node.size_out)
        output = node.output
        times = (np.arange(n_steps) + int(offset) + 1) * self.dt
        if output is None:
            return np.zeros(shape, self.dtype)
        if node.size_out == 0:
            if callable(output):
                # called for its side effects only, as NengoDL does
                for t in times:
                    output(t)
            return np.zeros(shape, self.dtype)
        if node in self._steps:
            return np.array(
                [
                    [np.array(step(t), copy=True) for t in times]
                    for step in self._steps[node]
                ],
                self.dtype,
            ).reshape(shape)
        if callable(output):
            # NengoDL's check: None, non-finite or non-numeric values raise
            # nengo.exceptions.SimulationError naming the function
            aligned = nengo_dl.utils.align_func(self.dtype)(output)
            single = [np.array(aligned(t), self.dtype, copy=True) for t in times]
            return np.broadcast_to(
                np.reshape(single, (1, n_steps, node.size_out)), shape
            ).copy()
        return np.ascontiguousarray(
            np.broadcast_to(np.asarray(output, self.dtype), shape)
        )
