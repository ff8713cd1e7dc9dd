"""Run NIR graphs in Norse or snnTorch, and export networks trained there.

keras_nengo's peer tests (``tests/test_nir_peers.py``) call this script as a
subprocess with the python of the peers' virtualenv (``.ci/peers`` builds it
from ``requirements.txt`` beside this file). It imports only torch, norse,
snntorch, nir and numpy, never keras_nengo; arrays go in and out as ``.npy``
files and a JSON summary is printed on stdout.

Run a NIR file in a peer, one time step per call of its torch module::

    python run_peer.py run {norse,snntorch} graph.nir x.npy y.npy [--dt DT]

``x`` is ``(batch, n_steps, size_in)``, ``y`` is written as ``(batch,
n_steps, size_out)``. snnTorch's importer always steps with ``dt = 1e-4``;
Norse's takes ``--dt`` (default 0.001).

Build a small network in a peer (Linear -> LIF -> Linear), train it a few
steps, export it with the peer's own exporter and record its outputs::

    python run_peer.py train {norse,snntorch} graph.nir x.npy y.npy [--dt DT]
"""

import argparse
import json
import logging
import sys
import warnings

import nir
import numpy as np
import torch

SNNTORCH_DT = 1e-4  # snntorch.import_nir and export_nir fix this time step
TAU_MEM = 0.02  # seconds, the membrane time constant of the trained networks


def run_snntorch(graph, x):
    from snntorch import utils
    from snntorch.import_nir import import_from_nir

    module = import_from_nir(graph)
    utils.reset(module)  # init_hidden neurons keep their state on the module
    return _step(module, x, stateful=True)


def run_norse(graph, x, dt):
    import norse.torch

    module = norse.torch.from_nir(graph, dt=dt)
    return _step(module, x, stateful=True)


def _step(module, x, stateful):
    """Feed ``x[:, t]`` one step at a time; returns ``(batch, steps, out)``."""
    state, outputs = None, []
    with torch.no_grad():
        for step in range(x.shape[1]):
            inputs = torch.as_tensor(x[:, step], dtype=torch.float32)
            if stateful:
                out, state = module(inputs, state)
            else:
                out = module(inputs)
            outputs.append(np.asarray(out.detach().numpy(), dtype=np.float64))
    return np.stack(outputs, axis=1)


def _train(forward, parameters, x, seed, epochs=20):
    """A few Adam steps: the mean output over time tracks ``sin`` of the input."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(parameters, lr=2e-3)
    inputs = torch.as_tensor(x, dtype=torch.float32)
    target = torch.sin(3 * inputs[:, :, :1]).mean(dim=1)
    losses = []
    for _ in range(epochs):
        optimizer.zero_grad()
        outputs = forward(inputs)
        loss = torch.mean((outputs.mean(dim=1) - target) ** 2)
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    return losses


def train_snntorch(x, seed, hidden=16, synaptic=False):
    """Linear -> Leaky or Synaptic (reset to zero, as NIR's) -> Linear, trained."""
    import snntorch
    from snntorch import utils
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(seed)
    beta = 1 - SNNTORCH_DT / TAU_MEM  # export_nir writes tau = dt / (1 - beta)
    # per neuron: export_to_nir infers the layer size from beta's shape
    per_neuron = dict(
        beta=torch.full((hidden,), beta),
        threshold=torch.ones(hidden),
        init_hidden=True,
        reset_mechanism="zero",
        # reset in the spike's step, as snnTorch's importer (and NIR) does;
        # Synaptic's default (True) also drops the input of the next step
        reset_delay=False,
    )
    if synaptic:  # a current with tau_syn = TAU_MEM / 2 (alpha = 1 - dt / tau)
        alpha = 1 - 2 * SNNTORCH_DT / TAU_MEM
        neurons = snntorch.Synaptic(alpha=torch.full((hidden,), alpha), **per_neuron)
    else:
        neurons = snntorch.Leaky(**per_neuron)
    net = torch.nn.Sequential(
        torch.nn.Linear(x.shape[-1], hidden), neurons, torch.nn.Linear(hidden, 1)
    )
    # strong enough to spike within a short run, weaker than one spike a step
    # (a synaptic current sums its inputs over about 1 / (1 - alpha) steps)
    gain = 20.0 * (1 - alpha if synaptic else 1.0)
    with torch.no_grad():
        net[0].weight.mul_(gain)
        net[0].bias.fill_(0.0025 * gain)

    def forward(inputs):
        utils.reset(net)
        return torch.stack([net(inputs[:, t]) for t in range(inputs.shape[1])], 1)

    losses = _train(forward, net.parameters(), x, seed)
    with torch.no_grad():
        outputs = forward(torch.as_tensor(x, dtype=torch.float32)).numpy()
    utils.reset(net)
    # one sample without the batch axis: export_to_nir checks its shape
    graph = export_to_nir(net, torch.as_tensor(x[0, 0], dtype=torch.float32))
    return graph, outputs, losses


def train_norse(x, seed, dt, hidden=16):
    """Linear -> LIFBoxCell -> Linear, trained."""
    import norse.torch as norse

    torch.manual_seed(seed)
    # parameters per neuron: nir.write cannot store Norse's scalar defaults
    ones = torch.ones(hidden)
    parameters = norse.LIFBoxParameters(
        tau_mem_inv=ones / TAU_MEM, v_leak=0 * ones, v_th=ones, v_reset=0 * ones
    )
    net = norse.SequentialState(
        torch.nn.Linear(x.shape[-1], hidden),
        norse.LIFBoxCell(parameters, dt=dt),
        torch.nn.Linear(hidden, 1),
    )
    with torch.no_grad():
        net[0].weight.mul_(20.0)
        net[0].bias.fill_(0.05)

    def forward(inputs):
        state, outputs = None, []
        for t in range(inputs.shape[1]):
            out, state = net(inputs[:, t], state)
            outputs.append(out)
        return torch.stack(outputs, 1)

    losses = _train(forward, net.parameters(), x, seed)
    with torch.no_grad():
        outputs = forward(torch.as_tensor(x, dtype=torch.float32)).numpy()
    # Norse 1.1 writes tau = dt / tau_mem_inv (fixed after 1.1): dt=1 gives
    # the time constants in seconds, as NIR defines them
    graph = norse.to_nir(net, torch.as_tensor(x[0, 0], dtype=torch.float32), dt=1.0)
    return graph, outputs, losses


def versions() -> dict:
    import importlib.metadata as metadata

    return {
        name: metadata.version(name)
        for name in ("torch", "norse", "snntorch", "nir", "nirtorch", "numpy")
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "train"])
    parser.add_argument("peer", choices=["norse", "snntorch"])
    parser.add_argument("graph", help="NIR file to run (run) or to write (train)")
    parser.add_argument("x", help=".npy input (batch, n_steps, size_in)")
    parser.add_argument("y", help=".npy output written (batch, n_steps, size_out)")
    parser.add_argument("--dt", type=float, default=0.001, help="Norse's time step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--synaptic", action="store_true", help="train: snnTorch's Synaptic neurons"
    )
    args = parser.parse_args(argv)
    # the peers print and log progress; keep stdout for the JSON summary
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    x = np.load(args.x)
    summary = {"peer": args.peer, "versions": versions()}
    real_stdout, sys.stdout = sys.stdout, sys.stderr
    try:
        if args.command == "run":
            graph = nir.read(args.graph)
            if args.peer == "snntorch":
                y = run_snntorch(graph, x)
                summary["dt"] = SNNTORCH_DT
            else:
                y = run_norse(graph, x, args.dt)
                summary["dt"] = args.dt
        else:
            if args.peer == "snntorch":
                graph, y, losses = train_snntorch(x, args.seed, synaptic=args.synaptic)
                summary["dt"] = SNNTORCH_DT
            else:
                graph, y, losses = train_norse(x, args.seed, args.dt)
                summary["dt"] = args.dt
            summary["losses"] = losses
            nir.write(args.graph, graph)
            summary["nodes"] = {k: type(v).__name__ for k, v in graph.nodes.items()}
    finally:
        sys.stdout = real_stdout
    np.save(args.y, np.asarray(y, dtype=np.float64))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
