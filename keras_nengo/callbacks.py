"""Keras callbacks that show a NengoModel's Jacobians during training."""

from __future__ import annotations

import copy
import os
import weakref

import numpy as np
import tensorflow as tf

from keras_nengo.jacobian import jacobian_norms

_NORMS = ("fro", "spectral", "max")

#: ``{model: {request key: tf.function}}``: the traced norm computations.
#: Every fresh logger (keras-tuner deep-copies callbacks per trial) would
#: otherwise trace and instantiate a new function of the whole Jacobian graph,
#: about a second per ``fit``; loggers with the same request share one.
_NORM_FUNCTIONS = weakref.WeakKeyDictionary()


def _norm_function(model, names, wrt, output, steps, norms):
    """``compute(x) -> (norms, first-sample Jacobians)`` for one request.

    The model is held weakly so that the cache does not keep it alive.
    """
    model_ref = weakref.ref(model)

    @tf.function
    def compute(x):
        # a list wrt always gives a dict keyed by input/weight name
        result = model_ref().jacobian(x, wrt=wrt, output=output, steps=steps)
        values = {}
        for name in names:
            for norm in norms:
                values[f"jacobian/{name}/{norm}"] = tf.reduce_mean(
                    jacobian_norms(result[name], ord=norm)
                )
        return values, {name: result[name][0] for name in names}

    return compute


class JacobianNormLogger(tf.keras.callbacks.Callback):
    """Log norms of the model's Jacobians on a fixed batch after each epoch.

    For every Jacobian ``d output / d <wrt name>`` (inputs and/or named weights)
    and every requested norm, the mean over the batch is

    - added to ``logs`` as ``jacobian/<wrt name>/<norm>``, so History,
      EarlyStopping, ReduceLROnPlateau and keras-tuner objectives can use it;
    - written as a scalar summary with the same tag at ``step=epoch`` into
      ``<log_dir>/train`` (the run TensorBoard's own callback writes
      ``epoch_loss`` to, so the curves sit together).

    Parameters
    ----------
    x : array_like or dict
        A fixed probe batch, in any form ``NengoModel.predict`` accepts.
    wrt : str or sequence of str
        What to differentiate with respect to: ``"inputs"``, ``"weights"``,
        weight names or globs (see ``NengoModel.jacobian``).
    norms : sequence of {"fro", "spectral", "max"}
        Norms to log (per sample, then averaged over the batch).
    output : nengo.Probe or str or None
        Output to differentiate; required if the model has several outputs.
    steps : int, slice, list or None
        Output time steps (see ``NengoModel.jacobian``); default the last one.
    every_n_epochs : int
        Log after every ``every_n_epochs``-th epoch (and never in between).
    log_dir : str or None
        TensorBoard log directory. None: the ``log_dir`` of a
        ``tf.keras.callbacks.TensorBoard`` in the same ``fit`` (so keras-tuner's
        per-trial directories are followed), else ``"logs"``.
    images : bool
        Also write each Jacobian of the first sample as a heatmap image summary
        (``jacobian_image/<wrt name>``): output rows × wrt columns.

    Examples
    --------
    >>> logger = JacobianNormLogger(x_probe, wrt=("inputs", "weights"))
    >>> model.fit(x, y, callbacks=[tf.keras.callbacks.TensorBoard("logs"), logger])
    ... # doctest: +SKIP
    """

    def __init__(
        self,
        x,
        wrt=("inputs", "weights"),
        norms=("fro",),
        output=None,
        steps=-1,
        every_n_epochs: int = 1,
        log_dir: str | None = None,
        images: bool = False,
    ):
        super().__init__()
        norms = (norms,) if isinstance(norms, str) else tuple(norms)
        unknown = [norm for norm in norms if norm not in _NORMS]
        if unknown or not norms:
            raise ValueError(
                f"Unknown norms {unknown or norms}. Expected a non-empty subset of "
                f"{_NORMS}."
            )
        if int(every_n_epochs) < 1:
            raise ValueError(
                "every_n_epochs must be a positive integer. "
                f"Received: every_n_epochs={every_n_epochs!r}."
            )
        self.x = x
        self.wrt = [wrt] if isinstance(wrt, str) else list(wrt)
        self.norms = norms
        self.output = output
        self.steps = steps
        self.every_n_epochs = int(every_n_epochs)
        self.log_dir = log_dir
        self.images = bool(images)
        self._reset_runtime()

    def _reset_runtime(self):
        self._writer = None
        self._compute = None
        self._data = None
        self._resolved_log_dir = None

    def __deepcopy__(self, memo):
        # keras-tuner deep-copies callbacks per trial: copy the configuration only
        # (never the model, a writer or a traced function)
        clone = self.__class__.__new__(self.__class__)
        tf.keras.callbacks.Callback.__init__(clone)
        for key in (
            "wrt",
            "norms",
            "output",
            "steps",
            "every_n_epochs",
            "log_dir",
            "images",
        ):
            setattr(clone, key, copy.deepcopy(getattr(self, key), memo))
        clone.x = copy.deepcopy(self.x, memo)
        clone._reset_runtime()
        return clone

    # -- setup --------------------------------------------------------------------

    def set_model(self, model):
        from keras_nengo.model import (  # pylint: disable=import-outside-toplevel
            NengoModel,
        )

        if not isinstance(model, NengoModel):
            raise TypeError(
                "JacobianNormLogger works with keras_nengo.NengoModel. "
                f"Received: a {type(model).__name__}."
            )
        super().set_model(model)
        self._reset_runtime()
        self._compute = self._build()

    def _build(self):
        model = self.model
        # resolves (and so checks) x, wrt, output and steps before any training
        request = model._jacobian_request(
            self.x, self.wrt, self.output, self.steps, training=True
        )
        self._data = request.data
        names = tuple(sorted(request.wrt_inputs + request.wrt_weights))
        key = (
            names,
            request.output_name,
            tuple(request.indices),
            request.squeeze,
            self.norms,
            tuple(
                (name, tuple(value.shape), value.dtype.name)
                for name, value in sorted(request.data.items())
            ),
        )
        functions = _NORM_FUNCTIONS.setdefault(model, {})
        if key not in functions:
            steps = request.indices[0] if request.squeeze else list(request.indices)
            functions[key] = _norm_function(
                model, names, list(names), request.output_name, steps, self.norms
            )
        return functions[key]

    def on_train_begin(self, logs=None):
        log_dir = self.log_dir
        if log_dir is None:
            log_dir = getattr(self.model, "_tensorboard_log_dir", None) or "logs"
        self._resolved_log_dir = os.path.join(log_dir, "train")
        self._writer = None

    # -- logging ------------------------------------------------------------------

    def _writer_for_epoch(self):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self._resolved_log_dir)
        return self._writer

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs != 0:
            return
        values, first = self._compute(self._data)
        values = {key: float(value) for key, value in values.items()}
        if logs is not None:
            logs.update(values)
        writer = self._writer_for_epoch()
        with writer.as_default(step=epoch):
            for tag, value in values.items():
                tf.summary.scalar(tag, value)
            if self.images:
                for name, matrix in first.items():
                    tf.summary.image(f"jacobian_image/{name}", _heatmap(matrix))
        writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _heatmap(jacobian):
    """One sample's Jacobian as a (1, rows, cols, 3) image, blue-white-red."""
    jacobian = np.asarray(jacobian)
    # rows: the first output axis (out_dim, or n_out_steps); columns: the rest
    matrix = jacobian.reshape(jacobian.shape[0], -1)
    scale = np.max(np.abs(matrix)) or 1.0
    value = matrix / scale
    red = np.where(value > 0, 1.0, 1.0 + value)
    blue = np.where(value < 0, 1.0, 1.0 - value)
    green = 1.0 - np.abs(value)
    return np.stack([red, green, blue], axis=-1)[None].astype(np.float32)
