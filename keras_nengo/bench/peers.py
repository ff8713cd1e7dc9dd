"""Optional peer rows (``keras-nengo bench --peers``): snnTorch and Norse.

The Linear(n x n)+LIF shape over 100 steps, batch 16, timed as one
forward + backward + SGD step in PyTorch, when the library is importable.
Neither is a dependency of keras_nengo; a missing one gives a row that says
so instead of a time.
"""

from __future__ import annotations

import importlib
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
