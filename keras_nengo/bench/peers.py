"""Optional peer rows (``keras-nengo bench --peers``): snnTorch and Norse.

The Linear(n x n)+LIF shape over 100 steps, batch 16, timed as one
forward + backward + SGD step in PyTorch, when the library is importable.
Neither is a dependency of keras_nengo. Where they are not importable here,
``KERAS_NENGO_PEERS_PYTHON`` names the python of a virtualenv that has them
(``.ci/peers DIR`` builds one from ``tests/peers/requirements.txt``): this file
runs there as a script (it needs only NumPy and the peer) and prints its
result as JSON, which joins this run's table. Without either, the row says the
peer is missing instead of giving a time.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time

import numpy as np

PEERS = ("snntorch", "norse")


def _leaky(library, n, beta):
    import torch  # pylint: disable=import-outside-toplevel,import-error

    if library == "snntorch":
        import snntorch  # pylint: disable=import-outside-toplevel,import-error

        neuron = snntorch.Leaky(beta=beta, threshold=1.0)

        def run(current):
            membrane = neuron.init_leaky()
            spikes = []
            for step in range(current.shape[0]):
                spike, membrane = neuron(current[step], membrane)
                spikes.append(spike)
            return torch.stack(spikes)

        return run
    import norse.torch  # pylint: disable=import-outside-toplevel,import-error

    layer = norse.torch.LIF()
    return lambda current: layer(current)[0]


def peer_step_seconds(
    library: str, n: int, n_steps: int = 100, batch_size: int = 16, repeats: int = 5
) -> float | str:
    """Median seconds of one training step, or a note when ``library`` is missing."""
    try:
        importlib.import_module(library)
        import torch  # pylint: disable=import-outside-toplevel,import-error
    except ImportError as error:
        python = os.environ.get("KERAS_NENGO_PEERS_PYTHON")
        if python:
            return _in_peers_python(python, library, n, n_steps, batch_size, repeats)
        return f"not installed ({error.name})"
    torch.manual_seed(0)
    linear = torch.nn.Linear(n, n, bias=False)
    neurons = _leaky(library, n, beta=float(np.exp(-0.001 / 0.02)))
    optimizer = torch.optim.SGD(linear.parameters(), lr=1e-7)
    x = torch.rand(n_steps, batch_size, n)
    y = torch.rand(n_steps, batch_size, n)

    def step():
        optimizer.zero_grad()
        spikes = neurons(linear(x))
        loss = torch.mean((spikes - y) ** 2)
        loss.backward()
        optimizer.step()

    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _in_peers_python(python, library, n, n_steps, batch_size, repeats):
    """`peer_step_seconds` run by ``python`` (the peers' virtualenv)."""
    command = [python, __file__, library, str(n), str(n_steps), str(batch_size)]
    result = subprocess.run(
        [*command, str(repeats)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return f"failed in KERAS_NENGO_PEERS_PYTHON ({tail[:160]})"
    return json.loads(lines[-1])


def main(argv=None):
    """Print `peer_step_seconds` of the arguments as JSON (a float or a note)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("library", choices=PEERS)
    for name in ("n", "n_steps", "batch_size", "repeats"):
        parser.add_argument(name, type=int)
    args = parser.parse_args(argv)
    os.environ.pop("KERAS_NENGO_PEERS_PYTHON", None)  # run here or say why not
    seconds = peer_step_seconds(
        args.library, args.n, args.n_steps, args.batch_size, args.repeats
    )
    print(json.dumps(seconds))


if __name__ == "__main__":
    sys.exit(main())
