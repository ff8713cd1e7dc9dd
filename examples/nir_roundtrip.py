"""Train a spiking network, write it as a NIR file, read it back, run it again.

The network squares its input through two LIF ensembles whose neurons have
exactly NIR's LIF dynamics (`keras_nengo.nir.nir_lif`: no refractory period,
no voltage floor, voltages starting at rest). After a short `fit` the trained
named weights go into a NIR graph (`to_nir`), through a ``.nir`` file
(`nir.write` / `nir.read`) and back into a Nengo network (`from_nir`); the
imported network's spiking outputs equal the trained model's.

Run: ``python examples/nir_roundtrip.py [--epochs N] [--steps N]``
(needs ``pip install keras-nengo[nir]``).
"""

import argparse
import tempfile
from pathlib import Path

import keras_nengo as kn  # first: selects tf-keras
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
    return net


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--neurons", type=int, default=30)
    args = parser.parse_args(argv)

    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, size=(256, 1, 1))
    model = kn.NengoModel(build_network(args.neurons), seed=0)
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


if __name__ == "__main__":
    main()
