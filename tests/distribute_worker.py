"""One `fit` of a small NengoModel, run as a subprocess by tests/test_distribute.py.

``--strategy single`` fits on one device; ``mirrored`` on two logical CPUs of
this process (they must be configured before TensorFlow initialises its
devices, hence a fresh process); ``multiworker`` is one worker of a
MultiWorkerMirroredStrategy cluster described by ``TF_CONFIG``. The named
weights after `fit` go to ``--out`` (``.npz``), with the number of epochs this
`fit` ran, the number of skipped batches and the logs per epoch (loss and
``grad_norm/<weight name>``). A line ``BATCH <epoch> <batch>`` is
printed after every training batch, so that a test can kill the process
part-way.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_nengo as kn  # noqa: E402  isort: skip  (first: makes NengoDL importable)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_nengo.bench import tutorial_network  # noqa: E402

SAMPLES, N_STEPS, BATCH_SIZE = 32, 5, 8


def dataset(nan_batch=None):
    """Inputs and targets for the tutorial network; ``nan_batch`` holds a NaN."""
    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, size=(SAMPLES, N_STEPS, 1)).astype(np.float32)
    y = np.sin(x**2)
    if nan_batch is not None:
        # one row on the second replica's half of that global batch
        x[nan_batch * BATCH_SIZE + BATCH_SIZE - 1, 2, 0] = np.nan
    return x, y


def build_model(n_neurons=10, learning_rate=0.5):
    net = tutorial_network(seed=0, n_neurons=n_neurons)
    model = kn.NengoModel(
        net,
        inputs=[net.stim],
        outputs=[net.p_out_nofilt],
        seed=0,
        gradient_norms=True,
    )
    # momentum: optimizer state that a resumed fit must restore
    model.compile(
        optimizer=tf.keras.optimizers.SGD(learning_rate, momentum=0.9), loss="mse"
    )
    return model


class LogBatches(tf.keras.callbacks.Callback):
    """Prints every finished batch; sleeps after it to give a killer a window."""

    def __init__(self, delay):
        super().__init__()
        self.delay = delay
        self.epoch = 0
        self.step_times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.step_times.append(time.perf_counter() - self.started)
        print(f"BATCH {self.epoch} {batch}", flush=True)
        if self.delay:
            time.sleep(self.delay)


def make_strategy(name):
    if name == "mirrored":
        (cpu,) = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--strategy", choices=["single", "mirrored", "multiworker"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--nan-batch", type=int, default=None)
    parser.add_argument("--backup-dir", default=None)
    parser.add_argument("--batch-delay", type=float, default=0.0)
    args = parser.parse_args()

    strategy = make_strategy(args.strategy)
    with strategy.scope():
        model = build_model()
    logger = LogBatches(args.batch_delay)
    callbacks = [logger]
    if args.backup_dir:
        callbacks.append(tf.keras.callbacks.BackupAndRestore(args.backup_dir))
    x, y = dataset(args.nan_batch)
    history = model.fit(
        x,
        y,
        batch_size=BATCH_SIZE,
        epochs=args.epochs,
        shuffle=False,
        verbose=0,
        callbacks=callbacks,
    )
    weights = model.get_named_weights()
    np.savez(
        args.out,
        **weights,
        _epochs_run=len(history.history["loss"]),
        **{f"_log/{key}": value for key, value in history.history.items()},
        _skipped=int(model._skipped_batches.numpy()),
        _replicas=strategy.num_replicas_in_sync,
        _minibatch_sizes=model.nengo_layer.simulation.minibatch_sizes,
        # the first epoch traces and builds; later steps are the steady state
        _step_times=logger.step_times[len(x) // BATCH_SIZE :],
    )
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    print("FIT DONE", task.get("index", 0), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
