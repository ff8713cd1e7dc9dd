"""The README's quick start runs as printed."""

import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_runs(capsys):
    text = README.read_text()
    code = re.search(r"## Quick start\n\n```python\n(.*?)```", text, re.S).group(1)
    code = code.replace("epochs=5)", "epochs=5, verbose=0)")
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102
    printed = capsys.readouterr().out
    # the comment under the print in the README is what it prints
    expected = re.search(r"print\(model.input_names.*\n# (.*)\n", code).group(1)
    assert printed.splitlines()[0] == expected
    assert namespace["J"].shape == (4, 1, 50, 1)
    assert namespace["out"].shape == (4, 100, 1)
    x = namespace["x"]
    loss = namespace["model"].evaluate(x, x**2, verbose=0)
    assert np.isfinite(loss)
