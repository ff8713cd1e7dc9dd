"""Smoke tests: every script in examples/ runs and says so (with tiny
settings, or at its defaults where those are what needs proving).

Each runs in a fresh interpreter, as a user would run it. tune_nengo.py's
search is covered by tests/test_tuning.py.
"""

import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"


def child_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_example(name, *args, timeout=240, max_cpu_seconds=None, env=None, cwd=None):
    """Run an example; with max_cpu_seconds, also check the CPU time it took.

    CPU time rather than wall time: other jobs on the machine slow the wall
    clock, and an example that fits in 120 CPU seconds fits in 2 minutes on
    2 cores. An example runs in the Keras a new user has (Keras 3), without
    the suite's ``TF_USE_LEGACY_KERAS``, unless ``env`` gives one.
    """
    if env is None:
        env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    cpu_before = child_cpu_seconds()
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )
    cpu = child_cpu_seconds() - cpu_before
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    if max_cpu_seconds is not None:
        assert cpu < max_cpu_seconds, f"{name} took {cpu:.0f} CPU seconds"
    return result.stdout


def test_quickstart():
    out = run_example(
        "quickstart.py", "--epochs", 1, "--samples", 64, "--steps", 30, "--neurons", 20
    )
    assert "Inputs: ['stim']  outputs: ['out', 'out_filtered']" in out
    for name in ("hidden/encoders", "hidden/bias", "hidden_to_output/weights"):
        assert re.search(rf"^  {re.escape(name)} +shape ", out, re.M), name
    assert "fit: training loss per epoch (rate neurons): " in out
    assert re.search(r"After training: +evaluate loss \d", out)
    assert "freeze_params + nengo.Simulator: filtered spiking error" in out


def test_closed_loop(tmp_path):
    out = run_example(
        "closed_loop.py",
        *("--segments", 2, "--segment-steps", 800, "--out", tmp_path),
        max_cpu_seconds=120,
    )
    assert "4 plants, 2 targets each, 1600 steps (1.6 s) in 80 chunks" in out
    errors = re.search(r"tracking error: (\S+) in the first 100 ms.*?, (\S+) ", out)
    first, settled = map(float, errors.groups())
    # the loop tracks: after each change of target the error falls and stays small
    assert first > 0.2 and settled < 0.1 and settled < 0.2 * first, (first, settled)
    finals = re.findall(r"^  \d +(\S+) +(\S+)$", out, re.M)
    assert len(finals) == 4
    assert all(abs(float(t) - float(p)) < 0.1 for t, p in finals), finals
    assert (tmp_path / "closed_loop.png").stat().st_size > 10000


@pytest.mark.slow
def test_jacobian_wrt_weights_at_its_defaults():
    out = run_example("jacobian_wrt_weights.py", timeout=600, max_cpu_seconds=120)
    difference = re.search(r"GradientTape: max \|difference\| (\S+)", out)
    assert float(difference.group(1)) < 1e-10
    # a Jacobian row per check: steps 0, 100, 200 and 300
    steps = re.findall(r"^ +(\d+) +(\d+\.\d+) ", out, re.M)
    assert [step for step, _ in steps] == ["0", "100", "200", "300"]
    assert float(steps[-1][1]) < float(steps[0][1])  # training lowers the loss
    assert re.search(r"^  a/encoders +\(8, 1, 50, 2\)$", out, re.M)
    assert re.search(r"^  a_to_b/weights +\(8, 1, 1, 50\)$", out, re.M)
    checked = re.findall(r"^  (\S+/\S+) +\S+ +\S+ +(\S+e[-+]\d+) +\S+$", out, re.M)
    assert len(checked) == 6
    assert all(float(error) < 1e-6 for _, error in checked), checked
    assert "Finite-difference check PASSED" in out


@pytest.mark.slow
def test_tensorboard_jacobians(tmp_path):
    out = run_example(
        "tensorboard_jacobians.py",
        *("--epochs", 2, "--samples", 32, "--probe-batch", 4, "--log-dir", tmp_path),
    )
    for key in ("grad_norm/square/encoders", "jacobian/stim/fro", "loss"):
        assert re.search(rf"^  {re.escape(key)}$", out, re.M), key
    for kind, tag in [
        ("scalars", "epoch_loss"),
        ("scalars", "epoch_grad_norm/square/encoders"),
        ("scalars", "jacobian/stim/fro"),
        ("scalars", "jacobian/sin/encoders/fro"),
        ("images", "jacobian_image/stim"),
        ("images", "jacobian_image/square/encoders"),
        # Keras 3 (the example's Keras here) tags a histogram by variable path
        ("histograms", "nengo/square/encoders/histogram"),
    ]:
        assert f"    [{kind}] {tag}" in out, tag
    assert f"tensorboard --logdir {tmp_path}" in out
    assert list((tmp_path / "train").glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_converter_spiking_at_its_defaults():
    out = run_example("converter_spiking.py", timeout=600, max_cpu_seconds=120)
    assert "keras_nengo: inputs ['image'], outputs ['logits.0_probe']" in out
    losses = re.search(r"loss per epoch (\S+) -> (\S+)", out).groups()
    assert float(losses[1]) < 0.5 * float(losses[0])
    scores = dict(re.findall(r"^  \(?(.+?) +(\d\.\d+)(?:;|$)", out, re.M))
    before = float(scores["keras_nengo, before training"])
    ours = float(scores["keras_nengo, after training"])
    theirs = float(scores["nengo_dl.Simulator, same training"])
    rate = float(scores["rate neurons, after training"])
    assert before < 0.3 and ours > 0.85 and rate > 0.85, scores
    # spiking with scale_firing_rates keeps nearly all of the rate accuracy,
    # and keras_nengo and NengoDL agree
    assert ours > rate - 0.05 and abs(ours - theirs) < 0.05, scores
    agree = float(re.search(r"same class for (\S+)%", out).group(1))
    assert agree > 90


@pytest.mark.slow
def test_examples_leave_nothing_in_the_temp_dir(tmp_path):
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TMPDIR"] = str(temp)
    out = run_example(
        "tune_nengo.py",
        *("--max-trials", 1, "--epochs", 1, "--n-samples", 16),
        env=env,
    )
    assert "Best hyperparameters" in out
    assert "removed now" in out
    out = run_example(
        "tensorboard_jacobians.py",
        *("--epochs", 1, "--samples", 16, "--probe-batch", 2),
        env=env,
        cwd=tmp_path,
    )
    assert "tensorboard --logdir logs/tensorboard_jacobians" in out
    assert list((tmp_path / "logs" / "tensorboard_jacobians" / "train").iterdir())
    assert [path.name for path in temp.iterdir()] == []


@pytest.mark.slow
def test_distributed_fit():
    out = run_example("distributed_fit.py", max_cpu_seconds=120)
    single = re.search(r"^single device: +(\S+) ms/step", out, re.M)
    workers = re.search(
        r"^MultiWorkerMirroredStrategy, 2 workers: +(\S+) ms/step", out, re.M
    )
    assert float(single.group(1)) > 0 and float(workers.group(1)) > 0
    # the two fits report the same losses, and training lowered them
    losses = re.findall(r"^  training loss per epoch: (.+)$", out, re.M)
    assert len(losses) == 2 and losses[0] == losses[1], losses
    first, *_, last = map(float, losses[0].split(", "))
    assert last < first / 2
    difference = re.search(r"Max weight difference vs single device: (\S+)", out)
    assert float(difference.group(1)) < 1e-5
