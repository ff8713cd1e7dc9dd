"""Named-weights API: one name per Nengo parameter, and writing values back.

`NamedWeightsMixin` gives `keras_nengo.NengoModel` its ``named_weights``,
``get_named_weights``, ``set_named_weights`` and ``freeze_params``; it reads and
writes the variables of the model's `NengoLayer` and knows nothing of training.
"""

from __future__ import annotations

import copy

import nengo
import numpy as np
from nengo.solvers import NoSolver
from nengo.transforms import Convolution, Sparse, SparseMatrix

from keras_nengo._compat import nengo_dl


class NamedWeightsMixin:
    """Named weights of ``self.nengo_layer`` (a `keras_nengo.NengoLayer`)."""

    @property
    def named_weights(self) -> dict:
        """``{name: tf.Variable}`` for every Nengo parameter of the network."""
        return dict(self.nengo_layer.named_variables)

    def get_named_weights(self) -> dict:
        """``{name: np.ndarray}``: current values of `named_weights`."""
        return {name: v.numpy() for name, v in self.nengo_layer.named_variables.items()}

    def set_named_weights(self, weights: dict, strict: bool = True):
        """Assign named weights. All values are checked before any is assigned.

        Parameters
        ----------
        weights : dict of {str: array_like}
            Values keyed by weight name (see `named_weights`).
        strict : bool
            If True, every named weight must be given.
        """
        variables = self.nengo_layer.named_variables
        unknown = [name for name in weights if name not in variables]
        if unknown:
            raise ValueError(
                f"Unknown weight names {unknown}. Valid names: {sorted(variables)}."
            )
        if strict:
            missing = [name for name in variables if name not in weights]
            if missing:
                raise ValueError(
                    f"strict=True needs a value for every named weight; missing "
                    f"{missing}. Pass them, or use strict=False."
                )
        values = {}
        for name, value in weights.items():
            value = np.asarray(value)
            expected = tuple(variables[name].shape)
            if value.shape != expected:
                raise ValueError(
                    f"Weight {name!r} has shape {expected}. Received: a value of "
                    f"shape {value.shape}."
                )
            if not np.all(np.isfinite(value)):
                raise ValueError(
                    f"Weight {name!r} must be finite. Received: a value with "
                    "NaN or inf."
                )
            values[name] = value
        for name, value in values.items():
            variables[name].assign(value)

    def freeze_params(self, objs=None):
        """Write the current named weights back into the Nengo objects.

        Afterwards ``nengo.Simulator`` (or a new NengoModel) built from the
        network reproduces this model. ``objs`` is a Network (default: the
        model's network), an Ensemble, a Connection, or a list of those.
        """
        if objs is None:
            objs = self.network
        if not isinstance(objs, (list, tuple)):
            objs = [objs]
        todo = []
        all_objects = self.network.all_objects
        for obj in objs:
            if isinstance(obj, nengo.Network):
                if obj is not self.network and not any(
                    obj is net for net in self.network.all_networks
                ):
                    raise ValueError(
                        f"Network {obj} is not (part of) the network of this model."
                    )
                todo.extend(obj.all_ensembles + obj.all_connections)
            elif isinstance(obj, (nengo.Ensemble, nengo.Connection)):
                if not any(obj is other for other in all_objects):
                    raise ValueError(f"{obj} is not part of the network of this model.")
                todo.append(obj)
            else:
                raise TypeError(
                    "freeze_params takes Networks, Ensembles or Connections. "
                    f"Received: {obj!r}."
                )
        values = {}
        for param in self.nengo_layer.parameters:
            values[(param.obj, param.attr)] = self.nengo_layer.named_variables[
                param.name
            ].numpy()
        built = self.nengo_layer.simulation.model.params
        for obj in todo:
            if isinstance(obj, nengo.Ensemble):
                self._freeze_ensemble(obj, values, built)
            else:
                self._freeze_connection(obj, values)

    @staticmethod
    def _freeze_ensemble(ens, values, built):
        if isinstance(ens.neuron_type, nengo.Direct):
            return
        encoders = values.get((ens, "encoders"))
        bias = values.get((ens.neurons, "bias"))
        if encoders is None and bias is None:
            return
        gain = built[ens].gain
        if encoders is None:
            encoders = built[ens].scaled_encoders
        if bias is None:
            bias = built[ens].bias
        # the builder multiplies encoders by gain / radius; undo it so that
        # building again gives the trained scaled encoders
        ens.encoders = encoders * ens.radius / gain[:, None]
        ens.normalize_encoders = False
        ens.gain = gain
        ens.bias = bias
        ens.max_rates = nengo.Ensemble.max_rates.default
        ens.intercepts = nengo.Ensemble.intercepts.default

    @staticmethod
    def _freeze_connection(conn, values):
        weights = values.get((conn, "weights"))
        if weights is None:
            return
        if isinstance(conn.transform, Convolution):
            transform = copy.copy(conn.transform)
            Convolution.init.data[transform] = weights
            conn.transform = transform
        elif isinstance(conn.transform, Sparse):
            transform = copy.copy(conn.transform)
            init = transform.init
            if isinstance(init, SparseMatrix):
                init = SparseMatrix(init.indices, weights, init.shape)
            else:
                init = init.tocoo()
                init = SparseMatrix(
                    np.stack((init.row, init.col), axis=-1), weights, init.shape
                )
            Sparse.init.data[transform] = init
            conn.transform = transform
        elif isinstance(conn.pre_obj, nengo.Ensemble):
            conn.solver = NoSolver(weights.T, weights=False)
            conn.function = lambda x, size=weights.shape[0]: np.zeros(size)
            conn.transform = nengo_dl.compat.default_transform
        else:
            if all(n == 1 for n in weights.shape):
                weights = np.squeeze(weights)
            conn.transform = weights
