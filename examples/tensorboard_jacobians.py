"""Losses, gradient norms, Jacobian norms and Jacobian heatmaps in TensorBoard.

Trains NengoDL's tutorial network (x -> x**2 -> sin(x**2), encoders and biases
trainable) with ``model.fit`` and three sources of TensorBoard data:

- ``tf.keras.callbacks.TensorBoard(histogram_freq=1)``: ``epoch_loss`` and a
  weight histogram per named weight (``nengo/square/encoders/histogram`` in
  Keras 3, ``square/encoders_0/histogram`` in tf-keras);
- ``NengoModel(gradient_norms=True)``: ``grad_norm/<weight name>`` in the logs,
  so TensorBoard writes ``epoch_grad_norm/<weight name>``;
- ``keras_nengo.callbacks.JacobianNormLogger(images=True)``: the norm of
  d output / d input and d output / d weight on a fixed batch
  (``jacobian/<name>/fro``) and heatmaps of the first sample's Jacobians
  (``jacobian_image/<name>``).

Then it reads the event files back and prints which tags were written, and the
command that shows them.

    python examples/tensorboard_jacobians.py
    python examples/tensorboard_jacobians.py --epochs 2 --samples 64 --log-dir /tmp/tb
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import collections  # noqa: E402

import keras_nengo as kn  # noqa: E402  (first: makes NengoDL importable)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_nengo.bench import tutorial_network  # noqa: E402
from keras_nengo.callbacks import JacobianNormLogger  # noqa: E402


def read_tags(log_dir):
    """``{run: {tag: (kind, last scalar value or None)}}`` from the event files."""
    runs = collections.defaultdict(dict)
    for directory, _, files in sorted(os.walk(log_dir)):
        run = os.path.relpath(directory, log_dir)
        for filename in sorted(files):
            if not filename.startswith("events.out.tfevents"):
                continue
            path = os.path.join(directory, filename)
            for record in tf.data.TFRecordDataset(path):
                event = tf.compat.v1.Event.FromString(record.numpy())
                for value in event.summary.value:
                    # the plugin name is only stored with a tag's first value
                    kind = (
                        value.metadata.plugin_data.plugin_name
                        or runs[run].get(value.tag, ("?", None))[0]
                    )
                    number = None
                    if kind == "scalars":
                        number = float(tf.make_ndarray(value.tensor))
                    runs[run][value.tag] = (kind, number)
    return runs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=1024, help="training samples")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--probe-batch", type=int, default=16, help="Jacobian batch")
    parser.add_argument(
        "--log-dir",
        default=os.path.join("logs", "tensorboard_jacobians"),
        help="TensorBoard directory (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    log_dir = args.log_dir

    net = tutorial_network(seed=0)
    model = kn.NengoModel(net, outputs=[net.p_out_nofilt], seed=0, gradient_norms=True)
    model.compile(optimizer=tf.keras.optimizers.RMSprop(0.01), loss="mse")

    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, size=(args.samples, 1, 1))
    callbacks = [
        tf.keras.callbacks.TensorBoard(log_dir, histogram_freq=1),
        JacobianNormLogger(
            x[: args.probe_batch],
            wrt=("inputs", "weights"),
            norms=("fro",),
            images=True,
        ),
    ]
    history = model.fit(
        x,
        np.sin(x**2),
        batch_size=args.batch_size,
        epochs=args.epochs,
        callbacks=callbacks,
        verbose=0,
    )
    print(
        f"Trained {args.epochs} epochs: loss {history.history['loss'][0]:.4f} -> "
        f"{history.history['loss'][-1]:.4f}"
    )
    print("Keys in History (also usable by EarlyStopping and keras-tuner):")
    for key in sorted(history.history):
        print(f"  {key}")

    print(f"\nTags in the event files under {log_dir}:")
    for run, tags in sorted(read_tags(log_dir).items()):
        print(f"  run {run!r}:")
        by_kind = collections.defaultdict(list)
        for tag, (kind, number) in sorted(tags.items()):
            by_kind[kind].append((tag, number))
        for kind, entries in sorted(by_kind.items()):
            for tag, number in entries:
                shown = "" if number is None else f"  last value {number:.4g}"
                print(f"    [{kind}] {tag}{shown}")

    print(f"\nTo look at them:\n  tensorboard --logdir {log_dir}")


if __name__ == "__main__":
    main()
