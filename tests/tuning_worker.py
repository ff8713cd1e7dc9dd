"""A tiny keras-tuner search, run as a subprocess by tests/test_tuning.py.

Used for distributed runs (chief/workers read keras-tuner's environment
variables) and for the resume test (killed part-way, then run again).
"""

import argparse
import time

import keras_nengo  # noqa: F401  isort: skip  (first: before keras_tuner)
import keras_tuner as kt
import numpy as np

from keras_nengo.bench import tutorial_network
from keras_nengo.tuning import NengoHyperModel


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--directory", required=True)
    parser.add_argument("--max-trials", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument(
        "--build-delay",
        type=float,
        default=0.0,
        help="seconds to sleep in every trial's build (gives tests a window)",
    )
    args = parser.parse_args()

    def build_network(hp):
        if args.build_delay:
            time.sleep(args.build_delay)
        net = tutorial_network(n_neurons=hp.Int("n_neurons", 4, 12, step=2))
        return net, [net.stim], [net.p_out_nofilt]

    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, size=(16, 1, 1))
    y = np.sin(x**2)
    tuner = kt.RandomSearch(
        NengoHyperModel(build_network, model_kwargs={"seed": 0}),
        objective="val_loss",
        max_trials=args.max_trials,
        directory=args.directory,
        project_name="search",
        overwrite=args.overwrite,
        seed=0,
    )
    tuner.search(
        x, y, validation_data=(x, y), epochs=args.epochs, batch_size=8, verbose=0
    )
    print("SEARCH DONE", tuner.tuner_id)


if __name__ == "__main__":
    main()
