"""Keras data (arrays, lists, dicts, tensors) <-> the network's input/output names.

Inputs are Nodes and outputs are Probes, each with a stable name (see
`keras_nengo.naming`). Wherever data or per-output settings are keyed, the key
may be the Nengo object itself, its name or its label. Data for an input Node
is optional: a Node given no data runs its own output, as in NengoDL. A single
array (not a list or dict) goes to the first input Node in ``inputs`` order.
"""

from __future__ import annotations

import nengo
import numpy as np
import tensorflow as tf

from keras_nengo._compat import nengo_dl


def default_inputs(network: nengo.Network, inputs=None) -> list:
    """The input Nodes: ``inputs`` checked, or every Node NengoDL treats as input."""
    if inputs is None:
        return [
            node
            for node in network.all_nodes
            if node.size_in == 0
            and node.size_out > 0
            and not isinstance(node, nengo_dl.TensorNode)
        ]
    nodes = _members(inputs, nengo.Node, network.all_nodes, "input")
    for node in nodes:
        if node.size_in != 0 or isinstance(node, nengo_dl.TensorNode):
            raise ValueError(
                f"Node {node} cannot be fed from data: it has inputs "
                f"(size_in={node.size_in}) or is a TensorNode. Expected: a Node "
                "with size_in == 0 (no incoming connections)."
            )
    return nodes


def default_outputs(network: nengo.Network, outputs=None) -> list:
    """The output Probes: ``outputs`` checked, or every Probe of the network."""
    if outputs is None:
        return list(network.all_probes)
    return _members(outputs, nengo.Probe, network.all_probes, "output")


def _members(objs, kind, all_objs, role) -> list:
    """``objs`` as a list, each checked to be a ``kind`` among ``all_objs``."""
    objs = list(objs)
    noun = kind.__name__
    for obj in objs:
        if not isinstance(obj, kind) or not any(obj is other for other in all_objs):
            raise ValueError(
                f"Every {role} must be a nengo.{noun} of the network. "
                f"Received: {obj!r}. Pass {noun}s created inside the network."
            )
    return objs


def describe(value) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"array of shape {tuple(shape)}"
    return type(value).__name__


def check_numeric(value, what: str) -> None:
    """Raise unless ``value`` (array or tensor) holds real numbers or booleans.

    Parameters
    ----------
    value : array-like or tf.Tensor
    what : str
        The data, for the message (e.g. ``"Input 'stim' (Node <Node "stim">)"``).

    Raises
    ------
    TypeError
        For strings, objects, complex numbers and other non-real dtypes.
    """
    if tf.is_tensor(value):
        dtype = value.dtype
        real = dtype.is_floating or dtype.is_integer or dtype.is_bool
        name = dtype.name
    else:
        dtype = np.asarray(value).dtype
        real = dtype.kind in "biuf"
        name = str(dtype)
    if not real:
        raise TypeError(
            f"{what} expects real numbers (float, int or bool). Received: data of "
            f"dtype {name}. Convert it first, e.g. np.asarray(data, "
            "dtype='float32')."
        )


class Signature:
    """The named inputs and outputs of a network, and data keyed by them.

    Parameters
    ----------
    input_nodes : list of nengo.Node
    input_names : list of str
    output_probes : list of nengo.Probe
    output_names : list of str
    """

    def __init__(self, input_nodes, input_names, output_probes, output_names):
        self.input_nodes = list(input_nodes)
        self.input_names = list(input_names)
        self.output_probes = list(output_probes)
        self.output_names = list(output_names)

    @staticmethod
    def _name_for(key, names, objects, kind):
        if isinstance(key, str):
            if key in names:
                return key
            matches = [name for name, obj in zip(names, objects) if obj.label == key]
            if len(matches) == 1:
                return matches[0]
        else:
            for name, obj in zip(names, objects):
                if obj is key:
                    return name
        noun = "Node" if kind == "input" else "Probe"
        raise ValueError(
            f"Unknown {kind} {key!r}. Expected one of the {kind} {noun}s, by "
            f"object, name or label: {names}. Received: a key of type "
            f"{type(key).__name__}. Fix the key, or leave it out."
        )

    def input_key(self, key) -> str:
        """Map a Node, input name or label to the input name."""
        return self._name_for(key, self.input_names, self.input_nodes, "input")

    def output_key(self, key) -> str:
        """Map a Probe, output name or label to the output name."""
        return self._name_for(key, self.output_names, self.output_probes, "output")

    def outputs_by_name(self, struct):
        """A dict keyed by Probe/name/label re-keyed by output name."""
        if isinstance(struct, dict):
            return {self.output_key(key): value for key, value in struct.items()}
        return struct

    def inputs_by_name(self, data, what="x") -> dict:
        """``data`` as one array, a list in ``inputs`` order or a dict -> by name.

        A single array goes to the first input Node; inputs given no data are
        left out (their Nodes run their own output).
        """
        if data is None:
            return {}
        if isinstance(data, dict):
            return {self.input_key(key): value for key, value in data.items()}
        names = self.input_names
        if isinstance(data, (list, tuple)):
            if len(data) != len(names):
                raise ValueError(
                    f"Expected a list of {len(names)} arrays as {what}, one per "
                    f"input {names}. Received: a list of {len(data)} items. Pass a "
                    "dict keyed by input name to give data for some inputs only."
                )
            return dict(zip(names, data))
        if not names:
            raise ValueError(
                f"This network has no input Nodes, so it takes no {what}. "
                f"Received: {describe(data)}. Pass None and n_steps instead."
            )
        return {names[0]: data}

    def check_x(self, x, what="x") -> dict:
        """``{input name: array or tensor}`` with shapes checked."""
        data = self.inputs_by_name(x, what)
        batch = steps = first = None
        for name, node in zip(self.input_names, self.input_nodes):
            if name not in data:
                continue
            value = data[name]
            if not tf.is_tensor(value):
                value = np.asarray(value)
            data[name] = value
            check_numeric(value, f"Input {name!r} (Node {node})")
            shape = tuple(value.shape)
            if len(shape) != 3 or shape[2] != node.size_out:
                hint = ""
                if not isinstance(x, (dict, list, tuple)) and len(self.input_names) > 1:
                    hint = (
                        f" A single array goes to the first input {name!r}; pass a "
                        f"dict keyed by input name ({self.input_names}) to feed "
                        "another."
                    )
                raise ValueError(
                    f"Input {name!r} (Node {node}) expects data of shape (batch, "
                    f"n_steps, {node.size_out}). Received: shape {shape}.{hint}"
                )
            if first is None:
                batch, steps, first = shape[0], shape[1], name
            elif shape[0] != batch or shape[1] != steps:
                raise ValueError(
                    f"All inputs need the same batch size and number of steps. "
                    f"Received: {first!r} with shape[:2]={(batch, steps)} and "
                    f"{name!r} with shape[:2]={shape[:2]}."
                )
        return data

    def check_y(self, y, n_samples):
        """Targets as one array (one output) or ``{output name: array}``.

        A target's last dimension is the probe size, or 1 for integer class labels
        (sparse losses), as in Keras and NengoDL.
        """
        if y is None:
            return None
        if isinstance(y, dict):
            data = {self.output_key(key): value for key, value in y.items()}
        elif isinstance(y, (list, tuple)):
            if len(y) != len(self.output_names):
                raise ValueError(
                    f"Expected a list of {len(self.output_names)} targets, one per "
                    f"output {self.output_names}. Received: a list of {len(y)}."
                )
            data = dict(zip(self.output_names, y))
        elif len(self.output_names) != 1:
            raise ValueError(
                f"This model has {len(self.output_names)} outputs "
                f"{self.output_names}, so y must be a dict keyed by Probe or name "
                f"(or a list). Received: {describe(y)}."
            )
        else:
            data = {self.output_names[0]: y}
        for name, probe in zip(self.output_names, self.output_probes):
            if name not in data:
                continue
            value = data[name]
            if not tf.is_tensor(value):
                value = np.asarray(value)
            data[name] = value
            check_numeric(value, f"Target {name!r} (Probe {probe})")
            shape = tuple(value.shape)
            if len(shape) != 3 or shape[2] not in (probe.size_in, 1):
                raise ValueError(
                    f"Target {name!r} (Probe {probe}) expects data of shape (batch, "
                    f"n_steps, {probe.size_in}), or (batch, n_steps, 1) for integer "
                    f"labels. Received: shape {shape}."
                )
            if n_samples is not None and shape[0] != n_samples:
                raise ValueError(
                    f"x and y must have the same number of samples. Received: "
                    f"{n_samples} samples in x and {shape[0]} in y for {name!r}."
                )
        if len(self.output_names) == 1:
            return data.get(self.output_names[0])
        return data


def n_samples(data: dict):
    """The number of samples in checked data, or None without data."""
    for value in data.values():
        return int(value.shape[0])
    return None


def as_tensors(structure, dtype):
    """Float arrays as tensors of ``dtype``, so Keras does not cast them to floatx.

    Keras's data adapter turns float NumPy arrays into ``floatx`` (float32)
    arrays; tensors it leaves alone. Integer arrays (class labels) stay as they
    are.
    """

    def convert(value):
        if isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating):
            return tf.convert_to_tensor(value, dtype)
        return value

    return tf.nest.map_structure(convert, structure)
