"""The ``keras-nengo`` command."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``keras-nengo``."""
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
    parser.add_argument(
        "--version", action="version", version=f"keras-nengo {version}"
    )
    parser.add_argument(
        "--stack",
        action="store_true",
        help="print the versions of TensorFlow, tf-keras, Nengo, NengoDL, NumPy "
        "and keras-tuner in use, then exit",
    )
    return parser


def stack_versions() -> dict:
    """Versions of the stack keras_nengo runs on (imports it)."""
    import keras_nengo  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    import keras_tuner  # pylint: disable=import-outside-toplevel
    import nengo  # pylint: disable=import-outside-toplevel
    import nengo_dl  # pylint: disable=import-outside-toplevel
    import numpy  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    import tf_keras  # pylint: disable=import-outside-toplevel

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
    if args.stack:
        for name, value in stack_versions().items():
            print(f"{name:12s} {value}")
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
