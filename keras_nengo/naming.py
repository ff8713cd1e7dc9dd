"""Stable, readable names for the objects of a Nengo network and their parameters.

Everything keras_nengo shows a user by name -- input names, output names,
named variables, TensorBoard tags -- comes from a `NameTable`. The rules
below are the contract (see DESIGN.md section 3); they depend only on the
network's structure and labels, never on ``id()``, hash order or global
counters, so the same network code always produces the same names.

**Pieces.** Every object gets one *piece* in the *scope* of the network it
was added to. A piece is the object's label cleaned by `sanitize`; an object
whose label is ``None`` or sanitizes to ``""`` gets an automatic piece:

- Ensemble, Node, Network: ``ensemble_<k>``, ``node_<k>``, ``network_<k>``,
  where ``k`` counts the *unlabelled* objects of that kind in the same scope,
  from 0, in Nengo's build order. Counting per scope means adding an object to
  one subnetwork never renames objects in another.
- Connection: ``<pre>_to_<post>`` (see *References*).
- Probe: ``<target>_probe`` (see *References*). The probed attribute is not
  part of the name; two probes of one target are ``a_probe`` and
  ``a_probe_2``.

**Duplicates.** Ensembles, nodes, subnetworks, connections and probes of one
scope share one namespace. Labelled objects are placed first (in build
order: ensembles, nodes, subnetworks, connections, probes), so a label is
never renamed because an automatic piece looks like it; then automatic
pieces in the same order. A piece that is taken becomes ``<piece>_2``,
``<piece>_3``, ... (the first free one), e.g. two ensembles labelled
``"a"`` are ``a`` and ``a_2``; an ensemble labelled ``"ensemble_0"`` keeps
its name and the first unlabelled ensemble becomes ``ensemble_0_2``.

**Full names.** An object's name is its piece prefixed by the names of the
subnetworks it sits in, joined by ``"/"``: ``sub/inner/ens``. The network
given to `NameTable` is never part of a name. Derived objects are named
after their owner: ``ens.neurons`` is ``<ens name>.neurons``; a learning rule
``conn.learning_rule`` is ``<conn name>.learning_rule`` (for a list of rules
``.learning_rule.<index>``, for a dict ``.learning_rule.<sanitized key>``).
Derived names take part in de-duplication, so they never collide with a
label either. A view (``ens[0]``, ``node[:2]``, ``ens.neurons[3]``) is named
after the object it views.

**References.** Connections and probes refer to other objects by name
relative to their own scope: an object inside the scope drops the scope's
prefix, any other object uses its full name; then every ``"/"`` becomes
``"."`` so that the piece stays one level of the hierarchy. Examples (top
level unless said otherwise):

- ``Connection(a, b)`` -> ``a_to_b``; ``Connection(a.neurons, b[0])`` ->
  ``a.neurons_to_b``;
- ``Connection(sub_a, b)`` where ``sub_a`` sits in network ``sub`` ->
  ``sub.a_to_b``; the same connection made inside ``sub`` -> ``sub/a_to_b``;
- ``Probe(a.neurons)`` -> ``a.neurons_probe``; ``Probe(conn)`` ->
  ``a_to_b_probe``; ``Probe(conn.learning_rule)`` ->
  ``a_to_b.learning_rule_probe``.

**Parameters.** `NameTable.parameters` lists every parameter NengoDL can
train, in Nengo's build order (per network: ensembles, then subnetworks
recursively, then connections):

- ``<ens>/encoders`` for every Ensemble;
- ``<ens>/bias`` for every Ensemble whose neuron type is not
  `nengo.Direct`;
- ``<conn>/weights`` for every Connection with weights in the built model
  (``conn.has_weights``, which is what ``nengo_dl.compat.conn_has_weights``
  uses on Nengo >= 3.1: a non-`~nengo.transforms.NoTransform` transform, or
  a decoded connection from a non-Direct Ensemble).

**Keras layers.** The weights of a Keras layer inside a TensorNode (e.g.
``nengo_dl.Layer(tf.keras.layers.Dense(10))``) are named after the
TensorNode, ``<node>/kernel``, not after the Keras layer (``dense_3/kernel``
carries a counter that changes with every layer created before it).
`NameTable.tensor_nodes` lists the TensorNodes and their names; a layer
used by several TensorNodes is named after the first.

Names are unique: object names because pieces are unique per scope and
contain no ``"/"``; parameter names because only ensembles and connections,
which contain nothing, own parameters; layer weights because they sit under
the name of a TensorNode, which owns no parameter either.

**Characters.** `sanitize` keeps ``[A-Za-z0-9_.-]``. Leading ``"-"`` is
dropped too, because TensorFlow refuses it at the start of a graph name
scope, and a piece made only of dots is treated as empty because ``"."``
and ``".."`` read as paths in TensorBoard and on disk.
"""

import difflib
import itertools
import re
from typing import Iterator, Optional

import nengo
from nengo.base import ObjView
from nengo.connection import LearningRule

from keras_nengo.parameter_names import ParameterNames

__all__ = ["NameTable", "sanitize"]

_INVALID_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
_UNDERSCORE_RUNS = re.compile(r"_+")

# The kinds that get an automatic ``<kind>_<k>`` piece when unlabelled.
_AUTO_KINDS = ((nengo.Ensemble, "ensemble"), (nengo.Node, "node"))


def sanitize(label: str) -> str:
    """Turn a label into one piece of a name that TensorFlow accepts.

    Characters outside ``[A-Za-z0-9_.-]`` (including ``"/"``, the hierarchy
    separator, and any non-ASCII character) become ``"_"``, runs of ``"_"``
    collapse to one, and leading ``"_"``/``"-"`` and trailing ``"_"`` are
    removed. A result made only of dots counts as empty.

    Parameters
    ----------
    label : str
        The label to clean, usually ``obj.label``.

    Returns
    -------
    piece : str
        The cleaned piece, or ``""`` if nothing usable is left (callers then
        use an automatic name).

    Raises
    ------
    TypeError
        If ``label`` is not a string.

    Examples
    --------
    >>> sanitize("hidden layer/2")
    'hidden_layer_2'
    >>> sanitize("__private__")
    'private'
    >>> sanitize("?!")
    ''
    """
    if not isinstance(label, str):
        raise TypeError(
            "sanitize expects a label string. "
            f"Received: label={label!r} of type {type(label).__name__}. "
            "Pass `obj.label` only when it is not None."
        )
    piece = _UNDERSCORE_RUNS.sub("_", _INVALID_CHARS.sub("_", label))
    piece = piece.lstrip("_-").rstrip("_")
    return "" if piece.strip(".") == "" else piece


class _Scope:
    """The namespace of one network: its full name and the pieces taken."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.taken: set = set()

    def full(self, piece: str) -> str:
        return f"{self.prefix}/{piece}" if self.prefix else piece

    def relative(self, full_name: str) -> str:
        """How an object named ``full_name`` is written in a piece here."""
        if self.prefix and full_name.startswith(self.prefix + "/"):
            full_name = full_name[len(self.prefix) + 1 :]
        return full_name.replace("/", ".")


def _candidates(base: str) -> Iterator[str]:
    yield base
    for i in itertools.count(2):
        yield f"{base}_{i}"


def _learning_rule_suffixes(conn: nengo.Connection) -> list:
    """``(LearningRule, suffix)`` for each learning rule of ``conn``."""
    rules = conn.learning_rule
    if rules is None:
        return []
    if isinstance(rules, LearningRule):
        return [(rules, ".learning_rule")]
    if isinstance(rules, dict):
        used: set = set()
        suffixes = []
        for i, (key, rule) in enumerate(rules.items()):
            base = sanitize(str(key)) or str(i)
            piece = next(p for p in _candidates(base) if p not in used)
            used.add(piece)
            suffixes.append((rule, f".learning_rule.{piece}"))
        return suffixes
    return [(rule, f".learning_rule.{i}") for i, rule in enumerate(rules)]


def _derived(obj: object) -> list:
    """``(derived object, suffix)`` pairs named after ``obj``."""
    if isinstance(obj, nengo.Ensemble):
        return [(obj.neurons, ".neurons")]
    if isinstance(obj, nengo.Connection):
        return _learning_rule_suffixes(obj)
    return []


class NameTable(ParameterNames):
    """Stable, readable names for every object of a network and its parameters.

    The table is computed once, from the network as it is when the table is
    created; the naming rules are in the module docstring.

    Parameters
    ----------
    network : nengo.Network
        The top-level network. Its own label is never part of a name.

    Raises
    ------
    TypeError
        If ``network`` is not a `nengo.Network`.
    ValueError
        If a connection or probe refers to an object outside ``network``.

    Examples
    --------
    >>> with nengo.Network() as net:
    ...     stim = nengo.Node([0.5], label="stim")
    ...     with nengo.Network(label="sub"):
    ...         hidden = nengo.Ensemble(10, 1, label="hidden")
    ...     conn = nengo.Connection(stim, hidden)
    ...     probe = nengo.Probe(hidden)
    >>> table = NameTable(net)
    >>> table.name(hidden), table.name(conn), table.probe_name(probe)
    ('sub/hidden', 'stim_to_sub.hidden', 'sub.hidden_probe')
    >>> [name for name, obj, attr in table.parameters()]  # stim_to_sub.hidden: none
    ['sub/hidden/encoders', 'sub/hidden/bias']
    >>> table.lookup("sub/hidden") is hidden
    True
    """

    def __init__(self, network: nengo.Network):
        if not isinstance(network, nengo.Network):
            raise TypeError(
                "NameTable expects a nengo.Network. "
                f"Received: network={network!r} of type {type(network).__name__}."
            )
        self.network = network
        self._names: dict = {}  # object -> full name (nengo objects hash by id)
        self._objects: dict = {}  # full name -> object, in naming order
        self._pending_connections: list = []
        self._pending_probes: list = []

        self._name_scope(network, _Scope(""))
        self._name_connections()
        self._name_probes()
        self._parameters = list(self._walk_parameters(network))

    # -- construction -----------------------------------------------------

    def _register(self, obj: object, scope: _Scope, piece: str) -> None:
        scope.taken.add(piece)
        self._names[obj] = scope.full(piece)
        self._objects[scope.full(piece)] = obj
        for derived, suffix in _derived(obj):
            scope.taken.add(piece + suffix)
            # A list of equal rule types gives equal LearningRules; keep the first.
            self._names.setdefault(derived, scope.full(piece + suffix))
            self._objects[scope.full(piece + suffix)] = derived

    def _is_free(self, obj: object, scope: _Scope, piece: str) -> bool:
        pieces = [piece] + [piece + suffix for _, suffix in _derived(obj)]
        return not any(p in scope.taken for p in pieces)

    def _claim(self, obj: object, scope: _Scope, base: str) -> None:
        piece = next(p for p in _candidates(base) if self._is_free(obj, scope, p))
        self._register(obj, scope, piece)

    def _name_scope(self, network: nengo.Network, scope: _Scope) -> None:
        objects = (
            network.ensembles
            + network.nodes
            + network.networks
            + network.connections
            + network.probes
        )
        labelled = [(obj, sanitize(obj.label or "")) for obj in objects]
        duplicates = []
        for obj, piece in labelled:
            if piece and self._is_free(obj, scope, piece):
                self._register(obj, scope, piece)
            elif piece:
                duplicates.append((obj, piece))
        for obj, piece in duplicates:
            self._claim(obj, scope, piece)

        counters = {}
        for obj, piece in labelled:
            if piece:
                continue
            if isinstance(obj, nengo.Connection):
                self._pending_connections.append((obj, scope))
            elif isinstance(obj, nengo.Probe):
                self._pending_probes.append((obj, scope))
            else:
                kind = next(
                    (name for cls, name in _AUTO_KINDS if isinstance(obj, cls)),
                    "network",
                )
                k = counters.get(kind, 0)
                counters[kind] = k + 1
                self._claim(obj, scope, f"{kind}_{k}")

        for subnetwork in network.networks:
            self._name_scope(subnetwork, _Scope(self._names[subnetwork]))

    def _reference(self, obj: object, scope: _Scope) -> Optional[str]:
        """``obj`` written relative to ``scope``; None if it has no name yet."""
        full_name = self._names.get(obj.obj if isinstance(obj, ObjView) else obj)
        return None if full_name is None else scope.relative(full_name)

    def _name_connections(self) -> None:
        # A connection to a learning rule is named after the rule's connection,
        # which may sit in a scope named later; repeat until all are named.
        pending = self._pending_connections
        while pending:
            waiting = []
            for conn, scope in pending:
                pre = self._reference(conn.pre_obj, scope)
                post = self._reference(conn.post_obj, scope)
                if pre is None or post is None:
                    waiting.append((conn, scope))
                else:
                    self._claim(conn, scope, f"{pre}_to_{post}")
            if len(waiting) == len(pending):
                conn, scope = waiting[0]
                missing = next(
                    obj
                    for obj in (conn.pre_obj, conn.post_obj)
                    if self._reference(obj, scope) is None
                )
                raise ValueError(self._outside_message(conn, missing))
            pending = waiting

    def _name_probes(self) -> None:
        for probe, scope in self._pending_probes:
            target = self._reference(probe.target, scope)
            if target is None:
                raise ValueError(self._outside_message(probe, probe.obj))
            self._claim(probe, scope, f"{target}_probe")

    @staticmethod
    def _outside_message(obj: object, missing: object) -> str:
        return (
            f"{obj} refers to {missing}, which is not an object of this network. "
            "Expected: connections and probes between objects of the network "
            "given to NameTable (or its subnetworks). Create "
            f"{missing} inside `with network:` or remove {obj}."
        )

    # -- queries ----------------------------------------------------------

    def name(self, obj: object) -> str:
        """The name of an object of the network.

        Parameters
        ----------
        obj : object
            An Ensemble, Node, Connection, Probe or subnetwork of the network,
            ``ens.neurons``, ``conn.learning_rule`` (or one of its entries), or
            a view of one of these (``ens[0]``, ``node[:2]``), which is named
            after the object it views.

        Returns
        -------
        name : str
            The full name, e.g. ``"sub/inner/hidden"``.

        Raises
        ------
        ValueError
            If ``obj`` is the top-level network (it has no name) or is not an
            object of the network.

        Examples
        --------
        >>> with nengo.Network() as net:
        ...     ens = nengo.Ensemble(10, 2, label="hidden")
        >>> table = NameTable(net)
        >>> table.name(ens), table.name(ens[0]), table.name(ens.neurons)
        ('hidden', 'hidden', 'hidden.neurons')
        """
        target = obj.obj if isinstance(obj, ObjView) else obj
        if target is self.network:
            raise ValueError(
                "The top-level network has no name: it is never part of a name. "
                f"Received: obj={obj!r}. Pass one of its objects or subnetworks."
            )
        try:
            return self._names[target]
        except (KeyError, TypeError):
            pass
        hint = (
            " To find an object from its name, use NameTable.lookup."
            if isinstance(obj, str)
            else " If you added it after creating the NameTable, create a new"
            " NameTable; otherwise pass an object created inside `with network:`"
            " for the network given to NameTable (or one of its subnetworks)."
        )
        raise ValueError(
            f"Received: obj={obj!r}, which is not an object of this network. "
            "Expected: an object of this network (an Ensemble, Node, Connection, "
            "Probe or subnetwork, ens.neurons, conn.learning_rule, or a view of "
            f"one of these).{hint}"
        )

    def lookup(self, name: str) -> object:
        """The object with a given name (the inverse of `name`).

        Parameters
        ----------
        name : str
            A name returned by `name`.

        Returns
        -------
        obj : object
            The Ensemble, Node, Connection, Probe, subnetwork, Neurons or
            LearningRule with that name.

        Raises
        ------
        KeyError
            If no object has that name; the message lists close names.

        Examples
        --------
        >>> with nengo.Network() as net:
        ...     ens = nengo.Ensemble(10, 1, label="hidden")
        >>> NameTable(net).lookup("hidden") is ens
        True
        """
        try:
            return self._objects[name]
        except (KeyError, TypeError):
            pass
        parameters = {parameter: attr for parameter, _, attr in self._parameters}
        names = list(self._objects)
        if name in parameters:
            hint = (
                f" {name!r} is the name of a parameter ({parameters[name]!r}); "
                "NameTable.parameters() maps parameter names to (object, attr)."
            )
        else:
            close = difflib.get_close_matches(str(name), names, n=5)
            shown = close or names[:20]
            more = "" if close or len(names) <= 20 else f" and {len(names) - 20} more"
            hint = (
                f" {'Close' if close else 'Valid'} names: "
                f"{', '.join(repr(n) for n in shown) or '(none)'}{more}."
            )
        raise KeyError(
            f"No object of this network is named {name!r}. "
            f"Expected: a name returned by NameTable.name().{hint}"
        )

    def input_name(self, node: nengo.Node) -> str:
        """The name of an input Node: its sanitized label, else ``node_<k>``.

        Parameters
        ----------
        node : nengo.Node
            A Node of the network.

        Returns
        -------
        name : str
            The same as ``name(node)``.

        Raises
        ------
        ValueError
            If ``node`` is not a Node of the network.

        Examples
        --------
        >>> with nengo.Network() as net:
        ...     stim = nengo.Node([0.0])
        >>> NameTable(net).input_name(stim)
        'node_0'
        """
        if not isinstance(node, nengo.Node):
            raise ValueError(
                "Inputs must be nengo.Node objects. "
                f"Received: node={node!r} of type {type(node).__name__}."
            )
        return self.name(node)

    def probe_name(self, probe: nengo.Probe) -> str:
        """The name of an output Probe: its label, else ``<target>_probe``.

        Parameters
        ----------
        probe : nengo.Probe
            A Probe of the network.

        Returns
        -------
        name : str
            The same as ``name(probe)``.

        Raises
        ------
        ValueError
            If ``probe`` is not a Probe of the network.

        Examples
        --------
        >>> with nengo.Network() as net:
        ...     ens = nengo.Ensemble(10, 1, label="hidden")
        ...     probe = nengo.Probe(ens.neurons)
        >>> NameTable(net).probe_name(probe)
        'hidden.neurons_probe'
        """
        if not isinstance(probe, nengo.Probe):
            raise ValueError(
                "Outputs must be nengo.Probe objects. "
                f"Received: probe={probe!r} of type {type(probe).__name__}."
            )
        return self.name(probe)

    def tensor_nodes(self) -> list[tuple[str, nengo.Node]]:
        """Every TensorNode of the network with its name, in Nengo's build order.

        A TensorNode is a Node with a ``tensor_func`` (`nengo_dl.TensorNode`);
        the weights of a Keras layer it runs are named ``<name>/<weight>``.

        Returns
        -------
        tensor_nodes : list of (str, nengo.Node)

        Examples
        --------
        >>> with nengo.Network() as net:
        ...     stim = nengo.Node([0.0], label="stim")
        >>> NameTable(net).tensor_nodes()  # no TensorNode here
        []
        """
        return [
            (self._names[node], node)
            for node in self.network.all_nodes
            if hasattr(node, "tensor_func")
        ]
