"""Data for NengoModel's fit, evaluate and predict: checked before Keras sees it.

Every Keras entry point of `keras_nengo.NengoModel` passes its data through
`ModelDataMixin._prepare` before Keras traces anything, so wrong structures,
shapes, dtypes, empty data and batch sizes a stateful model cannot run are
refused with plain Python errors naming the input Node or output Probe (not
as failures inside a traced function), and the simulation's minibatch size is
set to the batch size (NengoDL's graphs have a fixed one).
"""

from __future__ import annotations

import tensorflow as tf

from keras_nengo import data as data_module
from keras_nengo._compat import keras
from keras_nengo._keras_apis import set_untracked

#: Keras's batch size when fit/evaluate/predict are given none
DEFAULT_BATCH_SIZE = 32


class ModelDataMixin:
    """The data checks and minibatch sizing of `keras_nengo.NengoModel`."""

    def _use_minibatch_size(self, size):
        """Make traced functions run the simulation in minibatches of ``size``.

        Under ``tf.distribute`` each replica gets its share of the global batch,
        with a batch size unknown while tracing: chunks of that share, not of
        the global batch, keep the replicas from simulating padding.
        """
        replicas = self.distribute_strategy.num_replicas_in_sync
        size = -(-int(size) // replicas)
        changed = size != self.nengo_layer.minibatch_size
        # the layer builds the graph for its minibatch size now, outside traces
        self.nengo_layer.minibatch_size = size
        if changed:
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
        """Checked data; the simulation's minibatch size set to the batch size.

        Every Keras entry point (fit, evaluate, predict) passes here before
        Keras traces anything, so data errors surface as plain Python errors
        naming the input, not as failures inside a traced function.
        """
        if isinstance(x, tf.data.Dataset):
            size = self._dataset_batch_size(x)
            self._check_batches(None, size, batch_size)
            self._use_minibatch_size(max((size,) + tuple(extra_sizes)))
            return x, y
        x, y = self._checked(x, y)
        samples = data_module.n_samples(x)
        if samples == 0:
            raise ValueError(
                "The data has no samples, so there is nothing to run. Received: x "
                f"with shapes {self._shapes(x)}. Pass at least one sample."
            )
        size = batch_size or DEFAULT_BATCH_SIZE
        if samples:
            size = min(size, samples)
        self._check_batches(samples, size, batch_size)
        self._use_minibatch_size(max((size,) + tuple(extra_sizes)))
        self._keep_steps_static(x)
        return x, y

    def _keep_steps_static(self, x):
        """New traced functions when the number of steps changes and a Node runs
        its own output.

        Keras retraces its functions for relaxed shapes, so a second number of
        steps would be traced as unknown; the output of an input Node given no
        data is computed in advance for a fixed number of steps.
        """
        fed = self._fed_nodes(x)
        own_output = [
            node
            for node in data_module.default_inputs(self.network)
            if not any(node is other for other in fed)
        ]
        steps = next((int(value.shape[1]) for value in x.values()), None)
        if own_output and steps != getattr(self, "_traced_steps", steps):
            self.train_function = None
            self.test_function = None
            self.predict_function = None
        set_untracked(self, "_traced_steps", steps)

    def _fed_nodes(self, x) -> list:
        names = self.signature.input_names
        return [node for name, node in zip(names, self.input_nodes) if name in x]

    @staticmethod
    def _shapes(x) -> dict:
        return {name: tuple(value.shape) for name, value in x.items()}

    def _check_batches(self, samples, size, batch_size):
        """Refuse batches a stateful model cannot run (other sizes, partial)."""
        layer = self.nengo_layer
        if not layer.stateful:
            return
        received = f"{size} ({samples} samples, batch_size={batch_size})"
        if samples is None:
            received = f"{size} (the dataset's first batch)"
        rows = layer.fixed_batch_size
        if rows is not None and size != rows:
            raise ValueError(layer._batch_size_message(rows, received))
        if samples and samples % size:
            raise ValueError(
                f"This model is stateful, so every batch must have the same size "
                f"(each sample row carries its own state). Received: {samples} "
                f"samples in batches of {size}, leaving a partial batch. Pass a "
                f"number of samples that is a multiple of batch_size."
            )

    def _checked(self, x, y):
        """Checked data, with float arrays as tensors when floatx would round them."""
        x = self.signature.check_x(x)
        y = self.signature.check_y(y, data_module.n_samples(x))
        if self.dtype != keras.backend.floatx():
            x, y = data_module.as_tensors((x, y), self.dtype)
        return x, y

    def _checked_validation(self, x, y, batch_size):
        """``validation_data`` of ``fit``, checked as ``_prepare`` checks ``x, y``."""
        x, y = self._checked(x, y)
        samples = data_module.n_samples(x)
        size = batch_size or DEFAULT_BATCH_SIZE
        self._check_batches(
            samples, min(size, samples) if samples else size, batch_size
        )
        return x, y
