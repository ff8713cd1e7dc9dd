"""NengoDL's TensorGraph, adapted: built once per network, fed from outside.

The pieces `keras_nengo.simulation` puts around ``nengo_dl.TensorGraph``:
building the Nengo model as ``nengo_dl.Simulator`` does, reusing the operator
plan across minibatch sizes, precision from an argument, names for TensorNode
layers' weights, where each named parameter sits in NengoDL's merged storage
(`Feed`), bounded simulation loops for XLA, and building outside traces.
"""

from __future__ import annotations

import contextlib
import threading

import nengo
import numpy as np
import tensorflow as tf

from keras_nengo._compat import nengo_dl, nengo_dl_tf


def build_nengo_model(network: nengo.Network, dt: float, seed: int, dtype: str):
    """Build ``network`` with NengoDL's builder, as ``nengo_dl.Simulator`` does."""
    precision = nengo.rc.get("precision", "bits")
    nengo.rc.set("precision", "bits", dtype[-2:])
    try:
        model = nengo_dl.builder.NengoModel(
            dt=float(dt),
            label=f"{network}, dt={dt:f}",
            builder=nengo_dl.builder.NengoBuilder(),
            fail_fast=False,
        )
        if network.seed is None:
            # the builder seeds everything from the network's seed; without one it
            # draws from the global RNG, so give it the simulation's seed instead
            model.seeds[network] = seed
            model.seeded[network] = False
        model.build(network)
    finally:
        nengo.rc.set("precision", "bits", precision)
    return model


class Plan:
    """NengoDL's operator plan, made once and reused by every minibatch size.

    A TensorGraph simplifies, merges and sorts the model's operators when it is
    made (seconds for networks with thousands of objects); none of that depends
    on the minibatch size, so later graphs take the first one's result.
    """

    def __init__(self):
        self.signals_and_plan = None

    def sorter(self, plan, n_passes=10):
        return self.signals_and_plan

    @staticmethod
    def planner(operators):
        return operators


@contextlib.contextmanager
def graph_settings(dtype, plan):
    """NengoDL's settings for a TensorGraph made by keras_nengo.

    The precision is ``dtype`` whatever ``configure_settings(dtype=...)`` on the
    network says (keras_nengo takes it as an argument instead of changing the
    user's network config), and an existing `Plan` is reused.
    """
    module = nengo_dl.tensor_graph.config
    original = module.get_setting

    def get_setting(model, setting, default=None, obj=None):
        if setting == "dtype" and obj is None:
            return dtype
        if obj is None and plan.signals_and_plan is not None:
            if setting == "simplifications":
                return []
            if setting in ("planner", "sorter"):
                return getattr(plan, setting)
        value = original(model, setting, default=default, obj=obj)
        if setting == "sorter" and obj is None and plan.signals_and_plan is None:

            def sorter(*args, **kwargs):
                plan.signals_and_plan = value(*args, **kwargs)
                return plan.signals_and_plan

            return sorter
        return value

    module.get_setting = get_setting
    try:
        yield
    finally:
        module.get_setting = original


def outside_trace(function):
    """Call ``function()`` as if no ``tf.function`` were being traced; return its value.

    Building a graph or state makes variables, which a ``tf.function`` allows only
    on its first trace; a new thread starts in eager mode with its own variable
    creator stack, as if the work had been done before the trace.
    """
    if tf.executing_eagerly():
        return function()
    results, errors = [], []

    def work():
        try:
            results.append(function())
        except Exception as error:  # pylint: disable=broad-except
            errors.append(error)

    thread = threading.Thread(target=work, name="keras_nengo-build")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]


class BoundedLoops:
    """``tf`` for NengoDL's graph code, with its simulation loop bounded.

    NengoDL's ``tf.while_loop`` has no ``maximum_iterations`` and its probe
    TensorArrays grow dynamically; XLA compiles only loops (and their gradients'
    accumulators) of bounded length, and fills dynamic arrays wrongly (empty).
    With ``steps`` known, both are bounded: same values, and XLA can compile it.
    """

    def __init__(self, iterations, steps):
        self._iterations = iterations
        self._steps = steps

    def __getattr__(self, name):
        return getattr(nengo_dl_tf, name)

    def while_loop(self, *args, **kwargs):
        kwargs.setdefault("maximum_iterations", self._iterations)
        return tf.while_loop(*args, **kwargs)

    def TensorArray(self, *args, **kwargs):  # noqa: N802  (tf's name)
        if self._steps is not None and kwargs.get("dynamic_size"):
            kwargs.update(size=self._steps, dynamic_size=False)
        return tf.TensorArray(*args, **kwargs)


@contextlib.contextmanager
def layers_named(layer_names):
    """Let NengoDL build TensorNode layers under their Nengo names.

    NengoDL builds each layer inside ``tf.name_scope(layer.name)``, so its
    weights would be ``dense_3/kernel`` after a Keras counter; named for the
    build, they are ``<TensorNode name>/kernel``, as stable as the named variables.
    """
    renamed = [(layer, layer._name) for layer, _ in layer_names]
    for layer, name in layer_names:
        layer._name = name
    try:
        yield
    finally:
        for layer, original in renamed:
            layer._name = original


class Parameter:
    """Where one named Nengo parameter lives in NengoDL's merged storage."""

    def __init__(self, name, obj, attr, signal, trainable):
        self.name = name
        self.obj = obj
        self.attr = attr
        self.signal = signal
        self.trainable = trainable
        initial = signal.initial_value
        if hasattr(initial, "indices"):
            initial = initial.data
        elif signal.sparse:
            initial = initial.tocoo().data
        self.initial_value = np.array(initial)
        self.shape = self.initial_value.shape


def constant(value):
    """A tensor of ``value`` (its own dtype), as a fill where that keeps it small."""
    flat = value.reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return tf.fill(value.shape, tf.constant(flat[0], value.dtype))
    return tf.constant(value)


class Feed:
    """How one built TensorGraph is fed: parameter pieces and initial state."""

    def __init__(self, graph, parameters):
        self.pieces = {}
        by_key = {}
        for param in parameters:
            tensor_sig = graph.signals[param.signal]
            if tensor_sig.minibatched or len(tensor_sig.slices) != 1:
                raise NotImplementedError(
                    f"Cannot map Nengo parameter {param.name!r} ({param.obj}) onto "
                    f"NengoDL's storage (slices {tensor_sig.slices})."
                )
            start, stop = tensor_sig.slices[0]
            by_key.setdefault(tensor_sig.key, []).append(
                (start, stop, param, tensor_sig.shape)
            )
        own = {key: var.numpy() for key, var in graph.base_params.items()}
        for key, found in by_key.items():
            found.sort(key=lambda piece: piece[0])
            pieces, position = [], 0
            for start, stop, param, shape in found:
                if start > position:
                    pieces.append(own[key][position:start])
                pieces.append((param, shape))
                position = stop
            if position < own[key].shape[0]:
                pieces.append(own[key][position:])
            self.pieces[key] = pieces
        # values NengoDL keeps in variables that are not named parameters: fixed
        # for the life of the build, so they enter the graph as constants
        self.fixed = {key: value for key, value in own.items() if key not in by_key}
        # learning-rule targets: parameters that change per sample, i.e. state
        self.learned = [
            key
            for kind in ("trainable", "non_trainable")
            for key, init in graph.base_arrays_init[kind].items()
            if init[-1]
        ]
        self.initial_state = {
            key: var.numpy() for key, var in graph.saved_state.items()
        }
        self.initial_state.update({("learned", key): own[key] for key in self.learned})
