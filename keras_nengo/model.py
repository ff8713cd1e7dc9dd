"""NengoModel: a Nengo network as a Keras Model, built on `NengoLayer`.

The model adds to the layer what a whole-network model needs: data keyed by
Node/Probe/name/label (`keras_nengo.data`), the training step with gradients per
named weight and a non-finite-batch guard that works under ``tf.distribute``,
the named-weights API (`keras_nengo.weights`), Jacobians
(`keras_nengo.jacobian_request`), a config that carries the network, and
``export`` for serving.
"""

from __future__ import annotations

import warnings

import nengo
import tensorflow as tf

from keras_nengo import _keras_apis
from keras_nengo import data as data_module
from keras_nengo import saving
from keras_nengo._compat import keras
from keras_nengo._keras_apis import set_untracked
from keras_nengo.jacobian_request import JacobianMixin
from keras_nengo.layer import NengoLayer, check_compilable
from keras_nengo.model_data import ModelDataMixin
from keras_nengo.simulation import SUPPORTED_DTYPES
from keras_nengo.training import TrainStepMixin
from keras_nengo.update_groups import update_groups_for
from keras_nengo.weights import NamedWeightsMixin


@_keras_apis.register_serializable
class NengoModel(
    JacobianMixin, NamedWeightsMixin, TrainStepMixin, ModelDataMixin, keras.Model
):
    """A Nengo network as a Keras model with one named variable per parameter.

    Parameters
    ----------
    network : nengo.Network
        The network to simulate (with NengoDL).
    inputs : list of nengo.Node or None
        Nodes that may be fed from the data ``x``. Default: every Node with
        ``size_in == 0`` and ``size_out > 0`` (the Nodes NengoDL treats as
        inputs). Data is optional per Node: a Node given none runs its own
        output; a single array (not a list or dict) goes to the first of them.
    outputs : list of nengo.Probe or None
        Probes returned by the model. Default: all probes of ``network``.
    dt : float
        Simulation time step in seconds.
    seed : int or None
        Seed for building the network (if it has none) and for the simulation.
    dtype : {"float32", "float64"}
        Precision of the simulation, of the named variables and of the data.
    gradient_norms : bool
        If True, ``train_step`` adds ``grad_norm/<weight name>`` to the logs.
    unroll_simulation : int
        Simulation steps per loop iteration, as in ``nengo_dl.Simulator`` (see
        `keras_nengo.NengoLayer`).
    stateful : bool
        If True, the simulation state carries from the end of one call (or
        batch) to the start of the next, per sample row, in ``predict``,
        ``evaluate``, ``fit`` and direct calls; the batch size is fixed by the
        first call and ``fit`` does not shuffle (gradients stop at batch
        boundaries: truncated backpropagation through time). `reset_states`
        returns to the initial state.
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
        unroll_simulation: int = 1,
        stateful: bool = False,
        name: str | None = None,
        **kwargs,
    ):
        if not isinstance(network, nengo.Network):
            raise TypeError(
                "NengoModel needs a nengo.Network. "
                f"Received: network={network!r} ({type(network).__name__})."
            )
        if dtype not in SUPPORTED_DTYPES:
            raise ValueError(
                f"dtype must be one of {SUPPORTED_DTYPES}. Received: dtype={dtype!r}"
            )
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.gradient_norms = bool(gradient_norms)
        self.nengo_layer = NengoLayer(
            network,
            inputs=inputs,
            outputs=outputs,
            dt=dt,
            seed=seed,
            dtype=dtype,
            unroll_simulation=unroll_simulation,
            stateful=stateful,
            name="nengo",
        )
        # fit/evaluate/predict set the layer's minibatch size to their batch size
        self.nengo_layer.batches_fit_minibatch = True
        signature = self.nengo_layer.signature
        # plain lists (Keras would wrap tracked attributes)
        set_untracked(self, "input_nodes", signature.input_nodes)
        set_untracked(self, "output_probes", signature.output_probes)
        set_untracked(self, "input_names", signature.input_names)
        set_untracked(self, "output_names", signature.output_names)
        self.nengo_layer.build(None)
        self.built = True
        # bookkeeping, not model state: kept out of weights and checkpoints
        skipped = tf.Variable(
            0,
            dtype=tf.int64,
            trainable=False,
            name="skipped_batches",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )
        set_untracked(self, "_skipped_batches", skipped)
        set_untracked(self, "_predict_no_inputs", {})
        set_untracked(self, "_tensorboard_log_dir", None)
        set_untracked(self, "_jacobian_functions", {})
        set_untracked(self, "_gradients_function", None)
        set_untracked(self, "_update_groups", None)

    @property
    def network(self) -> nengo.Network:
        return self.nengo_layer.network

    @property
    def signature(self) -> data_module.Signature:
        """The named inputs and outputs (`keras_nengo.data.Signature`)."""
        return self.nengo_layer.signature

    # -- Keras API ----------------------------------------------------------------

    def __call__(self, inputs=None, *args, **kwargs):
        if isinstance(inputs, dict):
            # keyed by Node maybe: Keras flattens the inputs with tf.nest, which
            # sorts dict keys, and Nodes do not sort
            inputs = self.signature.inputs_by_name(inputs)
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs, training=None, n_steps=None):
        outputs = self.nengo_layer(inputs, training=training, n_steps=n_steps)
        if len(self.output_names) == 1:
            return outputs
        return dict(zip(self.output_names, outputs))

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """Configure training; dicts may be keyed by Probe, output name or label."""
        if kwargs.get("jit_compile"):
            self._check_compilable("compile with jit_compile=True (XLA)", "XLA")
        by_name = self.signature.outputs_by_name
        for key in ("loss_weights", "weighted_metrics"):
            if key in kwargs:
                kwargs[key] = by_name(kwargs[key])
        names = self.output_names
        # Keras pairs per-output losses and metrics with the outputs in the
        # order it flattens the output dict: sorted by name
        set_untracked(self, "output_names", sorted(names))
        try:
            super().compile(
                optimizer=optimizer,
                loss=_keras_apis.losses_in_dtype(by_name(loss), self.dtype),
                metrics=by_name(metrics),
                **kwargs,
            )
        finally:
            set_untracked(self, "output_names", names)
        # gradients() traces the compiled loss
        set_untracked(self, "_gradients_function", None)
        # create optimizer slots now, outside the training step's conditional
        # a model made under a strategy trains under it, wherever compile() is
        groups = update_groups_for(
            self.optimizer,
            list(self.nengo_layer.named_variables.values()),
            self.trainable_variables,
            previous=self._update_groups,
            distributed=_keras_apis.distribution_strategy(self) is not None,
        )
        set_untracked(self, "_update_groups", groups)
        if groups is None:
            self.optimizer.build(self.trainable_variables)
        else:
            self.optimizer.build(groups.optimizer_variables)

    def fit(self, x=None, y=None, batch_size=None, validation_data=None, **kwargs):
        extra = []
        if kwargs.get("validation_batch_size"):
            extra.append(kwargs["validation_batch_size"])
        x, y = self._prepare(x, y, batch_size, extra)
        if validation_data is not None and not isinstance(
            validation_data, tf.data.Dataset
        ):
            val_x, val_y, *rest = tuple(validation_data)
            val_size = kwargs.get("validation_batch_size") or batch_size
            validation_data = (*self._checked_validation(val_x, val_y, val_size), *rest)
        if self.nengo_layer.stateful:
            if kwargs.get("shuffle", False) is True:
                raise ValueError(
                    "This model is stateful: the state of sample row i flows into "
                    "row i of the next batch, which shuffling would break. "
                    "Received: shuffle=True. Pass shuffle=False (the default for "
                    "stateful models)."
                )
            kwargs["shuffle"] = False
        self._skipped_batches.assign(0)
        # JacobianNormLogger(log_dir=None) follows a TensorBoard callback of this
        # fit (keras-tuner rewrites its log_dir per trial)
        self._tensorboard_log_dir = next(
            (
                callback.log_dir
                for callback in kwargs.get("callbacks") or []
                if isinstance(callback, keras.callbacks.TensorBoard)
            ),
            None,
        )
        with _keras_apis.data_in_dtype(self.dtype):
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
        x, y = self._prepare(x, y, batch_size)
        with _keras_apis.data_in_dtype(self.dtype):
            return super().evaluate(x, y, batch_size=batch_size, **kwargs)

    def predict(self, x=None, batch_size=None, n_steps=None, **kwargs):
        """Run the network as defined (spiking neurons spike).

        Returns one array for one output, else a dict keyed by output name.
        Without data (a network with no input Nodes, or all of them running their
        own output) give ``n_steps`` instead of ``x``.
        """
        if x is None or (isinstance(x, dict) and not x):
            if n_steps is None:
                raise ValueError(
                    "predict was given no data, so it needs the number of time "
                    "steps. Received: x=None, n_steps=None. Call "
                    "predict(n_steps=<int>), or pass data for an input Node "
                    f"{self.input_names}."
                )
            function = self._predict_no_inputs.get(int(n_steps))
            if function is None:
                function = tf.function(
                    lambda: self(None, training=False, n_steps=int(n_steps))
                )
                self._predict_no_inputs[int(n_steps)] = function
            return tf.nest.map_structure(lambda t: t.numpy(), function())
        x, _ = self._prepare(x, None, batch_size)
        with _keras_apis.data_in_dtype(self.dtype):
            return super().predict(x, batch_size=batch_size, **kwargs)

    def reset_states(self):
        """Return to the initial simulation state and time 0 (``stateful=True``).

        tf-keras's ``Model.reset_states`` did this for every layer; Keras 3's
        models have no such method.
        """
        self.nengo_layer.reset_states()

    # -- saving and serving -------------------------------------------------------

    def save(self, filepath, overwrite=True, **kwargs):
        """Keras's ``save``, all or nothing for a ``.keras``/``.h5`` file.

        The file is written beside its target and moved onto it when complete,
        so a process killed while saving (a ``ModelCheckpoint`` in a long fit)
        leaves the previous file loadable.
        """
        with saving.atomic_file(filepath, overwrite) as target:
            return super().save(target, overwrite=overwrite, **kwargs)

    def save_weights(self, filepath, overwrite=True, **kwargs):
        """Keras's ``save_weights``, all or nothing for an ``.h5`` file (see save)."""
        with saving.atomic_file(filepath, overwrite) as target:
            return super().save_weights(target, overwrite=overwrite, **kwargs)

    def load_weights(self, filepath, *args, **kwargs):
        """Keras's ``load_weights``; a model not compiled yet skips optimizer state.

        A checkpoint saved after training also holds the optimizer's variables
        (two per named weight for Adam). A model loaded before ``compile`` has no
        optimizer to put them in, and TensorFlow would warn about each of them
        when the load status is deleted; ``compile`` afterwards still restores
        them, as Keras does.
        """
        status = super().load_weights(filepath, *args, **kwargs)
        if status is not None and getattr(self, "optimizer", None) is None:
            status.expect_partial()
        return status

    def get_config(self) -> dict:
        layer = self.nengo_layer
        return {
            "name": self.name,
            "network": saving.serialize_network(
                layer.network, layer.input_nodes, layer.output_probes
            ),
            "dt": layer.dt,
            "seed": layer.seed,
            "dtype": layer.dtype,
            "gradient_norms": self.gradient_norms,
            "unroll_simulation": layer.simulation.unroll_simulation,
            "stateful": layer.stateful,
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        config = dict(config)
        network, inputs, outputs = saving.deserialize_network(config.pop("network"))
        return cls(network, inputs=inputs, outputs=outputs, **config)

    def compile_from_config(self, config):
        # Keras skips compiling on load when compile() is overridden; this one only
        # re-keys dicts, so the stored arguments compile the same model
        self.compile(**saving.deserialize_keras_object(config))

    def build_from_config(self, config):
        # built in __init__; Keras's default would call build() with input shapes
        pass

    def _check_compilable(self, action, runner):
        check_compilable(self.nengo_layer, action, runner)

    def export(self, filepath, n_steps: int | None = None):
        """Write a SavedModel whose ``serve`` endpoint takes any batch size.

        ``serve`` takes one tensor ``(batch, n_steps, node.size_out)`` per input
        Node, in ``inputs`` order, and returns one tensor for one output, else a
        dict keyed by output name. The artifact needs TensorFlow only.

        Parameters
        ----------
        filepath : str or path
        n_steps : int or None
            Fix the number of time steps of the endpoint; needed when an input
            Node runs its own output. None: any number of steps.

        Raises
        ------
        ValueError
            If a Node's Python function runs during the simulation (it cannot be
            served without Python), naming that Node.
        """
        self._check_compilable("export", "a SavedModel served without Python")
        specs = [
            tf.TensorSpec([None, n_steps, node.size_out], self.dtype, name=name)
            for name, node in zip(self.input_names, self.input_nodes)
        ]

        def serve(*inputs):
            return self(list(inputs) if inputs else None, training=False)

        archive = keras.export.ExportArchive()
        archive.track(self)
        archive.add_endpoint("serve", serve, input_signature=specs)
        archive.write_out(filepath)
