"""Checkpoints survive a process SIGKILLed while it writes one.

A real `fit` in a subprocess (tests/checkpoint_writer.py) is killed the
moment a checkpoint write is in progress; the last complete checkpoint must
then load (``ModelCheckpoint`` to a ``.keras`` file), or the fit must resume
and end with the weights of a fit that was never interrupted
(``BackupAndRestore``).
"""

import os
import pathlib
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_close

import keras_nengo as kn

WRITER = pathlib.Path(__file__).with_name("checkpoint_writer.py")

pytestmark = pytest.mark.slow


def run_writer(folder, mode):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(WRITER.parent))
    return subprocess.run(
        [sys.executable, str(WRITER), str(folder), mode],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def assert_killed_mid_write(result, folder):
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    assert (folder / "killed_mid_write").exists()
    assert not (folder / "final.npz").exists()


def named(path) -> dict:
    return {name.replace("|", "/"): value for name, value in np.load(path).items()}


def test_model_checkpoint_killed_mid_write_leaves_a_loadable_file(tmp_path):
    result = run_writer(tmp_path, "checkpoint")
    assert_killed_mid_write(result, tmp_path)
    # the write in progress was cut short in its partial file, beside the target
    partial = list(tmp_path.glob(".last.partial-*.keras"))
    assert partial, list(tmp_path.iterdir())
    with pytest.raises(Exception):
        tf.keras.models.load_model(partial[0], safe_mode=False)
    loaded = tf.keras.models.load_model(tmp_path / "last.keras", safe_mode=False)
    assert isinstance(loaded, kn.NengoModel)
    weights = loaded.get_named_weights()
    assert sorted(weights) == ["ens/bias", "ens/encoders"]
    assert all(np.isfinite(value).all() for value in weights.values())
    x = np.ones((2, 2, 4), np.float32)
    assert np.isfinite(loaded.predict(x, verbose=0)).all()


def test_backup_and_restore_killed_mid_write_resumes_to_the_same_weights(tmp_path):
    killed = tmp_path / "killed"
    killed.mkdir()
    assert_killed_mid_write(run_writer(killed, "backup"), killed)
    resumed = run_writer(killed, "resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    straight = tmp_path / "straight"
    straight.mkdir()
    reference = run_writer(straight, "resume")
    assert reference.returncode == 0, reference.stderr[-3000:]
    expected = named(straight / "final.npz")
    actual = named(killed / "final.npz")
    # the second fit resumed part-way (it ran the last epochs only)
    epochs = list(expected.pop("epochs"))
    resumed_epochs = list(actual.pop("epochs"))
    assert 0 < resumed_epochs[0] and resumed_epochs == epochs[resumed_epochs[0] :]
    assert sorted(actual) == sorted(expected)
    for name, value in expected.items():
        assert_close(actual[name], value, "weights32")
