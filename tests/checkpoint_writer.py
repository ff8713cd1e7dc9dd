"""A `fit` that writes checkpoints and is SIGKILLed while it writes one.

Run as a subprocess by tests/test_saving_interrupted.py:
``checkpoint_writer.py FOLDER MODE`` with MODE

- ``checkpoint``: ``ModelCheckpoint(FOLDER/last.keras, save_freq=1)``;
- ``backup``: ``BackupAndRestore(FOLDER/backup)``;
- ``resume``: the same ``BackupAndRestore`` fit, not killed.

Unless resuming, a thread waits for the first complete checkpoint, then
watches for the next write in progress (Keras's partial ``.keras`` file,
TensorFlow's ``*_temp*`` checkpoint shard) and SIGKILLs the process the moment
it sees one, after leaving the marker file ``FOLDER/killed_mid_write``. A fit
that completes writes its named weights to ``FOLDER/final.npz`` (and, as
``epochs``, the epochs that this fit ran).
"""

import glob
import os
import signal
import sys
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_nengo as kn  # noqa: E402  isort: skip  (first: makes NengoDL importable)
import nengo  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

EPOCHS = 30


def network():
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.zeros(4), label="stim")
        ens = nengo.Ensemble(400, 4, label="ens", neuron_type=nengo.RectifiedLinear())
        nengo.Connection(stim, ens, synapse=None)
        nengo.Probe(ens, label="out")
    return net


def data():
    x = np.random.RandomState(0).uniform(-1, 1, (16, 2, 4)).astype(np.float32)
    return x, 0.5 * x


def model():
    model = kn.NengoModel(network(), seed=0)
    model.compile(tf.keras.optimizers.SGD(0.01), "mse")
    return model


def fit(model, callbacks):
    x, y = data()
    return model.fit(
        x, y, batch_size=4, epochs=EPOCHS, callbacks=callbacks, shuffle=False, verbose=0
    )


def kill_mid_write(folder, complete, writing):
    while not os.path.exists(complete):
        time.sleep(0.001)
    while not glob.glob(writing, recursive=True):
        pass
    open(os.path.join(folder, "killed_mid_write"), "w").close()
    os.kill(os.getpid(), signal.SIGKILL)


def main(folder, mode):
    if mode == "checkpoint":
        complete = os.path.join(folder, "last.keras")
        callback = tf.keras.callbacks.ModelCheckpoint(complete, save_freq=1)
        writing = os.path.join(folder, ".last.partial-*")
    else:
        backup = os.path.join(folder, "backup")
        callback = tf.keras.callbacks.BackupAndRestore(backup)
        complete = os.path.join(backup, "chief", "checkpoint")
        writing = os.path.join(backup, "**", "*_temp*")
    if mode != "resume":
        threading.Thread(
            target=kill_mid_write, args=(folder, complete, writing), daemon=True
        ).start()
    trained = model()
    history = fit(trained, [callback])
    weights = trained.get_named_weights()
    np.savez(
        os.path.join(folder, "final.npz"),
        epochs=np.array(history.epoch),
        **{name.replace("/", "|"): value for name, value in weights.items()},
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])
