"""The network inside a Keras config, and Keras's ``safe_mode`` when loading it.

A `NengoLayer`'s config carries its network, its input Nodes and its output
Probes pickled together (so object identities survive) with ``cloudpickle``,
which also pickles what Nengo networks routinely hold and the standard pickler
refuses: lambdas and functions defined in ``__main__`` or a notebook. Functions
defined in an importable module are pickled by reference, so that module must
be importable where the file is loaded.

Unpickling runs code, so loading honours Keras's ``safe_mode``: inside
``tf.keras.models.load_model(..., safe_mode=True)`` (the default) it refuses.
"""

from __future__ import annotations

import base64
import pickle

import cloudpickle
from tf_keras.src.saving import saving_lib, serialization_lib

#: marks the format of a serialized network in a config
FORMAT = "keras_nengo.network/cloudpickle-v1"


def deserialize_keras_object(config):
    """Keras's own deserializer (compile arguments stored in a .keras file)."""
    return saving_lib.deserialize_keras_object(config)


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
    if serialization_lib.in_safe_mode():
        raise ValueError(
            "This file holds a Nengo network, which is stored as a Python pickle; "
            "unpickling runs code, so Keras's safe_mode refuses it. If you trust "
            "the file, load it with tf.keras.models.load_model(path, "
            "safe_mode=False). Without running code from the file: build the "
            "network again in code, make the same model (kn.NengoModel(network) or "
            "your Keras model around kn.NengoLayer(network)) and call "
            "model.load_weights(path)."
        )
    network, inputs, outputs = pickle.loads(base64.b64decode(config["pickle"]))
    return network, inputs, outputs
