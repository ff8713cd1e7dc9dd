"""dF(x, w)/dw for every named weight, inside a custom training loop.

The Nengo forum question "How to compute Jacobian matrix?" asks for the
derivative of a network's output F(x) with respect to its weights w, inside a
custom NengoDL training loop, where the weight tensors are "not labelled at
all". With keras_nengo every Nengo parameter is its own named ``tf.Variable``,
so this script

1. builds stim (2-d input Node) -> ``a`` (LIF) -> ``b`` (LIF) -> output Node,
   probed, and trains it to compute x0 * x1 with a hand-written loop
   (``tf.GradientTape`` + ``optimizer.apply_gradients`` over
   ``model.trainable_variables``), checking once that ``model.gradients`` gives
   the same per-weight gradients;
2. every few steps computes ``model.jacobian(x, wrt="weights")``, one
   ``(batch, out_dim, *weight.shape)`` tensor per named weight, and prints its
   norms per weight (``kn.jacobian_norms``);
3. proves the Jacobians right: for each weight, J.v against finite
   differences of F along a random direction v (moving the weight with
   ``set_named_weights``): central differences (F(w + h v) - F(w - h v)) / 2h
   at h = eps and eps / 2, Richardson-extrapolated.

The model runs in float64 so that the finite difference is accurate; LIF
neurons are differentiated through their rate approximation (training=True).
That rate curve is steep just above each neuron's firing threshold, which
makes a plain central difference's O(eps**2) error reach 1e-4 relative for
some samples; the extrapolation removes it (see `finite_difference_check`).

    python examples/jacobian_wrt_weights.py
    python examples/jacobian_wrt_weights.py --train-steps 5 --every 5   # quick
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402

import keras_nengo as kn  # noqa: E402  (first: makes NengoDL importable)
import nengo  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def build_network(n_neurons, seed=0):
    """stim -> a -> b -> output, computing (initially badly) x0 * x1."""
    with nengo.Network(seed=seed) as net:
        net.stim = nengo.Node(np.zeros(2), label="stim")
        a = nengo.Ensemble(n_neurons, 2, radius=1.5, label="a")
        b = nengo.Ensemble(n_neurons, 1, label="b")
        output = nengo.Node(size_in=1, label="output")
        # connections are left unlabelled: they are named after their ends
        nengo.Connection(net.stim, a, synapse=None)
        nengo.Connection(a, b, function=lambda x: x[0] * x[1], synapse=None)
        nengo.Connection(b, output, synapse=None)
        net.probe = nengo.Probe(output, label="F")
    return net


def make_data(rng, n_samples, n_steps):
    x = np.tile(rng.uniform(-1, 1, size=(n_samples, 1, 2)), (1, n_steps, 1))
    return x, x[..., :1] * x[..., 1:]


def finite_difference_check(model, x, name, jacobian, eps, rng):
    """Compare J.v with finite differences along a random direction v.

    The model differentiates LIF neurons through their rate curve, whose slope
    is unbounded at each neuron's firing threshold; for a neuron just above
    threshold on a probe sample its higher derivatives are huge, and so is the
    O(eps**2) error of a central difference (it is the error seen at eps=1e-6:
    halving eps quarters it). Richardson extrapolation of two central
    differences, at eps and eps / 2, cancels that term, leaving float64
    rounding (about 1e-16 |F| / eps) and O(eps**4).

    Returns J.v, the extrapolated difference, its relative error against J.v
    and the plain central difference's own error estimate.
    """
    weight = model.get_named_weights()[name]
    # a step relative to the weight's size: decoders are ~1e-4, encoders ~1e2
    direction = rng.standard_normal(weight.shape)
    direction *= np.linalg.norm(weight) / np.linalg.norm(direction)
    predicted = np.tensordot(jacobian, direction, axes=weight.ndim)

    def output_at(value):
        model.set_named_weights({name: value}, strict=False)
        return model(x, training=True).numpy()[:, -1]

    def central_difference(step):
        plus = output_at(weight + step * direction)
        minus = output_at(weight - step * direction)
        return (plus - minus) / (2 * step)

    try:
        coarse, fine = central_difference(eps), central_difference(eps / 2)
    finally:
        model.set_named_weights({name: weight}, strict=False)
    measured = (4 * fine - coarse) / 3
    scale = np.max(np.abs(measured))
    error = np.max(np.abs(predicted - measured)) / scale
    central_error = np.max(np.abs(fine - coarse)) / 3 / scale
    return predicted, measured, error, central_error


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=100, help="Jacobian every N steps")
    parser.add_argument("--samples", type=int, default=1024, help="training samples")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--probe-batch", type=int, default=8, help="Jacobian batch")
    parser.add_argument("--neurons", type=int, default=50)
    parser.add_argument("--n-steps", type=int, default=1, help="time steps per sample")
    parser.add_argument("--lr", type=float, default=1e-5, help="Adam learning rate")
    parser.add_argument(
        "--eps",
        type=float,
        default=1e-6,
        help="finite-difference step, relative to |w|",
    )
    args = parser.parse_args(argv)

    rng = np.random.RandomState(0)
    net = build_network(args.neurons)
    model = kn.NengoModel(net, seed=0, dtype="float64")
    # compiled only for model.gradients; the loop below uses its own loss
    model.compile(loss="mse")
    print("Named weights (what the forum's sim.tensor_graph.weights leaves unnamed):")
    for name, variable in model.named_weights.items():
        print(f"  {name:20s} shape {tuple(variable.shape)}")

    x_train, y_train = make_data(rng, args.samples, args.n_steps)
    x_probe, y_probe = make_data(rng, args.probe_batch, args.n_steps)
    variables = model.trainable_variables
    names = [
        next(n for n, v in model.named_weights.items() if v is variable)
        for variable in variables
    ]
    optimizer = tf.keras.optimizers.Adam(args.lr)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables))
        return loss, dict(zip(names, gradients))

    x_first = tf.constant(x_train[: args.batch_size])
    y_first = tf.constant(y_train[: args.batch_size])
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x_first, training=True) - y_first))
    by_tape = dict(zip(names, tape.gradient(loss, variables)))
    by_model = model.gradients(x_first, y_first)
    worst = max(
        float(tf.reduce_max(tf.abs(by_tape[name] - by_model[name]))) for name in names
    )
    print(f"\nmodel.gradients(x, y) vs GradientTape: max |difference| {worst:.1e}")

    print(
        f"\nCustom loop: Adam on {len(variables)} named variables; every "
        f"{args.every} steps, Frobenius norm of dF/dw (mean over "
        f"{args.probe_batch} samples):"
    )
    print("  step  probe loss" + "  ".join(f"{name:>20s}" for name in names))
    n_batches = args.samples // args.batch_size
    for step in range(args.train_steps + 1):
        if step % args.every == 0 or step == args.train_steps:
            # F(x, w) comes from the same forward pass as its Jacobians
            jacobians, outputs = model.jacobian(
                x_probe, wrt="weights", return_outputs=True
            )
            norms = [
                float(np.mean(kn.jacobian_norms(jacobians[name], ord="fro")))
                for name in names
            ]
            loss = float(np.mean((outputs.numpy() - y_probe) ** 2))
            print(
                f"  {step:4d}  {loss:8.5f}  "
                + "  ".join(f"{norm:20.4g}" for norm in norms)
            )
        if step == args.train_steps:
            break
        start = (step % n_batches) * args.batch_size
        batch = slice(start, start + args.batch_size)
        train_step(tf.constant(x_train[batch]), tf.constant(y_train[batch]))

    print("\nJacobian shapes, (batch, out_dim, *weight.shape):")
    for name, value in jacobians.items():
        print(f"  {name:20s} {tuple(value.shape)}")

    print(
        f"\nFinite-difference check, each weight along a random direction v "
        f"(|v| = |w|): J.v vs Richardson-extrapolated central differences "
        f"(F(w+hv) - F(w-hv)) / 2h, h = {args.eps:g} and {args.eps / 2:g}"
    )
    print(
        f"  {'weight':20s} {'J.v (sample 0)':>15s} {'difference':>12s} "
        f"{'max rel. error':>15s} {'central diff. error':>20s}"
    )
    worst = 0.0
    for name in names:
        predicted, measured, error, central_error = finite_difference_check(
            model, x_probe, name, jacobians[name].numpy(), args.eps, rng
        )
        worst = max(worst, error)
        print(
            f"  {name:20s} {predicted[0, 0]:15.6g} {measured[0, 0]:12.6g} "
            f"{error:15.2e} {central_error:20.2e}"
        )
    # float64 rounding of the differences is ~1e-16 |F| / eps, about 1e-9 here
    # (measured); a wrong Jacobian is off by far more than the tolerance
    tolerance = 1e-6
    passed = worst < tolerance
    print(
        f"Finite-difference check {'PASSED' if passed else 'FAILED'} "
        f"(max relative error {worst:.2e}, tolerance {tolerance:g})"
    )
    if not passed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
