"""Timed runs of the JacobianNormLogger's cost: epochs with and without it.

As in `keras_nengo.bench.runners`, the sides run in one process, their
timed calls interleaved, and the figures are medians.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np

from keras_nengo.bench.networks import tutorial_network
from keras_nengo.bench.runners import median_seconds


def _tutorial_model(n_samples):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from keras_nengo import NengoModel  # pylint: disable=import-outside-toplevel

    net = tutorial_network()
    model = NengoModel(net, inputs=[net.stim], outputs=[net.p_out_nofilt])
    model.compile(optimizer=tf.keras.optimizers.RMSprop(1e-3), loss="mse")
    x = np.random.RandomState(0).uniform(-1, 1, size=(n_samples, 1, 1))
    return model, x, np.sin(x**2)


def logger_overhead(
    n_samples: int = 4096, batch_size: int = 32, epochs: int = 6, rounds: int = 3
) -> dict[str, float]:
    """Epoch time of the tutorial network with and without a JacobianNormLogger.

    The logger has its default settings (fro norm, wrt inputs and weights, every
    epoch) on a 16-sample probe batch, writing to a temporary directory. Each of
    ``rounds`` rounds runs one ``fit`` of ``epochs`` epochs without the logger and
    one with it, on the same compiled model; an epoch's time is the interval
    between consecutive ``on_epoch_end`` calls, the first epoch of every ``fit``
    excluded (it traces).

    Returns
    -------
    dict
        ``"without"`` and ``"with"`` (median seconds per epoch), ``"ratio"``
        (with / without) and ``"overhead_percent"``.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from keras_nengo.callbacks import (  # pylint: disable=import-outside-toplevel
        JacobianNormLogger,
    )

    model, x, y = _tutorial_model(n_samples)

    class EpochEnds(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter())

    def epoch_times(callbacks):
        ends = EpochEnds()
        model.fit(
            x,
            y,
            batch_size=batch_size,
            epochs=epochs,
            verbose=0,
            callbacks=callbacks + [ends],
        )
        return list(np.diff(ends.times))

    times = {"without": [], "with": []}
    with tempfile.TemporaryDirectory() as log_dir:
        for _ in range(rounds):
            times["without"] += epoch_times([])
            logger = JacobianNormLogger(x[:16], log_dir=log_dir)
            times["with"] += epoch_times([logger])
    result = {key: float(np.median(value)) for key, value in times.items()}
    result["ratio"] = result["with"] / result["without"]
    result["overhead_percent"] = 100.0 * (result["ratio"] - 1.0)
    return result


def fresh_logger_fit(
    n_samples: int = 2048, batch_size: int = 32, repeats: int = 3
) -> dict[str, float]:
    """A 1-epoch ``fit`` with a *fresh* default JacobianNormLogger vs without one.

    What every keras-tuner trial pays (it deep-copies its callbacks per trial):
    the same compiled tutorial model, a new logger on each timed call.

    Returns
    -------
    dict
        ``"without"``, ``"with"`` (median seconds per ``fit``), ``"ratio"``
        and ``"overhead_percent"``.
    """
    from keras_nengo.callbacks import (  # pylint: disable=import-outside-toplevel
        JacobianNormLogger,
    )

    model, x, y = _tutorial_model(n_samples)
    with tempfile.TemporaryDirectory() as log_dir:

        def fit(callbacks):
            return model.fit(
                x, y, batch_size=batch_size, epochs=1, verbose=0, callbacks=callbacks
            ).history

        seconds = median_seconds(
            {
                "without": lambda: fit([]),
                "with": lambda: fit([JacobianNormLogger(x[:16], log_dir=log_dir)]),
            },
            repeats,
        )
    seconds["ratio"] = seconds["with"] / seconds["without"]
    seconds["overhead_percent"] = 100.0 * (seconds["ratio"] - 1.0)
    return seconds
