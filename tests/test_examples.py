"""Smoke tests: every script in examples/ runs with tiny settings and says so.

Each runs in a fresh interpreter, as a user would run it. tune_nengo.py is
covered by tests/test_tuning.py.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"


def run_example(name, *args, timeout=240):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
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


@pytest.mark.slow
def test_jacobian_wrt_weights():
    out = run_example(
        "jacobian_wrt_weights.py",
        *("--train-steps", 2, "--every", 1, "--samples", 64, "--batch-size", 16),
        *("--probe-batch", 3, "--neurons", 10),
    )
    difference = re.search(r"GradientTape: max \|difference\| (\S+)", out)
    assert float(difference.group(1)) < 1e-10
    # a Jacobian row per check: steps 0, 1 and 2
    assert len(re.findall(r"^ +[012] +\d+\.\d+ ", out, re.M)) == 3
    assert re.search(r"^  a/encoders +\(3, 1, 10, 2\)$", out, re.M)
    assert re.search(r"^  a_to_b/weights +\(3, 1, 1, 10\)$", out, re.M)
    checked = re.findall(r"^  (\S+/\S+) +\S+ +\S+ +(\S+e[-+]\d+)$", out, re.M)
    assert len(checked) == 6
    assert all(float(error) < 1e-5 for _, error in checked), checked
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
        ("histograms", "square/encoders_0/histogram"),
    ]:
        assert f"    [{kind}] {tag}" in out, tag
    assert f"tensorboard --logdir {tmp_path}" in out
    assert list((tmp_path / "train").glob("events.out.tfevents.*"))
