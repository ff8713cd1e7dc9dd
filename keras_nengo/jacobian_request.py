"""``model.jacobian``: resolving a request to names and checking its path.

`JacobianMixin` gives `keras_nengo.NengoModel` its ``jacobian`` method: it turns
``wrt``/``output``/``steps`` into input and weight names, refuses paths that
cannot be differentiated (naming the Nengo object that blocks them) and caches
one traced function per request; the differentiation itself is
`keras_nengo.jacobian.jacobian`.
"""

from __future__ import annotations

import collections
import fnmatch

import nengo
import numpy as np
import tensorflow as tf

from keras_nengo import jacobian as jacobian_module
from keras_nengo._compat import nengo_dl

JacobianRequest = collections.namedtuple(
    "JacobianRequest",
    "data output_name wrt_inputs wrt_weights indices squeeze single",
)


class JacobianMixin:
    """Jacobians of ``self.nengo_layer`` (a `keras_nengo.NengoLayer`)."""

    def jacobian(
        self,
        x,
        wrt="inputs",
        output=None,
        steps=-1,
        mode: str = "auto",
        training: bool = True,
        return_outputs: bool = False,
    ):
        """Per-sample Jacobian of one output w.r.t. inputs and/or named weights.

        Parameters
        ----------
        x : array_like, list or dict
            Input data, in the forms `predict` accepts.
        wrt : str, nengo object, or list of these
            ``"inputs"`` (every input), ``"weights"`` (every trainable named
            weight), an input or weight name, a glob over those names
            (``"sin/*"``), an input Node, an Ensemble or Connection (its named
            weights), or a list of these.
        output : nengo.Probe, str or None
            The output to differentiate; required if the model has several.
        steps : int, slice, list of int, or None
            Output time steps; an int drops the ``n_out_steps`` axis, None is all.
        mode : {"auto", "reverse", "forward"}
            Differentiation mode (see `keras_nengo.jacobian`); "auto" picks the
            cheaper one from the sizes involved.
        training : bool
            True runs spiking neurons as their differentiable rate approximation.
        return_outputs : bool
            If True, return ``(jacobians, outputs)`` where ``outputs`` is the
            selected output ``(batch, n_steps, out_dim)`` of the same forward pass.

        Returns
        -------
        jacobians : tf.Tensor or dict of {str: tf.Tensor}
            Inputs: ``(batch, [n_out_steps,] out_dim, n_steps, in_dim)``; weights:
            ``(batch, [n_out_steps,] out_dim, *weight.shape)``. A dict keyed by
            input/weight name, or the bare tensor when ``wrt`` is one name or
            object that resolves to exactly one input or weight.

        Raises
        ------
        ValueError
            For an unknown ``wrt`` or ``output``, an ambiguous ``output``, or a
            path that cannot be differentiated (a Python Node function, or
            spiking neurons with ``training=False``), naming the blocking object.
        """
        request = self._jacobian_request(x, wrt, output, steps, training)
        data, output_name = request.data, request.output_name
        wrt_inputs, wrt_weights = request.wrt_inputs, request.wrt_weights
        indices = request.indices

        key = (output_name, tuple(wrt_inputs), tuple(wrt_weights))
        key += (tuple(indices), mode, bool(training), request.squeeze)
        cache = self._jacobian_functions
        compute = cache.get(key)
        if compute is None:
            compute = self._jacobian_function(
                output_name,
                wrt_inputs,
                wrt_weights,
                indices,
                mode,
                training,
                request.squeeze,
            )
            cache[key] = compute
        result, outputs = compute(data)
        if request.single:
            result = next(iter(result.values()))
        if return_outputs:
            return result, outputs
        return result

    def _jacobian_request(self, x, wrt, output, steps, training):
        """Resolve and check a jacobian request, computing nothing.

        Raises the errors `jacobian` documents, so callers (and
        JacobianNormLogger, before training) can validate up front.
        """
        output_name = self._jacobian_output(output)
        probe = self.output_probes[self.output_names.index(output_name)]
        if not self.input_names:
            raise ValueError(
                "jacobian needs data inputs, but this network has none. Add an "
                "input Node (size_in=0) fed from data."
            )
        data = {
            name: tf.convert_to_tensor(value, dtype=self.nengo_layer.dtype)
            for name, value in self.signature.check_x(x).items()
        }
        if not data:
            raise ValueError(
                f"jacobian needs data for at least one input {self.input_names}. "
                f"Received: x={x!r:.100}."
            )
        n_steps = int(next(iter(data.values())).shape[1])
        indices, squeeze = jacobian_module.output_steps(steps, n_steps)
        wrt_inputs, wrt_weights, single = self._jacobian_wrt(wrt)
        unfed = [name for name in wrt_inputs if name not in data]
        if unfed:
            everything = wrt == "inputs" or (
                isinstance(wrt, (list, tuple)) and "inputs" in wrt
            )
            if not everything or len(unfed) == len(wrt_inputs):
                raise ValueError(
                    f"jacobian w.r.t. inputs {unfed} needs data for them; their "
                    f"Nodes run their own output here. Received data for "
                    f"{sorted(data)}. Pass data for {unfed} in x."
                )
            wrt_inputs = [name for name in wrt_inputs if name in data]
        self._jacobian_check_path(wrt_inputs, wrt_weights, probe, training)
        return JacobianRequest(
            data, output_name, wrt_inputs, wrt_weights, indices, squeeze, single
        )

    def _jacobian_function(
        self, output_name, wrt_inputs, wrt_weights, indices, mode, training, squeeze
    ):
        position = self.output_names.index(output_name)
        probe = self.output_probes[position]
        layer = self.nengo_layer
        variables = {name: layer.named_variables[name] for name in wrt_weights}

        def function(inputs):
            return tf.nest.flatten(layer(inputs, training=training))[position]

        @tf.function(autograph=False)
        def compute(data):
            input_jacobians, weight_jacobians, outputs = jacobian_module.jacobian(
                function,
                data,
                wrt_inputs=wrt_inputs,
                variables=variables,
                steps=indices,
                mode=mode,
                out_dim=int(np.prod(probe.size_in)),
            )
            result = dict(input_jacobians)
            result.update(weight_jacobians)
            if squeeze:
                # in the graph: an eager slice per call costs more than the rest
                result = {name: value[:, 0] for name, value in result.items()}
            return result, outputs

        return compute

    def _jacobian_output(self, output):
        if output is None:
            if len(self.output_names) != 1:
                raise ValueError(
                    f"This model has {len(self.output_names)} outputs "
                    f"{self.output_names}, so jacobian needs to know which one to "
                    "differentiate. Received: output=None. Pass output=<Probe or "
                    "name>."
                )
            return self.output_names[0]
        return self.signature.output_key(output)

    def _jacobian_wrt(self, wrt):
        """Resolve ``wrt`` to (input names, weight names, single)."""
        layer = self.nengo_layer
        weights = list(layer.named_variables)
        trainable = [n for n in weights if layer.named_variables[n].trainable]
        items = list(wrt) if isinstance(wrt, (list, tuple)) else [wrt]
        single = not isinstance(wrt, (list, tuple)) and wrt not in ("inputs", "weights")
        inputs_found, weights_found = [], []

        def add(names, found):
            found.extend(name for name in names if name not in found)

        for item in items:
            if isinstance(item, str):
                if item == "inputs":
                    add(self.input_names, inputs_found)
                elif item == "weights":
                    add(trainable, weights_found)
                elif item in self.input_names:
                    add([item], inputs_found)
                elif item in weights:
                    add([item], weights_found)
                elif any(c in item for c in "*?["):
                    add(fnmatch.filter(self.input_names, item), inputs_found)
                    add(fnmatch.filter(weights, item), weights_found)
                    if not any(
                        fnmatch.fnmatch(n, item) for n in self.input_names + weights
                    ):
                        self._jacobian_unknown(item, weights)
                else:
                    self._jacobian_unknown(item, weights)
            elif any(item is node for node in self.input_nodes):
                add([layer.names.input_name(item)], inputs_found)
            else:
                owned = [
                    param.name
                    for param in layer.parameters
                    if param.obj is item or getattr(param.obj, "ensemble", None) is item
                ]
                if not owned:
                    self._jacobian_unknown(item, weights)
                add(owned, weights_found)
        if single and len(inputs_found) + len(weights_found) != 1:
            single = False
        if not inputs_found and not weights_found:
            raise ValueError(
                f"wrt={wrt!r} selects nothing to differentiate with respect to. "
                f"Valid: 'inputs', 'weights', inputs {self.input_names}, weights "
                f"{weights}."
            )
        return inputs_found, weights_found, single

    def _jacobian_unknown(self, item, weights):
        raise ValueError(
            f"Unknown wrt={item!r}. Expected 'inputs', 'weights', an input name "
            f"{self.input_names}, a weight name {weights}, a glob over those names "
            "(e.g. 'ens/*'), an input Node, or an Ensemble/Connection with named "
            "weights."
        )

    def _jacobian_check_path(self, wrt_inputs, wrt_weights, probe, training):
        """Raise if something non-differentiable lies between wrt and ``probe``."""

        def base(obj):
            if isinstance(obj, nengo.base.ObjView):
                obj = obj.obj
            if isinstance(obj, nengo.ensemble.Neurons):
                return obj.ensemble
            if isinstance(obj, nengo.connection.LearningRule):
                return obj.connection
            return obj

        successors, predecessors = {}, {}
        for conn in self.network.all_connections:
            for a, b in ((base(conn.pre_obj), conn), (conn, base(conn.post_obj))):
                successors.setdefault(a, []).append(b)
                predecessors.setdefault(b, []).append(a)

        def reach(starts, edges):
            seen, todo = set(starts), list(starts)
            while todo:
                for nxt in edges.get(todo.pop(), ()):
                    if nxt not in seen:
                        seen.add(nxt)
                        todo.append(nxt)
            return seen

        names = dict(zip(self.input_names, self.input_nodes))
        starts = [names[name] for name in wrt_inputs]
        by_name = {param.name: param for param in self.nengo_layer.parameters}
        starts += [base(by_name[name].obj) for name in wrt_weights]
        on_path = reach(starts, successors) & reach([base(probe.target)], predecessors)
        label = self.nengo_layer.names
        for obj in sorted(on_path, key=lambda o: label.name(o)):
            if (
                isinstance(obj, nengo.Node)
                and obj.size_in > 0
                and callable(obj.output)
                and not isinstance(obj.output, nengo.Process)
                and not isinstance(obj, nengo_dl.TensorNode)
            ):
                raise ValueError(
                    f"Cannot differentiate through Node {label.name(obj)!r} ({obj}): "
                    "its output is a Python function, which NengoDL runs outside "
                    "TensorFlow (tf.numpy_function), so no gradient flows through "
                    "it. Expected: only Ensembles, passthrough Nodes and "
                    "TensorNodes between wrt and the output. Replace it with a "
                    "nengo_dl.TensorNode computing the same function in TensorFlow."
                )
            if (
                not training
                and isinstance(obj, nengo.Ensemble)
                and getattr(obj.neuron_type, "spiking", False)
            ):
                raise ValueError(
                    f"Cannot differentiate through Ensemble {label.name(obj)!r} "
                    f"({obj}) with training=False: its neurons "
                    f"({type(obj.neuron_type).__name__}) spike, and spikes have no "
                    "useful derivative. Received: training=False. Use "
                    "training=True (the rate approximation), or rate neurons."
                )
