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
