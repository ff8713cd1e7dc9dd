"""The keras-nengo command."""

import subprocess
import sys

import pytest

from keras_nengo import cli
from keras_nengo.version import version


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"keras-nengo {version}"


def test_help_describes_the_tool(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert "usage: keras-nengo" in out
    assert "NengoModel" in out


def test_stack_lists_versions(capsys):
    assert cli.main(["--stack"]) == 0
    out = capsys.readouterr().out
    assert "nengo_dl     3.6.0" in out
    assert "tf_keras     2.21" in out


def test_unknown_option_fails():
    result = subprocess.run(
        [sys.executable, "-m", "keras_nengo.cli", "--bogus"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "unrecognized arguments: --bogus" in result.stderr


@pytest.mark.slow
def test_demo_runs_quietly(tmp_path):
    png = tmp_path / "demo.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_nengo.cli",
            "demo",
            "--epochs",
            "1",
            "--train-samples",
            "256",
            "--log-dir",
            str(tmp_path / "logs"),
            "--out",
            str(png),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Spiking test error before training:" in out
    assert "Spiking test error after training:" in out
    assert "d output / d input" in out and "square/encoders" in out
    assert f"tensorboard --logdir {tmp_path / 'logs'}" in out
    assert png.stat().st_size > 10_000
    assert (tmp_path / "logs" / "train").is_dir()
    noise = [
        line
        for line in result.stderr.splitlines()
        if line[:5] in ("I0000", "W0000", "E0000") or "absl::InitializeLog" in line
    ]
    assert noise == []
