"""What other NIR readers accept: node names and node kinds (pure Python).

Checked against the importers of the releases on the registry: Norse 1.1
(``norse.torch.from_nir``) and snnTorch 1.0
(``snntorch.import_nir.import_from_nir``), both built on NIRTorch:

- NIRTorch makes one torch module per NIR node, named by the node name with
  ``"."`` replaced by ``"_"`` (torch refuses ``"."`` in module names), and
  snnTorch splits names at ``"."`` to find its recurrent layers. keras_nengo
  therefore writes names of letters, digits and ``"_"`` only (`nir_name`).
- Both run one ``Input`` and one ``Output`` node.
- Norse maps ``Input``, ``Output``, ``Affine``, ``Linear``, ``LIF``,
  ``CubaLIF``, ``IF``, ``Conv2d``, ``Flatten`` and ``SumPool2d``; any other
  node (``LI``, ``Scale``, ``I``) becomes a missing module and the run fails.
  Its ``CubaLIF`` adds ``v_leak`` to the synaptic current as well as to the
  voltage, so only ``v_leak = 0`` means what NIR says, and its ``IF`` steps
  ``v += input`` (no ``dt``: not NIR's ``dv/dt = r I``), so keras_nengo does
  not send it ``IF`` nodes.
- snnTorch maps ``Affine``, ``Linear``, ``LIF``, ``CubaLIF``, ``IF``,
  ``Conv2d``, ``Flatten`` and ``AvgPool2d`` and steps every neuron with a
  fixed ``dt = 1e-4`` s; it refuses ``v_leak != 0`` and a ``CubaLIF`` whose
  ``r`` is not ``tau_mem / dt``, and reads ``IF`` as a leaky neuron
  (``beta = 0.9``), so keras_nengo does not send it ``IF`` nodes.
- Both count a spike as a 1 held for one of their steps (area ``dt`` in NIR's
  units): an export for them is written with ``spike_area = dt``.
"""

import dataclasses
import re
from typing import Optional

import numpy as np

_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]")


def nir_name(name: str) -> str:
    """A keras_nengo name as a NIR node name: letters, digits and ``_``.

    The subnetwork separator ``"/"`` becomes ``"__"`` (keras_nengo names never
    hold two ``"_"`` in a row, so the result stays unique), and the other
    characters a label may hold (``"."``, ``"-"``) become ``"_"``.

    Examples
    --------
    >>> nir_name("sub/layer.a_to_b-2")
    'sub__layer_a_to_b_2'
    """
    return _NOT_IDENTIFIER.sub("_", name.replace("/", "__"))


def euler_tau(tau: float, dt: float) -> float:
    """The time constant whose forward-Euler step equals the exact one.

    Norse and snnTorch step ``v += dt / tau * (...)`` (decay ``1 - dt / tau``);
    Nengo steps exactly (decay ``exp(-dt / tau)`` for an input held over the
    step). Written as ``dt / (1 - exp(-dt / tau))`` (larger than ``tau`` by
    about ``dt / 2``), a time constant makes the two steps equal.

    Examples
    --------
    >>> tau = euler_tau(0.02, 0.001)
    >>> round(tau, 6), bool(abs((1 - 0.001 / tau) - np.exp(-0.05)) < 1e-15)
    (0.020504, True)
    """
    return float(dt / -np.expm1(-dt / tau))


def exact_tau(tau: float, dt: float) -> float:
    """The inverse of `euler_tau`: Nengo's time constant for a peer's one.

    A peer stepping ``tau`` with forward Euler decays by ``1 - dt / tau`` a
    step; Nengo's exact step decays by that much with
    ``-dt / log(1 - dt / tau)`` (``tau > dt``).

    Examples
    --------
    >>> round(exact_tau(euler_tau(0.02, 1e-4), 1e-4), 12)
    0.02
    """
    return float(-dt / np.log1p(-dt / tau))


@dataclasses.dataclass(frozen=True)
class Peer:
    """An NIR reader keras_nengo exports for (``to_nir(..., peer=key)``)."""

    key: str
    title: str
    reader: str
    kinds: tuple
    # the reader's own time step when it fixes one (snnTorch), else None
    fixed_dt: Optional[float] = None
    # the reader needs CubaLIF's r == tau_mem / dt (snnTorch's convention)
    cuba_r_is_tau_over_dt: bool = False
    # the reader runs graphs with loops (recurrent Connections)
    loops: bool = True


PEERS = {
    "norse": Peer(
        key="norse",
        title="Norse 1.1",
        reader="norse.torch.from_nir(graph, dt=dt)",
        kinds=("Input", "Output", "Affine", "Linear", "LIF", "CubaLIF"),
    ),
    "snntorch": Peer(
        key="snntorch",
        title="snnTorch 1.0",
        reader="snntorch.import_nir.import_from_nir(graph)",
        kinds=("Input", "Output", "Affine", "Linear", "LIF", "CubaLIF"),
        fixed_dt=1e-4,
        cuba_r_is_tau_over_dt=True,
        loops=False,
    ),
}

# why a node kind is in a keras_nengo export, and how to avoid it
_WHY = {
    "LI": (
        "a Lowpass synapse that is not the one shared synapse of every input "
        "of a LIF Ensemble (those become a CubaLIF), e.g. a Probe's synapse or "
        "a synapse into a Node",
        "Probe with synapse=None and filter the output after the run; give "
        "all Connections into an Ensemble the same Lowpass synapse, or "
        "synapse=None",
    ),
    "Scale": (
        "a passthrough Node",
        "Connect around it (compose the transforms)",
    ),
    "IF": (
        "an Ensemble of IntegrateAndFire (or rectified-linear) neurons",
        "Use nir_lif neurons",
    ),
    "I": ("an integrator", "Use a Lowpass synapse"),
}


def peer_of(peer) -> Peer:
    """The `Peer` named by ``peer`` (a key of `PEERS`)."""
    if peer not in PEERS:
        raise ValueError(
            f"peer must be one of {sorted(PEERS)} or None. Received: peer={peer!r}."
        )
    return PEERS[peer]


def peer_problems(nodes: dict, edges: list, peer: Peer) -> list:
    """``[(node name, problem, fix)]`` for the nodes ``peer`` cannot run.

    ``nodes`` is ``{name: nir node}`` and ``edges`` ``[(source, target)]`` of
    a graph's top level.
    """
    problems = []
    loop = _loop(edges)
    if loop and not peer.loops:
        # name a weight node of the loop: that is the recurrent Connection
        weights = [n for n in loop if type(nodes.get(n)).__name__ == "Linear"]
        loop = (
            loop[loop.index(weights[0]) :] + loop[: loop.index(weights[0])]
            if weights
            else loop
        )
        problems.append(
            (
                loop[0],
                f"it closes the loop {' -> '.join(loop + loop[:1])}, and "
                f"{peer.title} turns such loops into recurrent layers that "
                "NIRTorch 2.6 fails to build (AttributeError: 'GraphModule' "
                "object has no attribute 'items')",
                "Remove the recurrent Connection, or run the graph in Norse or "
                "keras_nengo",
            )
        )
    for name, node in nodes.items():
        if _NOT_IDENTIFIER.search(name):
            problems.append(
                (
                    name,
                    f"its name {name!r} holds characters other than letters, "
                    "digits and '_', which NIRTorch rewrites",
                    "Export with keras_nengo.nir.to_nir (it writes such names)",
                )
            )
        kind = type(node).__name__
        if kind not in peer.kinds:
            what, fix = _WHY.get(kind, (f"a {kind} node", "Remove it"))
            problems.append(
                (
                    name,
                    f"it is {what}, written as a NIR {kind} node, and "
                    f"{peer.title} reads only {', '.join(peer.kinds)}",
                    fix,
                )
            )
        elif kind == "CubaLIF" and np.any(np.asarray(node.v_leak) != 0):
            problems.append(
                (
                    name,
                    "its neurons have non-zero biases, which a CubaLIF holds "
                    f"as v_leak, and {peer.title} "
                    + (
                        "refuses v_leak != 0"
                        if peer.key == "snntorch"
                        else "adds v_leak to the synaptic current too"
                    ),
                    "Give the Ensemble zero biases, connect into it with "
                    "synapse=None, or pass approximate=True (the bias then "
                    "goes through the synapse: it rises from 0 with tau_syn)",
                )
            )
    for kind in ("Input", "Output"):
        names = [n for n, node in nodes.items() if type(node).__name__ == kind]
        if len(names) > 1:
            problems.append(
                (
                    names[1],
                    f"the graph has {len(names)} {kind} nodes {names} and "
                    f"{peer.title} (through NIRTorch) runs one",
                    "Export a network with one input Node and one Probe, or a "
                    "NengoModel(network, outputs=[probe]) (to_nir writes a "
                    "model's outputs only)",
                )
            )
    return problems


def _loop(edges: list) -> list:
    """The nodes of one cycle among ``edges`` (in order), or ``[]``."""
    successors = {}
    for source, target in edges:
        successors.setdefault(source, []).append(target)
    state, path = {}, []

    def visit(node):
        state[node] = "open"
        path.append(node)
        for target in successors.get(node, []):
            if state.get(target) == "open":
                return path[path.index(target) :]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        state[node] = "done"
        path.pop()
        return []

    for node in list(successors):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []
