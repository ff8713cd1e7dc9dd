"""Train a spiking network, write it as a NIR file, read it back, run it again.

The network squares its input through two LIF ensembles whose neurons have
exactly NIR's LIF dynamics (`keras_nengo.nir.nir_lif`: no refractory period,
no voltage floor, voltages starting at rest). After a short `fit` the trained
named weights go into a NIR graph (`to_nir`), through a ``.nir`` file
(`nir.write` / `nir.read`) and back into a Nengo network (`from_nir`); the
imported network's spiking outputs equal the trained model's.

Then, when Norse or snnTorch is at hand (importable here, or the python of a
virtualenv that has them given by ``--peers-python`` or the
``KERAS_NENGO_PEERS_PYTHON`` variable, as ``.ci/peers`` builds it), the
trained hidden layer is written for each of them (``to_nir(..., peer=)``),
run there by ``tests/peers/run_peer.py`` and compared with keras_nengo; the
whole network is not, and the example prints why (`NIRExportError`).

Run: ``python examples/nir_roundtrip.py [--epochs N] [--steps N]
[--peers-python PATH]`` (needs ``pip install keras-nengo[nir]``).
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import keras_nengo as kn  # first: makes NengoDL importable
import nengo
import nir
import numpy as np


def build_network(neurons):
    with nengo.Network(seed=0) as net:
        stim = nengo.Node(np.zeros(1), label="stim")
        hidden = nengo.Ensemble(
            neurons, 1, neuron_type=kn.nir.nir_lif(0.02), label="hidden"
        )
        square = nengo.Ensemble(
            neurons, 1, neuron_type=kn.nir.nir_lif(0.02), label="square"
        )
        nengo.Connection(stim, hidden, synapse=None)
        nengo.Connection(hidden, square, function=np.square, synapse=0.01)
        nengo.Probe(square, synapse=0.02, label="out")
        nengo.Probe(hidden, synapse=None, label="hidden")
    return net


RUNNER = Path(__file__).resolve().parent.parent / "tests" / "peers" / "run_peer.py"


def peers_python(given):
    """The python that runs the peers, or None."""
    given = given or os.environ.get("KERAS_NENGO_PEERS_PYTHON")
    if given:
        return given
    if any(importlib.util.find_spec(name) for name in ("norse", "snntorch")):
        return sys.executable
    return None


def peer_step(model, net, steps, python):
    """Run the trained hidden layer in Norse and snnTorch; compare with ours."""
    try:
        kn.nir.to_nir(model, peer="norse")
    except kn.nir.NIRExportError as error:
        print(f"The whole network is not for the peers. {error}")
    weights = model.get_named_weights()
    (hidden,) = [p for p in net.all_probes if p.label == "hidden"]
    for peer, dt in (("norse", 0.001), ("snntorch", 1e-4)):
        part = kn.NengoModel(net, outputs=[hidden], dt=dt, seed=0)
        part.set_named_weights(weights, strict=False)
        n_steps = int(round(steps * 0.001 / dt))
        x = np.tile(np.linspace(-1, 1, 8)[:, None, None], (1, n_steps, 1))
        with tempfile.TemporaryDirectory() as folder:
            paths = [Path(folder) / name for name in ("h.nir", "x.npy", "y.npy")]
            nir.write(paths[0], kn.nir.to_nir(part, peer=peer, dt=dt))
            np.save(paths[1], x)
            result = subprocess.run(
                [python, str(RUNNER), "run", peer, *map(str, paths), "--dt", str(dt)],
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                print(f"Peer step: {peer} failed:", result.stderr[-2000:])
                continue
            theirs = np.load(paths[2])
        version = json.loads(result.stdout.splitlines()[-1])["versions"][peer]
        error = np.abs(theirs - part.predict(x, verbose=0)).max()
        print(f"{peer} {version}, dt={dt}: max |peer - keras_nengo|: {error:.2e}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--neurons", type=int, default=30)
    parser.add_argument("--peers-python", help="python of a Norse/snnTorch venv")
    args = parser.parse_args(argv)

    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, size=(256, 1, 1))
    net = build_network(args.neurons)
    out = [p for p in net.all_probes if p.label == "out"]
    model = kn.NengoModel(net, outputs=out, seed=0)
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, x**2, epochs=args.epochs, batch_size=32, verbose=0)

    graph = kn.nir.to_nir(model)
    print(
        "NIR nodes:",
        ", ".join(f"{k} ({type(v).__name__})" for k, v in graph.nodes.items()),
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "square.nir"
        nir.write(path, graph)
        imported = kn.nir.from_nir(nir.read(path))
    copy = kn.NengoModel(imported, seed=0)
    print("Named weights after the round trip:", sorted(copy.get_named_weights()))

    test = np.tile(np.linspace(-1, 1, 8)[:, None, None], (1, args.steps, 1))
    expected = model.predict(test, verbose=0)
    actual = copy.predict({"stim": test}, verbose=0)
    error = np.abs(actual - expected).max()
    print(f"Spiking output, max |imported - trained|: {error:.2e}")

    python = peers_python(args.peers_python)
    if python is None or not RUNNER.exists():
        print(
            "Peer step skipped: no Norse or snnTorch here. Install them "
            "(pip install -r tests/peers/requirements.txt, or .ci/peers DIR) and "
            "pass --peers-python, or set KERAS_NENGO_PEERS_PYTHON."
        )
    else:
        peer_step(model, net, args.steps, python)


if __name__ == "__main__":
    main()
