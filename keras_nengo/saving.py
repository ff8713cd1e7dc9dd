"""The network inside a Keras config, and Keras's ``safe_mode`` when loading it.

A `NengoLayer`'s config carries its network, its input Nodes and its output
Probes pickled together (so object identities survive) with ``cloudpickle``,
which also pickles what Nengo networks routinely hold and the standard pickler
refuses: lambdas and functions defined in ``__main__`` or a notebook. Functions
defined in an importable module are pickled by reference, so that module must
be importable where the file is loaded.

Unpickling runs code, so loading honours Keras's ``safe_mode``: inside
``keras.models.load_model(..., safe_mode=True)`` (the default) it refuses.

`atomic_file` makes a save all or nothing: Keras writes ``.keras`` and ``.h5``
files in place, so a process killed while ``ModelCheckpoint`` writes would
leave a truncated file where the last good checkpoint was.
"""

from __future__ import annotations

import base64
import contextlib
import os
import pickle

import cloudpickle

from keras_nengo import _compat, _keras_apis

#: marks the format of a serialized network in a config
FORMAT = "keras_nengo.network/cloudpickle-v1"


def deserialize_keras_object(config):
    """Keras's own deserializer (compile arguments stored in a .keras file)."""
    return _compat.keras.saving.deserialize_keras_object(config)


def serialize_network(network, inputs, outputs) -> dict:
    """``network`` with its input Nodes and output Probes as a JSON-safe dict."""
    payload = cloudpickle.dumps((network, list(inputs), list(outputs)))
    return {"format": FORMAT, "pickle": base64.b64encode(payload).decode("ascii")}


def deserialize_network(config: dict):
    """``(network, inputs, outputs)`` from `serialize_network`'s dict.

    Raises
    ------
    ValueError
        Inside ``load_model(..., safe_mode=True)``: unpickling runs code; or if
        ``config`` is not a serialized network.
    """
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(
            f"Expected a network serialized by keras_nengo (format {FORMAT!r}). "
            f"Received: {config!r:.200}."
        )
    if _keras_apis.in_safe_mode():
        raise ValueError(
            "This file holds a Nengo network, which is stored as a Python pickle; "
            "unpickling runs code, so Keras's safe_mode refuses it. If you trust "
            "the file, load it with keras.models.load_model(path, "
            "safe_mode=False). Without running code from the file: build the "
            "network again in code, make the same model (kn.NengoModel(network) or "
            "your Keras model around kn.NengoLayer(network)) and call "
            "model.load_weights(path)."
        )
    network, inputs, outputs = pickle.loads(base64.b64decode(config["pickle"]))
    return network, inputs, outputs


@contextlib.contextmanager
def atomic_file(filepath, overwrite=True):
    """Yield a path to write instead of ``filepath``, moved onto it on success.

    For a local ``.keras``, ``.h5`` or ``.hdf5`` file the path is a partial file
    beside it (same folder, same extension, ``.weights.h5`` included, so Keras
    picks the same format);
    ``os.replace`` then swaps it in at once, so ``filepath`` holds either the
    old complete file or the new one, also if the process is killed meanwhile.
    Other targets (SavedModel folders, TensorFlow checkpoint prefixes, which
    TensorFlow itself writes through temporary files) are yielded unchanged,
    as is an existing file with ``overwrite=False`` (Keras asks the user).
    """
    if not isinstance(filepath, (str, os.PathLike)):
        yield filepath
        return
    path = os.fspath(filepath)
    stem, extension = os.path.splitext(path)
    if stem.endswith(".weights"):
        # Keras 3 takes weights files by their double extension only
        stem, extension = stem[: -len(".weights")], ".weights" + extension
    if (
        extension not in (".keras", ".h5", ".hdf5")
        or "://" in path
        or (not overwrite and os.path.exists(path))
    ):
        yield filepath
        return
    folder, name = os.path.split(stem)
    partial = os.path.join(folder, f".{name}.partial-{os.getpid()}{extension}")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
