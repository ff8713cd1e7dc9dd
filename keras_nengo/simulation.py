"""NengoDL's simulation of one network, run from tensors the caller owns.

NengoDL simulates a network with a ``TensorGraph`` that keeps all parameters of
one kind in a few merged, unlabelled variables (``base_params``), keeps the
simulation state in more variables (``saved_state``) and bakes its minibatch
size into every signal. `Simulation` keeps NengoDL's build and its per-step
maths but none of its variables on the run path: on every run the merged
parameter arrays are assembled from the caller's named variables (one
``tf.concat`` per array) and the state starts from constants (or from the
caller's state tensors), so gradients flow to the named variables, nothing of
NengoDL's needs tracking in a SavedModel or mirroring under ``tf.distribute``,
and the final state comes back as tensors.

One ``TensorGraph`` is built per minibatch size actually used; they share the
named variables and the Keras layers of TensorNodes.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_nengo._compat import nengo_dl, nengo_dl_tf, tf_keras
from keras_nengo.engine.modes import stepwise
from keras_nengo.engine.tensor_graph import TensorGraph
from keras_nengo.folding import why_not_foldable
from keras_nengo.graph_feed import (
    BoundedLoops,
    Feed,
    Parameter,
    Plan,
    build_nengo_model,
    constant,
    graph_settings,
    layers_named,
    outside_trace,
)
from keras_nengo.node_inputs import NodeOutputs

SUPPORTED_DTYPES = ("float32", "float64")


def _shaped(variable, shape):
    # a reshape is two graph ops per named variable: thousands on SPA networks
    if tuple(variable.shape) == tuple(shape):
        return tf.convert_to_tensor(variable)
    return tf.reshape(variable, shape)


class Simulation:
    """NengoDL's build of ``network``, run as a function of tensors.

    Parameters
    ----------
    network : nengo.Network
        The network to simulate.
    parameters : list of tuple
        ``(name, obj, attr)`` for every Nengo parameter that may become a named
        variable (see `keras_nengo.naming.NameTable.parameters`).
    dt, seed, dtype
        As in `keras_nengo.NengoLayer`.
    tensor_nodes : list of (str, nengo.Node)
        Names of TensorNodes (`keras_nengo.naming.NameTable.tensor_nodes`): the
        weights of their Keras layers are named ``<name>/<weight>``.
    unroll_simulation : int
        Simulation steps built explicitly into each loop iteration, as in
        ``nengo_dl.Simulator`` (more build time, less per-step loop overhead).
    minibatch_size : int
        Minibatch size of the first graph (built now, to find the parameters).
    """

    #: run stateless input-driven operators for all steps before the time loop
    #: (`keras_nengo.engine.hoisting`); False runs every operator per step
    hoist = True

    def __init__(
        self,
        network,
        parameters,
        dt,
        seed,
        dtype,
        tensor_nodes=(),
        unroll_simulation=1,
        minibatch_size=1,
    ):
        self.network = network
        self.hoist = type(self).hoist  # fixed for every graph of this simulation
        self.unroll_simulation = int(unroll_simulation)
        #: fold time into the batch where nothing holds state (`keras_nengo.folding`)
        self.fold_time = True
        self._fold_reasons = {}
        self.layer_names = []
        for name, node in tensor_nodes:
            layer = node.tensor_func
            if isinstance(layer, tf_keras.layers.Layer) and not any(
                layer is known for known, _ in self.layer_names
            ):
                self.layer_names.append((layer, name))
        self.dt = float(dt)
        self.seed = int(seed)
        self.dtype = dtype
        self.model = build_nengo_model(network, self.dt, self.seed, dtype)
        self._graphs = {}
        self._plan = Plan()
        self._feeds = {}
        self._post_built = set()
        self.tensor_node_layers = []
        # the first graph finds the parameters; made for the size runs will use
        first = self._new_graph(int(minibatch_size))
        self.parameters = self._find_parameters(first, parameters)
        self.probe_index = {probe: i for i, probe in enumerate(self.model.probes)}

    @property
    def minibatch_sizes(self) -> list:
        """Minibatch sizes of the graphs built so far."""
        return sorted(
            size for size, graph in self._graphs.items() if graph in self._feeds
        )

    def _find_parameters(self, graph, candidates):
        sig = self.model.sig
        found = []
        for name, obj, attr in candidates:
            signal = sig[obj].get(attr)
            if signal is None or signal not in graph.signals:
                # the parameter does not take part in the simulation (e.g. the
                # graph optimizer removed the only operator that read it)
                continue
            trainable = getattr(signal, "trainable", None)
            if trainable is None or getattr(signal, "minibatched", False):
                # None: never a parameter (probe connections); minibatched: the
                # target of an online learning rule, i.e. simulation state
                continue
            found.append(Parameter(name, obj, attr, signal, bool(trainable)))
        return found

    def _new_graph(self, minibatch_size):
        with tf.init_scope(), graph_settings(self.dtype, self._plan):
            graph = TensorGraph(
                self.model,
                self.dt,
                self.unroll_simulation,
                minibatch_size,
                None,
                nengo_dl.utils.NullProgressBar(),
                self.seed,
                hoist=self.hoist,
            )
        self._graphs[minibatch_size] = graph
        return graph

    def graph(self, minibatch_size: int):
        """The built TensorGraph for ``minibatch_size`` (built on first use)."""
        graph = self._graphs.get(minibatch_size) or self._new_graph(minibatch_size)
        if graph not in self._feeds:
            outside_trace(lambda: self._build(graph))
        return graph

    def _build(self, graph):
        with tf.init_scope():
            # TensorNode layers already built by another graph keep their weights
            tracked = nengo_dl.compat.sub_layers(graph)
            for layer in self.tensor_node_layers:
                if layer not in tracked:
                    tracked.append(layer)
            with layers_named(self.layer_names):
                graph.build(None)
            for layer in nengo_dl.compat.sub_layers(graph):
                if isinstance(layer, tf_keras.layers.Layer) and not any(
                    layer is known for known in self.tensor_node_layers
                ):
                    self.tensor_node_layers.append(layer)
            self._feeds[graph] = Feed(graph, self.parameters)

    # -- running ------------------------------------------------------------------

    def node_outputs(self, minibatch_size: int) -> NodeOutputs:
        """The outputs of the graph's input Nodes, for runs from time 0."""
        graph = self.graph(minibatch_size)
        return NodeOutputs(
            graph.invariant_inputs, minibatch_size, self.dt, self.seed, self.dtype
        )

    def _merged_params(self, feed, variables):
        merged = {}
        for key, pieces in feed.pieces.items():
            parts = [
                (
                    _shaped(variables[piece[0].name], piece[1])
                    if isinstance(piece, tuple)
                    else tf.constant(piece)
                )
                for piece in pieces
            ]
            merged[key] = parts[0] if len(parts) == 1 else tf.concat(parts, axis=0)
        for key, value in feed.fixed.items():
            merged[key] = constant(value)
        return merged

    def initial_state(self, minibatch_size: int) -> dict:
        """The state a run starts from: ``{key: np.ndarray}``."""
        return dict(self._feeds[self.graph(minibatch_size)].initial_state)

    def restart_processes(self):
        """Restart the Processes NengoDL steps in Python, as they were built.

        Processes without a TensorFlow builder (e.g. an Ensemble's noise) run
        Python step functions that draw from one random stream per graph; the
        stream and the functions are made anew, so that a run from the initial
        state repeats the first run (as after ``nengo.Simulator.reset``).
        """
        for graph in self._post_built:
            rng = np.random.RandomState(graph.seed)
            for op_build in graph.op_builder.op_builds.values():
                for builder in (op_build, getattr(op_build, "built_process", None)):
                    config = getattr(builder, "config", None)
                    if config is not None:
                        builder.config = config._replace(rng=rng)
            graph.build_post()

    def why_not_foldable(self, probes, training) -> str | None:
        """Why runs cannot fold time into the batch (see `keras_nengo.folding`)."""
        key = (tuple(id(probe) for probe in probes), training)
        if key not in self._fold_reasons:
            self._fold_reasons[key] = why_not_foldable(self.network, probes, training)
        return self._fold_reasons[key]

    def _with_own_outputs(self, fed, rows, n_steps):
        """``fed`` plus, as constants, the outputs of the input Nodes it lacks."""
        graph = self.graph(rows)
        unfed = [node for node in graph.invariant_inputs if node not in fed]
        if not unfed:
            return fed
        own = self.node_outputs(rows)
        fed = dict(fed)
        for node in unfed:
            fed[node] = tf.constant(own.values(node, n_steps), self.dtype)
        return fed

    def _run_folded(self, variables, fed, rows, n_steps, training, hoist):
        """``n_steps`` steps of ``rows`` rows as one step of ``rows * n_steps`` rows."""
        fed = self._with_own_outputs(fed, rows, n_steps)
        folded = {
            node: tf.reshape(value, [rows * n_steps, 1, node.size_out])
            for node, value in fed.items()
        }
        outputs, _ = self.run(
            variables, folded, rows * n_steps, 1, training, fold=False, hoist=hoist
        )
        return [
            tf.reshape(value, [rows, n_steps, *value.shape[2:]]) for value in outputs
        ], None

    def run(
        self,
        variables,
        fed,
        minibatch_size,
        n_steps,
        training,
        state=None,
        probes=None,
        fold=True,
        hoist=True,
    ):
        """Simulate ``n_steps`` steps for a minibatch of ``minibatch_size`` rows.

        Parameters
        ----------
        variables : dict of {str: tf.Variable}
            The named parameters, by name.
        fed : dict of {nengo.Node: tf.Tensor}
            Data ``(minibatch_size, n_steps, node.size_out)`` for fed Nodes; the
            other input Nodes run their own output from time 0 (needs a static
            ``n_steps``).
        minibatch_size : int
        n_steps : int or tf.Tensor
        training : bool or None
            True runs spiking neurons as their rate approximation.
        state : dict or None
            State to start from (as `initial_state` returns); None: the initial
            state.

        probes : list of nengo.Probe or None
            The probes whose values will be used (default: all).
        fold : bool
            Whether a run from the initial state may fold time into the batch
            when nothing on the path holds state (`keras_nengo.folding`); the
            outputs are the same.
        hoist : bool
            Whether stateless input-driven operators may run for all steps
            before the loop (`keras_nengo.engine.hoisting`); False for data
            whose shape is only checked when the graph runs (work before the
            loop could read it before the check stops the run). Same outputs.

        Returns
        -------
        outputs : list of tf.Tensor
            Probe data ``(minibatch_size, n_steps, size)`` in NengoDL's probe
            order (with ``probes`` given, only those hold meaningful values).
        final_state : dict of {key: tf.Tensor} or None
            The state after the last step, in the form of ``state``; None for a
            time-folded run.
        """
        static_steps = tf.get_static_value(n_steps)
        if (
            fold
            and self.fold_time
            and state is None
            and static_steps is not None
            and static_steps > 1
            and not self.why_not_foldable(probes or self.model.probes, training)
        ):
            return self._run_folded(
                variables, fed, minibatch_size, int(static_steps), training, hoist
            )
        graph = self.graph(minibatch_size)
        feed = self._feeds[graph]
        node_inputs = []
        unfed = [node for node in graph.invariant_inputs if node not in fed]
        if unfed and static_steps is None:
            raise ValueError(
                f"Node {unfed[0]} is not fed from data, so its output is computed "
                "in advance, which needs a fixed number of time steps; the number "
                "of steps of this call is unknown. Give the data a static number "
                "of steps (e.g. tf.keras.Input((n_steps, size))) or feed the Node."
            )
        if unfed:
            fed = self._with_own_outputs(fed, minibatch_size, int(static_steps))
        # a run takes whole loop iterations of `unroll` steps (NengoDL runs the
        # extra steps): inputs get zeros for them, outputs are cut back
        unroll = graph.unroll
        total = -(-n_steps // unroll) * unroll if unroll > 1 else n_steps
        for node in graph.invariant_inputs:
            value = fed[node]
            if unroll > 1:
                value = tf.pad(value, [[0, 0], [0, total - n_steps], [0, 0]])
            node_inputs.append(value)
        node_inputs.append(tf.fill([minibatch_size, 1], tf.cast(n_steps, tf.int32)))

        if state is None:
            state = {key: constant(value) for key, value in feed.initial_state.items()}
        base = self._merged_params(feed, variables)
        base.update({key: state[("learned", key)] for key in feed.learned})
        bounds = None
        graph.single_iteration = False
        if static_steps is not None:
            iterations = -(-int(static_steps) // graph.unroll)
            history = all(
                nengo_dl.config.get_setting(
                    self.model, "keep_history", default=True, obj=probe
                )
                for probe in self.model.probes
            )
            bounds = BoundedLoops(iterations, iterations * unroll if history else None)
            graph.single_iteration = iterations == 1
        # NengoDL returns the probes, then the number of steps run
        # forward-mode graphs step every operator: a hoisted value's tangent,
        # written into a probe's TensorArray in the loop, fails in TensorFlow's
        # ForwardAccumulator (a TypeError on the TensorArray's variant dtype)
        graph.use_hoisting(hoist and not stepwise())
        outputs = self._call(graph, node_inputs, training, base, state, bounds)[:-1]
        if graph not in self._post_built:
            # NengoDL's post-build (Python step functions of Processes it has no
            # TensorFlow builder for) needs what the graph's first call sets up;
            # the functions run when the traced graph runs, after this
            graph.build_post()
            self._post_built.add(graph)
        if unroll > 1:
            outputs = [value[:, :n_steps] for value in outputs]
        final = dict(zip(graph.saved_state, graph.final_internal_state))
        final_params = dict(zip(graph.base_params, graph.final_base_params))
        final.update({("learned", key): final_params[key] for key in feed.learned})
        return outputs, final

    @staticmethod
    def _call(graph, node_inputs, training, base, state, bounds):
        """``graph.call`` with our tensors in place of NengoDL's variables.

        ``bounds`` (a `BoundedLoops`, or None when the steps are unknown) stands
        in for ``tf`` in NengoDL's graph code during the call.
        """
        own = (graph.base_params, graph.saved_state, graph.base_arrays_init)
        # learning-rule targets are assigned back to NengoDL's variables after a
        # run; marking them not minibatched for the call leaves them as tensors
        arrays_init = {
            kind: (
                {key: (*init[:-1], False) for key, init in inits.items()}
                if kind != "state"
                else inits
            )
            for kind, inits in graph.base_arrays_init.items()
        }
        scope = nengo_dl.compat.trackable.no_automatic_dependency_tracking_scope
        with scope(graph):
            graph.base_params = {key: base[key] for key in own[0]}
            graph.saved_state = {key: state[key] for key in own[1]}
            graph.base_arrays_init = arrays_init
        module = nengo_dl.tensor_graph
        if bounds is not None:
            module.tf = bounds
        try:
            return graph.call(node_inputs, training=training)
        finally:
            module.tf = nengo_dl_tf
            with scope(graph):
                graph.base_params, graph.saved_state, graph.base_arrays_init = own
