"""What Keras 3 cannot run, refused by name with the way out.

NengoDL 3.6.0 builds its graph with tf-keras inside every process (see
`keras_nengo._compat`). Under Keras 3 two things therefore cannot work, and are
refused here with an error that names the object and says what to do instead:

- **Weights of Keras layers inside TensorNodes.** NengoDL creates them while it
  builds its graph. A Keras 3 layer there would make Keras 3 variables that
  NengoDL's tf-keras graph does not track; a tf-keras layer makes plain
  ``tf.Variable`` s, which Keras 3's models do not collect and Keras 3's
  optimizers do not update. Either way they would silently not train.
- **``nengo_dl.Converter`` of a Keras 3 model.** The converter reads tf-keras
  internals (``get_input_shape_at``, inbound nodes) that Keras 3 models do not
  have. A tf-keras model converts in a Keras 3 process too.
- **Keras 3 optimizers, losses and metrics in ``nengo_dl.Simulator.compile``**
  (NengoDL's own Keras model is tf-keras; it would say only "Could not
  interpret optimizer identifier").
"""

from __future__ import annotations

import functools

from keras_nengo._compat import KERAS_3, keras, nengo_dl, tf_keras


def check_tensor_node_layers(network, names) -> None:
    """Raise if a TensorNode of ``network`` runs a Keras layer with weights.

    Call it after NengoDL built its graph (the layers are built then). Only
    under Keras 3: tf-keras tracks and trains such weights.

    Raises
    ------
    ValueError
        Naming the first such TensorNode and its layer.
    """
    if not KERAS_3:
        return
    for node in network.all_nodes:
        if not isinstance(node, nengo_dl.TensorNode):
            continue
        func = node.tensor_func
        if isinstance(func, (keras.layers.Layer, tf_keras.layers.Layer)) and (
            func.weights
        ):
            raise ValueError(
                f"TensorNode {names.name(node)!r} ({node}) runs the Keras layer "
                f"{func.name!r} ({type(func).__name__}) with {len(func.weights)} "
                "weight(s). In Keras 3 keras_nengo cannot train weights created "
                "inside NengoDL's graph (NengoDL runs on tf-keras). Received: "
                f"a {type(func).__module__.split('.')[0]} layer with weights. "
                "Expected: a TensorNode without weights (TensorFlow ops, or a "
                "weightless layer). Fix: put the layer outside the network, "
                "next to a kn.NengoLayer in a Keras model (e.g. "
                "keras.Sequential([..., kn.NengoLayer(net), keras.layers.Dense(...)"
                "])), or set TF_USE_LEGACY_KERAS=1 before starting Python to use "
                "tf-keras, where such weights train."
            )


def _check_before(owner, name, check) -> None:
    """Make ``owner.<name>`` call ``check(*args, **kwargs)`` first (once only)."""
    original = getattr(owner, name)
    if getattr(original, "_keras_nengo_checked", False):
        return

    @functools.wraps(original)
    def checked(self, *args, **kwargs):
        check(*args, **kwargs)
        return original(self, *args, **kwargs)

    checked._keras_nengo_checked = True
    setattr(owner, name, checked)


def _check_converted_model(model, *args, **kwargs):
    if KERAS_3 and not isinstance(model, tf_keras.Model):
        raise TypeError(
            "nengo_dl.Converter converts tf-keras models only; this process "
            "uses Keras 3, whose models it cannot read. Received: model="
            f"{getattr(model, 'name', model)!r} ({type(model).__module__}."
            f"{type(model).__name__}). Expected: a tf_keras.Model. Fix: build "
            "the model to convert with tf-keras (`import tf_keras`, then "
            "tf_keras.Sequential/tf_keras.Model and tf_keras.layers), convert "
            "it, and use the converted network with kn.NengoModel as usual; "
            "or set TF_USE_LEGACY_KERAS=1 before starting Python."
        )


def _check_compile_arguments(*args, **kwargs):
    if not KERAS_3:
        return
    for value in _flattened(list(args) + list(kwargs.values())):
        if type(value).__module__.startswith("keras."):
            raise TypeError(
                "nengo_dl.Simulator.compile takes tf-keras objects "
                "(NengoDL's Keras); this process uses Keras 3. Received: "
                f"{type(value).__module__}.{type(value).__name__} "
                f"({value!r}). Expected: the same from tf_keras. Fix: "
                "`import tf_keras` and pass "
                f"tf_keras.{_kind(value)}.{type(value).__name__}(...) "
                "(or a string such as 'sgd' or 'mse'); or train with "
                "kn.NengoModel, which takes Keras 3 objects."
            )


def refuse_converting_keras_3_models() -> None:
    """Make ``nengo_dl.Converter`` refuse a Keras 3 model with a clear error."""
    _check_before(nengo_dl.Converter, "__init__", _check_converted_model)


def refuse_keras_3_objects_in_nengo_dl_compile() -> None:
    """Make ``nengo_dl.Simulator.compile`` refuse Keras 3 objects by name."""
    _check_before(nengo_dl.Simulator, "compile", _check_compile_arguments)


def _flattened(values):
    for value in values:
        if isinstance(value, dict):
            yield from _flattened(value.values())
        elif isinstance(value, (list, tuple)):
            yield from _flattened(value)
        else:
            yield value


def _kind(value) -> str:
    for kind in ("optimizers", "losses", "metrics"):
        if f".{kind}." in type(value).__module__:
            return kind
    return "<module>"
