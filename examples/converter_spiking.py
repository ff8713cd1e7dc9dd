"""A Keras CNN as a spiking network: nengo_dl.Converter, trained with keras_nengo.

NengoDL's "Converting a Keras model to a spiking neural network" notebook, on
scikit-learn's 8x8 digits instead of MNIST (no download). The script

1. builds a small Keras CNN (two ReLU convolutions, a dense read-out);
2. converts it with ``nengo_dl.Converter``, swapping ReLU for spiking ReLU
   neurons and scaling their firing rates (``scale_firing_rates``: inputs times
   the scale, outputs divided by it, so rates go up and the function stays);
3. wraps the converted network in ``keras_nengo.NengoModel`` with data for the
   converter's input Node only (its bias Nodes run their own output) and
   trains it with ``fit``: rate neurons while training, as in NengoDL;
4. runs it spiking on the test images: each image is shown for ``--steps``
   time steps and the class is read from the output averaged over the last
   ``--readout-steps`` (spikes are noisy from one step to the next);
5. does the same with ``nengo_dl.Simulator`` (a second conversion of the same
   untrained Keras model, ``sim.fit`` with the same data and settings,
   ``sim.predict``) and compares the accuracies.

Needs scikit-learn (in keras_nengo's ``test`` extra: ``pip install -e ".[test]"``).

    python examples/converter_spiking.py
    python examples/converter_spiking.py --epochs 2 --train-samples 256   # quick
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402

import keras_nengo as kn  # noqa: E402  (first: makes NengoDL importable)
import nengo  # noqa: E402
import nengo_dl  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402


def load_digits(n_train, n_test):
    """sklearn's digits as (images, steps, 64) in [0, 1] and integer labels."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as error:
        raise SystemExit(
            "converter_spiking.py needs scikit-learn for its data set. Received: "
            f"{error}. Fix: pip install scikit-learn (or keras_nengo's test "
            'extra: pip install -e ".[test]")'
        ) from error
    digits = sklearn_digits()
    if n_train + n_test > len(digits.target):
        raise SystemExit(
            f"the digits data set has {len(digits.target)} images. Received: "
            f"--train-samples {n_train} + --test-samples {n_test}. Expected: at "
            f"most {len(digits.target)} together."
        )
    order = np.random.RandomState(0).permutation(len(digits.target))
    images = (digits.data[order] / 16.0).astype(np.float32)[:, None, :]
    labels = digits.target[order]
    return (
        (images[:n_train], labels[:n_train]),
        (images[n_train : n_train + n_test], labels[n_train : n_train + n_test]),
    )


def build_keras_model(seed):
    """Two ReLU convolutions and a dense read-out (logits) for 8x8 images."""
    # built with tf-keras, the Keras whose models nengo_dl.Converter reads (in a
    # Keras 3 process too); the converted network then trains in either Keras
    init = tf_keras.initializers.GlorotUniform
    inp = tf_keras.Input(shape=(8, 8, 1), name="image")
    hidden = tf_keras.layers.Conv2D(
        16, 3, activation=tf.nn.relu, kernel_initializer=init(seed)
    )(inp)
    hidden = tf_keras.layers.Conv2D(
        32, 3, strides=2, activation=tf.nn.relu, kernel_initializer=init(seed + 1)
    )(hidden)
    hidden = tf_keras.layers.Flatten()(hidden)
    out = tf_keras.layers.Dense(10, kernel_initializer=init(seed + 2), name="logits")(
        hidden
    )
    return tf_keras.Model(inp, out), inp, out


def convert(keras_model, scale):
    return nengo_dl.Converter(
        keras_model,
        swap_activations={tf.nn.relu: nengo.SpikingRectifiedLinear()},
        scale_firing_rates=scale,
    )


def accuracy(output, labels, readout_steps):
    """Accuracy of the class read from the output's last readout_steps."""
    return float(np.mean(output[:, -readout_steps:].mean(axis=1).argmax(-1) == labels))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train-samples", type=int, default=1280)
    parser.add_argument("--test-samples", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument(
        "--scale", type=float, default=300.0, help="scale_firing_rates of the converter"
    )
    parser.add_argument("--steps", type=int, default=40, help="steps per test image")
    parser.add_argument(
        "--readout-steps", type=int, default=20, help="output steps averaged"
    )
    args = parser.parse_args(argv)
    if args.train_samples % args.batch_size or args.test_samples % args.batch_size:
        # nengo_dl.Simulator needs whole minibatches (keras_nengo does not)
        parser.error(
            "--train-samples and --test-samples must be multiples of --batch-size "
            "for the nengo_dl.Simulator comparison. Received: "
            f"{args.train_samples}, {args.test_samples}, {args.batch_size}."
        )

    (x_train, y_train), (x_test, y_test) = load_digits(
        args.train_samples, args.test_samples
    )
    y_train_onehot = np.eye(10, dtype=np.float32)[y_train][:, None, :]
    x_test_steps = np.tile(x_test, (1, args.steps, 1))
    keras_model, inp, out = build_keras_model(seed=0)
    loss = tf.keras.losses.CategoricalCrossentropy(from_logits=True)

    converter = convert(keras_model, args.scale)
    model = kn.NengoModel(
        converter.net,
        inputs=[converter.inputs[inp]],
        outputs=[converter.outputs[out]],
        seed=0,
    )
    print(f"keras_nengo: inputs {model.input_names}, outputs {model.output_names}")
    print("Named weights:", ", ".join(sorted(model.named_weights)))
    model.compile(optimizer=tf.keras.optimizers.Adam(args.lr), loss=loss)
    before = accuracy(
        model.predict(x_test_steps, batch_size=args.batch_size, verbose=0),
        y_test,
        args.readout_steps,
    )
    history = model.fit(
        x_train,
        y_train_onehot,
        batch_size=args.batch_size,
        epochs=args.epochs,
        shuffle=False,
        verbose=0,
    )
    losses = history.history["loss"]
    print(f"fit (rate neurons): loss per epoch {losses[0]:.3f} -> {losses[-1]:.3f}")
    rate = accuracy(np.asarray(model(x_test, training=True)), y_test, 1)
    spiking = model.predict(x_test_steps, batch_size=args.batch_size, verbose=0)
    ours = accuracy(spiking, y_test, args.readout_steps)

    reference = convert(keras_model, args.scale)
    with nengo_dl.Simulator(
        reference.net, minibatch_size=args.batch_size, seed=0, progress_bar=False
    ) as sim:
        # NengoDL trains with tf-keras objects, whichever Keras the process uses
        sim.compile(
            optimizer=tf_keras.optimizers.Adam(args.lr),
            loss=tf_keras.losses.CategoricalCrossentropy(from_logits=True),
        )
        sim.fit(
            {reference.inputs[inp]: x_train},
            {reference.outputs[out]: y_train_onehot},
            epochs=args.epochs,
            shuffle=False,
            verbose=0,
        )
        reference_output = sim.predict(
            {reference.inputs[inp]: x_test_steps}, verbose=0
        )[reference.outputs[out]]
    theirs = accuracy(reference_output, y_test, args.readout_steps)

    print(
        f"\nSpiking test accuracy ({args.test_samples} images, {args.steps} steps "
        f"each, scale_firing_rates={args.scale:g}, class from the mean output of "
        f"the last {args.readout_steps} steps):"
    )
    print(f"  keras_nengo, before training      {before:.3f}")
    print(f"  keras_nengo, after training       {ours:.3f}")
    print(f"  nengo_dl.Simulator, same training {theirs:.3f}")
    print(f"  (rate neurons, after training     {rate:.3f}; chance 0.100)")
    agree = np.mean(
        spiking[:, -args.readout_steps :].mean(axis=1).argmax(-1)
        == reference_output[:, -args.readout_steps :].mean(axis=1).argmax(-1)
    )
    print(f"keras_nengo and nengo_dl.Simulator pick the same class for {agree:.1%}")


if __name__ == "__main__":
    main()
