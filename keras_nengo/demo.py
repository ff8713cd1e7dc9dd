"""``keras-nengo demo``: NengoDL's tutorial network, trained the Keras way."""

from __future__ import annotations

import os

import numpy as np


def run_demo(
    log_dir: str = "logs/demo",
    epochs: int = 10,
    out: str = "keras_nengo_demo.png",
    n_train: int = 4096,
    n_test: int = 256,
    seed: int = 0,
    verbose: int = 1,
) -> dict:
    """Train the tutorial network (sin(x**2)), log Jacobians, plot the result.

    Follows NengoDL's "coming from Nengo" tutorial: encoders trained in rate
    mode on one-step samples; spiking test error over the last 10 of 100 steps
    of the filtered output, before and after training.

    Returns
    -------
    dict
        ``error_before``, ``error_after``, ``jacobian_x`` (the sample points),
        ``jacobian`` (d output / d input there), ``weight_norms``, ``png``,
        ``log_dir``.
    """
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    import keras_nengo as kn  # pylint: disable=import-outside-toplevel
    from keras_nengo.bench import (  # pylint: disable=import-outside-toplevel
        tutorial_network,
    )
    from keras_nengo.callbacks import (  # pylint: disable=import-outside-toplevel
        JacobianNormLogger,
    )

    net = tutorial_network(seed=seed)
    model = kn.NengoModel(net, seed=seed)
    model.compile(
        optimizer=tf.keras.optimizers.RMSprop(0.01), loss={net.p_out_nofilt: "mse"}
    )
    rng = np.random.RandomState(seed)
    x = rng.uniform(-1, 1, size=(n_train, 1, 1))
    test_x = np.tile(rng.uniform(-1, 1, size=(n_test, 1, 1)), (1, 100, 1))
    sweep = np.tile(np.linspace(-1, 1, 41)[:, None, None], (1, 100, 1))

    def spiking(data):
        return model.predict(data, batch_size=len(data), verbose=0)["out"]

    def test_error():
        return float(np.mean((spiking(test_x)[:, -10:] - np.sin(test_x[:, -10:] ** 2)) ** 2))

    error_before = test_error()
    sweep_before = spiking(sweep)[:, -10:].mean(axis=1)[:, 0]
    print(f"Spiking test error before training: {error_before:.5f}")

    logger = JacobianNormLogger(x[:16], wrt=("inputs", "weights"), output=net.p_out_nofilt)
    board = tf.keras.callbacks.TensorBoard(log_dir)
    model.fit(
        x,
        {net.p_out_nofilt: np.sin(x**2)},
        batch_size=32,
        epochs=epochs,
        verbose=verbose,
        callbacks=[board, logger],
    )
    error_after = test_error()
    sweep_after = spiking(sweep)[:, -10:].mean(axis=1)[:, 0]
    print(f"Spiking test error after training:  {error_after:.5f}")

    points = np.linspace(-1, 1, 21)
    jac = model.jacobian(points[:, None, None], wrt="inputs", output=net.p_out_nofilt)
    slope = jac["stim"].numpy()[:, 0, 0, 0]
    print("\nd output / d input (rate mode) vs the target's derivative 2x cos(x^2):")
    print("     x   model   target")
    for point, value in zip(points[::4], slope[::4]):
        print(f"{point:6.2f}  {value:6.3f}  {2 * point * np.cos(point**2):6.3f}")

    weight_jacobians = model.jacobian(x[:16], wrt="weights", output=net.p_out_nofilt)
    weight_norms = {
        name: float(np.mean(kn.jacobian_norms(value, ord="fro")))
        for name, value in weight_jacobians.items()
    }
    print("\nJacobian norms per named weight (Frobenius, mean over 16 samples):")
    for name, value in weight_norms.items():
        print(f"  {name:24s} {value:.4f}")

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7))
    xs = sweep[:, 0, 0]
    top.plot(xs, np.sin(xs**2), "k--", label="target sin(x²)")
    top.plot(xs, sweep_before, label="spiking output, before")
    top.plot(xs, sweep_after, label="spiking output, after")
    top.set_xlabel("x")
    top.set_ylabel("output (mean of last 10 steps)")
    top.legend()
    bottom.plot(points, slope, "o-", label="d output / d x (model, rate mode)")
    bottom.plot(xs, 2 * xs * np.cos(xs**2), "k--", label="2x cos(x²)")
    bottom.set_xlabel("x")
    bottom.set_ylabel("Jacobian")
    bottom.legend()
    fig.tight_layout()
    directory = os.path.dirname(os.path.abspath(out))
    os.makedirs(directory, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    print(f"\nWrote {out}")
    print(f"To see losses and Jacobian norms: tensorboard --logdir {log_dir}")
    return {
        "error_before": error_before,
        "error_after": error_after,
        "jacobian_x": points,
        "jacobian": slope,
        "weight_norms": weight_norms,
        "png": out,
        "log_dir": log_dir,
    }
