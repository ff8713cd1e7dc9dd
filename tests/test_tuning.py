"""Tests for keras_nengo.tuning and keras-tuner searches over NengoModels."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras_tuner as kt
import nengo
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_close

import keras_nengo as kn
from keras_nengo.bench import tutorial_network
from keras_nengo.tuning import NengoHyperModel, run_distributed

HERE = Path(__file__).parent
WORKER = HERE / "tuning_worker.py"
EXAMPLE = HERE.parent / "examples" / "tune_nengo.py"


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, size=(16, 1, 1))
    return x, np.sin(x**2)


def hp_key(values):
    return json.dumps(values, sort_keys=True, default=str)


class RecordWeights(tf.keras.callbacks.Callback):
    """Named weights and logs after every epoch, keyed by the trial's hp values.

    keras-tuner deep-copies callbacks per trial; the records live on the class
    so that all copies share them.
    """

    records = {}
    logs = {}

    def on_epoch_end(self, epoch, logs=None):
        key = self.model.hp_key
        RecordWeights.records.setdefault(key, {})[
            epoch
        ] = self.model.get_named_weights()
        RecordWeights.logs.setdefault(key, {})[epoch] = dict(logs)


class KeyedHyperModel(NengoHyperModel):
    """Tags each model with its hp values, for `RecordWeights`."""

    def build(self, hp):
        model = super().build(hp)
        model.hp_key = hp_key(hp.values)
        return model


def build_tutorial(hp):
    net = tutorial_network(n_neurons=10)
    model = kn.NengoModel(net, inputs=[net.stim], outputs=[net.p_out_nofilt], seed=0)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(hp.Float("lr", 1e-3, 1e-1, sampling="log")),
        loss="mse",
    )
    model.hp_key = hp_key(hp.values)
    return model


@pytest.mark.parametrize(
    "make_tuner",
    [
        lambda **kw: kt.RandomSearch(max_trials=2, **kw),
        pytest.param(
            lambda **kw: kt.BayesianOptimization(
                max_trials=3, num_initial_points=1, **kw
            ),
            marks=pytest.mark.skipif(
                importlib.util.find_spec("scipy") is None,
                reason="kt.BayesianOptimization needs scipy (keras-tuner[bayesian])",
            ),
        ),
        lambda **kw: kt.Hyperband(max_epochs=2, factor=2, hyperband_iterations=1, **kw),
    ],
    ids=["random", "bayesian", "hyperband"],
)
def test_tuners_best_models_keep_trained_weights(make_tuner, data, tmp_path):
    x, y = data
    RecordWeights.records = {}
    tuner = make_tuner(
        hypermodel=build_tutorial,
        objective="val_loss",
        directory=tmp_path,
        project_name="search",
        seed=0,
    )
    tuner.search(
        x,
        y,
        validation_data=(x, y),
        epochs=2,
        batch_size=8,
        verbose=0,
        callbacks=[RecordWeights()],
    )
    trials = tuner.oracle.get_best_trials(num_trials=100)
    assert len(trials) >= 2
    assert all(t.status == "COMPLETED" for t in trials)

    best_trial = trials[0]
    best_model = tuner.get_best_models(num_models=1)[0]
    assert isinstance(best_model, kn.NengoModel)
    trained = RecordWeights.records[hp_key(best_trial.hyperparameters.values)]
    expected = trained[best_trial.best_step]
    loaded = best_model.get_named_weights()
    assert sorted(loaded) == sorted(expected)
    for name, value in expected.items():
        assert_close(loaded[name], value)
    # the checkpoint is not just the initial state: training changed it
    untrained = build_tutorial(best_trial.hyperparameters).get_named_weights()
    assert any(
        not np.allclose(untrained[name], value) for name, value in expected.items()
    )


def test_tensorboard_per_trial_and_hparams(data, tmp_path):
    from tensorboard.plugins.hparams import plugin_data_pb2

    x, y = data
    log_dir = tmp_path / "logs"
    tuner = kt.RandomSearch(
        build_tutorial,
        objective="val_loss",
        max_trials=2,
        directory=tmp_path,
        project_name="search",
        seed=0,
    )
    tuner.search(
        x,
        y,
        validation_data=(x, y),
        epochs=2,
        batch_size=8,
        verbose=0,
        callbacks=[tf.keras.callbacks.TensorBoard(log_dir=str(log_dir))],
    )
    trials = tuner.oracle.trials
    assert sorted(p.name for p in log_dir.iterdir()) == sorted(trials)
    for trial_id, trial in trials.items():
        run_dir = log_dir / trial_id / "execution0"
        tags = set()
        for path in (run_dir / "train").glob("events.out.tfevents.*"):
            for event in tf.compat.v1.train.summary_iterator(str(path)):
                tags.update(value.tag for value in event.summary.value)
        assert "epoch_loss" in tags

        hparams = None
        for path in run_dir.glob("events.out.tfevents.*"):
            for event in tf.compat.v1.train.summary_iterator(str(path)):
                for value in event.summary.value:
                    if value.metadata.plugin_data.plugin_name == "hparams":
                        content = plugin_data_pb2.HParamsPluginData.FromString(
                            value.metadata.plugin_data.content
                        )
                        if content.HasField("session_start_info"):
                            hparams = content.session_start_info.hparams
        assert hparams is not None, f"no HParams session for trial {trial_id}"
        assert hparams["lr"].number_value == pytest.approx(
            trial.hyperparameters.get("lr")
        )


def test_grad_norm_objective(data, tmp_path):
    x, y = data
    objective = kt.Objective("grad_norm/sin/encoders", "min")

    def build_network(hp):
        net = tutorial_network(n_neurons=hp.Choice("n_neurons", [4, 8]))
        return net, [net.stim], [net.p_out_nofilt]

    RecordWeights.logs = {}
    tuner = kt.RandomSearch(
        KeyedHyperModel(
            build_network, model_kwargs={"seed": 0, "gradient_norms": True}
        ),
        objective=objective,
        max_trials=2,
        directory=tmp_path,
        project_name="search",
        seed=0,
    )
    tuner.search(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[RecordWeights()])
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 2
    for trial in trials:
        logs = RecordWeights.logs[hp_key(trial.hyperparameters.values)]
        values = [logs[epoch]["grad_norm/sin/encoders"] for epoch in (0, 1)]
        assert all(np.isfinite(values)) and all(v > 0 for v in values)
        # keras-tuner scores a trial by the best epoch of the objective
        assert trial.score == pytest.approx(min(values))
        assert trial.best_step == int(np.argmin(values))
    best = tuner.oracle.get_best_trials(1)[0]
    assert best.score == min(t.score for t in trials)


def test_jacobian_logger_per_trial_and_as_objective(data, tmp_path):
    from keras_nengo.callbacks import JacobianNormLogger

    x, y = data
    log_dir = tmp_path / "logs"
    RecordWeights.logs = {}
    tuner = kt.RandomSearch(
        build_tutorial,
        objective=kt.Objective("jacobian/stim/fro", "min"),
        max_trials=2,
        directory=tmp_path,
        project_name="search",
        seed=0,
    )
    tuner.search(
        x,
        y,
        epochs=2,
        batch_size=8,
        verbose=0,
        callbacks=[
            tf.keras.callbacks.TensorBoard(log_dir=str(log_dir)),
            JacobianNormLogger(x[:4], wrt="inputs"),
            RecordWeights(),
        ],
    )
    trials = tuner.oracle.trials
    assert len(trials) == 2
    for trial_id, trial in trials.items():
        steps = []
        train_dir = log_dir / trial_id / "execution0" / "train"
        for path in train_dir.glob("events.out.tfevents.*"):
            for event in tf.compat.v1.train.summary_iterator(str(path)):
                steps += [
                    event.step
                    for value in event.summary.value
                    if value.tag == "jacobian/stim/fro"
                ]
        assert sorted(steps) == [0, 1], f"trial {trial_id}: {steps}"
        logs = RecordWeights.logs[hp_key(trial.hyperparameters.values)]
        values = [logs[epoch]["jacobian/stim/fro"] for epoch in (0, 1)]
        assert trial.score == pytest.approx(min(values))
    assert not (tmp_path / "logs" / "train").exists()


def build_choice_network(hp):
    net = tutorial_network(n_neurons=hp.Choice("n_neurons", [4, 8]))
    neuron_type = {"lif": nengo.LIF(), "relu": nengo.RectifiedLinear()}[
        hp.Choice("neuron_type", ["lif", "relu"])
    ]
    net.square.neuron_type = neuron_type
    net.sin.neuron_type = neuron_type
    return net, [net.stim], [net.p_out_nofilt]


def test_hypermodel_tunes_nengo_choices(data, tmp_path):
    x, y = data
    hypermodel = NengoHyperModel(build_choice_network, model_kwargs={"seed": 0})
    fixed = kt.HyperParameters()
    fixed.Fixed("learning_rate", 0.01)
    tuner = kt.GridSearch(
        hypermodel,
        objective="loss",
        hyperparameters=fixed,
        max_trials=3,
        directory=tmp_path,
        project_name="search",
    )
    tuner.search(x, y, epochs=1, batch_size=8, verbose=0)
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 3
    combinations = {
        (t.hyperparameters.get("n_neurons"), t.hyperparameters.get("neuron_type"))
        for t in trials
    }
    assert len(combinations) == 3
    # the default compile's learning rate, fixed by the user
    assert all(t.hyperparameters.get("learning_rate") == 0.01 for t in trials)

    for trial in trials:
        model = hypermodel.build(trial.hyperparameters)
        assert isinstance(model, kn.NengoModel)
        n_neurons = trial.hyperparameters.get("n_neurons")
        assert model.named_weights["square/encoders"].shape[0] == n_neurons
        expected_type = {"lif": nengo.LIF, "relu": nengo.RectifiedLinear}[
            trial.hyperparameters.get("neuron_type")
        ]
        assert all(
            type(ens.neuron_type) is expected_type for ens in model.network.ensembles
        )
    best_models = tuner.get_best_models(num_models=3)
    sizes = sorted(m.named_weights["square/encoders"].shape[0] for m in best_models)
    assert sizes == sorted(t.hyperparameters.get("n_neurons") for t in trials)


def test_hypermodel_compile_and_model_kwargs():
    hp = kt.HyperParameters()
    hypermodel = NengoHyperModel(
        lambda hp: tutorial_network(n_neurons=hp.Int("n", 4, 8, default=6)),
        compile_kwargs=lambda hp: {
            "optimizer": tf.keras.optimizers.SGD(hp.Fixed("lr", 0.5)),
            "loss": "mae",
        },
        model_kwargs={"dt": 0.002, "gradient_norms": True},
    )
    model = hypermodel.build(hp)
    assert model.gradient_norms
    assert model.nengo_layer.dt == 0.002
    assert isinstance(model.optimizer, tf.keras.optimizers.SGD)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.5)
    assert model.named_weights["square/encoders"].shape[0] == 6
    # a bare network uses every input Node and every Probe
    assert model.output_names == ["in", "out", "out_nofilt"]


def test_hypermodel_subclass_overrides_build_network():
    class Tutorial(NengoHyperModel):
        def build_network(self, hp):
            net = tutorial_network(n_neurons=hp.Fixed("n", 5))
            return net, [net.stim], [net.p_out_nofilt]

    hp = kt.HyperParameters()
    model = Tutorial().build(hp)
    assert model.output_names == ["out_nofilt"]
    # the default compile: Adam, tuned learning rate (default 1e-3), MSE
    assert hp.values == {"n": 5, "learning_rate": 1e-3}
    assert isinstance(model.optimizer, tf.keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(1e-3)
    assert model.loss == "mse"
    assert model.named_weights["square/encoders"].shape[0] == 5


def test_hypermodel_errors():
    with pytest.raises(TypeError, match="Received: build_network=None"):
        NengoHyperModel()
    with pytest.raises(TypeError, match="Received: build_network=3"):
        NengoHyperModel(3)
    with pytest.raises(TypeError, match="Received: compile_kwargs="):
        NengoHyperModel(lambda hp: None, compile_kwargs={"loss": "mse"})
    with pytest.raises(TypeError, match="must return a nengo.Network"):
        NengoHyperModel(lambda hp: "network").build(kt.HyperParameters())


# -- run_distributed without TensorFlow: timeouts, failures, cleanup -------------

SLEEPER = """
import os, sys, time
with open(os.path.join(sys.argv[1], os.environ["KERASTUNER_TUNER_ID"]), "w") as f:
    f.write(str(os.getpid()) + " " + os.environ["KERASTUNER_ORACLE_IP"] + " "
            + os.environ["KERASTUNER_ORACLE_PORT"])
if os.environ["KERASTUNER_TUNER_ID"] == sys.argv[2]:
    sys.exit(3)
time.sleep(600)
"""


def read_pids(directory):
    info = {p.name: p.read_text().split() for p in Path(directory).iterdir()}
    return info


def assert_dead(pid):
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_run_distributed_timeout_kills_everything(tmp_path):
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    out = tmp_path / "out"
    out.mkdir()
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="timeout=3"):
        run_distributed(script, args=[out, "nobody"], n_workers=2, timeout=3)
    assert time.monotonic() - start < 15
    info = read_pids(out)
    assert sorted(info) == ["chief", "worker0", "worker1"]
    ports = {port for _, _, port in info.values()}
    assert len(ports) == 1 and int(ports.pop()) > 0
    assert {ip for _, ip, _ in info.values()} == {"127.0.0.1"}
    for pid, _, _ in info.values():
        assert_dead(int(pid))


def test_run_distributed_failure_stops_the_others(tmp_path):
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    out = tmp_path / "out"
    out.mkdir()
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"worker1 \(exit code 3\)"):
        run_distributed(script, args=[out, "worker1"], n_workers=2, timeout=60)
    assert time.monotonic() - start < 30
    for pid, _, _ in read_pids(out).values():
        assert_dead(int(pid))

    results = run_distributed(
        script, args=[out, "chief"], n_workers=1, timeout=60, check=False
    )
    assert [(r.tuner_id, r.returncode) for r in results] == [
        ("chief", 3),
        ("worker0", -signal.SIGKILL),
    ]


def test_run_distributed_errors():
    with pytest.raises(ValueError, match="Received: n_workers=0"):
        run_distributed("unused.py", n_workers=0)


# -- subprocess searches ---------------------------------------------------------


def completed_trials(project_dir):
    trials = {}
    for path in Path(project_dir).glob("trial_*/trial.json"):
        try:
            trial = json.loads(path.read_text())
        except json.JSONDecodeError:  # being written
            continue
        trials[trial["trial_id"]] = trial
    return {k: t for k, t in trials.items() if t["status"] == "COMPLETED"}


@pytest.mark.slow
def test_distributed_search_runs_every_trial_once(tmp_path):
    start = time.monotonic()
    results = run_distributed(
        WORKER,
        args=["--directory", tmp_path, "--max-trials", 4],
        n_workers=2,
        timeout=300,
    )
    assert time.monotonic() - start < 300
    assert [r.tuner_id for r in results] == ["chief", "worker0", "worker1"]
    assert all(r.returncode == 0 for r in results)
    for result in results:
        assert f"SEARCH DONE {result.tuner_id}" in result.output
        assert_dead(result.pid)

    project = tmp_path / "search"
    assert sorted(p.name for p in project.glob("trial_*")) == [
        f"trial_{i}" for i in range(4)
    ]
    assert sorted(completed_trials(project)) == ["0", "1", "2", "3"]
    oracle = json.loads((project / "oracle.json").read_text())
    assert sorted(oracle["end_order"]) == ["0", "1", "2", "3"]
    assert oracle["run_times"] == {str(i): 1 for i in range(4)}
    # both workers connected to the chief and saved their tuner state
    assert (project / "worker0.json").exists() and (project / "worker1.json").exists()


@pytest.mark.slow
def test_search_resumes_after_kill(tmp_path):
    project = tmp_path / "search"
    command = [sys.executable, str(WORKER), "--directory", str(tmp_path)]
    command += ["--max-trials", "3", "--build-delay", "3"]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            # kill once the second trial has started: keras-tuner saves
            # oracle.json in end_trial *before* dropping the trial from
            # ongoing_trials, so only the next create_trial records it as done
            try:
                oracle = json.loads((project / "oracle.json").read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                oracle = {}
            if len(oracle.get("start_order", [])) >= 2:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the search ended before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    before = completed_trials(project)
    assert 1 <= len(before) < 3

    subprocess.run(command[:-2], check=True, capture_output=True, timeout=180)
    after = completed_trials(project)
    assert sorted(after) == ["0", "1", "2"]
    for trial_id, trial in before.items():
        # finished trials were kept, not re-run
        assert after[trial_id]["score"] == trial["score"]
        assert after[trial_id]["hyperparameters"] == trial["hyperparameters"]
    oracle = json.loads((project / "oracle.json").read_text())
    assert sorted(oracle["end_order"]) == ["0", "1", "2"]
    for trial_id in before:
        assert oracle["run_times"][trial_id] == 1


@pytest.mark.slow
def test_example_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--max-trials", "2", "--epochs", "1"]
        + ["--n-samples", "16", "--directory", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Best hyperparameters" in result.stdout
    assert "square/encoders" in result.stdout
    assert len(list((tmp_path / "tune_nengo").glob("trial_*/trial.json"))) == 2
