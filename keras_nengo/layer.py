"""NengoLayer: a Nengo network as a Keras layer that owns named variables.

NengoDL simulates a network with a ``TensorGraph`` that keeps all parameters of
one kind in a few merged, unlabelled arrays (``base_params``) and bakes its
minibatch size into every signal. ``NengoLayer`` keeps NengoDL's fast merged
storage for the simulation but owns one ``tf.Variable`` per Nengo parameter,
named by `keras_nengo.naming`. On every forward pass the merged arrays are
assembled from the named variables (one ``tf.concat`` per array), so gradients
flow to the named variables and NengoDL's own copies are never read.

The minibatch size is hidden: one ``TensorGraph`` is built per minibatch size
actually used (they all share the named variables), and batches smaller than
the graph's minibatch size are zero-padded and the padding sliced away.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import tensorflow as tf

from keras_nengo._compat import nengo_dl
from keras_nengo.naming import NameTable

import nengo  # noqa: E402  (after _compat so that nengo_dl is patched first)

_SUPPORTED_DTYPES = ("float32", "float64")


def build_nengo_model(network: nengo.Network, dt: float, seed: int | None, dtype: str):
    """Build ``network`` with NengoDL's builder, as ``nengo_dl.Simulator`` does."""
    precision = nengo.rc.get("precision", "bits")
    nengo.rc.set("precision", "bits", dtype[-2:])
    try:
        model = nengo_dl.builder.NengoModel(
            dt=float(dt),
            label=f"{network}, dt={dt:f}",
            builder=nengo_dl.builder.NengoBuilder(),
            fail_fast=False,
        )
        if seed is not None and network.seed is None:
            # the builder seeds everything from the network's seed; without one it
            # draws from the global RNG, so give it the model's seed instead
            model.seeds[network] = seed
            model.seeded[network] = False
        model.build(network)
    finally:
        nengo.rc.set("precision", "bits", precision)
    return model


@contextlib.contextmanager
def _dtype_setting(dtype):
    """Make NengoDL's TensorGraph use ``dtype`` whatever the network's config says.

    TensorGraph reads its precision from ``configure_settings(dtype=...)`` on the
    network; NengoModel takes it as an argument instead of changing the user's
    network config.
    """
    module = nengo_dl.tensor_graph.config
    original = module.get_setting

    def get_setting(model, setting, default=None, obj=None):
        if setting == "dtype" and obj is None:
            return dtype
        return original(model, setting, default=default, obj=obj)

    module.get_setting = get_setting
    try:
        yield
    finally:
        module.get_setting = original


class _Parameter:
    """Where one named Nengo parameter lives in NengoDL's merged storage."""

    def __init__(self, name, obj, attr, signal, trainable):
        self.name = name
        self.obj = obj
        self.attr = attr
        self.signal = signal
        self.trainable = trainable
        self.initial_value = np.array(
            signal.initial_value.data
            if hasattr(signal.initial_value, "indices")
            else signal.initial_value
        )
        if signal.sparse and not hasattr(signal.initial_value, "indices"):
            self.initial_value = signal.initial_value.tocoo().data
        self.shape = self.initial_value.shape


class NengoLayer(tf.keras.layers.Layer):
    """A Nengo network as a Keras layer with one variable per Nengo parameter.

    Parameters
    ----------
    network : nengo.Network
        The network to simulate.
    inputs : list of nengo.Node
        Nodes whose output is read from the layer's inputs.
    outputs : list of nengo.Probe
        Probes whose data the layer returns.
    dt : float
        Simulation time step in seconds.
    seed : int or None
        Seed for building the network (when the network has none) and for the
        simulation's random number generators.
    dtype : {"float32", "float64"}
        Floating point precision of the simulation and of the variables.
    name : str or None
        Name of the layer.

    Notes
    -----
    ``call(inputs, training=None, n_steps=None)`` takes a dict keyed by input
    name with tensors of shape ``(batch, n_steps, node.size_out)`` and returns a
    list of probe tensors ``(batch, n_steps, probe size)`` in ``outputs`` order.
    """

    def __init__(
        self,
        network: nengo.Network,
        inputs: list,
        outputs: list,
        dt: float = 0.001,
        seed: int | None = None,
        dtype: str = "float32",
        name: str | None = None,
        **kwargs,
    ):
        if dtype not in _SUPPORTED_DTYPES:
            raise ValueError(
                f"dtype must be one of {_SUPPORTED_DTYPES}. Received: dtype={dtype!r}"
            )
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.network = network
        self.names = NameTable(network)
        self.dt = float(dt)
        if seed is None:
            seed = (
                network.seed + 1
                if network.seed is not None
                else int(np.random.randint(np.iinfo(np.int32).max))
            )
        self.seed = int(seed)
        self.input_nodes = list(inputs)
        self.output_probes = list(outputs)

        self._nengo_model = build_nengo_model(network, self.dt, self.seed, dtype)
        with nengo_dl.compat.trackable.no_automatic_dependency_tracking_scope(self):
            # NengoDL's graphs own merged copies of the parameters; they must not
            # show up among this layer's weights
            self._graphs = {}
            self._feeds = {}
        self.default_minibatch_size = None
        # a first TensorGraph marks which signals are trainable; it is reused for
        # minibatch size 1 (single samples, jacobians per sample)
        first = self._graph(1, build=False)
        self._parameters = self._find_parameters(first)
        self.named_variables = {}
        self._tensor_node_layers = []

    # -- construction -------------------------------------------------------------

    def _find_parameters(self, graph):
        sig = self._nengo_model.sig
        params = []
        for name, obj, attr in self.names.parameters():
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
            params.append(_Parameter(name, obj, attr, signal, bool(trainable)))
        return params

    def build(self, input_shape=None):
        for param in self._parameters:
            self.named_variables[param.name] = self.add_weight(
                name=param.name,
                shape=param.shape,
                dtype=self.dtype,
                initializer=tf.constant_initializer(param.initial_value),
                trainable=param.trainable,
            )
        # build the minibatch-size-1 graph now, so TensorNode layers get their
        # weights inside this layer and are tracked by it
        self._graph(1)
        super().build(input_shape)

    def prepare(self, minibatch_size: int):
        """Build the simulation for batches of ``minibatch_size`` samples now.

        Building a NengoDL graph takes a moment (planning, variables); doing it
        before a ``tf.function`` traces keeps that out of the trace.
        """
        self._graph(int(minibatch_size))

    def _graph(self, minibatch_size, build=True):
        """The TensorGraph for ``minibatch_size`` (created on first use)."""
        graph = self._graphs.get(minibatch_size)
        if graph is None:
            with tf.init_scope(), _dtype_setting(self.dtype):
                graph = nengo_dl.tensor_graph.TensorGraph(
                    self._nengo_model,
                    self.dt,
                    1,
                    minibatch_size,
                    None,
                    nengo_dl.utils.NullProgressBar(),
                    self.seed,
                )
            self._graphs[minibatch_size] = graph
        if build and graph not in self._feeds:
            if tf.executing_eagerly():
                self._build_graph(graph)
            else:
                self._build_graph_outside_trace(graph)
        return graph

    def _build_graph_outside_trace(self, graph):
        # a tf.function may only create variables on its first trace, and the
        # graph's internal variables would be created inside this trace; a new
        # thread starts in eager mode with its own variable-creator stack, so
        # the graph is built there as if it had been prepared in advance
        errors = []

        def build():
            try:
                self._build_graph(graph)
            except Exception as error:  # pylint: disable=broad-except
                errors.append(error)

        thread = threading.Thread(target=build, name="keras_nengo-build")
        thread.start()
        thread.join()
        if errors:
            raise errors[0]

    def _build_graph(self, graph):
        with tf.init_scope():
            # TensorNode layers already built by another graph keep their weights
            tracked = nengo_dl.compat.sub_layers(graph)
            for layer in self._tensor_node_layers:
                if layer not in tracked:
                    tracked.append(layer)
            graph.build(None)
            graph.build_post()
            for layer in nengo_dl.compat.sub_layers(graph):
                if isinstance(layer, tf.keras.layers.Layer) and not any(
                    layer is known for known in self._tensor_node_layers
                ):
                    self._tensor_node_layers.append(layer)
            self._feeds[graph] = self._feed_plan(graph)

    def _feed_plan(self, graph):
        """For each merged array holding named parameters: its pieces in order.

        Each piece is either ``(parameter, shape)`` or ``(None, (start, stop))``, a
        row range to take from NengoDL's own variable (values that are not Nengo
        parameters, e.g. gains stored next to non-trainable weights).
        """
        by_key = {}
        for param in self._parameters:
            tensor_sig = graph.signals[param.signal]
            if tensor_sig.minibatched or len(tensor_sig.slices) != 1:
                raise NotImplementedError(
                    f"Cannot map Nengo parameter {param.name!r} ({param.obj}) onto "
                    f"NengoDL's storage (slices {tensor_sig.slices})."
                )
            start, stop = tensor_sig.slices[0]
            by_key.setdefault(tensor_sig.key, []).append(
                (start, stop, param, tensor_sig.shape)
            )
        plan = {}
        for key, pieces in by_key.items():
            pieces.sort(key=lambda piece: piece[0])
            rows = graph.base_params[key].shape[0]
            ordered, position = [], 0
            for start, stop, param, shape in pieces:
                if start > position:
                    ordered.append((None, (position, start)))
                ordered.append((param, shape))
                position = stop
            if position < rows:
                ordered.append((None, (position, rows)))
            plan[key] = ordered
        return plan

    # -- forward pass -------------------------------------------------------------

    def _merged_params(self, graph):
        merged = {}
        for key, pieces in self._feeds[graph].items():
            parts = []
            for param, extent in pieces:
                if param is None:
                    parts.append(graph.base_params[key][extent[0] : extent[1]])
                else:
                    parts.append(
                        tf.reshape(self.named_variables[param.name], extent)
                    )
            merged[key] = parts[0] if len(parts) == 1 else tf.concat(parts, axis=0)
        return merged

    def _node_values(self, node, n_steps, minibatch_size):
        """Output of a Node that is not fed from data, as a constant."""
        output = node.output
        dtype = np.dtype(self.dtype)
        if output is None or node.size_out == 0:
            return np.zeros((minibatch_size, n_steps, node.size_out), dtype)
        if isinstance(output, np.ndarray) or np.isscalar(output):
            values = np.broadcast_to(
                np.asarray(output, dtype), (minibatch_size, n_steps, node.size_out)
            )
            return np.ascontiguousarray(values)
        times = (np.arange(n_steps) + 1) * self.dt
        if isinstance(output, nengo.Process):
            rng = np.random.RandomState(self.seed)
            values = np.zeros((minibatch_size, n_steps, node.size_out), dtype)
            for i in range(minibatch_size):
                state = output.make_state((0,), (node.size_out,), self.dt)
                step = output.make_step(
                    (0,), (node.size_out,), self.dt, output.get_rng(rng), state
                )
                values[i] = [np.array(step(t), copy=True) for t in times]
            return values
        single = np.array([np.array(output(t), dtype, copy=True) for t in times])
        return np.broadcast_to(
            single.reshape(1, n_steps, node.size_out),
            (minibatch_size, n_steps, node.size_out),
        ).copy()

    @tf.autograph.experimental.do_not_convert
    def call(self, inputs, training=None, n_steps=None):
        """Run the simulation from its initial state.

        Parameters
        ----------
        inputs : dict of {str: tf.Tensor}
            Data for each input Node, keyed by input name, shaped
            ``(batch, n_steps, node.size_out)``.
        training : bool or None
            True runs spiking neurons as their rate approximation.
        n_steps : int or None
            Number of time steps; only used when there are no data inputs.

        Returns
        -------
        outputs : list of tf.Tensor
            Probe data ``(batch, n_steps, probe size)`` in ``output_probes`` order.
        """
        data = [inputs[self.names.input_name(node)] for node in self.input_nodes]
        if data:
            batch = tf.shape(data[0])[0]
            static_batch = data[0].shape[0]
            static_steps = data[0].shape[1]
            steps = tf.shape(data[0])[1]
        else:
            if n_steps is None:
                raise ValueError(
                    "This network has no data inputs, so the number of time steps "
                    "must be given. Received: n_steps=None. Pass n_steps=<int>."
                )
            static_batch = 1
            batch = tf.constant(1)
            static_steps = int(n_steps)
            steps = tf.constant(static_steps)

        minibatch_size = static_batch or self.default_minibatch_size
        if minibatch_size is None:
            raise ValueError(
                "The batch size of this call is not known while tracing; call the "
                "model through NengoModel.fit/predict/evaluate or with a fixed batch "
                "size."
            )
        graph = self._graph(minibatch_size)

        if static_batch is None:
            tf.debugging.assert_less_equal(
                batch,
                minibatch_size,
                message=(
                    f"This model was traced for batches of at most {minibatch_size} "
                    "samples; call fit/predict/evaluate with batch_size set."
                ),
            )
        padding = minibatch_size - batch

        fed = {}
        for node, value in zip(self.input_nodes, data):
            value = tf.cast(value, self.dtype)
            if static_batch is None or static_batch != minibatch_size:
                value = tf.pad(value, [[0, padding], [0, 0], [0, 0]])
            value.set_shape([minibatch_size, static_steps, node.size_out])
            fed[node] = value

        node_inputs = []
        for node in graph.invariant_inputs:
            if node in fed:
                node_inputs.append(fed[node])
            else:
                if static_steps is None:
                    raise ValueError(
                        f"Node {node} is not fed from data, so its output is "
                        "computed in advance, which needs a fixed number of time "
                        "steps; the number of steps of this call is unknown."
                    )
                node_inputs.append(
                    tf.constant(
                        self._node_values(node, static_steps, minibatch_size),
                        self.dtype,
                    )
                )
        node_inputs.append(tf.fill([minibatch_size, 1], tf.cast(steps, tf.int32)))

        merged = self._merged_params(graph)
        own = graph.base_params
        with nengo_dl.compat.trackable.no_automatic_dependency_tracking_scope(graph):
            graph.base_params = {key: merged.get(key, own[key]) for key in own}
        try:
            outputs = graph.call(node_inputs, training=training)
        finally:
            with nengo_dl.compat.trackable.no_automatic_dependency_tracking_scope(
                graph
            ):
                graph.base_params = own

        probe_index = {probe: i for i, probe in enumerate(self._nengo_model.probes)}
        results = []
        for probe in self.output_probes:
            value = outputs[probe_index[probe]]
            if static_batch != minibatch_size:
                value = value[:batch]
            results.append(value)
        return results
