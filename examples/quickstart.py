"""Quick start: a Nengo network trained, evaluated and run as a Keras model.

Builds a one-ensemble network whose output connection starts out computing
``x``, wraps it in `keras_nengo.NengoModel`, and teaches it ``x**2`` with plain
Keras: ``compile``, ``fit`` (spiking LIF neurons run their rate approximation),
``evaluate`` and ``predict`` (the neurons spike). Prints the named weights and
how training changed them, then writes the trained values back into the network
with ``freeze_params`` and runs it in Nengo's own ``nengo.Simulator``, which
knows nothing about TensorFlow.

    python examples/quickstart.py
    python examples/quickstart.py --epochs 2 --samples 128   # a quick look
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402

import keras_nengo as kn  # noqa: E402  (first: makes NengoDL importable)
import nengo  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def build_network(n_neurons, seed=0):
    """stim -> hidden (LIF) -> output Node, probed unfiltered and filtered."""
    with nengo.Network(seed=seed) as net:
        net.stim = nengo.Node(np.zeros(1), label="stim")
        hidden = nengo.Ensemble(n_neurons, 1, label="hidden")
        output = nengo.Node(size_in=1, label="output")
        nengo.Connection(net.stim, hidden, synapse=None)
        # decodes x for now; training turns it into x**2
        nengo.Connection(hidden, output, synapse=None)
        # trained on single time steps, like NengoDL's tutorials
        net.p_out = nengo.Probe(output, label="out")
        # spikes are read out through a synapse
        net.p_filtered = nengo.Probe(output, synapse=0.01, label="out_filtered")
    return net


def spiking_error(model, x, n_steps):
    """MSE of the filtered spiking output against x**2 over the last 10 steps."""
    x_long = np.tile(x, (1, n_steps, 1))
    output = model.predict(x_long, batch_size=len(x), verbose=0)["out_filtered"]
    return float(np.mean((output[:, -10:] - x_long[:, -10:] ** 2) ** 2)), output


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--samples", type=int, default=1024, help="training samples")
    parser.add_argument("--neurons", type=int, default=50)
    parser.add_argument("--steps", type=int, default=100, help="spiking test steps")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)

    net = build_network(args.neurons)
    model = kn.NengoModel(net, seed=0)
    print(f"Inputs: {model.input_names}  outputs: {model.output_names}")
    print("Named weights (one tf.Variable each, all in trainable_variables):")
    for name, variable in model.named_weights.items():
        print(f"  {name:24s} shape {tuple(variable.shape)}")

    # decoders multiply firing rates in Hz, so they are ~1e-4: a small step size
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-4), loss={net.p_out: "mse"})

    rng = np.random.RandomState(0)
    x_train = rng.uniform(-1, 1, size=(args.samples, 1, 1))
    x_test = rng.uniform(-1, 1, size=(32, 1, 1))
    x_test_long = np.tile(x_test, (1, args.steps, 1))

    before = model.get_named_weights()
    spiking_before, _ = spiking_error(model, x_test, args.steps)

    def evaluate_loss():
        return model.evaluate(
            x_test_long,
            {net.p_out: x_test_long**2},
            batch_size=32,
            verbose=0,
            return_dict=True,
        )["loss"]

    loss_before = evaluate_loss()
    print(
        f"\nBefore training: evaluate loss {loss_before:.4f} (spiking, unfiltered), "
        f"filtered spiking error {spiking_before:.4f}"
    )

    history = model.fit(
        x_train,
        {net.p_out: x_train**2},
        batch_size=args.batch_size,
        epochs=args.epochs,
        verbose=0,
    )
    losses = ", ".join(f"{value:.4f}" for value in history.history["loss"])
    print(f"fit: training loss per epoch (rate neurons): {losses}")

    spiking_after, output = spiking_error(model, x_test, args.steps)
    loss_after = evaluate_loss()
    print(
        f"After training:  evaluate loss {loss_after:.4f} (spiking, unfiltered), "
        f"filtered spiking error {spiking_after:.4f}"
    )

    print("\npredict (spiking, mean of the filtered output over the last 10 steps):")
    print("      x   target   output")
    for value, out in list(zip(x_test[:, 0, 0], output[:, -10:, 0].mean(axis=1)))[:5]:
        print(f"  {value:5.2f}   {value**2:6.3f}   {out:6.3f}")

    print("\nHow training changed the named weights (mean |change|):")
    for name, value in model.get_named_weights().items():
        print(f"  {name:24s} {np.mean(np.abs(value - before[name])):.3g}")

    # write the trained values into the Nengo objects and run plain Nengo
    model.freeze_params(net)
    presentation = args.steps * 0.001
    net.stim.output = nengo.processes.PresentInput(x_test[:, 0], presentation)
    with nengo.Simulator(net, seed=0, progress_bar=False) as sim:
        sim.run(presentation * len(x_test))
    filtered = sim.data[net.p_filtered].reshape(len(x_test), args.steps)
    nengo_error = float(np.mean((filtered[:, -10:] - x_test[:, 0] ** 2) ** 2))
    print(
        f"\nfreeze_params + nengo.Simulator: filtered spiking error {nengo_error:.4f} "
        f"(NengoModel: {spiking_after:.4f})"
    )


if __name__ == "__main__":
    main()
