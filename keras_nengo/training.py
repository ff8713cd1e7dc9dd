"""The training step: gradients per named weight, and no step on a non-finite batch.

`TrainStepMixin` gives `keras_nengo.NengoModel` Keras's ``train_step`` order
(unpack → forward under a tape with ``training=True`` → loss → gradients → apply
→ metrics) with two additions: ``grad_norm/<name>`` logs, and a guard that
skips a batch whose data, loss or gradients are not finite, so that no NaN
ever reaches a weight and bad data never moves one. The guard follows
Keras's LossScaleOptimizer: gradients are all-reduced across replicas first,
every replica sees the same verdict, and the conditional apply runs in
cross-replica context where ``tf.distribute`` needs it.
Under ``tf.distribute`` the ``grad_norm`` logs are those of the all-reduced
gradients, so every log is the global batch's, as on one device.
"""

from __future__ import annotations

import tensorflow as tf

from keras_nengo import _compat, _keras_apis


def _all_finite(loss, gradients, data):
    """Whether the loss, the gradients and the batch's float data are finite.

    The data counts too: a NaN that reaches no output within the steps run
    (a synapse delays it past the last step) leaves the loss and gradients
    finite, but the batch is still bad, and an optimizer step on it would
    count an iteration and move stateful optimizers' weights.
    """
    values = [loss, *gradients] + [
        value
        for value in tf.nest.flatten(data)
        if value is not None and tf.as_dtype(value.dtype).is_floating
    ]
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in values])


class TrainStepMixin:
    """``train_step`` and ``gradients`` for a model with ``self.nengo_layer``."""

    @property
    def distribute_reduction_method(self) -> str:
        """How ``fit``/``evaluate`` combine the replicas' logs; default ``"first"``.

        Every replica's logs already describe the global batch (Keras aggregates
        metrics across replicas, the gradients behind ``grad_norm/...`` are
        all-reduced), so the first replica's are the logs. Keras's ``"auto"``
        sums them instead, which under MultiWorkerMirroredStrategy multiplies
        each log by the number of workers.
        """
        return self._distribute_reduction_method or "first"

    @distribute_reduction_method.setter
    def distribute_reduction_method(self, value: str):
        self._distribute_reduction_method = value

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Keras 3: build compiled metrics under a strategy from one replica's batch.

        Keras 3 averages the first distributed batch over the replicas to build
        with (``strategy.reduce``), which ``MultiWorkerMirroredStrategy`` cannot
        do for a dict of inputs; any replica's batch has the structure and
        dtypes the build needs. (tf-keras has no such step.)
        """
        strategy = _keras_apis.distribution_strategy(self)
        if iterator is not None and strategy is not None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda value: (
                        strategy.experimental_local_results(value)[0]
                        if isinstance(value, tf.distribute.DistributedValues)
                        else value
                    ),
                    next(batches),
                )
                break
        return super()._maybe_symbolic_build(data_batch=data_batch)

    def _update_groups_for(self, variables):
        """The compiled `UpdateGroups` if they apply to ``variables`` now, else None."""
        groups = getattr(self, "_update_groups", None)
        if groups is None or tf.distribute.has_strategy():
            return None
        if not groups.matches(variables):
            raise RuntimeError(
                "The model's trainable weights changed since compile(): the "
                f"optimizer was built for {len(groups.key)} trainable variables, "
                f"the model now has {len(variables)}. Call compile() again after "
                "changing `trainable`."
            )
        return groups

    def _apply_if_finite(self, loss, gradients, variables, data):
        """Apply ``gradients`` (summed over replicas) unless something is not finite.

        ``data`` is the batch (inputs, targets, sample weights): a non-finite
        float value anywhere in it skips the batch too.

        Returns the gradients summed over replicas (the gradients of the global
        batch's loss), the same on every replica.
        """
        groups = self._update_groups_for(variables)
        if groups is not None:
            return self._apply_grouped_if_finite(
                loss, gradients, variables, groups, data
            )
        context = tf.distribute.get_replica_context()
        gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
        # the loss differs per replica: every replica must agree on the verdict
        bad = tf.cast(tf.logical_not(_all_finite(loss, gradients, data)), tf.float32)
        finite = tf.equal(context.all_reduce(tf.distribute.ReduceOp.SUM, bad), 0.0)
        optimizer = self.optimizer

        def apply(gradients):
            _keras_apis.apply_gradients(optimizer, gradients, variables)

        if tf.__internal__.distribute.strategy_supports_no_merge_call():
            tf.__internal__.smart_cond.smart_cond(
                finite, lambda: apply(gradients), self._skip_batch
            )
            return gradients

        def cross_replica(distribution, gradients, finite):
            # every replica computed the same verdict from all-reduced values
            verdict = distribution.experimental_local_results(finite)[0]

            def apply_everywhere():
                distribution.extended.call_for_each_replica(apply, args=(gradients,))

            tf.__internal__.smart_cond.smart_cond(
                verdict, apply_everywhere, self._skip_batch
            )

        context.merge_call(cross_replica, args=(gradients, finite))
        return gradients

    def _skip_batch(self):
        self._skipped_batches.assign_add(1)

    def _apply_grouped_if_finite(self, loss, gradients, variables, groups, data):
        """`_apply_if_finite` on one replica, the optimizer updating flat groups."""
        optimizer = self.optimizer
        flat = groups.optimizer_gradients(gradients, variables)
        groups.zero()

        def apply():
            _keras_apis.apply_gradients(optimizer, flat, groups.optimizer_variables)

        tf.__internal__.smart_cond.smart_cond(
            _all_finite(loss, flat, data), apply, self._skip_batch
        )
        # zero where the batch was skipped
        groups.add_updates()
        return gradients

    def train_step(self, data):
        x, y, sample_weight = _compat.keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight)
        _keras_apis.record_loss(self, x, y, loss)
        variables = self.trainable_variables
        gradients = tape.gradient(loss, variables)
        gradients = [
            tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
            for g, v in zip(gradients, variables)
        ]
        gradients = self._apply_if_finite(
            loss, gradients, variables, (x, y, sample_weight)
        )
        logs = self.compute_metrics(x, y, y_pred, sample_weight)
        if self.gradient_norms:
            names = {id(v): n for n, v in self.nengo_layer.named_variables.items()}
            for variable, gradient in zip(variables, gradients):
                name = names.get(id(variable), _keras_apis.variable_name(variable))
                logs[f"grad_norm/{name}"] = tf.norm(gradient)
        return _keras_apis.logs_for_reduction(logs)

    def test_step(self, data):
        return _keras_apis.logs_for_reduction(super().test_step(data))

    def gradients(self, x, y, sample_weight=None) -> dict:
        """Gradients of the compiled loss w.r.t. each named trainable weight.

        The same computation as ``train_step`` (``training=True``), for custom
        loops.

        Parameters
        ----------
        x, y
            Data and targets, in the forms ``fit`` accepts (arrays, lists, dicts).
        sample_weight : array_like or None

        Returns
        -------
        gradients : dict of {str: tf.Tensor}
            Keyed by weight name.

        Raises
        ------
        RuntimeError
            If the model is not compiled.
        """
        if _keras_apis.compiled_loss(self) is None:
            raise RuntimeError(
                "gradients() uses the compiled loss, but the model is not compiled. "
                "Call model.compile(loss=...) first."
            )
        x, y = self._checked(x, y)
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
