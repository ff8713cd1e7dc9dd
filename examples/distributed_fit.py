"""Distributed fit: two local MultiWorkerMirroredStrategy workers vs one device.

Fits a small Nengo network (stim -> two ReLU-rate ensembles -> output, learning
``sin(x**2)``) once on a single device in this process, then starts two worker
processes of this script on 127.0.0.1 with ``TF_CONFIG`` and fits the same
model under ``tf.distribute.MultiWorkerMirroredStrategy``: each worker builds
and compiles it inside ``strategy.scope()`` and calls the same ``fit`` on the
same data with the same global batch size; Keras gives each worker its half of
every batch and all-reduces the gradients. Prints the largest difference between
the distributed and the single-device named weights and the time per training
step of both.

The same code runs under ``tf.distribute.MirroredStrategy()`` (several GPUs or
logical devices of one process); on real machines, give every worker a
``TF_CONFIG`` naming all of them, and add
``tf.keras.callbacks.BackupAndRestore(backup_dir)`` to resume after a worker
dies.

    python examples/distributed_fit.py
    python examples/distributed_fit.py --epochs 2 --samples 64   # a quick look
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import keras_nengo as kn  # noqa: E402  (first: makes NengoDL importable)
import nengo  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def build_model(n_neurons, learning_rate):
    # amplitude 0.01 keeps the outputs, and so the loss curvature, of order 1
    rate = nengo.RectifiedLinear(amplitude=0.01)
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.zeros(1), label="stim")
        square = nengo.Ensemble(n_neurons, 1, neuron_type=rate, label="a")
        sine = nengo.Ensemble(n_neurons, 1, neuron_type=rate, label="b")
        output = nengo.Node(size_in=1, label="output")
        nengo.Connection(stim, square, synapse=None)
        # start from decoders of x (not x**2, sin): training has work to do
        nengo.Connection(square, sine, synapse=None)
        nengo.Connection(sine, output, synapse=None)
        nengo.Probe(output, label="out")
    model = kn.NengoModel(net, seed=0)
    model.compile(optimizer=tf.keras.optimizers.SGD(learning_rate), loss="mse")
    return model


def make_data(samples, n_steps):
    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, size=(samples, n_steps, 1)).astype(np.float32)
    return x, np.sin(x**2)


class StepTimer(tf.keras.callbacks.Callback):
    """Wall time of every training step after the first epoch (which traces)."""

    def __init__(self):
        super().__init__()
        self.times, self.epoch = [], 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch > 0:
            self.times.append(time.perf_counter() - self.started)


def fit(args, strategy):
    with strategy.scope():
        model = build_model(args.neurons, args.learning_rate)
    initial = model.get_named_weights()
    x, y = make_data(args.samples, args.steps)
    timer = StepTimer()
    history = model.fit(
        x,
        y,
        batch_size=args.batch_size,
        epochs=args.epochs,
        shuffle=False,
        verbose=0,
        callbacks=[timer],
    )
    losses = history.history["loss"]
    return initial, model.get_named_weights(), 1000 * np.median(timer.times), losses


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_workers(args, directory):
    """Start two workers of this script, wait for them, return their results."""
    cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in range(2)]}
    options = [
        *("--epochs", args.epochs, "--samples", args.samples, "--steps", args.steps),
        *("--neurons", args.neurons, "--batch-size", args.batch_size),
        *("--learning-rate", args.learning_rate),
    ]
    workers = []
    for index in range(2):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        out = os.path.join(directory, f"worker{index}.npz")
        command = [sys.executable, __file__, "--worker-out", out, *map(str, options)]
        env = dict(os.environ, TF_CONFIG=json.dumps(config))
        workers.append((subprocess.Popen(command, env=env), out))
    try:
        for process, _ in workers:
            if process.wait(timeout=600) != 0:
                raise RuntimeError(f"worker {process.args} failed")
    finally:
        for process, _ in workers:
            if process.poll() is None:
                process.kill()
    return [dict(np.load(out)) for _, out in workers]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--steps", type=int, default=10, help="time steps per sample")
    parser.add_argument("--neurons", type=int, default=100, help="per ensemble")
    parser.add_argument("--batch-size", type=int, default=64, help="global batch")
    parser.add_argument("--learning-rate", type=float, default=0.003)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker_out:
        # one worker of the cluster in TF_CONFIG
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        _, weights, step_ms, losses = fit(args, strategy)
        np.savez(args.worker_out, _step_ms=step_ms, _losses=losses, **weights)
        return

    print(
        f"fit: {args.epochs} epochs of {args.samples} samples x {args.steps} steps, "
        f"global batch {args.batch_size}, 2 x {args.neurons} rate neurons"
    )
    initial, single, single_ms, losses = fit(args, tf.distribute.get_strategy())
    print(f"single device:                      {single_ms:8.2f} ms/step")
    print("  training loss per epoch: " + ", ".join(f"{loss:.4f}" for loss in losses))
    with tempfile.TemporaryDirectory() as directory:
        results = run_workers(args, directory)
    worker_ms = max(float(result.pop("_step_ms")) for result in results)
    losses = [result.pop("_losses") for result in results][0]
    print(
        f"MultiWorkerMirroredStrategy, 2 workers: {worker_ms:8.2f} ms/step "
        f"({worker_ms / single_ms:.2f}x single device)"
    )
    print("  training loss per epoch: " + ", ".join(f"{loss:.4f}" for loss in losses))
    print("max |distributed - single-device| per named weight:")
    differences = {
        name: max(float(np.max(np.abs(r[name] - value))) for r in results)
        for name, value in single.items()
    }
    for name, difference in differences.items():
        moved = float(np.max(np.abs(single[name] - initial[name])))
        print(f"  {name:<24} {difference:.3e}  (training moved it by {moved:.3g})")
    print(f"Max weight difference vs single device: {max(differences.values()):.3e}")


if __name__ == "__main__":
    main()
