"""Timed runs: keras_nengo against NengoDL and the hand-written references.

Every function here times two or more sides on the same network, data and
batch size in the same process, their timed calls interleaved (a, b, a, b,
...), so that the sides share whatever else the machine is doing and their
ratios stay meaningful on a busy machine. Times are medians over repeats,
after untimed warm-up calls that trace the graphs.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from keras_nengo.bench.networks import (
    FULL,
    BenchNetwork,
    BenchSizes,
    bench_data,
    data_shape,
    jacobian_network,
)


def median_seconds(functions: dict, repeats: int, warmups: dict | None = None) -> dict:
    """Median seconds per call of each function, the timed calls interleaved.

    ``warmups`` maps a name to its number of untimed first calls (default 1).
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    warmups = warmups or {}
    for name, function in functions.items():
        for _ in range(warmups.get(name, 1)):
            function()
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            tf.nest.map_structure(np.asarray, function())
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(values)) for name, values in times.items()}


def error_text(error: BaseException) -> str:
    """A one-line description of ``error`` for a report row."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    # XLA's errors start with "Graph execution error:"; the reason comes later
    telling = [
        line
        for line in lines
        if any(
            word in line
            for word in ("XLA compilation", "unsupported", "not supported", "No regist")
        )
    ]
    line = (telling or lines or [""])[0]
    return f"{type(error).__name__}: {line[:200]}"


def _model(bench, learning_rate, jit_compile=False):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from keras_nengo import NengoModel  # pylint: disable=import-outside-toplevel

    model = NengoModel(bench.network, inputs=bench.inputs, outputs=[bench.output])
    model.compile(
        optimizer=tf.keras.optimizers.SGD(learning_rate),
        loss="mse",
        jit_compile=jit_compile,
    )
    return model


def _floor_model(x, y, learning_rate):
    """One Dense layer on the same data: what Keras itself costs per call.

    Its ``fit``/``predict`` time is the floor of any model's through Keras
    (data adapter, the step function's call, callbacks, outputs), so its
    ratio to NengoDL bounds what any network can reach on that data.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    inputs = [tf.keras.Input(value.shape[1:]) for value in x]
    joined = inputs[0] if len(inputs) == 1 else tf.keras.layers.Concatenate()(inputs)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(y.shape[-1])(joined))
    model.compile(optimizer=tf.keras.optimizers.SGD(learning_rate), loss="mse")
    return model


def _batched(batches):
    """A ``tf.data.Dataset`` yielding the reference's prepared ``batches``."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    xs = [tf.concat([x[i] for x, _ in batches], 0) for i in range(len(batches[0][0]))]
    ys = tf.concat([y for _, y in batches], 0)
    size = int(batches[0][1].shape[0])
    features = xs[0] if len(xs) == 1 else tuple(xs)
    return tf.data.Dataset.from_tensor_slices((features, ys)).batch(size).cache()


class _SkipCounter:
    """Counts NengoModel's "batch(es) ... were skipped" warnings of `fit` calls."""

    def __init__(self):
        self.skipped = 0

    def fit(self, model, *args, **kwargs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            history = model.fit(*args, **kwargs)
        for warning in caught:
            if "skipped" in str(warning.message):
                self.skipped += int(str(warning.message).split()[0])
            else:
                warnings.warn_explicit(
                    warning.message, warning.category, warning.filename, warning.lineno
                )
        return history.history


def throughput(bench: BenchNetwork, sizes: BenchSizes = FULL) -> dict:
    """``fit``/``predict`` time of NengoModel, nengo_dl.Simulator and the reference.

    One ``fit`` epoch of SGD (``bench.learning_rate``) with MSE loss on each
    side, and one ``predict`` pass (NengoModel and NengoDL only: the
    reference has no spiking mode).

    Returns
    -------
    dict
        ``"seconds"``: ``{(kind, side): median seconds per call}`` for
        ``kind`` in ``fit``/``predict``, ``side`` in
        ``keras_nengo``/``nengo_dl``/``reference``/``keras_floor`` (one Dense
        layer through Keras, `_floor_model`); ``"n_samples"``,
        ``"n_steps"``, ``"batch_size"``; ``"skipped"``: training batches
        NengoModel skipped as non-finite; ``"reference_error"``: why there is
        no reference (or None).
    """

    from keras_nengo._compat import (  # pylint: disable=import-outside-toplevel
        nengo_dl,
        tf_keras,
    )
    from keras_nengo.bench.references import (  # pylint: disable=import-outside-toplevel
        Reference,
    )

    n_samples, n_steps, batch_size = data_shape(bench, sizes)
    x, y = bench_data(bench, n_samples, n_steps)
    model = _model(bench, bench.learning_rate)
    data = x if len(x) > 1 else x[0]  # one input: its array, as users pass it
    counter = _SkipCounter()
    functions = {
        ("fit", "keras_nengo"): lambda: counter.fit(
            model,
            data,
            y,
            batch_size=batch_size,
            epochs=1,
            verbose=0,
        ),
        ("predict", "keras_nengo"): lambda: model.predict(
            data, batch_size=batch_size, verbose=0
        ),
    }
    floor = _floor_model(x, y, bench.learning_rate)
    functions[("fit", "keras_floor")] = lambda: floor.fit(
        data, y, batch_size=batch_size, epochs=1, verbose=0
    )
    functions[("predict", "keras_floor")] = lambda: floor.predict(
        data, batch_size=batch_size, verbose=0
    )
    reference_error = None
    try:
        reference = Reference(model, bench.inputs, bench.output, bench.learning_rate)
        batches = reference.batches(x, y, batch_size)
        functions[("fit", "reference")] = lambda: reference.fit(batches)
        # against the reference, fit gets what the reference gets: the same
        # float32 batches, made before the timing, in order
        dataset = _batched(batches)
        functions[("fit_batched", "keras_nengo")] = lambda: counter.fit(
            model, dataset, epochs=1, verbose=0
        )
        functions[("fit_batched", "keras_floor")] = lambda: floor.fit(
            dataset, epochs=1, verbose=0
        )
    except NotImplementedError as error:
        reference_error = error_text(error)
    x_dl = dict(zip(bench.inputs, x))
    with nengo_dl.Simulator(
        bench.network, minibatch_size=batch_size, progress_bar=False
    ) as sim:
        sim.compile(
            # NengoDL's Keras (tf-keras, also in a Keras 3 process)
            optimizer=tf_keras.optimizers.SGD(bench.learning_rate),
            loss={bench.output: "mse"},
        )
        functions[("fit", "nengo_dl")] = lambda: sim.fit(
            x_dl, {bench.output: y}, epochs=1, verbose=0
        ).history
        # a dict keyed by every Probe of the network
        functions[("predict", "nengo_dl")] = lambda: list(
            sim.predict(x_dl, verbose=0).values()
        )
        seconds = median_seconds(functions, sizes.repeats)
    return {
        "seconds": seconds,
        "n_samples": n_samples,
        "n_steps": n_steps,
        "batch_size": batch_size,
        "skipped": counter.skipped,
        "reference_error": reference_error,
    }


def jit_fit(bench: BenchNetwork, sizes: BenchSizes = FULL) -> dict:
    """One ``fit`` epoch with ``compile(jit_compile=True)`` vs the reference under XLA.

    Returns ``{"keras_nengo": seconds or error text, "reference": seconds,
    "batches": number of batches}``: a model that cannot compile records
    the error instead of a time.
    """
    from keras_nengo.bench.references import (  # pylint: disable=import-outside-toplevel
        Reference,
    )

    n_samples, n_steps, batch_size = data_shape(bench, sizes)
    x, y = bench_data(bench, n_samples, n_steps)
    functions = {}
    result = {"batches": n_samples // batch_size}
    model = _model(bench, bench.learning_rate, jit_compile=True)

    reference = Reference(
        model, bench.inputs, bench.output, bench.learning_rate, jit_compile=True
    )
    batches = reference.batches(x, y, batch_size)
    functions["reference"] = lambda: reference.fit(batches)
    dataset = _batched(batches)

    def fit():
        return model.fit(dataset, epochs=1, verbose=0).history

    try:
        fit()
        functions["keras_nengo"] = fit
    except Exception as error:  # pylint: disable=broad-except
        result["keras_nengo"] = error_text(error)
    result.update(median_seconds(functions, sizes.repeats))
    return result


def jacobian_times(
    model, x: dict, repeats: int = 5, baselines: bool = True
) -> dict[str, float]:
    """Time ``model.jacobian(x, wrt="inputs")`` against hand-written alternatives.

    The Jacobian of the model's (single) output at the last time step, with
    ``training=True`` (rate approximation). With ``baselines``, also (a) one
    eager ``GradientTape.gradient`` per output unit (``"loop"``) and (b)
    ``tf.function`` + ``GradientTape.batch_jacobian(experimental_use_pfor=
    False)`` (``"batch_jacobian"``; pfor fails on NengoDL's while loop).

    Returns
    -------
    seconds : dict of {str: float}
        Median seconds per call for ``"jacobian"`` (and the baselines).
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    layer = model.nengo_layer
    names = list(x)
    out_dim = int(model.output_probes[0].size_in)

    functions = {"jacobian": lambda: model.jacobian(x, wrt="inputs")}
    if baselines:

        def loop():
            rows = []
            for k in range(out_dim):
                with tf.GradientTape() as tape:
                    tape.watch(list(x.values()))
                    value = tf.nest.flatten(layer(x, training=True))[0][:, -1, k]
                rows.append(tape.gradient(value, x))
            return {name: tf.stack([row[name] for row in rows], 1) for name in names}

        @tf.function
        def batch_jacobian(x):
            with tf.GradientTape(persistent=True) as tape:
                tape.watch(list(x.values()))
                value = tf.nest.flatten(layer(x, training=True))[0][:, -1]
            return {
                name: tape.batch_jacobian(value, x[name], experimental_use_pfor=False)
                for name in names
            }

        functions["batch_jacobian"] = lambda: batch_jacobian(x)
    seconds = median_seconds(
        functions, repeats, warmups={"jacobian": 2, "batch_jacobian": 2}
    )
    if baselines:
        # timed apart: an eager call of the layer makes the next traced calls
        # slow (NengoDL's eager tf.random.set_seed clears TensorFlow's caches),
        # which interleaving would put into every timed call
        seconds.update(median_seconds({"loop": loop}, repeats))
    return seconds


def benchmark_jacobian(
    n_neurons: int = 200,
    batch: int = 32,
    out_dim: int = 8,
    in_dim: int = 1,
    n_steps: int = 20,
    repeats: int = 5,
    baselines: bool = True,
) -> dict[str, float]:
    """`jacobian_times` on `jacobian_network` (float32)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from keras_nengo import NengoModel  # pylint: disable=import-outside-toplevel

    model = NengoModel(jacobian_network(n_neurons, out_dim, in_dim))
    x = tf.constant(
        np.random.RandomState(0).uniform(-0.5, 0.5, (batch, n_steps, in_dim)),
        tf.float32,
    )
    return jacobian_times(model, {"stim": x}, repeats=repeats, baselines=baselines)
