"""``nengo.Network`` -> NIR graph (the private half of `keras_nengo.nir`).

Node names are keras_nengo's names (`keras_nengo.naming`) written with
letters, digits and ``"_"`` only (`keras_nengo._nir_peers.nir_name`: the
subnetwork separator ``"/"`` becomes ``"__"``), so that torch-based readers
keep them:

- input Node ``u`` -> ``Input`` ``u``; passthrough Node ``n`` -> ``Scale`` ``n``
  (ones: NIR sums the edges arriving at a node);
- Ensemble ``a`` -> ``Affine`` ``a_encoders`` (scaled encoders, bias) ->
  ``LIF`` (or ``IF``) ``a`` with ``tau = tau_rc``, ``r = 1``, ``v_leak = 0``,
  ``v_threshold = 1``, ``v_reset = 0``;
- a LIF Ensemble ``b`` all of whose incoming Connections have the same
  ``Lowpass(tau_syn)`` -> ``Linear`` ``b_encoders`` -> ``CubaLIF`` ``b``
  (``tau_syn``, ``tau_mem = tau_rc``, ``v_leak`` = the biases, ``r * w_in =
  1``): the synapse is linear, so filtering each input before the encoders
  equals filtering the encoded sum, exactly;
- Connection ``a_to_b`` -> ``Linear`` ``a_to_b`` (decoders x transform,
  ``(out, in)``; rows scaled by the gains when it targets ``b.neurons``), then
  ``LI`` ``a_to_b_synapse`` (``tau``, ``r = 1``, ``v_leak = 0``) for a
  ``Lowpass`` synapse that its target's CubaLIF does not hold;
- Probe ``p`` -> [``Linear`` ``p_decoders``] -> [``LI`` ``p_synapse``] ->
  ``Output`` ``p``.

With ``peer=`` the graph is checked against what that reader runs
(`keras_nengo._nir_peers`), and every problem names its Nengo object.
"""

import warnings

import nengo
import nir
import numpy as np
from nengo.transforms import Dense, NoTransform

from keras_nengo._nir_graph import prune
from keras_nengo._nir_neuron_rules import NIRExportError, neuron_kind
from keras_nengo._nir_peers import euler_tau, nir_name, peer_problems
from keras_nengo.naming import NameTable


class _Exporter:
    def __init__(
        self, network, named_weights, seed, approximate, spike_area, peer, probes, dt
    ):
        self.network = network
        self.dt = dt
        self.probes = network.all_probes if probes is None else probes
        # a model's outputs: what reaches none of them is not exported
        self.pruned = probes is not None
        self.peer = peer
        self.table = NameTable(network)
        self.named = named_weights
        self.seed = seed
        self.approximate = approximate
        self.spike_area = float(spike_area)
        self.nodes, self.edges = {}, []
        self.owners = {}  # NIR node name -> the Nengo object it comes from
        self.cuba = set()  # Ensembles exported as CubaLIF
        self._built = None

    # -- values -----------------------------------------------------------------

    @property
    def built(self):
        """A Nengo build with the seed keras_nengo uses (for gains, probe decoders)."""
        if self._built is None:
            model = nengo.builder.Model(dt=0.001)
            if self.network.seed is None:
                if self.seed is None and self.named is not None:
                    raise ValueError(
                        "to_nir needs the NengoModel's build seed for the gains of "
                        "connections into `.neurons` and for the decoders of "
                        "Ensemble probes, and the network has no seed. Received: "
                        "seed=None and network.seed=None. Pass to_nir(model, "
                        "seed=<the seed given to NengoModel>), or build the "
                        "network with nengo.Network(seed=...)."
                    )
                if self.seed is not None:
                    model.seeds[self.network] = self.seed
                    model.seeded[self.network] = False
            nengo.builder.Builder.build(model, self.network)
            self._built = model
        return self._built

    def _value(self, obj, attr):
        if self.named is not None:
            name = self.table.parameter_name(obj, attr)
            if name in self.named:
                return np.asarray(self.named[name], dtype=float)
        owner = obj.ensemble if isinstance(obj, nengo.ensemble.Neurons) else obj
        params = self.built.params[owner]
        value = {
            "encoders": lambda: params.scaled_encoders,
            "bias": lambda: params.bias,
            "weights": lambda: params.weights,
        }[attr]()
        return None if value is None else np.asarray(value, dtype=float)

    # -- refusals ---------------------------------------------------------------

    def _inexact(self, obj, lacks, approximation):
        message = (
            f"{obj} cannot be exported to NIR exactly: {lacks}. " f"{approximation}"
        )
        if not self.approximate:
            raise NIRExportError(
                f"{message} Change the network, or pass approximate=True to "
                "export the approximation with a warning."
            )
        warnings.warn(message, stacklevel=4)

    def _neuron(self, ens):
        return neuron_kind(ens, self._inexact)

    # -- graph pieces -----------------------------------------------------------

    def _name(self, obj):
        return nir_name(self.table.name(obj))

    def _add(self, name, node, owner):
        if name in self.nodes:
            raise ValueError(
                f"Two NIR nodes would be named {name!r}: one for {owner} and one "
                f"for {self.owners[name]}. Relabel one of them."
            )
        self.nodes[name] = node
        self.owners[name] = owner

    def _shared_synapse(self, ens):
        """The tau of the one Lowpass that every input of ``ens`` has, else None."""
        taus = {
            conn.synapse.tau if type(conn.synapse) is nengo.Lowpass else None
            for conn in self.network.all_connections
            if _ensemble_of(conn.post_obj) is ens
        }
        if len(taus) == 1 and None not in taus and 0 not in taus:
            return taus.pop()
        return None

    def _ensemble(self, ens):
        """Encoders node -> neuron node; returns the neurons' spike amplitude."""
        name = self._name(ens)
        kind, tau_rc, amplitude = self._neuron(ens)
        encoders = self._value(ens, "encoders")
        bias = self._value(ens.neurons, "bias")
        ones = np.ones(ens.n_neurons)
        tau_syn = self._shared_synapse(ens) if kind == "LIF" else None
        peer_bias = self.peer is not None and self.approximate and np.any(bias != 0)
        if tau_syn is not None and peer_bias:
            # a CubaLIF holds biases as v_leak, which the peers do not take
            warnings.warn(
                f"{ens} becomes a CubaLIF (its inputs share Lowpass({tau_syn})) "
                f"and {self.peer.title} takes no v_leak: with approximate=True its "
                "biases go through the synapse (they rise from 0 with tau_syn at "
                "the start of a run).",
                stacklevel=4,
            )
            self._add(f"{name}_encoders", nir.Affine(weight=encoders, bias=bias), ens)
            bias = 0 * bias
        elif tau_syn is not None:
            self._add(f"{name}_encoders", nir.Linear(weight=encoders), ens)
        else:
            self._add(f"{name}_encoders", nir.Affine(weight=encoders, bias=bias), ens)
        if self.peer is not None:
            # the peer's forward-Euler step then equals Nengo's exact step
            tau_rc = None if tau_rc is None else euler_tau(tau_rc, self.dt)
            tau_syn = None if tau_syn is None else euler_tau(tau_syn, self.dt)
        if tau_syn is not None:
            self.cuba.add(ens)
            # NIR leaves r * w_in free; snnTorch reads only r = tau_mem / dt
            r = 1.0
            if self.peer is not None and self.peer.cuba_r_is_tau_over_dt:
                r = tau_rc / self.dt
            node = nir.CubaLIF(
                tau_syn=tau_syn * ones,
                tau_mem=tau_rc * ones,
                r=r * ones,
                v_leak=np.asarray(bias, dtype=float).reshape(-1) * ones,
                v_threshold=ones.copy(),
                v_reset=0 * ones,
                w_in=ones / r,
            )
        elif kind == "LIF":
            node = nir.LIF(
                tau=tau_rc * ones,
                r=ones.copy(),
                v_leak=0 * ones,
                v_threshold=ones.copy(),
                v_reset=0 * ones,
            )
        else:
            node = nir.IF(r=ones, v_threshold=ones.copy(), v_reset=0 * ones)
        self._add(name, node, ens)
        self.edges.append((f"{name}_encoders", name))
        return amplitude

    def _synapse(self, name, source, synapse, obj):
        """Edge ``source -> LI`` for a Lowpass; returns the new source name."""
        if synapse is None or (isinstance(synapse, nengo.Lowpass) and synapse.tau == 0):
            return source
        if type(synapse) is not nengo.Lowpass:
            raise NIRExportError(
                f"{obj} has synapse {synapse}, and NIR's only filter is the "
                "first-order LI (nengo.Lowpass). Use a Lowpass synapse, or None."
            )
        size = self.nodes[source].output_type["output"]
        ones = np.ones(tuple(int(s) for s in size))
        self._add(
            name, nir.LI(tau=synapse.tau * ones, r=ones.copy(), v_leak=0 * ones), obj
        )
        self.edges.append((source, name))
        return name

    def export(self):
        amplitude = {}
        for ens in self.network.all_ensembles:
            amplitude[ens] = self._ensemble(ens)
        for node in self.network.all_nodes:
            self._node(node)
        for conn in self.network.all_connections:
            self._connection(conn, amplitude)
        for probe in self.probes:
            self._probe(probe, amplitude)
        if self.pruned:
            self.nodes, self.edges = prune(self.nodes, self.edges)
        if self.peer is not None:
            self._check_peer()
        return nir.NIRGraph(
            nodes=self.nodes,
            edges=self.edges,
            metadata={"source": "keras_nengo"},
        )

    def _check_peer(self):
        problems = peer_problems(self.nodes, self.edges, self.peer)
        if problems:
            lines = [
                f"- {self.owners[name]} (NIR node {name!r}): {problem}. {fix}."
                for name, problem, fix in problems
            ]
            raise NIRExportError(
                f"to_nir(..., peer={self.peer.key!r}) made a graph that "
                f"{self.peer.title} ({self.peer.reader}) cannot run:\n"
                + "\n".join(lines)
                + "\nChange those objects, or export with peer=None (keras_nengo "
                "and other NIR readers read every node kind above)."
            )

    def _node(self, node):
        name = self._name(node)
        if node.size_in == 0:
            self._add(name, nir.Input(input_type=np.array([node.size_out])), node)
        elif node.output is None:
            self._add(name, nir.Scale(np.ones(node.size_out)), node)
        else:
            raise NIRExportError(
                f"{node} computes a Python function, and NIR has no place for "
                "code. Replace it with Connections/Ensembles, or compute it outside "
                "the graph (feed it as an input)."
            )

    def _port(self, obj, side):
        """(NIR node name, full size) where a connection leaves or arrives."""
        if isinstance(obj, nengo.Ensemble):
            name = self._name(obj)
            return (
                (name, obj.n_neurons)
                if side == "pre"
                else (
                    f"{name}_encoders",
                    obj.dimensions,
                )
            )
        if isinstance(obj, nengo.ensemble.Neurons):
            return self._name(obj.ensemble), obj.ensemble.n_neurons
        if isinstance(obj, nengo.Node):
            return self._name(obj), obj.size_out if side == "pre" else obj.size_in
        raise NIRExportError(
            f"Connections to or from {obj} cannot be exported to NIR. Connect "
            "Nodes, Ensembles and ens.neurons only."
        )

    def _connection(self, conn, amplitude):
        if conn.learning_rule_type is not None:
            raise NIRExportError(
                f"{conn} has learning rule {conn.learning_rule_type}, and NIR "
                "graphs are static (no plasticity). Remove the learning rule, or "
                "freeze the learnt weights first."
            )
        if not isinstance(conn.transform, (Dense, NoTransform)):
            raise NIRExportError(
                f"{conn} has a {type(conn.transform).__name__} transform; "
                "keras_nengo exports Dense (or no) transforms. Use a Dense transform."
            )
        if isinstance(conn.pre_obj, nengo.Ensemble) and conn.solver.weights:
            raise NIRExportError(
                f"{conn} solves for full weights (solver weights=True); export "
                "it as a decoded connection (a solver with weights=False)."
            )
        name = self._name(conn)
        source, pre_size = self._port(conn.pre_obj, "pre")
        target, post_size = self._port(conn.post_obj, "post")
        matrix = np.zeros((post_size, pre_size))
        weights = self._value(conn, "weights") if conn.has_weights else None
        decoded = isinstance(conn.pre_obj, nengo.Ensemble)
        pre_index = (
            np.arange(pre_size) if decoded else np.arange(pre_size)[conn.pre_slice]
        )
        post_index = np.arange(post_size)[conn.post_slice]
        if weights is None:
            weights = np.eye(len(post_index), len(pre_index))
        elif weights.ndim == 1:
            weights = np.diag(weights)
        elif weights.ndim == 0:
            weights = weights * np.eye(len(post_index), len(pre_index))
        matrix[np.ix_(post_index, pre_index)] = weights
        pre_ens = _ensemble_of(conn.pre_obj)
        if pre_ens is not None:
            matrix *= amplitude[pre_ens] / self.spike_area
        if isinstance(conn.post_obj, nengo.ensemble.Neurons):
            matrix *= self.built.params[conn.post_obj.ensemble].gain[:, None]
        self._add(name, nir.Linear(weight=matrix), conn)
        self.edges.append((source, name))
        last = name
        if _ensemble_of(conn.post_obj) not in self.cuba:
            last = self._synapse(f"{name}_synapse", name, conn.synapse, conn)
        self.edges.append((last, target))

    def _probe(self, probe, amplitude):
        name = self._name(probe)
        target = probe.target
        if isinstance(target, nengo.base.ObjView) or probe.attr not in (
            "output",
            "decoded_output",
        ):
            raise NIRExportError(
                f"{probe} records {probe.attr!r} of {target}; NIR outputs are node "
                "outputs. Probe a Node, an Ensemble (decoded output) or "
                "ens.neurons (spikes), without slicing."
            )
        if isinstance(target, nengo.Ensemble):
            (conn,) = [
                c
                for c in self.built.params
                if isinstance(c, nengo.Connection) and c.post_obj is probe
            ]
            decoders = np.asarray(self.built.params[conn].weights, dtype=float)
            decoders = decoders * amplitude[target] / self.spike_area
            source = f"{name}_decoders"
            self._add(source, nir.Linear(weight=decoders), probe)
            self.edges.append((self._name(target), source))
            size = target.dimensions
        elif isinstance(target, nengo.ensemble.Neurons):
            source, size = self._name(target.ensemble), target.size_out
            # a peer's Output carries its own unit spikes, unscaled
            if amplitude[target.ensemble] != self.spike_area and self.peer is None:
                scale = amplitude[target.ensemble] / self.spike_area
                self._add(f"{name}_amplitude", nir.Scale(scale * np.ones(size)), probe)
                self.edges.append((source, f"{name}_amplitude"))
                source = f"{name}_amplitude"
        elif isinstance(target, nengo.Node):
            source, size = self._name(target), target.size_out
        else:
            raise NIRExportError(
                f"{probe} records {target}; probe a Node, an Ensemble or "
                "ens.neurons."
            )
        source = self._synapse(f"{name}_synapse", source, probe.synapse, probe)
        self._add(name, nir.Output(output_type=np.array([size])), probe)
        self.edges.append((source, name))


def _ensemble_of(obj):
    if isinstance(obj, nengo.Ensemble):
        return obj
    if isinstance(obj, nengo.ensemble.Neurons):
        return obj.ensemble
    return None


def export_network(
    network,
    named_weights,
    seed,
    approximate,
    spike_area,
    peer=None,
    probes=None,
    dt=None,
):
    return _Exporter(
        network, named_weights, seed, approximate, spike_area, peer, probes, dt
    ).export()
