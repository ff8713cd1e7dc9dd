"""NengoLayer: a Nengo network as an ordinary Keras layer with named variables.

The layer owns one ``tf.Variable`` per Nengo parameter (named by
`keras_nengo.naming`) and runs the network with `keras_nengo.simulation`. It is
called on one tensor ``(batch, n_steps, node.size_out)`` when there is one input
(a list in ``inputs`` order or a dict keyed by input name otherwise) and returns
one tensor for one output, else a list in ``outputs`` order.

Any batch size works, also one unknown while tracing (a symbolic ``None`` batch
in a Functional model or a serving signature): NengoDL's graphs have a fixed
minibatch size, so such a batch is run in chunks of `minibatch_size` rows, the
last chunk zero-padded. A batch of known size runs in one graph of that size.
"""

from __future__ import annotations

import nengo  # noqa: E402  (after _compat so that nengo_dl is patched first)
import numpy as np
import tensorflow as tf

from keras_nengo import _keras_apis
from keras_nengo import data as data_module
from keras_nengo import saving
from keras_nengo._compat import in_xla_compilation, keras, nengo_dl
from keras_nengo._keras3_limits import check_tensor_node_layers
from keras_nengo.batching import run_in_chunks, run_padded
from keras_nengo.naming import NameTable
from keras_nengo.simulation import SUPPORTED_DTYPES, Simulation
from keras_nengo.state import StatefulLayerMixin

#: rows per chunk when the batch size is unknown while tracing (Keras's default
#: batch size); NengoModel sets it to the batch size of fit/predict/evaluate
DEFAULT_MINIBATCH_SIZE = 32


def _default_seed(network, seed):
    if seed is not None:
        return int(seed)
    if network.seed is not None:
        # nengo_dl.Simulator's default
        return network.seed + 1
    return int(np.random.randint(np.iinfo(np.int32).max))


def _checked(value, condition, message):
    """``value``, passed on by a ``tf.cond`` that fails with ``message`` unless
    ``condition`` holds: what uses the value depends on the check by data, which
    no graph optimization can reorder (control dependencies can be)."""

    def fail():
        with tf.control_dependencies([tf.debugging.Assert(False, [message])]):
            return tf.identity(value)

    return tf.cond(condition, lambda: tf.identity(value), fail)


@_keras_apis.register_serializable
class NengoLayer(StatefulLayerMixin, keras.layers.Layer):
    """A Nengo network as a Keras layer with one variable per Nengo parameter.

    A ``keras.Layer`` of the Keras the process uses: Keras 3, or tf-keras where
    ``TF_USE_LEGACY_KERAS=1`` is set (see `keras_nengo._compat`).

    Parameters
    ----------
    network : nengo.Network
        The network to simulate.
    inputs : list of nengo.Node or None
        Nodes that may be fed from the layer's input; default: every Node with
        ``size_in == 0`` (the Nodes NengoDL treats as inputs). A Node given no
        data runs its own output.
    outputs : list of nengo.Probe or None
        Probes whose data the layer returns; default: all probes.
    dt : float
        Simulation time step in seconds.
    seed : int or None
        Seed for building the network (when the network has none) and for the
        simulation's random number generators.
    dtype : {"float32", "float64"}
        Floating point precision of the simulation and of the variables.
    unroll_simulation : int
        Simulation steps built into each iteration of the simulation loop, as
        ``nengo_dl.Simulator(unroll_simulation=...)``: less loop overhead per
        step for more build time. A run takes a whole number of iterations, so
        ``n_steps`` should be a multiple of it (NengoDL runs the extra steps).
    stateful : bool
        If True, the simulation state (neuron voltages, synapse and probe
        filters, learning-rule targets, time) carries from the end of one call
        to the start of the next, per sample row; the batch size is then fixed
        by the first call. `reset_states` returns to the initial state.
    name : str or None
        Name of the layer.

    Examples
    --------
    >>> import keras_nengo as kn
    >>> import nengo, numpy as np, tensorflow as tf
    >>> with nengo.Network(seed=0) as net:
    ...     stim = nengo.Node(np.zeros(2), label="stim")
    ...     ens = nengo.Ensemble(20, 2, label="ens")
    ...     nengo.Connection(stim, ens, synapse=None)
    ...     probe = nengo.Probe(ens, label="out")
    >>> x = tf.keras.Input((5, 2))
    >>> y = kn.NengoLayer(net)(tf.keras.layers.Dense(2)(x))
    >>> tf.keras.Model(x, y).predict(np.zeros((3, 5, 2)), verbose=0).shape
    (3, 5, 2)
    """

    def __init__(
        self,
        network: nengo.Network,
        inputs: list | None = None,
        outputs: list | None = None,
        dt: float = 0.001,
        seed: int | None = None,
        dtype: str = "float32",
        unroll_simulation: int = 1,
        stateful: bool = False,
        name: str | None = None,
        **kwargs,
    ):
        if not isinstance(network, nengo.Network):
            raise TypeError(
                "NengoLayer needs a nengo.Network. "
                f"Received: network={network!r} ({type(network).__name__})."
            )
        if dtype not in SUPPORTED_DTYPES:
            raise ValueError(
                f"dtype must be one of {SUPPORTED_DTYPES}. Received: dtype={dtype!r}"
            )
        if int(unroll_simulation) < 1:
            raise ValueError(
                "unroll_simulation must be a positive number of steps. Received: "
                f"unroll_simulation={unroll_simulation!r}."
            )
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.network = network
        self.names = NameTable(network)
        self.dt = float(dt)
        self.seed = _default_seed(network, seed)
        input_nodes = data_module.default_inputs(network, inputs)
        output_probes = data_module.default_outputs(network, outputs)
        self.signature = data_module.Signature(
            input_nodes,
            [self.names.input_name(node) for node in input_nodes],
            output_probes,
            [self.names.probe_name(probe) for probe in output_probes],
        )
        self.simulation = Simulation(
            network,
            self.names.parameters(),
            self.dt,
            self.seed,
            dtype,
            tensor_nodes=self.names.tensor_nodes(),
            unroll_simulation=unroll_simulation,
            minibatch_size=DEFAULT_MINIBATCH_SIZE,
        )
        self.named_variables = {}
        self._tensor_node_layers = []
        self._minibatch_size = DEFAULT_MINIBATCH_SIZE
        self.stateful = bool(stateful)
        #: True when no batch exceeds `minibatch_size` (NengoModel sets it to its
        #: batch size): a batch of unknown size then runs padded in one graph
        #: call instead of in a loop over chunks (which XLA may fail to compile)
        self.batches_fit_minibatch = False
        # a cache, not layer state: kept out of checkpoints and SavedModels
        _keras_apis.set_untracked(self, "_eager_calls", {})
        # simulation state of a stateful layer, made by its first call
        _keras_apis.set_untracked(self, "_state", None)

    @property
    def input_nodes(self) -> list:
        return self.signature.input_nodes

    @property
    def output_probes(self) -> list:
        return self.signature.output_probes

    @property
    def input_names(self) -> list:
        return self.signature.input_names

    @property
    def output_names(self) -> list:
        return self.signature.output_names

    @property
    def parameters(self) -> list:
        """The named Nengo parameters (`keras_nengo.simulation.Parameter`)."""
        return self.simulation.parameters

    @property
    def minibatch_size(self) -> int:
        """Rows per simulation run when the batch size is unknown while tracing."""
        return self._minibatch_size

    @minibatch_size.setter
    def minibatch_size(self, size: int):
        size = int(size)
        if size < 1:
            raise ValueError(f"minibatch_size must be >= 1. Received: {size}.")
        self._minibatch_size = size
        if self.built:
            # build outside any later trace
            self._graph(size)

    def build(self, input_shape=None):
        if self.built:
            return
        for param in self.parameters:
            self.named_variables[param.name] = _keras_apis.add_named_variable(
                self, param.name, param.initial_value, param.trainable
            )
        # TensorNode layers get their weights inside this layer and are tracked;
        # built for the default size, which a first fit or predict then reuses
        self._graph(self._minibatch_size)
        check_tensor_node_layers(self.network, self.names)
        super().build(input_shape)

    def _graph(self, minibatch_size):
        graph = self.simulation.graph(minibatch_size)
        for layer in self.simulation.tensor_node_layers:
            if not any(layer is known for known in self._tensor_node_layers):
                self._tensor_node_layers.append(layer)
        return graph

    # -- input structure ----------------------------------------------------------

    def _fed(self, inputs) -> dict:
        """The layer's input as ``{Node: tensor}``; raises for a wrong structure."""
        signature = self.signature
        by_name = signature.inputs_by_name(inputs, f"data (layer {self.name!r})")
        fed, first = {}, None
        # data checked only when the graph runs is not hoisted out of the loop
        self._checked_in_graph = False
        for name, node in zip(signature.input_names, signature.input_nodes):
            if name not in by_name or by_name[name] is None:
                continue
            value = by_name[name]
            data_module.check_numeric(value, f"Input {name!r} (Node {node})")
            value = tf.cast(value, self.dtype)
            expects = (
                f"Input {name!r} (Node {node}) of layer {self.name!r} expects a "
                f"tensor of shape (batch, n_steps, {node.size_out}). Received: "
            )
            shape = value.shape
            if shape.rank is None or (shape.rank == 3 and shape[2] is None):
                # a function traced for relaxed shapes (Keras retraces that way)
                # sees no rank or size: check them when the graph runs, before
                # the data is used
                # (through tf.cond, so that nothing can use the data before)
                value = _checked(
                    value,
                    tf.equal(tf.rank(value), 3),
                    f"{expects}a tensor of another rank.",
                )
                value = _checked(
                    value,
                    tf.equal(tf.shape(value)[-1], node.size_out),
                    f"{expects}another size in the last dimension.",
                )
                value.set_shape([None, None, node.size_out])
                self._checked_in_graph = True
            elif shape.rank != 3 or shape[2] != node.size_out:
                raise ValueError(f"{expects}shape {tuple(shape)}.")
            if first is not None and value.shape[:2] != first.shape[:2]:
                if None not in value.shape[:2] + first.shape[:2]:
                    raise ValueError(
                        "All inputs need the same batch size and number of steps. "
                        f"Received: shapes {tuple(first.shape)} and "
                        f"{tuple(value.shape)} (for {name!r})."
                    )
            first = value if first is None else first
            fed[node] = value
        return fed

    # -- forward pass -------------------------------------------------------------

    def __call__(self, inputs=None, *args, **kwargs):
        if isinstance(inputs, dict):
            # keyed by Node maybe: Keras flattens the inputs with tf.nest, which
            # sorts dict keys, and Nodes do not sort
            inputs = self.signature.inputs_by_name(inputs)
        return super().__call__(inputs, *args, **kwargs)

    @tf.autograph.experimental.do_not_convert
    def call(self, inputs, training=None, n_steps=None):
        """Run the simulation from its initial state.

        Parameters
        ----------
        inputs : tf.Tensor, list or dict of tf.Tensor, or None
            Data ``(batch, n_steps, node.size_out)``: one tensor for the first
            input Node, a list in ``inputs`` order or a dict keyed by input name
            (Nodes left out run their own output); None for no data.
        training : bool or None
            True runs spiking neurons as their rate approximation.
        n_steps : int or None
            Number of time steps; only used when no data is given.

        Returns
        -------
        outputs : tf.Tensor or list of tf.Tensor
            Probe data ``(batch, n_steps, probe size)``: one tensor for one
            output, else a list in ``outputs`` order.
        """
        fed = self._fed(inputs)
        if not fed and n_steps is None:
            raise ValueError(
                f"Layer {self.name!r} was given no data, so the number of time steps "
                "must be given. Received: n_steps=None. Pass n_steps=<int>."
            )
        if tf.executing_eagerly():
            # NengoDL seeds TensorFlow on every call, which eagerly clears the
            # kernel caches; inside a function it only seeds that graph
            function = self._eager_calls.get("call")
            if function is None:
                nodes = self.input_nodes

                def simulate(values, training, n_steps):
                    fed = {n: v for n, v in zip(nodes, values) if v is not None}
                    return self._simulate(fed, training, n_steps)

                function = tf.function(simulate, autograph=False)
                self._eager_calls["call"] = function
            # a list, not a dict: tf.function sorts dict keys, and Nodes do not sort
            values = [fed.get(node) for node in self.input_nodes]
            outputs = function(values, training, n_steps)
        else:
            outputs = self._simulate(fed, training, n_steps)
        return outputs[0] if len(outputs) == 1 else outputs

    def _simulate(self, fed, training, n_steps):
        if in_xla_compilation():
            # a Keras model with jit_compile=True around this layer
            check_compilable(self, f"compile layer {self.name!r} with XLA", "XLA")
        first = next(iter(fed.values()), None)
        if first is not None and first.shape[0] == 0:
            # no rows, nothing to simulate (and no state to carry): as a Dense
            # layer does, return empty outputs
            steps = first.shape[1] if first.shape[1] is not None else tf.shape(first)[1]
            return [
                tf.zeros((0, steps, probe.size_in), self.dtype)
                for probe in self.output_probes
            ]
        if self.stateful:
            return self._run_stateful(fed, training, n_steps)
        if not fed:
            return self._run({}, 1, int(n_steps), training)
        first = next(iter(fed.values()))
        steps = first.shape[1] if first.shape[1] is not None else tf.shape(first)[1]
        batch = first.shape[0]
        if batch is not None:
            return self._run(fed, batch, steps, training)
        size = self._minibatch_size
        self._graph(size)
        strategy = run_padded if self.batches_fit_minibatch else run_in_chunks

        def run(fed, size):
            return self._run(fed, size, steps, training)

        return strategy(run, fed, size, steps, self.output_probes, self.name)

    def _run(self, fed, minibatch_size, n_steps, training, state=None):
        outputs, final = self.simulation.run(
            self.named_variables,
            fed,
            minibatch_size,
            n_steps,
            training,
            state,
            probes=self.output_probes,
            hoist=not getattr(self, "_checked_in_graph", False),
        )
        index = self.simulation.probe_index
        results = [outputs[index[probe]] for probe in self.output_probes]
        return (results, final) if state is not None else results

    def compute_output_shape(self, input_shape):
        shape = _first_shape(input_shape)
        steps = None if shape is None else tf.TensorShape(shape)[1]
        shapes = [
            _keras_apis.output_shape([None, steps, probe.size_in])
            for probe in self.output_probes
        ]
        return shapes[0] if len(shapes) == 1 else shapes

    # -- serialization ------------------------------------------------------------

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            network=saving.serialize_network(
                self.network, self.input_nodes, self.output_probes
            ),
            dt=self.dt,
            seed=self.seed,
            unroll_simulation=self.simulation.unroll_simulation,
            stateful=self.stateful,
        )
        return config

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        network, inputs, outputs = saving.deserialize_network(config.pop("network"))
        if "dtype" in config:
            config["dtype"] = _keras_apis.dtype_name(config["dtype"])
        return cls(network, inputs=inputs, outputs=outputs, **config)


def _first_shape(input_shape):
    """The shape of the first input in ``input_shape`` (one shape, or a list or
    dict of them: TensorShapes in tf-keras, tuples in Keras 3); None if none."""
    if isinstance(input_shape, dict):
        input_shape = list(input_shape.values())
    if input_shape is None:
        return None
    if isinstance(input_shape, tf.TensorShape) or all(
        dim is None or isinstance(dim, int) for dim in input_shape
    ):
        return input_shape
    for shape in input_shape:
        found = _first_shape(shape)
        if found is not None:
            return found
    return None


def python_nodes(layer: NengoLayer) -> list:
    """Nodes whose Python output function runs during the simulation.

    NengoDL runs them through ``tf.numpy_function``, which neither XLA nor a
    SavedModel served without Python can execute.
    """
    return [
        node
        for node in layer.network.all_nodes
        if node.size_in > 0
        and callable(node.output)
        and not isinstance(node.output, nengo.Process)
        and not isinstance(node, nengo_dl.TensorNode)
    ]


def check_compilable(layer: NengoLayer, action: str, runner: str) -> None:
    """Raise if a Python Node function of ``layer`` blocks ``action``.

    Raises
    ------
    ValueError
        Naming the first Node whose Python function ``runner`` cannot run.
    """
    blocking = python_nodes(layer)
    if blocking:
        node = blocking[0]
        raise ValueError(
            f"Cannot {action}: Node {layer.names.name(node)!r} ({node}) runs a "
            "Python function during the simulation (through tf.numpy_function), "
            f"which {runner} cannot run. Compute it in TensorFlow with a "
            "nengo_dl.TensorNode, or make it an input Node (size_in=0) and feed "
            "its values as data."
        )
