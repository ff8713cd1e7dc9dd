"""The ``keras-nengo`` command."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``keras-nengo``."""
    from keras_nengo.demo import DEFAULTS  # pylint: disable=import-outside-toplevel
    from keras_nengo.version import version  # pylint: disable=import-outside-toplevel

    parser = argparse.ArgumentParser(
        prog="keras-nengo",
        description=(
            "Train and analyse Nengo networks with Keras. keras_nengo wraps a "
            "nengo.Network in keras_nengo.NengoModel (a tf-keras Model with one "
            "named variable per Nengo parameter), running NengoDL 3.6.0 on "
            "TensorFlow 2.21 + tf-keras."
        ),
        epilog="Python API: `import keras_nengo as kn; kn.NengoModel(network)`.",
    )
    parser.add_argument("--version", action="version", version=f"keras-nengo {version}")
    parser.add_argument(
        "--stack",
        action="store_true",
        help="print the versions of TensorFlow, tf-keras, Nengo, NengoDL, NumPy "
        "and keras-tuner in use, then exit",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="train NengoDL's tutorial network (sin(x^2)) with Keras, log "
        "Jacobian norms to TensorBoard and plot the result",
        description="Train NengoDL's tutorial network (sin(x^2)) with Keras "
        "(encoders and biases, rate mode), then show what changed: spiking test "
        "error before/after and its relative improvement, the loss curve, "
        "d output / d x against 2x cos(x^2), Jacobian norms per weight, "
        "TensorBoard logs and a PNG.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    demo.add_argument("--log-dir", default="logs/demo", help="TensorBoard directory")
    demo.add_argument(
        "--epochs", type=_positive_int, default=DEFAULTS["epochs"], help="epochs"
    )
    demo.add_argument("--out", default="keras_nengo_demo.png", help="PNG to write")
    demo.add_argument(
        "--train-samples",
        type=_positive_int,
        default=DEFAULTS["n_train"],
        help="training samples (the tutorial uses 4096)",
    )
    demo.add_argument(
        "--learning-rate",
        type=_positive_float,
        default=DEFAULTS["learning_rate"],
        help="RMSprop learning rate (the tutorial's)",
    )
    demo.add_argument(
        "--test-steps",
        type=_positive_int,
        default=DEFAULTS["n_steps"],
        help="steps each spiking test value is held for; the error is measured "
        "over the last third, once the 0.04 s output filter has settled",
    )
    bench = commands.add_parser(
        "bench",
        help="benchmark NengoModel against nengo_dl.Simulator (fit/predict "
        "throughput, jacobian, JacobianNormLogger overhead, fit memory)",
        description="Benchmark NengoModel against nengo_dl.Simulator, the same "
        "maths hand-written in one tf.function, and hand-written Jacobian code "
        "on the tutorial network, NengoDL's integrator and cconv benchmark "
        "networks, a 2x1000-neuron LIF net, Linear(n x n)+LIF over 100 steps "
        "and an SPA-style net with two CircularConvolutions; prints one table "
        "row per figure with the ratio and its target. Medians over repeats, "
        "same-run ratios.",
    )
    bench.add_argument(
        "--quick",
        action="store_true",
        help="small sizes, Jacobian figures on the tutorial/jac_2x200 nets only, "
        "memory on ff_2x1000 only (< 2 min on 2 cores)",
    )
    bench.add_argument(
        "--json", metavar="PATH", help="also write all numbers and machine info"
    )
    bench.add_argument(
        "--networks",
        metavar="A,B",
        help="comma-separated subset of tutorial, integrator, cconv, ff_2x1000, "
        "linear_lif_512, linear_lif_2048, spa_cconv2, jac_2x200 (default: all)",
    )
    bench.add_argument(
        "--peers",
        action="store_true",
        help="also time snnTorch and Norse on the Linear+LIF shape (when installed)",
    )
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer. Received: {text!r}"
        )
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(
            f"expected a positive number. Received: {text!r}"
        )
    return value


def _quiet_tensorflow():
    """Keep TensorFlow's C++ and Python log lines off the terminal.

    The first TensorFlow op initialises the devices, and on a machine without
    a GPU the CUDA runtime prints an error line for that; it is noise here, so
    that first op runs while the C-level stderr points to /dev/null.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from keras_nengo._compat import (  # pylint: disable=import-outside-toplevel
        native_stderr_to_devnull,
    )

    tf.get_logger().setLevel("ERROR")
    tf.autograph.set_verbosity(0)
    with native_stderr_to_devnull():
        tf.constant(0.0).numpy()


def stack_versions() -> dict:
    """Versions of the stack keras_nengo runs on (imports it)."""
    import keras_tuner  # pylint: disable=import-outside-toplevel
    import nengo  # pylint: disable=import-outside-toplevel
    import nengo_dl  # pylint: disable=import-outside-toplevel
    import numpy  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    import tf_keras  # pylint: disable=import-outside-toplevel

    import keras_nengo  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import

    return {
        "keras_nengo": keras_nengo.__version__,
        "tensorflow": tf.__version__,
        "tf_keras": tf_keras.__version__,
        "nengo": nengo.__version__,
        "nengo_dl": nengo_dl.__version__,
        "numpy": numpy.__version__,
        "keras_tuner": keras_tuner.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``keras-nengo``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        _quiet_tensorflow()
        from keras_nengo.demo import run_demo  # pylint: disable=import-outside-toplevel

        run_demo(
            log_dir=args.log_dir,
            epochs=args.epochs,
            out=args.out,
            n_train=args.train_samples,
            learning_rate=args.learning_rate,
            n_steps=args.test_steps,
        )
        return 0
    if args.command == "bench":
        import json  # pylint: disable=import-outside-toplevel
        import time  # pylint: disable=import-outside-toplevel

        # pylint: disable-next=import-outside-toplevel
        from keras_nengo import bench as benchmarks

        networks = args.networks.split(",") if args.networks else None
        known = benchmarks.all_networks(
            benchmarks.QUICK if args.quick else benchmarks.FULL
        )
        unknown = sorted(set(networks or ()) - set(known))
        if unknown or networks == [""]:
            parser.error(
                f"unknown benchmark networks {unknown}. Expected comma-separated "
                f"names from {list(known)}. Received: --networks={args.networks!r}"
            )
        _quiet_tensorflow()
        start = time.perf_counter()
        report = benchmarks.run_benchmarks(
            networks=networks,
            quick=args.quick,
            peers=args.peers,
            log=lambda line: print(f"... {line}", file=sys.stderr, flush=True),
        )
        print(benchmarks.format_table(report))
        print(f"\nwall time {time.perf_counter() - start:.0f} s")
        if args.json:
            with open(args.json, "w", encoding="utf-8") as file:
                json.dump(report, file, indent=2)
            print(f"wrote {args.json}")
        return 0
    if args.stack:
        for name, value in stack_versions().items():
            print(f"{name:12s} {value}")
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
