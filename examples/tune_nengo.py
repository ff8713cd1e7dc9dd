"""Tune a Nengo network's neuron count, neuron type and learning rate.

Runs keras-tuner's Hyperband over NengoDL's tutorial network (x -> x**2 ->
sin(x**2)) with `keras_nengo.tuning.NengoHyperModel`: the search space is
written in Nengo terms, keras_nengo turns every candidate network into a
compiled NengoModel. Prints the best hyperparameters and the best model's
named weights.

    python examples/tune_nengo.py --max-trials 6 --epochs 4

Distributed (one chief, two workers on this machine; the same script, with
keras-tuner's environment variables set by ``run_distributed``)::

    python -c "from keras_nengo.tuning import run_distributed; \\
        run_distributed('examples/tune_nengo.py', ['--directory', 'tuning'])"
"""

import argparse
import tempfile

import keras_nengo  # noqa: F401  (first: before keras_tuner)
import keras_tuner as kt
import nengo
import numpy as np

from keras_nengo.bench import tutorial_network
from keras_nengo.tuning import NengoHyperModel

NEURON_TYPES = {"lif": nengo.LIF(), "relu": nengo.RectifiedLinear()}


def build_network(hp):
    """The tutorial network with a tuned size and neuron type."""
    net = tutorial_network(seed=0, n_neurons=hp.Choice("n_neurons", [10, 20, 40]))
    neuron_type = NEURON_TYPES[hp.Choice("neuron_type", sorted(NEURON_TYPES))]
    net.square.neuron_type = neuron_type
    net.sin.neuron_type = neuron_type
    return net, [net.stim], [net.p_out_nofilt]


def make_data(n_samples, seed):
    rng = np.random.RandomState(seed)
    x = rng.uniform(-1, 1, size=(n_samples, 1, 1))
    return x, np.sin(x**2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--n-samples", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--directory",
        default=None,
        help="tuner directory, kept (default: a temporary one, removed at the end)",
    )
    args = parser.parse_args(argv)
    if args.directory:
        search(args, args.directory)
    else:
        with tempfile.TemporaryDirectory(prefix="tune_nengo_") as directory:
            search(args, directory)
            print("(a temporary directory, removed now: --directory keeps one)")


def search(args, directory):
    """Run the search in ``directory``; the chief prints the best trial."""
    x_train, y_train = make_data(args.n_samples, seed=0)
    x_val, y_val = make_data(max(args.n_samples // 4, 8), seed=1)

    tuner = kt.RandomSearch(
        NengoHyperModel(build_network, model_kwargs={"seed": 0}),
        objective="val_loss",
        max_trials=args.max_trials,
        directory=directory,
        project_name="tune_nengo",
        seed=0,
    )
    tuner.search(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=args.epochs,
        batch_size=args.batch_size,
        verbose=0,
    )

    if tuner.tuner_id not in ("chief", "tuner0"):
        return  # a distributed worker: the chief reports
    best_trial = tuner.oracle.get_best_trials(1)[0]
    print(f"Best hyperparameters (val_loss {best_trial.score:.4g}):")
    for name, value in best_trial.hyperparameters.values.items():
        print(f"  {name}: {value}")
    best_model = tuner.get_best_models(1)[0]
    print("Named weights of the best model:")
    for name, value in best_model.get_named_weights().items():
        print(f"  {name}: shape {value.shape}, mean |w| {np.abs(value).mean():.4g}")
    print(f"Tuner directory: {directory}")


if __name__ == "__main__":
    main()
