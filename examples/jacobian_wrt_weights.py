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
3. proves the Jacobians right: for each weight, J.v against the central
   finite difference (F(w + eps v) - F(w - eps v)) / (2 eps) along a random
   direction v, moving the weight with ``set_named_weights``.

The model runs in float64 so that the finite difference is accurate; LIF
neurons are differentiated through their rate approximation (training=True).

    python examples/jacobian_wrt_weights.py
    python examples/jacobian_wrt_weights.py --train-steps 5 --every 5   # quick
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402

import keras_nengo as kn  # noqa: E402  (first: selects tf-keras)
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
    """Compare J.v with a central difference along a random direction v."""
    weight = model.get_named_weights()[name]
    # a step relative to the weight's size: decoders are ~1e-4, encoders ~1e2
    direction = rng.standard_normal(weight.shape)
    direction *= np.linalg.norm(weight) / np.linalg.norm(direction)
    predicted = np.tensordot(jacobian, direction, axes=weight.ndim)

    def output_at(value):
        model.set_named_weights({name: value}, strict=False)
        return model(x, training=True).numpy()[:, -1]

    try:
        plus = output_at(weight + eps * direction)
        minus = output_at(weight - eps * direction)
    finally:
        model.set_named_weights({name: weight}, strict=False)
    measured = (plus - minus) / (2 * eps)
    error = np.max(np.abs(predicted - measured)) / np.max(np.abs(measured))
    return predicted, measured, error


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
    parser.add_argument("--eps", type=float, default=1e-6, help="relative step")
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
        f"(|v| = |w|, eps={args.eps:g}): J.v vs (F(w+eps v) - F(w-eps v)) / 2eps"
    )
    print(
        f"  {'weight':20s} {'J.v (sample 0)':>15s} {'difference':>12s} "
        f"{'max rel. error':>15s}"
    )
    worst = 0.0
    for name in names:
        predicted, measured, error = finite_difference_check(
            model, x_probe, name, jacobians[name].numpy(), args.eps, rng
        )
        worst = max(worst, error)
        print(
            f"  {name:20s} {predicted[0, 0]:15.6g} {measured[0, 0]:12.6g} "
            f"{error:15.2e}"
        )
    passed = worst < 1e-5
    print(
        f"Finite-difference check {'PASSED' if passed else 'FAILED'} "
        f"(max relative error {worst:.2e}, tolerance 1e-05)"
    )
    if not passed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
