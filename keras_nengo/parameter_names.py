"""The trainable parameters of a network and their names.

`ParameterNames` is the part of `keras_nengo.naming.NameTable` that lists
the parameters NengoDL can train and names one parameter, following the
**Parameters** rule of `keras_nengo.naming`: ``<ens>/encoders``,
``<ens>/bias``, ``<conn>/weights``. It reads the table's object names
(``self._names``, ``self.name``).
"""

from typing import Iterator

import nengo
from nengo.base import ObjView
from nengo.ensemble import Neurons


class ParameterNames:
    """Parameter listing and naming for `keras_nengo.naming.NameTable`."""

    def _walk_parameters(self, network: nengo.Network) -> Iterator[tuple]:
        for ens in network.ensembles:
            yield f"{self._names[ens]}/encoders", ens, "encoders"
            if not isinstance(ens.neuron_type, nengo.Direct):
                yield f"{self._names[ens]}/bias", ens.neurons, "bias"
        for subnetwork in network.networks:
            yield from self._walk_parameters(subnetwork)
        for conn in network.connections:
            if conn.has_weights:
                yield f"{self._names[conn]}/weights", conn, "weights"

    # -- queries ----------------------------------------------------------

    def parameters(self) -> list[tuple[str, object, str]]:
        """Every parameter NengoDL can train, in Nengo's build order.

        Returns
        -------
        parameters : list of (str, object, str)
            ``(name, obj, attr)`` where ``obj``/``attr`` index NengoDL's
            ``model.sig[obj][attr]``: ``(ens, "encoders")``,
            ``(ens.neurons, "bias")`` (not for Direct ensembles) and
            ``(conn, "weights")`` (only connections with weights).

        Examples
        --------
        >>> from keras_nengo.naming import NameTable
        >>> with nengo.Network() as net:
        ...     a = nengo.Ensemble(10, 1, label="a")
        ...     b = nengo.Ensemble(10, 1, neuron_type=nengo.Direct(), label="b")
        ...     conn = nengo.Connection(a, b)
        >>> [name for name, obj, attr in NameTable(net).parameters()]
        ['a/encoders', 'a/bias', 'b/encoders', 'a_to_b/weights']
        """
        return list(self._parameters)

    def parameter_name(self, obj: object, attr: str) -> str:
        """The name of one parameter.

        Parameters
        ----------
        obj : nengo.Ensemble or nengo.ensemble.Neurons or nengo.Connection
            The object owning the parameter (for ``"bias"`` either the
            ensemble or its neurons).
        attr : str
            ``"encoders"`` or ``"bias"`` for ensembles, ``"weights"`` for
            connections.

        Returns
        -------
        name : str
            ``<ens>/encoders``, ``<ens>/bias`` or ``<conn>/weights``.

        Raises
        ------
        ValueError
            If the object is not an object of the network, or has no such
            trainable parameter.

        Examples
        --------
        >>> from keras_nengo.naming import NameTable
        >>> with nengo.Network() as net:
        ...     ens = nengo.Ensemble(10, 1, label="hidden")
        >>> table = NameTable(net)
        >>> table.parameter_name(ens, "encoders")
        'hidden/encoders'
        >>> table.parameter_name(ens.neurons, "bias")
        'hidden/bias'
        """
        if isinstance(obj, ObjView):
            raise ValueError(
                "Parameters belong to whole objects, not to views. "
                f"Received: obj={obj!r}. Pass the viewed object, `obj.obj`."
            )
        if isinstance(obj, Neurons):
            owner, valid = obj.ensemble, ("bias",)
        elif isinstance(obj, nengo.Ensemble):
            owner, valid = obj, ("encoders", "bias")
        elif isinstance(obj, nengo.Connection):
            owner, valid = obj, ("weights",) if obj.has_weights else ()
        else:
            owner, valid = obj, ()
        owner_name = self.name(owner)
        if isinstance(owner, nengo.Ensemble) and isinstance(
            owner.neuron_type, nengo.Direct
        ):
            valid = tuple(v for v in valid if v != "bias")
        if attr not in valid:
            raise ValueError(
                f"{obj} ({owner_name!r}) has no trainable parameter {attr!r}. "
                f"Received: attr={attr!r}. Expected one of: "
                f"{', '.join(repr(v) for v in valid) or '(none)'}. "
                + self._why_no_parameter(obj, owner, attr)
            )
        return f"{owner_name}/{attr}"

    @staticmethod
    def _why_no_parameter(obj: object, owner: object, attr: str) -> str:
        direct = isinstance(owner, nengo.Ensemble) and isinstance(
            owner.neuron_type, nengo.Direct
        )
        if direct and attr == "bias":
            return "Direct-mode ensembles have no neurons and hence no bias."
        if isinstance(obj, Neurons):
            return "Encoders belong to the ensemble: pass `ens`, not `ens.neurons`."
        if isinstance(owner, nengo.Connection):
            return (
                "A connection has weights only if it has a transform or is "
                "decoded from a non-Direct Ensemble; pass `transform=1` to "
                "make a passthrough connection trainable."
            )
        if isinstance(owner, nengo.Ensemble):
            return "Ensembles have 'encoders' and 'bias'."
        return "Only ensembles and connections have trainable parameters."
