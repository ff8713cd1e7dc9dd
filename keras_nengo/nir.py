"""Export Nengo networks to NIR, import NIR graphs as Nengo networks.

`to_nir` writes a network (or a trained `keras_nengo.NengoModel`, with its
named weights) as a ``nir.NIRGraph``; `from_nir` turns a NIR graph (from
snnTorch, Norse, ... or `to_nir`) into a ``nengo.Network`` that
`keras_nengo.NengoModel` trains and analyses like any other. Files go through
``nir.write(path, graph)`` / ``nir.read(path)``. Needs the optional ``nir``
package (``pip install keras-nengo[nir]``).

**Semantics.** NIR nodes are continuous-time systems; times are in seconds
(as snnTorch and Norse export them):

- ``LIF``: ``tau dv/dt = (v_leak - v) + r I``, a spike when
  ``v > v_threshold``, then ``v = v_reset``; at rest (``v = 0``) at ``t = 0``.
  Nengo's LIF is ``tau_rc du/dt = J - u`` with threshold 1 and reset 0, so
  ``u = (v - v_reset) / (v_threshold - v_reset)`` and
  ``J = gain I + bias`` with ``gain = r / (v_threshold - v_reset)`` and
  ``bias = (v_leak - v_reset) / (v_threshold - v_reset)``: exact, provided
  the Nengo LIF has no refractory period, no voltage floor and starts at
  ``u = 0`` (`nir_lif`). Ensembles export as ``Affine(scaled encoders,
  bias) -> LIF(tau=tau_rc, r=1, v_leak=0, v_threshold=1, v_reset=0)``.
- ``CubaLIF``: a LIF whose input first passes ``tau_syn dI/dt = -I +
  w_in S``. A LIF Ensemble all of whose incoming Connections share one
  ``Lowpass(tau_syn)`` exports as ``Linear(scaled encoders) ->
  CubaLIF(tau_syn, tau_mem=tau_rc, v_leak=bias)``: exact, since filtering each
  input before the encoders equals filtering their sum. On import the synapse
  goes on every Connection into the Ensemble.
- ``IF``: ``dv/dt = r I``, same normalisation (`IntegrateAndFire`).
- ``LI``: ``tau dv/dt = (v_leak - v) + r I`` is ``nengo.Lowpass(tau)`` applied
  to ``r I + v_leak``: exact. ``I``: ``dv/dt = r I`` is the synapse
  ``LinearFilter([1], [1, 0])``.
- ``Affine``/``Linear`` weights are ``(out, in)``, as Nengo's transforms.
  Edges arriving at one node are summed.
- A spike is a unit event, which Nengo models as a Dirac delta of area
  ``spike_area`` (default 1: Nengo's ``amplitude=1`` spike, height ``1/dt``
  for one step). Exporters that treat a spike as a 1 held for one step of
  their own ``dt_source`` (snnTorch writes ``r = tau / dt_source``) are read
  with ``from_nir(graph, spike_area=dt_source)``.

**Where dt enters.** Nowhere in the graph: NIR is continuous-time, so a graph
is the same for any ``dt``. The discrete simulation is Nengo's: inputs are
held over each step of ``dt`` (zero-order hold) and each state is advanced
with its exact exponential solution over the step, so

- an ``LI`` (Lowpass) output at step ``n`` equals the continuous solution at
  ``t_n - dt``: exact up to Nengo's one-step synapse delay;
- LIF and IF voltages are exact at every step end, but a spike is seen at the
  end of the step in which ``v`` crossed the threshold and the voltage resets
  there: each inter-spike interval is rounded up to whole steps (for a
  constant current, ``dt * (floor(T / dt) + 1)`` instead of
  ``T = tau ln(J / (J - 1))``), an error below ``dt`` per spike;
- an instantaneous NIR loop (no ``LI`` on it) gets ``synapse=0``: the
  spikes act on the next step, as in snnTorch's and Norse's recurrent layers.

**Norse and snnTorch** (``peer="norse"`` / ``"snntorch"`` in `to_nir` and
`from_nir`). Both read NIR through NIRTorch and step it in discrete time,
differently from Nengo:

- forward Euler: a time constant ``tau`` decays by ``1 - dt / tau`` per step
  (snnTorch's ``beta``; its exporter writes ``tau = dt / (1 - beta)`` and
  ``r = tau / dt``), Nengo's by ``exp(-dt / tau)``. Run as written, a
  continuous-time graph drifts by about ``dt / (2 tau)`` of the elapsed time
  per time constant on the path. ``to_nir(..., peer=)`` therefore writes
  ``euler_tau = dt / (1 - exp(-dt / tau))`` and ``from_nir(..., peer=)``
  reads ``exact_tau = -dt / log(1 - dt / tau)``: both then step the same
  numbers;
- a spike is a 1 held for one step: area ``dt`` in NIR's units, the
  ``spike_area`` that ``peer=`` sets;
- the time step: snnTorch's importer and exporter fix ``dt = 1e-4``; Norse's
  ``from_nir(graph, dt=...)`` takes one (default 0.001), pass the same ``dt``
  to ``to_nir``. Norse 1.1's exporter writes ``tau = dt / tau_mem_inv``
  (fixed after 1.1): export with ``norse.torch.to_nir(model, x, dt=1.0)``
  to get seconds;
- no synapse delay: Nengo's synapse hands its input to the next step, a
  peer's CubaLIF to the same step, so the peer's spikes come exactly one step
  earlier per synapse on the path (measured in ``tests/test_nir_peers.py``:
  equal spikes one step apart, outputs to 1e-5; a peer's own network runs in
  keras_nengo to 1e-5).

What they run: ``Input``, ``Output`` (one of each), ``Affine``, ``Linear``,
``LIF``, ``CubaLIF`` with ``v_leak = 0`` (snnTorch refuses other values,
Norse adds ``v_leak`` to the synaptic current too), and for Norse loops.
No ``LI`` (probe with ``synapse=None`` and filter after the run), ``Scale``
(passthrough Nodes) or ``IF``; `to_nir` with ``peer=`` raises an
`NIRExportError` naming each Nengo object that becomes something else.

**What NIR cannot express** (an `NIRExportError` names the object):
refractory periods, LIF voltage floors and random initial voltages (exported
without them, with a warning, when ``approximate=True``), rate neurons
(``LIFRate`` -> ``LIF``, ``RectifiedLinear``/``SpikingRectifiedLinear`` ->
``IF``, only with ``approximate=True``), other neuron types, Python Node
functions, learning rules, non-Lowpass synapses, non-Dense transforms and
probes of anything but a Node, an Ensemble or ``ens.neurons``.

**Names.** NIR node names are keras_nengo's names written with letters,
digits and ``"_"`` (``"/"`` -> ``"__"``, ``"."`` -> ``"_"``: NIRTorch turns
names into torch module names, which refuse ``"."``), and `from_nir` labels
objects with NIR node names, so ``from_nir(to_nir(model))`` has the named
weights of ``model`` with ``"."`` written ``"_"`` (connections into
``ens.neurons`` carry the gain in their weights, which NIR's ``LIF(r=1)``
does not hold). Files written before keras_nengo used ``"."``
(``a.encoders``) read as before.
"""

from typing import Optional

import nengo

from keras_nengo._nir_export import NIRExportError, export_network
from keras_nengo._nir_import import import_graph
from keras_nengo._nir_neurons import IntegrateAndFire, nir_lif
from keras_nengo._nir_peers import peer_of

__all__ = ["IntegrateAndFire", "NIRExportError", "from_nir", "nir_lif", "to_nir"]


def to_nir(
    model_or_network,
    *,
    seed: Optional[int] = None,
    approximate: bool = False,
    spike_area: Optional[float] = None,
    peer: Optional[str] = None,
    dt: Optional[float] = None,
):
    """Export a Nengo network, or a NengoModel with its trained weights, to NIR.

    Parameters
    ----------
    model_or_network : keras_nengo.NengoModel or nengo.Network
        For a NengoModel the encoders, biases and connection weights are its
        current named weights and its outputs (``outputs=`` given to it)
        become the NIR ``Output`` nodes; for a Network they are those Nengo
        builds, and every Probe is an output.
    seed : int, optional
        The build seed, used for neuron gains (connections into
        ``ens.neurons``) and Ensemble probe decoders when the network has no
        seed of its own; pass the ``seed`` given to NengoModel.
    approximate : bool
        If True, export refractory LIFs, voltage floors, random initial
        voltages and rate neurons as the nearest NIR neuron, with a warning.
    spike_area : float, optional
        Area of one NIR spike in Nengo units (see the module notes). Default:
        1 (NIR's Dirac-delta spikes), or the peer's ``dt`` with ``peer=``.
    peer : {None, "norse", "snntorch"}
        Write the graph for that reader (Norse 1.1's ``norse.torch.from_nir``,
        snnTorch 1.0's ``snntorch.import_nir.import_from_nir``): spikes of
        area ``dt`` (both count a spike as a 1 held for one of their steps),
        snnTorch's ``CubaLIF`` convention ``r = tau_mem / dt``, and a check
        that every node is one the reader runs (see the module notes).
    dt : float, optional
        The peer's time step in seconds: what you pass to Norse's
        ``from_nir(graph, dt=dt)`` (default 0.001); snnTorch's importer
        always steps with 1e-4.

    Returns
    -------
    graph : nir.NIRGraph

    Raises
    ------
    NIRExportError
        If an object has no exact NIR equivalent (and ``approximate`` does not
        cover it), or becomes a node that ``peer`` cannot run; the message
        names the object and what NIR (or the peer) lacks.
    TypeError
        If ``model_or_network`` is neither a NengoModel nor a Network.
    ValueError
        If a NengoModel's gains are needed and no seed is known, or ``peer``
        or ``dt`` is not one listed here.

    Examples
    --------
    >>> import numpy as np
    >>> with nengo.Network(seed=0) as net:
    ...     u = nengo.Node(np.zeros(1), label="u")
    ...     a = nengo.Ensemble(10, 1, neuron_type=nir_lif(0.02), label="a")
    ...     _ = nengo.Connection(u, a)
    ...     p = nengo.Probe(a, synapse=0.01, label="out")
    >>> graph = to_nir(net)
    >>> sorted(graph.nodes)  # doctest: +NORMALIZE_WHITESPACE
    ['a', 'a_encoders', 'out', 'out_decoders', 'out_synapse', 'u', 'u_to_a']
    >>> type(graph.nodes["a"]).__name__  # u_to_a's Lowpass is a's only synapse
    'CubaLIF'
    """
    named_weights, probes = None, None
    if isinstance(model_or_network, nengo.Network):
        network = model_or_network
    elif hasattr(model_or_network, "get_named_weights") and isinstance(
        getattr(model_or_network, "network", None), nengo.Network
    ):
        network = model_or_network.network
        named_weights = model_or_network.get_named_weights()
        probes = getattr(model_or_network, "output_probes", None)
    else:
        raise TypeError(
            "to_nir expects a keras_nengo.NengoModel or a nengo.Network. "
            f"Received: model_or_network of type {type(model_or_network).__name__}."
        )
    peer_ = None if peer is None else peer_of(peer)
    spike_area, dt = _peer_steps(peer_, spike_area, dt)
    return export_network(
        network, named_weights, seed, approximate, spike_area, peer_, probes, dt
    )


def _peer_steps(peer, spike_area, dt) -> tuple:
    """(spike_area, the peer's dt or None) from to_nir's arguments."""
    if peer is None and dt is not None:
        raise ValueError(
            "dt is the time step of a peer's simulation and needs peer=. "
            f"Received: dt={dt}, peer=None. Pass peer='norse' or 'snntorch', or "
            "leave dt out (a NIR graph holds no time step)."
        )
    if dt is not None and dt <= 0:
        raise ValueError(f"dt must be > 0 (seconds). Received: dt={dt}.")
    if peer is not None and peer.fixed_dt is not None:
        if dt is not None and dt != peer.fixed_dt:
            raise ValueError(
                f"{peer.title}'s importer always steps with dt={peer.fixed_dt}. "
                f"Received: dt={dt}. Leave dt out for peer={peer.key!r}."
            )
        dt = peer.fixed_dt
    if peer is not None and dt is None:
        dt = 0.001  # Norse's default
    if spike_area is None:
        spike_area = 1.0 if peer is None else dt
    if spike_area <= 0:
        raise ValueError(f"spike_area must be > 0. Received: spike_area={spike_area}.")
    return float(spike_area), dt


def from_nir(
    graph,
    *,
    spike_area: Optional[float] = None,
    label: Optional[str] = None,
    peer: Optional[str] = None,
    dt: Optional[float] = None,
) -> nengo.Network:
    """Build a Nengo network from a NIR graph.

    Parameters
    ----------
    graph : nir.NIRGraph
        Made of Input, Output, Affine, Linear, Scale, LIF, CubaLIF, LI, IF and
        I nodes (nested NIRGraphs, as snnTorch writes recurrent layers, are
        inlined with ``<subgraph>.<node>`` names).
    spike_area : float, optional
        Area of one NIR spike in Nengo units: 1 for NIR's Dirac-delta spikes
        (and `to_nir` graphs), the exporter's time step for graphs whose spikes
        are a 1 held for one step (see the module notes). Default: 1, or
        ``dt`` with ``peer=``.
    label : str, optional
        Label of the returned network.
    peer : {None, "norse", "snntorch"}
        The graph was written by (or for) that library, whose simulation steps
        the time constants with forward Euler at ``dt``: read each ``tau`` as
        the Nengo time constant with the same decay per step (`exact_tau`)
        and spikes of area ``dt``, so that a NengoModel with ``dt=dt`` runs
        what the peer ran. Run the NengoModel with that ``dt``.
    dt : float, optional
        The peer's time step: snnTorch's is always 1e-4; Norse's is what its
        network used (default 0.001).

    Returns
    -------
    network : nengo.Network
        One input Node per NIR ``Input`` and one Probe per ``Output``, labelled
        with the NIR node names; LIF/IF nodes become Ensembles of `nir_lif` /
        `IntegrateAndFire` neurons.

    Raises
    ------
    TypeError
        If ``graph`` is not a NIRGraph, or holds a node type not listed above
        (the message names the node and its type).
    ValueError
        If a node's parameters have no Nengo equivalent (several time
        constants in one node, ``v_threshold <= v_reset``, tau <= 0, with
        ``peer=`` a tau not above ``dt``), or ``peer`` or ``dt`` is not one
        listed here.

    Examples
    --------
    >>> import nir, numpy as np
    >>> graph = nir.NIRGraph.from_list(
    ...     nir.Affine(weight=np.ones((3, 2)), bias=np.zeros(3)),
    ...     nir.LIF(tau=np.full(3, 0.02), r=np.ones(3), v_leak=np.zeros(3),
    ...             v_threshold=np.ones(3)),
    ... )
    >>> net = from_nir(graph)
    >>> [ens.label for ens in net.all_ensembles], [p.label for p in net.all_probes]
    (['lif'], ['output'])
    """
    peer_ = None if peer is None else peer_of(peer)
    spike_area, dt = _peer_steps(peer_, spike_area, dt)
    return import_graph(graph, spike_area, label, dt)
