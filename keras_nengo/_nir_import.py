"""NIR graph -> ``nengo.Network`` (the private half of `keras_nengo.nir`).

Every NIR node becomes either a Nengo object or part of a Connection:

- ``Input`` -> a ``nengo.Node`` fed with data; ``Output`` -> a ``nengo.Probe``;
- ``LIF``/``IF``/``CubaLIF`` -> an Ensemble of `nir_lif` / `IntegrateAndFire`
  neurons, normalised to Nengo's threshold 1 and reset 0; one
  ``Affine``/``Linear`` that feeds only that neuron node becomes the
  ensemble's encoders (and bias), all other inputs go to ``ens.neurons``; a
  ``CubaLIF``'s synapse becomes ``Lowpass(tau_syn)`` on every Connection into
  the Ensemble (its ``w_in`` in their transforms, an ``Affine`` bias a
  constant Node through the same synapse: NIR filters it too);
- ``Linear``/``Scale`` with one input and one output edge become a
  Connection's transform, ``LI`` with ``v_leak = 0`` in the same position its
  synapse (``Lowpass(tau)``); every other ``Linear``/``Affine``/``Scale``/
  ``LI``/``I`` becomes a passthrough Node whose incoming Connections apply it.

A loop without any synapse cannot be simulated in discrete time; its closing
Connection gets ``synapse=0`` (a delay of one time step), which is how
snnTorch and Norse step recurrent layers too.
"""

import nengo
import nir
import numpy as np

from keras_nengo._nir_graph import (
    FILTERS,
    compose,
    flat,
    flatten,
    one_tau,
    size_of,
    weight_of,
)
from keras_nengo._nir_neurons import IntegrateAndFire, nir_lif
from keras_nengo._nir_peers import exact_tau

SUPPORTED = (
    nir.Input,
    nir.Output,
    nir.Affine,
    nir.Linear,
    nir.Scale,
    nir.LIF,
    nir.CubaLIF,
    nir.LI,
    nir.IF,
    nir.I,
)
_SUPPORTED_NAMES = ", ".join(t.__name__ for t in SUPPORTED)
_NEURONS = (nir.LIF, nir.IF, nir.CubaLIF)


class _Importer:
    def __init__(self, graph, spike_area, euler_dt=None):
        if not isinstance(graph, nir.NIRGraph):
            raise TypeError(
                "from_nir expects a nir.NIRGraph (e.g. from nir.read(path)). "
                f"Received: graph of type {type(graph).__name__}."
            )
        self.spike_area = float(spike_area)
        self.euler_dt = euler_dt
        self.nodes, self.edges = flatten(graph)
        for name, node in self.nodes.items():
            if not isinstance(node, SUPPORTED):
                raise TypeError(
                    f"NIR node {name!r} is a {type(node).__name__}, which "
                    f"keras_nengo cannot import. Supported node types: "
                    f"{_SUPPORTED_NAMES}. Convert or remove that node first."
                )
        self.preds = {name: [] for name in self.nodes}
        self.succs = {name: [] for name in self.nodes}
        for src, dst in self.edges:
            self.succs[src].append(dst)
            self.preds[dst].append(src)
            if isinstance(self.nodes[dst], nir.Input):
                raise ValueError(
                    f"NIR edge ({src!r}, {dst!r}) ends at an Input node; inputs "
                    "take data only. Remove the edge."
                )
        self.sizes = self._sizes()
        self.absorbed = self._find_encoders()
        self.inline = {
            name
            for name, node in self.nodes.items()
            if name not in self.absorbed and self._inlinable(name, node)
        }

    def _sizes(self) -> dict:
        """{node: size}; nodes with scalar parameters (snnTorch writes one
        ``beta`` for a layer) take the size of the node that feeds them."""
        sizes = {name: size_of(node) for name, node in self.nodes.items()}
        changed = True
        while changed:
            changed = False
            for name, node in self.nodes.items():
                if sizes[name] != 1 or not isinstance(node, _NEURONS + FILTERS):
                    continue
                fed = [sizes[pred] for pred in self.preds[name] if sizes[pred] > 1]
                if fed:
                    sizes[name], changed = fed[0], True
        return sizes

    def _find_encoders(self) -> dict:
        """{weight node: neuron node} for weights that become encoders."""
        absorbed = {}
        for name, node in self.nodes.items():
            if not isinstance(node, _NEURONS):
                continue
            candidates = [
                pred
                for pred in self.preds[name]
                if isinstance(self.nodes[pred], (nir.Affine, nir.Linear))
                and self.succs[pred] == [name]
                and pred not in absorbed
            ]
            # keras_nengo's own name first (files before 0.x wrote ".encoders")
            candidates.sort(
                key=lambda pred: pred not in (f"{name}_encoders", f"{name}.encoders")
            )
            if candidates:
                absorbed[candidates[0]] = name
        return absorbed

    def _inlinable(self, name, node) -> bool:
        if len(self.preds[name]) != 1 or len(self.succs[name]) != 1:
            return False
        if isinstance(node, (nir.Linear, nir.Scale)):
            return True
        return isinstance(node, nir.LI) and not np.any(flat(node.v_leak))

    def build(self, label) -> nengo.Network:
        network = nengo.Network(label=label)
        with network:
            self.out = {}
            for name, node in self.nodes.items():
                if name not in self.inline and name not in self.absorbed:
                    self._make(name, node)
            conns = self._paths()
            self._break_loops(conns)
            for pre, post, transform, synapse, conn_label in conns:
                if post[0] == "output":
                    continue
                nengo.Connection(
                    pre,
                    post[1],
                    transform=transform,
                    synapse=synapse,
                    label=conn_label,
                )
            self._probes(conns)
        return network

    def _make(self, name, node):
        size = self.sizes[name]
        if isinstance(node, nir.Input):
            self.out[name] = nengo.Node(np.zeros(size), label=name)
        elif isinstance(node, _NEURONS):
            self.out[name] = self._ensemble(name, node, size)
        elif isinstance(node, nir.Output):
            return
        else:
            passthrough = nengo.Node(size_in=size, label=name)
            self.out[name] = passthrough
            constant = None
            if isinstance(node, nir.Affine) and np.any(flat(node.bias)):
                constant, synapse = flat(node.bias), None
            if isinstance(node, nir.LI) and np.any(flat(node.v_leak)):
                constant, synapse = flat(node.v_leak), self._synapse(name, node)
            if constant is not None:
                source = nengo.Node(constant, label=f"{name}.constant")
                nengo.Connection(source, passthrough, synapse=synapse)

    def _ensemble(self, name, node, size):
        threshold, reset = flat(node.v_threshold), flat(node.v_reset)
        span = threshold - reset
        if np.any(span <= 0):
            raise ValueError(
                f"NIR node {name!r} ({type(node).__name__}) needs v_threshold > "
                f"v_reset. Received: v_threshold={threshold.tolist()[:5]}, "
                f"v_reset={reset.tolist()[:5]}."
            )
        gain = flat(node.r) / span * np.ones(size)
        leaky = isinstance(node, (nir.LIF, nir.CubaLIF))
        leak = flat(node.v_leak) if leaky else 0.0
        bias = (leak - reset) / span * np.ones(size)
        initial = -reset / span * np.ones(size)
        initial = initial[0] if np.all(initial == initial[0]) else initial
        if leaky:
            attr = "tau" if isinstance(node, nir.LIF) else "tau_mem"
            tau = self._tau(name, node, attr)
            neuron_type = nir_lif(tau, self.spike_area, initial)
        else:
            voltage = (
                nengo.dists.Choice([initial]) if np.ndim(initial) == 0 else initial
            )
            neuron_type = IntegrateAndFire(
                self.spike_area, initial_state={"voltage": voltage}
            )
        encoders = np.zeros((size, 1))
        weights = [w for w, target in self.absorbed.items() if target == name]
        w_in, synapse = self._current(name)
        constant = None
        if weights:
            weight_node = self.nodes[weights[0]]
            encoders = compose(w_in, weight_of(weight_node))
            if isinstance(weight_node, nir.Affine) and synapse is None:
                bias = bias + gain * flat(weight_node.bias)
            elif isinstance(weight_node, nir.Affine) and np.any(weight_node.bias):
                constant = w_in * flat(weight_node.bias) * np.ones(size)
        ens = nengo.Ensemble(
            size,
            encoders.shape[1],
            neuron_type=neuron_type,
            encoders=encoders,
            normalize_encoders=False,
            gain=gain,
            bias=bias,
            radius=1.0,
            label=name,
        )
        if constant is not None:
            # a CubaLIF filters what arrives, an Affine's bias too
            source = nengo.Node(constant, label=f"{weights[0]}.bias")
            nengo.Connection(source, ens.neurons, synapse=synapse)
        self.out[name] = ens.neurons
        return ens.neurons

    def _current(self, name):
        """(w_in, synapse) of a CubaLIF's input current; (None, None) otherwise."""
        node = self.nodes[name]
        if not isinstance(node, nir.CubaLIF):
            return None, None
        w_in = flat(node.w_in) * np.ones(self.sizes[name])
        return w_in, nengo.Lowpass(self._tau(name, node, "tau_syn"))

    def _tau(self, name, node, attr="tau"):
        """Nengo's time constant for a NIR one (see `exact_tau` for peers)."""
        tau = one_tau(name, node, attr)
        if self.euler_dt is None:
            return tau
        if tau <= self.euler_dt:
            raise ValueError(
                f"NIR node {name!r} ({type(node).__name__}) has {attr}={tau}, "
                f"not above the peer's dt={self.euler_dt}: its forward-Euler decay "
                f"1 - dt/{attr} is not in (0, 1). Pass the dt the peer ran with."
            )
        return exact_tau(tau, self.euler_dt)

    def _synapse(self, name, node):
        if isinstance(node, nir.LI):
            return nengo.Lowpass(self._tau(name, node))
        return nengo.LinearFilter([1], [1, 0])

    def _post(self, name):
        """Where an edge into ``name`` lands: (kind, nengo object, op, synapse)."""
        node = self.nodes[name]
        if name in self.absorbed:
            neurons = self.absorbed[name]
            synapse = self._current(neurons)[1]
            return ("ensemble", self.out[neurons].ensemble, None, synapse)
        if isinstance(node, _NEURONS):
            return ("neurons", self.out[name], *self._current(name))
        if isinstance(node, nir.Output):
            return ("output", name, None, None)
        if isinstance(node, FILTERS):
            return (
                "filter",
                self.out[name],
                weight_of(node),
                self._synapse(name, node),
            )
        return ("node", self.out[name], weight_of(node), None)

    def _paths(self) -> list:
        """One (pre, post, transform, synapse, label) per path between objects."""
        while True:
            try:
                return [
                    conn
                    for src in self.out
                    for dst in self.succs[src]
                    for conn in self._walk(src, dst)
                ]
            except _SecondSynapse as stop:
                self.inline.discard(stop.name)
                self._make(stop.name, self.nodes[stop.name])

    def _walk(self, src, dst):
        transform, synapse, label, filter_name = None, None, None, None
        while dst in self.inline:
            node = self.nodes[dst]
            if isinstance(node, nir.LI):
                if synapse is not None:
                    raise _SecondSynapse(dst)
                synapse, filter_name = self._synapse(dst, node), dst
            transform = compose(weight_of(node), transform)
            label = label or dst
            (dst,) = self.succs[dst]
        kind, post, weight, own_synapse = self._post(dst)
        if own_synapse is not None and synapse is not None:
            raise _SecondSynapse(filter_name)
        transform = compose(weight, transform)
        if kind in ("node", "filter") and label is None:
            label = dst
        yield (self.out[src], (kind, post), transform, own_synapse or synapse, label)

    def _break_loops(self, conns):
        """Give ``synapse=0`` to one Connection of every loop that has none."""
        graph = {}
        for index, (pre, post, _, synapse, _) in enumerate(conns):
            if synapse is None and post[0] != "output":
                source = pre.ensemble if hasattr(pre, "ensemble") else pre
                target = post[1]
                target = target.ensemble if hasattr(target, "ensemble") else target
                graph.setdefault(source, []).append((target, index))
        state = {}

        def visit(vertex):
            state[vertex] = "open"
            for target, index in graph.get(vertex, []):
                if state.get(target) == "open":
                    pre, post, transform, _, label = conns[index]
                    conns[index] = (pre, post, transform, nengo.Lowpass(0), label)
                elif target not in state:
                    visit(target)
            state[vertex] = "done"

        for vertex in list(graph):
            if vertex not in state:
                visit(vertex)

    def _probes(self, conns):
        for name, node in self.nodes.items():
            if not isinstance(node, nir.Output):
                continue
            arriving = [c for c in conns if c[1] == ("output", name)]
            if len(arriving) == 1 and arriving[0][2] is None and arriving[0][3] is None:
                target = arriving[0][0]
            else:
                target = nengo.Node(size_in=self.sizes[name], label=f"{name}.sum")
                for pre, _, transform, synapse, conn_label in arriving:
                    nengo.Connection(
                        pre,
                        target,
                        transform=transform,
                        synapse=synapse,
                        label=conn_label,
                    )
            nengo.Probe(target, synapse=None, label=name)


class _SecondSynapse(Exception):
    """A path holds two synapses: the named LI must become its own Node."""

    def __init__(self, name):
        super().__init__(name)
        self.name = name


def import_graph(
    graph, spike_area: float = 1.0, label=None, euler_dt=None
) -> nengo.Network:
    return _Importer(graph, spike_area, euler_dt).build(label)
