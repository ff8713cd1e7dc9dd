"""Where the two Kerases' layer and model APIs differ, one function each.

keras_nengo's layer and model call these instead of the Keras API itself
wherever Keras 3 and tf-keras differ (see `keras_nengo._compat` for which
Keras the process uses): variables and their names, tracking, output shapes,
dtypes in configs and data, serialization, the training step's loss and
gradients, and logs under ``tf.distribute``.
"""

import contextlib

from keras_nengo._compat import KERAS_3, keras, tf


def set_untracked(obj, name, value):
    """Set ``obj.name = value`` without Keras or TensorFlow tracking ``value``.

    For caches and simulation state a layer keeps out of its weights,
    checkpoints and SavedModels (both Kerases track what is assigned to a layer).
    """
    object.__setattr__(obj, name, value)


def add_named_variable(layer, name, initial_value, trainable):
    """A variable of ``layer`` named ``name``, starting at ``initial_value``.

    ``name`` is a keras_nengo name, in which ``"/"`` separates subnetworks. In
    tf-keras it is the variable's name (``<layer>/<name>:0``). Keras 3 refuses
    ``"/"`` in a variable's name: there the subnetworks become name scopes, so
    that the variable's ``path`` is ``<layer>/<name>`` and its ``name`` the
    last piece. The caller keeps the variable in a tracked attribute (tf-keras
    tracks it here already).
    """
    if not KERAS_3:
        return layer.add_weight(
            name=name,
            shape=initial_value.shape,
            dtype=layer.dtype,
            initializer=tf.constant_initializer(initial_value),
            trainable=trainable,
        )
    *scopes, last = name.split("/")
    with contextlib.ExitStack() as stack:
        # the layer's scope as Keras's add_weight opens it (under its parent's)
        stack.enter_context(keras.name_scope(layer.name, caller=layer))
        for scope in scopes:
            stack.enter_context(keras.name_scope(scope))
        return keras.Variable(
            initial_value.astype(layer.dtype),
            dtype=layer.dtype,
            trainable=trainable,
            name=last,
        )


def output_shape(dims):
    """A layer's output shape as its Keras expects it from ``compute_output_shape``."""
    return tuple(dims) if KERAS_3 else tf.TensorShape(dims)


def dtype_name(dtype):
    """The name of ``dtype`` as a layer config holds it (Keras 3: a policy)."""
    if isinstance(dtype, dict):
        # Keras 3 serializes a layer's dtype as its DTypePolicy
        return dtype.get("config", {}).get("name", dtype)
    return getattr(dtype, "name", dtype)


def in_safe_mode() -> bool:
    """True inside ``load_model(..., safe_mode=True)`` of the user's Keras."""
    # pylint: disable=import-outside-toplevel
    if KERAS_3:
        from keras.src.saving import serialization_lib
    else:
        from tf_keras.src.saving import serialization_lib
    return bool(serialization_lib.in_safe_mode())


def variable_name(variable) -> str:
    """A Keras variable's unique name: its ``path`` in Keras 3 (``name`` is only
    its last piece there), its ``name`` without ``:0`` in tf-keras."""
    return variable.path if KERAS_3 else variable.name.split(":")[0]


def tf_variable(variable):
    """The ``tf.Variable`` behind a Keras variable (Keras 3 wraps one).

    For TensorFlow APIs that take only ``tf.Variable`` (``ForwardAccumulator``);
    reading a Keras 3 variable reads this one, so watching it watches both.
    """
    return variable.value if KERAS_3 else variable


def distribution_strategy(model):
    """The ``tf.distribute`` strategy ``model`` was made under, or None."""
    return model._distribute_strategy if KERAS_3 else model._distribution_strategy


def compiled_loss(model):
    """The loss ``compile`` set up, or None before ``compile(loss=...)``."""
    return getattr(model, "_compile_loss", None) if KERAS_3 else model.compiled_loss


@contextlib.contextmanager
def data_in_dtype(dtype):
    """Let Keras take ``fit``/``evaluate``/``predict`` data in ``dtype``.

    Keras 3's data adapters cast float arrays (NumPy or TensorFlow) to
    ``floatx``, so a float64 model's data would be rounded to float32 on the
    way in; while the block runs ``floatx`` is ``dtype``. tf-keras keeps tensors
    as given (`keras_nengo.model_data` hands it tensors).
    """
    if not KERAS_3 or dtype == keras.config.floatx():
        yield
        return
    previous = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(previous)


def losses_in_dtype(loss, dtype):
    """``compile``'s ``loss`` (one, a list or a dict) computed in ``dtype``.

    Keras 3 computes a loss in ``floatx`` (float32) unless it was made with a
    dtype, which would round a float64 model's outputs and gradients to float32.
    Losses given by name or function are made with the model's dtype here; a
    ``Loss`` object keeps the dtype it was made with. tf-keras computes a loss
    in its inputs' dtype.
    """
    if not KERAS_3 or dtype == keras.config.floatx():
        return loss
    if isinstance(loss, dict):
        return {key: losses_in_dtype(value, dtype) for key, value in loss.items()}
    if isinstance(loss, (list, tuple)):
        return type(loss)(losses_in_dtype(value, dtype) for value in loss)
    if loss is None or isinstance(loss, keras.losses.Loss):
        return loss
    function = keras.losses.get(loss)
    if isinstance(function, keras.losses.Loss):
        return loss
    name = loss if isinstance(loss, str) else getattr(function, "__name__", None)
    from keras.src.losses.losses import (  # pylint: disable=import-outside-toplevel
        LossFunctionWrapper,
    )

    return LossFunctionWrapper(function, name=name, dtype=dtype)


def record_loss(model, x, y, loss):
    """What Keras's own ``train_step`` does with the loss besides differentiating it.

    Keras 3 logs ``loss`` from a tracker its ``train_step`` updates (not
    ``compute_loss``); tf-keras checks that targets and loss were given.
    """
    if not KERAS_3:
        model._validate_target_and_loss(y, loss)
        return
    from keras.src import losses, tree  # pylint: disable=import-outside-toplevel

    first = next(value for value in tree.flatten(x) if value is not None)
    model._loss_tracker.update_state(
        losses.loss.unscale_loss_for_distribution(loss),
        sample_weight=tf.shape(first)[0],
    )


def apply_gradients(optimizer, gradients, variables):
    """``optimizer.apply_gradients`` of gradients already summed over replicas."""
    if KERAS_3:
        # Keras 3's optimizers always sum gradients over replicas (they take no
        # option to skip it): hand each replica its share of the sum
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            gradients = [gradient / replicas for gradient in gradients]
        optimizer.apply_gradients(zip(gradients, variables))
    elif isinstance(optimizer, tf.keras.optimizers.legacy.Optimizer):
        optimizer.apply_gradients(
            zip(gradients, variables), experimental_aggregate_gradients=False
        )
    else:
        optimizer.apply_gradients(
            zip(gradients, variables), skip_gradients_aggregation=True
        )


def logs_for_reduction(logs):
    """``train_step``'s logs in a form Keras can reduce over the replicas.

    Keras 3 averages each log over the workers of a
    ``MultiWorkerMirroredStrategy`` along axis 0, which fails for a scalar
    ("Invalid reduction dimension 0", TensorFlow issue 72388, any Keras 3
    model); as vectors of one value they reduce to the scalar. Every worker's
    logs already describe the global batch, so their mean is that value.
    """
    if not KERAS_3:
        return logs
    # pylint: disable=import-outside-toplevel
    from keras.src.backend.tensorflow.trainer import (
        _collective_all_reduce_multi_worker,
    )

    if not _collective_all_reduce_multi_worker(tf.distribute.get_strategy()):
        return logs
    return {key: tf.reshape(value, [1]) for key, value in logs.items()}


def register_serializable(cls):
    """Register ``cls`` under ``keras_nengo>`` with the user's Keras."""
    return keras.saving.register_keras_serializable(package="keras_nengo")(cls)
