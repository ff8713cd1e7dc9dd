"""NengoModel: a Nengo network as a tf-keras Model."""

from __future__ import annotations

import collections
import copy
import warnings

import nengo
import numpy as np
import tensorflow as tf
from nengo.solvers import NoSolver
from nengo.transforms import Convolution, Sparse, SparseMatrix

from keras_nengo._compat import nengo_dl
from keras_nengo.layer import _SUPPORTED_DTYPES, NengoLayer

_DEFAULT_BATCH_SIZE = 32

_JacobianRequest = collections.namedtuple(
    "_JacobianRequest",
    "data output_name wrt_inputs wrt_weights indices squeeze single",
)


def _describe(value):
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"array of shape {tuple(shape)}"
    return type(value).__name__


class NengoModel(tf.keras.Model):
    """A Nengo network as a Keras model with one named variable per parameter.

    Parameters
    ----------
    network : nengo.Network
        The network to simulate (with NengoDL).
    inputs : list of nengo.Node or None
        Nodes whose output is read from the data ``x``. Default: every Node with
        ``size_in == 0`` and ``size_out > 0`` (the Nodes NengoDL treats as inputs).
    outputs : list of nengo.Probe or None
        Probes returned by the model. Default: all probes of ``network``.
    dt : float
        Simulation time step in seconds.
    seed : int or None
        Seed for building the network (if it has none) and for the simulation.
    dtype : {"float32", "float64"}
        Precision of the simulation and of the named variables.
    gradient_norms : bool
        If True, ``train_step`` adds ``grad_norm/<weight name>`` to the logs.
    name : str or None
        Name of the Keras model.

    Examples
    --------
    >>> import keras_nengo as kn
    >>> import nengo, numpy as np
    >>> with nengo.Network(seed=0) as net:
    ...     stim = nengo.Node(np.zeros(1), label="stim")
    ...     hidden = nengo.Ensemble(20, 1, label="hidden")
    ...     nengo.Connection(stim, hidden)
    ...     probe = nengo.Probe(hidden, synapse=0.01, label="out")
    >>> model = kn.NengoModel(net)
    >>> model.input_names, model.output_names
    (['stim'], ['out'])
    >>> sorted(model.named_weights)
    ['hidden/bias', 'hidden/encoders']
    """

    def __init__(
        self,
        network: nengo.Network,
        inputs: list | None = None,
        outputs: list | None = None,
        dt: float = 0.001,
        seed: int | None = None,
        dtype: str = "float32",
        gradient_norms: bool = False,
        name: str | None = None,
    ):
        if not isinstance(network, nengo.Network):
            raise TypeError(
                "NengoModel needs a nengo.Network. "
                f"Received: network={network!r} ({type(network).__name__})."
            )
        if dtype not in _SUPPORTED_DTYPES:
            raise ValueError(
                f"dtype must be one of {_SUPPORTED_DTYPES}. Received: dtype={dtype!r}"
            )
        # the model's dtype makes Keras cast inputs to the simulation precision
        super().__init__(name=name, dtype=dtype)
        self.network = network
        self.gradient_norms = bool(gradient_norms)
        input_nodes = self._resolve_inputs(network, inputs)
        output_probes = self._resolve_outputs(network, outputs)
        self.nengo_layer = NengoLayer(
            network,
            inputs=input_nodes,
            outputs=output_probes,
            dt=dt,
            seed=seed,
            dtype=dtype,
            name="nengo",
        )
        names = self.nengo_layer.names
        with nengo_dl.compat.trackable.no_automatic_dependency_tracking_scope(self):
            # plain lists (Keras would wrap tracked attributes)
            self.input_nodes = input_nodes
            self.output_probes = output_probes
            self.input_names = [names.input_name(node) for node in input_nodes]
            self.output_names = [names.probe_name(probe) for probe in output_probes]
        self.nengo_layer.build(None)
        self.built = True
        with nengo_dl.compat.trackable.no_automatic_dependency_tracking_scope(self):
            # bookkeeping, not model state: kept out of weights and checkpoints
            self._minibatch_size = None
            self._skipped_batches = tf.Variable(
                0, dtype=tf.int64, trainable=False, name="skipped_batches"
            )
            self._predict_no_inputs = {}
            self._tensorboard_log_dir = None
            self._jacobian_functions = {}
            self._gradients_function = None

    # -- construction -------------------------------------------------------------

    @staticmethod
    def _resolve_inputs(network, inputs):
        if inputs is None:
            return [
                node
                for node in network.all_nodes
                if node.size_in == 0
                and node.size_out > 0
                and not isinstance(node, nengo_dl.TensorNode)
            ]
        nodes = list(inputs)
        all_nodes = network.all_nodes
        for node in nodes:
            if not isinstance(node, nengo.Node) or not any(
                node is other for other in all_nodes
            ):
                raise ValueError(
                    "Every input must be a nengo.Node of the network. "
                    f"Received: {node!r}. Pass Nodes created inside the network."
                )
            if node.size_in != 0 or isinstance(node, nengo_dl.TensorNode):
                raise ValueError(
                    f"Node {node} cannot be fed from data: it has inputs "
                    f"(size_in={node.size_in}) or is a TensorNode. Expected: a Node "
                    "with size_in == 0 (no incoming connections)."
                )
        return nodes

    @staticmethod
    def _resolve_outputs(network, outputs):
        if outputs is None:
            return list(network.all_probes)
        probes = list(outputs)
        all_probes = network.all_probes
        for probe in probes:
            if not isinstance(probe, nengo.Probe) or not any(
                probe is other for other in all_probes
            ):
                raise ValueError(
                    "Every output must be a nengo.Probe of the network. "
                    f"Received: {probe!r}. Pass Probes created inside the network."
                )
        return probes

    # -- names --------------------------------------------------------------------

    @staticmethod
    def _name_for(key, names, objects, kind):
        """Map a Nengo object, its name or its label to its name in ``names``."""
        if isinstance(key, str):
            if key in names:
                return key
            matches = [name for name, obj in zip(names, objects) if obj.label == key]
            if len(matches) == 1:
                return matches[0]
        else:
            for name, obj in zip(names, objects):
                if obj is key:
                    return name
        noun = "Node" if kind == "input" else "Probe"
        raise ValueError(
            f"Unknown {kind} {key!r}. Expected one of the {kind} {noun}s, by "
            f"object, name or label: {names}."
        )

    def _input_key(self, key):
        """Map a Node, input name or label to the input name."""
        return self._name_for(key, self.input_names, self.input_nodes, "input")

    def _output_key(self, key):
        """Map a Probe, output name or label to the output name."""
        return self._name_for(key, self.output_names, self.output_probes, "output")

    # -- data ---------------------------------------------------------------------

    @staticmethod
    def _by_name(data, names, key_to_name, kind, noun):
        """``data`` as array, list (in ``names`` order) or dict -> ``{name: value}``."""
        if isinstance(data, dict):
            return {key_to_name(key): value for key, value in data.items()}
        if isinstance(data, (list, tuple)):
            if len(data) != len(names):
                raise ValueError(
                    f"Expected a list of {len(names)} arrays, one per {kind} "
                    f"{names}. Received: a list of {len(data)} items."
                )
            return dict(zip(names, data))
        if len(names) != 1:
            letter = "x" if kind == "input" else "y"
            raise ValueError(
                f"This model has {len(names)} {kind}s {names}, so {letter} must be a "
                f"dict keyed by {noun} or name (or a list). Received: "
                f"{_describe(data)}."
            )
        return {names[0]: data}

    def _standardize_x(self, x):
        """Turn the accepted forms of ``x`` into ``{input name: array}``."""
        data = self._by_name(x, self.input_names, self._input_key, "input", "Node")
        missing = [name for name in self.input_names if name not in data]
        if missing:
            raise ValueError(
                f"Missing data for inputs {missing}. Received data for "
                f"{sorted(data)}. Every input Node needs data shaped "
                "(batch, n_steps, node.size_out)."
            )
        batch = steps = None
        for name, node in zip(self.input_names, self.input_nodes):
            value = data[name]
            if not tf.is_tensor(value):
                value = np.asarray(value)
            data[name] = value
            shape = tuple(value.shape)
            if len(shape) != 3 or shape[2] != node.size_out:
                raise ValueError(
                    f"Input {name!r} (Node {node}) expects data of shape (batch, "
                    f"n_steps, {node.size_out}). Received: shape {shape}."
                )
            if batch is None:
                batch, steps, first = shape[0], shape[1], name
            elif shape[0] != batch or shape[1] != steps:
                raise ValueError(
                    f"All inputs need the same batch size and number of steps. "
                    f"Received: {first!r} with shape[:2]={(batch, steps)} and "
                    f"{name!r} with shape[:2]={shape[:2]}."
                )
        return data

    def _standardize_y(self, y, n_samples):
        """Turn the accepted forms of ``y`` into an array or ``{name: array}``."""
        if y is None:
            return None
        data = self._by_name(y, self.output_names, self._output_key, "output", "Probe")
        for name, probe in zip(self.output_names, self.output_probes):
            if name not in data:
                continue
            value = data[name]
            if not tf.is_tensor(value):
                value = np.asarray(value)
            data[name] = value
            shape = tuple(value.shape)
            if len(shape) != 3 or shape[2] != probe.size_in:
                raise ValueError(
                    f"Target {name!r} (Probe {probe}) expects data of shape (batch, "
                    f"n_steps, {probe.size_in}). Received: shape {shape}."
                )
            if n_samples is not None and shape[0] != n_samples:
                raise ValueError(
                    f"x and y must have the same number of samples. Received: "
                    f"{n_samples} samples in x and {shape[0]} in y for {name!r}."
                )
        if len(self.output_names) == 1:
            return data[self.output_names[0]]
        return data

    def _to_call_inputs(self, x):
        """Inside ``call``: accept a dict, list or single tensor."""
        if x is None:
            return {}
        return self._by_name(x, self.input_names, self._input_key, "input", "Node")

    def _use_minibatch_size(self, size):
        """Make traced functions use NengoDL graphs of ``size`` samples."""
        size = int(size)
        self.nengo_layer.prepare(size)
        if size != self._minibatch_size:
            self._minibatch_size = size
            self.nengo_layer.default_minibatch_size = size
            self.train_function = None
            self.test_function = None
            self.predict_function = None

    @staticmethod
    def _dataset_batch_size(dataset):
        for element in dataset.take(1):
            first = tf.nest.flatten(element)[0]
            return int(first.shape[0])
        return 1

    def _prepare(self, x, y, batch_size, extra_sizes=()):
        if isinstance(x, tf.data.Dataset):
            size = self._dataset_batch_size(x)
            self._use_minibatch_size(max((size,) + tuple(extra_sizes)))
            return x, y, None
        x = self._standardize_x(x)
        n_samples = int(next(iter(x.values())).shape[0]) if x else None
        y = self._standardize_y(y, n_samples)
        size = batch_size or _DEFAULT_BATCH_SIZE
        if n_samples:
            size = min(size, n_samples)
        self._use_minibatch_size(max((size,) + tuple(extra_sizes)))
        return x, y, batch_size

    # -- Keras API ----------------------------------------------------------------

    def call(self, inputs, training=None, n_steps=None):
        outputs = self.nengo_layer(
            self._to_call_inputs(inputs), training=training, n_steps=n_steps
        )
        if len(outputs) == 1:
            return outputs[0]
        return dict(zip(self.output_names, outputs))

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """Configure training; dicts may be keyed by Probe, output name or label."""

        def by_name(struct):
            if isinstance(struct, dict):
                return {self._output_key(key): value for key, value in struct.items()}
            return struct

        for key in ("loss_weights", "weighted_metrics"):
            if key in kwargs:
                kwargs[key] = by_name(kwargs[key])
        super().compile(
            optimizer=optimizer, loss=by_name(loss), metrics=by_name(metrics), **kwargs
        )
        # gradients() traces the compiled loss
        self._gradients_function = None
        # create optimizer slots now: train_step applies gradients inside tf.cond
        self.optimizer.build(self.trainable_variables)

    def fit(self, x=None, y=None, batch_size=None, validation_data=None, **kwargs):
        extra = []
        if kwargs.get("validation_batch_size"):
            extra.append(kwargs["validation_batch_size"])
        x, y, batch_size = self._prepare(x, y, batch_size, extra)
        if validation_data is not None and not isinstance(
            validation_data, tf.data.Dataset
        ):
            val_x, val_y, *rest = tuple(validation_data)
            val_x = self._standardize_x(val_x)
            n_val = int(next(iter(val_x.values())).shape[0])
            validation_data = (val_x, self._standardize_y(val_y, n_val), *rest)
        self._skipped_batches.assign(0)
        # JacobianNormLogger(log_dir=None) follows a TensorBoard callback of this
        # fit (keras-tuner rewrites its log_dir per trial)
        self._tensorboard_log_dir = next(
            (
                callback.log_dir
                for callback in kwargs.get("callbacks") or []
                if isinstance(callback, tf.keras.callbacks.TensorBoard)
            ),
            None,
        )
        history = super().fit(
            x, y, batch_size=batch_size, validation_data=validation_data, **kwargs
        )
        skipped = int(self._skipped_batches.numpy())
        if skipped:
            warnings.warn(
                f"{skipped} training batch(es) had a non-finite loss or non-finite "
                "gradients and were skipped (no weight was changed by them). Check "
                "the data for NaN/inf and consider a lower learning rate.",
                RuntimeWarning,
                stacklevel=2,
            )
        return history

    def evaluate(self, x=None, y=None, batch_size=None, **kwargs):
        x, y, batch_size = self._prepare(x, y, batch_size)
        return super().evaluate(x, y, batch_size=batch_size, **kwargs)

    def predict(self, x=None, batch_size=None, n_steps=None, **kwargs):
        """Run the network as defined (spiking neurons spike).

        Returns one array for one output, else a dict keyed by output name.
        Networks without data inputs take ``n_steps`` instead of ``x``.
        """
        if not self.input_names:
            if n_steps is None:
                raise ValueError(
                    "This network has no data inputs, so predict needs the number "
                    "of time steps. Received: n_steps=None. Call "
                    "predict(n_steps=<int>)."
                )
            function = self._predict_no_inputs.get(int(n_steps))
            if function is None:
                function = tf.function(
                    lambda: self(None, training=False, n_steps=int(n_steps))
                )
                self._predict_no_inputs[int(n_steps)] = function
            return tf.nest.map_structure(lambda t: t.numpy(), function())
        x, _, batch_size = self._prepare(x, None, batch_size)
        return super().predict(x, batch_size=batch_size, **kwargs)

    def train_step(self, data):
        x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight)
        self._validate_target_and_loss(y, loss)
        variables = self.trainable_variables
        gradients = tape.gradient(loss, variables)
        gradients = [
            tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
            for g, v in zip(gradients, variables)
        ]
        finite = tf.reduce_all(
            [tf.reduce_all(tf.math.is_finite(loss))]
            + [tf.reduce_all(tf.math.is_finite(g)) for g in gradients]
        )

        def apply():
            self.optimizer.apply_gradients(zip(gradients, variables))
            return tf.constant(0, tf.int64)

        skipped = tf.cond(finite, apply, lambda: tf.constant(1, tf.int64))
        self._skipped_batches.assign_add(skipped)
        logs = self.compute_metrics(x, y, y_pred, sample_weight)
        if self.gradient_norms:
            names = {id(v): n for n, v in self.nengo_layer.named_variables.items()}
            for variable, gradient in zip(variables, gradients):
                name = names.get(id(variable), variable.name.split(":")[0])
                logs[f"grad_norm/{name}"] = tf.norm(gradient)
        return logs

    # -- gradients ----------------------------------------------------------------

    def gradients(self, x, y, sample_weight=None) -> dict:
        """Gradients of the compiled loss w.r.t. each named trainable weight.

        The same computation as ``train_step`` (``training=True``), for custom
        loops. Returns ``{weight name: tf.Tensor}``.
        """
        if self.compiled_loss is None:
            raise RuntimeError(
                "gradients() uses the compiled loss, but the model is not compiled. "
                "Call model.compile(loss=...) first."
            )
        x = self._standardize_x(x)
        n_samples = int(next(iter(x.values())).shape[0])
        y = self._standardize_y(y, n_samples)
        self.nengo_layer.prepare(n_samples)
        if self._gradients_function is None:
            named = {
                name: v
                for name, v in self.nengo_layer.named_variables.items()
                if v.trainable
            }

            @tf.function
            def compute(x, y, sample_weight):
                with tf.GradientTape() as tape:
                    y_pred = self(x, training=True)
                    loss = self.compute_loss(x, y, y_pred, sample_weight)
                grads = tape.gradient(loss, named)
                return {
                    name: tf.zeros_like(named[name]) if g is None else g
                    for name, g in grads.items()
                }

            self._gradients_function = compute
        return self._gradients_function(x, y, sample_weight)

    # -- named weights ------------------------------------------------------------

    @property
    def named_weights(self) -> dict:
        """``{name: tf.Variable}`` for every Nengo parameter of the network."""
        return dict(self.nengo_layer.named_variables)

    def get_named_weights(self) -> dict:
        """``{name: np.ndarray}``: current values of `named_weights`."""
        return {name: v.numpy() for name, v in self.nengo_layer.named_variables.items()}

    def set_named_weights(self, weights: dict, strict: bool = True):
        """Assign named weights. All values are checked before any is assigned.

        Parameters
        ----------
        weights : dict of {str: array_like}
            Values keyed by weight name (see `named_weights`).
        strict : bool
            If True, every named weight must be given.
        """
        variables = self.nengo_layer.named_variables
        unknown = [name for name in weights if name not in variables]
        if unknown:
            raise ValueError(
                f"Unknown weight names {unknown}. Valid names: {sorted(variables)}."
            )
        if strict:
            missing = [name for name in variables if name not in weights]
            if missing:
                raise ValueError(
                    f"strict=True needs a value for every named weight; missing "
                    f"{missing}. Pass them, or use strict=False."
                )
        values = {}
        for name, value in weights.items():
            value = np.asarray(value)
            expected = tuple(variables[name].shape)
            if value.shape != expected:
                raise ValueError(
                    f"Weight {name!r} has shape {expected}. Received: a value of "
                    f"shape {value.shape}."
                )
            if not np.all(np.isfinite(value)):
                raise ValueError(
                    f"Weight {name!r} must be finite. Received: a value with "
                    "NaN or inf."
                )
            values[name] = value
        for name, value in values.items():
            variables[name].assign(value)

    def freeze_params(self, objs=None):
        """Write the current named weights back into the Nengo objects.

        Afterwards ``nengo.Simulator`` (or a new NengoModel) built from the
        network reproduces this model. ``objs`` is a Network (default: the
        model's network), an Ensemble, a Connection, or a list of those.
        """
        if objs is None:
            objs = self.network
        if not isinstance(objs, (list, tuple)):
            objs = [objs]
        todo = []
        all_objects = self.network.all_objects
        for obj in objs:
            if isinstance(obj, nengo.Network):
                if obj is not self.network and not any(
                    obj is net for net in self.network.all_networks
                ):
                    raise ValueError(
                        f"Network {obj} is not (part of) the network of this model."
                    )
                todo.extend(obj.all_ensembles + obj.all_connections)
            elif isinstance(obj, (nengo.Ensemble, nengo.Connection)):
                if not any(obj is other for other in all_objects):
                    raise ValueError(f"{obj} is not part of the network of this model.")
                todo.append(obj)
            else:
                raise TypeError(
                    "freeze_params takes Networks, Ensembles or Connections. "
                    f"Received: {obj!r}."
                )
        values = {}
        for param in self.nengo_layer._parameters:
            values[(param.obj, param.attr)] = self.nengo_layer.named_variables[
                param.name
            ].numpy()
        built = self.nengo_layer._nengo_model.params
        for obj in todo:
            if isinstance(obj, nengo.Ensemble):
                self._freeze_ensemble(obj, values, built)
            else:
                self._freeze_connection(obj, values)

    @staticmethod
    def _freeze_ensemble(ens, values, built):
        if isinstance(ens.neuron_type, nengo.Direct):
            return
        encoders = values.get((ens, "encoders"))
        bias = values.get((ens.neurons, "bias"))
        if encoders is None and bias is None:
            return
        gain = built[ens].gain
        if encoders is None:
            encoders = built[ens].scaled_encoders
        if bias is None:
            bias = built[ens].bias
        # the builder multiplies encoders by gain / radius; undo it so that
        # building again gives the trained scaled encoders
        ens.encoders = encoders * ens.radius / gain[:, None]
        ens.normalize_encoders = False
        ens.gain = gain
        ens.bias = bias
        ens.max_rates = nengo.Ensemble.max_rates.default
        ens.intercepts = nengo.Ensemble.intercepts.default

    @staticmethod
    def _freeze_connection(conn, values):
        weights = values.get((conn, "weights"))
        if weights is None:
            return
        if isinstance(conn.transform, Convolution):
            transform = copy.copy(conn.transform)
            Convolution.init.data[transform] = weights
            conn.transform = transform
        elif isinstance(conn.transform, Sparse):
            transform = copy.copy(conn.transform)
            init = transform.init
            if isinstance(init, SparseMatrix):
                init = SparseMatrix(init.indices, weights, init.shape)
            else:
                init = init.tocoo()
                init = SparseMatrix(
                    np.stack((init.row, init.col), axis=-1), weights, init.shape
                )
            Sparse.init.data[transform] = init
            conn.transform = transform
        elif isinstance(conn.pre_obj, nengo.Ensemble):
            conn.solver = NoSolver(weights.T, weights=False)
            conn.function = lambda x, size=weights.shape[0]: np.zeros(size)
            conn.transform = nengo_dl.compat.default_transform
        else:
            if all(n == 1 for n in weights.shape):
                weights = np.squeeze(weights)
            conn.transform = weights

    # -- jacobian -----------------------------------------------------------------

    def jacobian(
        self,
        x,
        wrt="inputs",
        output=None,
        steps=-1,
        mode: str = "auto",
        training: bool = True,
        return_outputs: bool = False,
    ):
        """Per-sample Jacobian of one output w.r.t. inputs and/or named weights.

        Parameters
        ----------
        x : array_like, list or dict
            Input data, in the forms `predict` accepts.
        wrt : str, nengo object, or list of these
            ``"inputs"`` (every input), ``"weights"`` (every trainable named
            weight), an input or weight name, a glob over those names
            (``"sin/*"``), an input Node, an Ensemble or Connection (its named
            weights), or a list of these.
        output : nengo.Probe, str or None
            The output to differentiate; required if the model has several.
        steps : int, slice, list of int, or None
            Output time steps; an int drops the ``n_out_steps`` axis, None is all.
        mode : {"auto", "reverse", "forward"}
            Differentiation mode (see `keras_nengo.jacobian`); "auto" picks the
            cheaper one from the sizes involved.
        training : bool
            True runs spiking neurons as their differentiable rate approximation.
        return_outputs : bool
            If True, return ``(jacobians, outputs)`` where ``outputs`` is the
            selected output ``(batch, n_steps, out_dim)`` of the same forward pass.

        Returns
        -------
        jacobians : tf.Tensor or dict of {str: tf.Tensor}
            Inputs: ``(batch, [n_out_steps,] out_dim, n_steps, in_dim)``; weights:
            ``(batch, [n_out_steps,] out_dim, *weight.shape)``. A dict keyed by
            input/weight name, or the bare tensor when ``wrt`` is one name or
            object that resolves to exactly one input or weight.

        Raises
        ------
        ValueError
            For an unknown ``wrt`` or ``output``, an ambiguous ``output``, or a
            path that cannot be differentiated (a Python Node function, or
            spiking neurons with ``training=False``), naming the blocking object.
        """
        request = self._jacobian_request(x, wrt, output, steps, training)
        data, output_name = request.data, request.output_name
        wrt_inputs, wrt_weights = request.wrt_inputs, request.wrt_weights
        indices = request.indices
        if tf.executing_eagerly():
            self.nengo_layer.prepare(next(iter(data.values())).shape[0])

        key = (output_name, tuple(wrt_inputs), tuple(wrt_weights))
        key += (tuple(indices), mode, bool(training))
        cache = self._jacobian_functions
        compute = cache.get(key)
        if compute is None:
            compute = self._jacobian_function(
                output_name, wrt_inputs, wrt_weights, indices, mode, training
            )
            cache[key] = compute
        input_jacobians, weight_jacobians, outputs = compute(data)

        result = dict(input_jacobians)
        result.update(weight_jacobians)
        if request.squeeze:
            result = {name: value[:, 0] for name, value in result.items()}
        if request.single:
            result = next(iter(result.values()))
        if return_outputs:
            return result, outputs
        return result

    def _jacobian_request(self, x, wrt, output, steps, training):
        """Resolve and check a jacobian request, computing nothing.

        Raises the errors `jacobian` documents, so callers (and
        JacobianNormLogger, before training) can validate up front.
        """
        from keras_nengo import jacobian as jacobian_module

        output_name = self._jacobian_output(output)
        probe = self.output_probes[self.output_names.index(output_name)]
        if not self.input_names:
            raise ValueError(
                "jacobian needs data inputs, but this network has none. Add an "
                "input Node (size_in=0) fed from data."
            )
        data = {
            name: tf.convert_to_tensor(value, dtype=self.nengo_layer.dtype)
            for name, value in self._standardize_x(x).items()
        }
        n_steps = int(next(iter(data.values())).shape[1])
        indices, squeeze = jacobian_module.output_steps(steps, n_steps)
        wrt_inputs, wrt_weights, single = self._jacobian_wrt(wrt)
        self._jacobian_check_path(wrt_inputs, wrt_weights, probe, training)
        return _JacobianRequest(
            data, output_name, wrt_inputs, wrt_weights, indices, squeeze, single
        )

    def _jacobian_function(
        self, output_name, wrt_inputs, wrt_weights, indices, mode, training
    ):
        from keras_nengo import jacobian as jacobian_module

        position = self.output_names.index(output_name)
        probe = self.output_probes[position]
        layer = self.nengo_layer
        variables = {name: layer.named_variables[name] for name in wrt_weights}

        def function(inputs):
            return layer(inputs, training=training)[position]

        @tf.function(autograph=False)
        def compute(data):
            return jacobian_module.jacobian(
                function,
                data,
                wrt_inputs=wrt_inputs,
                variables=variables,
                steps=indices,
                mode=mode,
                out_dim=int(np.prod(probe.size_in)),
            )

        return compute

    def _jacobian_output(self, output):
        if output is None:
            if len(self.output_names) != 1:
                raise ValueError(
                    f"This model has {len(self.output_names)} outputs "
                    f"{self.output_names}, so jacobian needs to know which one to "
                    "differentiate. Received: output=None. Pass output=<Probe or "
                    "name>."
                )
            return self.output_names[0]
        return self._output_key(output)

    def _jacobian_wrt(self, wrt):
        """Resolve ``wrt`` to (input names, weight names, single)."""
        import fnmatch

        layer = self.nengo_layer
        weights = list(layer.named_variables)
        trainable = [n for n in weights if layer.named_variables[n].trainable]
        items = list(wrt) if isinstance(wrt, (list, tuple)) else [wrt]
        single = not isinstance(wrt, (list, tuple)) and wrt not in ("inputs", "weights")
        inputs_found, weights_found = [], []

        def add(names, found):
            found.extend(name for name in names if name not in found)

        for item in items:
            if isinstance(item, str):
                if item == "inputs":
                    add(self.input_names, inputs_found)
                elif item == "weights":
                    add(trainable, weights_found)
                elif item in self.input_names:
                    add([item], inputs_found)
                elif item in weights:
                    add([item], weights_found)
                elif any(c in item for c in "*?["):
                    add(fnmatch.filter(self.input_names, item), inputs_found)
                    add(fnmatch.filter(weights, item), weights_found)
                    if not any(
                        fnmatch.fnmatch(n, item) for n in self.input_names + weights
                    ):
                        self._jacobian_unknown(item, weights)
                else:
                    self._jacobian_unknown(item, weights)
            elif any(item is node for node in self.input_nodes):
                add([layer.names.input_name(item)], inputs_found)
            else:
                owned = [
                    param.name
                    for param in layer._parameters
                    if param.obj is item or getattr(param.obj, "ensemble", None) is item
                ]
                if not owned:
                    self._jacobian_unknown(item, weights)
                add(owned, weights_found)
        if single and len(inputs_found) + len(weights_found) != 1:
            single = False
        if not inputs_found and not weights_found:
            raise ValueError(
                f"wrt={wrt!r} selects nothing to differentiate with respect to. "
                f"Valid: 'inputs', 'weights', inputs {self.input_names}, weights "
                f"{weights}."
            )
        return inputs_found, weights_found, single

    def _jacobian_unknown(self, item, weights):
        raise ValueError(
            f"Unknown wrt={item!r}. Expected 'inputs', 'weights', an input name "
            f"{self.input_names}, a weight name {weights}, a glob over those names "
            "(e.g. 'ens/*'), an input Node, or an Ensemble/Connection with named "
            "weights."
        )

    def _jacobian_check_path(self, wrt_inputs, wrt_weights, probe, training):
        """Raise if something non-differentiable lies between wrt and ``probe``."""

        def base(obj):
            if isinstance(obj, nengo.base.ObjView):
                obj = obj.obj
            if isinstance(obj, nengo.ensemble.Neurons):
                return obj.ensemble
            if isinstance(obj, nengo.connection.LearningRule):
                return obj.connection
            return obj

        successors, predecessors = {}, {}
        for conn in self.network.all_connections:
            for a, b in ((base(conn.pre_obj), conn), (conn, base(conn.post_obj))):
                successors.setdefault(a, []).append(b)
                predecessors.setdefault(b, []).append(a)

        def reach(starts, edges):
            seen, todo = set(starts), list(starts)
            while todo:
                for nxt in edges.get(todo.pop(), ()):
                    if nxt not in seen:
                        seen.add(nxt)
                        todo.append(nxt)
            return seen

        names = dict(zip(self.input_names, self.input_nodes))
        starts = [names[name] for name in wrt_inputs]
        by_name = {param.name: param for param in self.nengo_layer._parameters}
        starts += [base(by_name[name].obj) for name in wrt_weights]
        on_path = reach(starts, successors) & reach([base(probe.target)], predecessors)
        label = self.nengo_layer.names
        for obj in sorted(on_path, key=lambda o: label.name(o)):
            if (
                isinstance(obj, nengo.Node)
                and obj.size_in > 0
                and callable(obj.output)
                and not isinstance(obj.output, nengo.Process)
                and not isinstance(obj, nengo_dl.TensorNode)
            ):
                raise ValueError(
                    f"Cannot differentiate through Node {label.name(obj)!r} ({obj}): "
                    "its output is a Python function, which NengoDL runs outside "
                    "TensorFlow (tf.numpy_function), so no gradient flows through "
                    "it. Expected: only Ensembles, passthrough Nodes and "
                    "TensorNodes between wrt and the output. Replace it with a "
                    "nengo_dl.TensorNode computing the same function in TensorFlow."
                )
            if (
                not training
                and isinstance(obj, nengo.Ensemble)
                and getattr(obj.neuron_type, "spiking", False)
            ):
                raise ValueError(
                    f"Cannot differentiate through Ensemble {label.name(obj)!r} "
                    f"({obj}) with training=False: its neurons "
                    f"({type(obj.neuron_type).__name__}) spike, and spikes have no "
                    "useful derivative. Received: training=False. Use "
                    "training=True (the rate approximation), or rate neurons."
                )
