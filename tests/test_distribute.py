"""Distributed fit with TensorFlow's engine (DESIGN.md section 3, "distribute").

A NengoModel built and compiled inside ``strategy.scope()`` fits under
``MirroredStrategy`` (two logical CPUs, in a fresh process: they must be
configured before TensorFlow initialises its devices) and
``MultiWorkerMirroredStrategy`` (two worker processes on 127.0.0.1) to the
weights of a single-device fit of the same global batches. The non-finite-batch
guard skips the same batches there, and ``BackupAndRestore`` resumes a
multi-worker fit after a worker is killed with SIGKILL.
"""

import functools
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import distribute_worker as worker
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_close

from keras_nengo.tuning import free_port

WORKER = Path(__file__).parent / "distribute_worker.py"
TIMEOUT = 300


@functools.lru_cache
def single_device_fit(epochs=2, nan_batch=None):
    """Named weights, skipped batches and logs of the reference fit, in this process."""
    model = worker.build_model()
    x, y = worker.dataset(nan_batch)
    warns = nullcontext() if nan_batch is None else pytest.warns(RuntimeWarning)
    with warns:
        history = model.fit(
            x, y, batch_size=worker.BATCH_SIZE, epochs=epochs, shuffle=False, verbose=0
        )
    return model.get_named_weights(), int(model._skipped_batches.numpy()), history


def weights_of(result):
    return {name: result[name] for name in result.files if not name.startswith("_")}


def assert_same_weights(actual, expected):
    assert sorted(actual) == sorted(expected)
    for name, value in expected.items():
        assert np.all(np.isfinite(actual[name])), name
        assert_close(actual[name], value, "weights32")


def assert_same_logs(result, history, first_epoch=0):
    """Loss and gradient norms per epoch: the global batch's, as on one device."""
    logs = {key[5:]: result[key] for key in result.files if key.startswith("_log/")}
    assert sorted(logs) == sorted(history.history)
    assert any(key.startswith("grad_norm/") for key in logs)
    for key, values in history.history.items():
        assert_close(logs[key], values[first_epoch:], "weights32")


def assert_like_single_device(result, nan_batch):
    reference, skipped, history = single_device_fit(nan_batch=nan_batch)
    assert int(result["_replicas"]) == 2
    # a NaN batch is skipped once per epoch, on both replicas as on one device
    assert int(result["_skipped"]) == skipped == (0 if nan_batch is None else 2)
    assert_same_weights(weights_of(result), reference)
    assert_same_logs(result, history)
    # each replica simulates its half of the global batch, not a padded whole
    sizes = set(result["_minibatch_sizes"].tolist())
    assert worker.BATCH_SIZE // 2 in sizes and worker.BATCH_SIZE not in sizes


def start_workers(tmp_path, tag, *args):
    """Two MultiWorkerMirroredStrategy workers on free local ports."""
    cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in range(2)]}
    workers = []
    for index in range(2):
        log = tmp_path / f"{tag}{index}.log"
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        with open(log, "w") as stream:
            process = subprocess.Popen(
                [sys.executable, str(WORKER), "--strategy", "multiworker"]
                + ["--out", str(tmp_path / f"{tag}{index}.npz"), *map(str, args)],
                env=dict(os.environ, TF_CONFIG=json.dumps(config)),
                stdout=stream,
                stderr=subprocess.STDOUT,
            )
        workers.append((process, log))
    return workers


def finish(workers, tmp_path, tag):
    try:
        for process, _ in workers:
            process.wait(timeout=TIMEOUT)
    finally:
        stop(workers)
    for process, log in workers:
        assert process.returncode == 0, log.read_text()[-3000:]
    return [np.load(tmp_path / f"{tag}{index}.npz") for index in range(len(workers))]


def stop(workers):
    for process, _ in workers:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_guard_in_cross_replica_context():
    """A one-device MirroredStrategy takes the guard's merge_call path."""
    reference, reference_skipped, _ = single_device_fit(epochs=1, nan_batch=1)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = worker.build_model()
    x, y = worker.dataset(nan_batch=1)
    with pytest.warns(RuntimeWarning, match="1 training batch"):
        model.fit(x, y, batch_size=worker.BATCH_SIZE, shuffle=False, verbose=0)
    assert reference_skipped == int(model._skipped_batches.numpy()) == 1
    assert_same_weights(model.get_named_weights(), reference)


@pytest.mark.slow
@pytest.mark.parametrize("nan_batch", [None, 1])
def test_mirrored_fit_equals_single_device(tmp_path, nan_batch):
    args = ["--strategy", "mirrored", "--out", tmp_path / "mirrored.npz"]
    if nan_batch is not None:
        args += ["--nan-batch", nan_batch]
    run = subprocess.run(
        [sys.executable, str(WORKER), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert_like_single_device(np.load(tmp_path / "mirrored.npz"), nan_batch)


@pytest.mark.slow
@pytest.mark.parametrize("nan_batch", [None, 1])
def test_multi_worker_fit_equals_single_device(tmp_path, nan_batch):
    args = [] if nan_batch is None else ["--nan-batch", nan_batch]
    for result in finish(start_workers(tmp_path, "w", *args), tmp_path, "w"):
        assert_like_single_device(result, nan_batch)


def wait_for_line(log, text, process, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text():
            return
        assert process.poll() is None, log.read_text()[-3000:]
        time.sleep(0.1)
    raise AssertionError(f"no {text!r} within {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_multi_worker_fit_resumes_after_a_worker_is_killed(tmp_path):
    """SIGKILL worker 1 in epoch 1; restarted, both end with the uninterrupted weights.

    BackupAndRestore (``save_freq="epoch"``) checkpoints weights, optimizer
    state (SGD momentum) and epoch at the end of each epoch; the restarted fit
    re-runs the interrupted epoch from its first batch, so with ``shuffle=False``
    it does the uninterrupted run's arithmetic: the final weights equal it, and
    the restarted fit runs only the interrupted and the remaining epochs.
    """
    epochs, backup = 3, tmp_path / "backup"
    args = ["--epochs", epochs, "--backup-dir", backup]
    workers = start_workers(tmp_path, "killed", *args, "--batch-delay", 0.3)
    (survivor, survivor_log), (victim, victim_log) = workers
    try:
        wait_for_line(victim_log, "BATCH 1 1", victim)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
        # the chief's collectives fail once the dead worker misses its heartbeats
        survivor.wait(timeout=TIMEOUT)
    finally:
        stop(workers)
    assert victim.returncode == -signal.SIGKILL
    assert survivor.returncode != 0, survivor_log.read_text()[-3000:]
    assert "FIT DONE" not in survivor_log.read_text()
    assert "BATCH 2 0" not in victim_log.read_text()
    assert (backup / "chief").is_dir()

    results = finish(start_workers(tmp_path, "resumed", *args), tmp_path, "resumed")
    reference, _, history = single_device_fit(epochs=epochs)
    for result in results:
        assert int(result["_epochs_run"]) == epochs - 1
        assert_same_weights(weights_of(result), reference)
        assert_same_logs(result, history, first_epoch=1)
