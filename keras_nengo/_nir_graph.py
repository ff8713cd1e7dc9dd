"""Reading NIR graphs: nested subgraphs inlined, sizes, weights as matrices.

Pure functions over ``nir`` nodes that `keras_nengo._nir_import` builds on.
"""

import nir
import numpy as np

FILTERS = (nir.LI, nir.I)


def flatten(graph, prefix=""):
    """Nodes and edges of a graph with nested NIRGraphs inlined.

    A subgraph's nodes are named ``<subgraph>.<node>``; its Input and Output
    nodes become identities (``Scale`` of ones) so outer edges can reach them.
    """
    nodes, edges = {}, []
    inner_io = {}
    for name, node in graph.nodes.items():
        full = prefix + name
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges = flatten(node, full + ".")
            ins = [n for n, v in node.nodes.items() if isinstance(v, nir.Input)]
            outs = [n for n, v in node.nodes.items() if isinstance(v, nir.Output)]
            for inner in ins + outs:
                shape = (
                    node.nodes[inner].input_type["input"]
                    if inner in ins
                    else node.nodes[inner].output_type["output"]
                )
                sub_nodes[f"{full}.{inner}"] = nir.Scale(np.ones(tuple(shape)))
            inner_io[full] = (ins, outs)
            nodes.update(sub_nodes)
            edges.extend(sub_edges)
        else:
            nodes[full] = node

    def endpoint(name, side):
        full = prefix + name
        if full in inner_io:
            ins, outs = inner_io[full]
            ports = ins if side == "in" else outs
            if len(ports) != 1:
                raise ValueError(
                    f"Edge to subgraph {full!r} is ambiguous: it has {len(ports)} "
                    f"{'Input' if side == 'in' else 'Output'} nodes. Name the port "
                    f"in the edge, e.g. '{name}.{ports[0] if ports else 'input'}'."
                )
            return f"{full}.{ports[0]}"
        return full

    for src, dst in graph.edges:
        edges.append((endpoint(src, "out"), endpoint(dst, "in")))
    return nodes, edges


def size_of(node) -> int:
    """The node's size from its own parameters (1 for scalar parameters)."""
    if isinstance(node, nir.Input):
        shape = node.input_type["input"]
    elif isinstance(node, nir.Output):
        shape = node.output_type["output"]
    elif isinstance(node, (nir.Affine, nir.Linear)):
        shape = node.weight.shape[:1]
    elif isinstance(node, nir.Scale):
        shape = np.shape(node.scale)
    elif isinstance(node, nir.CubaLIF):
        shape = np.shape(node.v_threshold)
    else:
        shape = np.shape(node.r)
    shape = tuple(int(s) for s in np.atleast_1d(shape))
    return int(np.prod(shape))


def one_tau(name, node, attr="tau"):
    tau = np.unique(np.asarray(getattr(node, attr), dtype=float))
    takes = (
        "synapse"
        if attr == "tau_syn" or isinstance(node, FILTERS)
        else ("LIF population")
    )
    if tau.size != 1:
        raise ValueError(
            f"NIR node {name!r} ({type(node).__name__}) has {tau.size} different "
            f"values of {attr} {tau.tolist()[:5]}; a Nengo {takes} takes one. "
            "Split the node into one node per time constant."
        )
    if tau[0] <= 0:
        raise ValueError(
            f"NIR node {name!r} ({type(node).__name__}) needs {attr} > 0 "
            f"(seconds). Received: {attr}={tau[0]}."
        )
    return float(tau[0])


def flat(value) -> np.ndarray:
    return np.asarray(value, dtype=float).reshape(-1)


def weight_of(node) -> np.ndarray:
    """The node's linear map as a matrix (out, in) or a vector (elementwise)."""
    if isinstance(node, nir.Scale):
        return flat(node.scale)
    if isinstance(node, FILTERS):
        return flat(node.r)
    weight = np.asarray(node.weight, dtype=float)
    if weight.ndim != 2:
        raise ValueError(
            f"NIR {type(node).__name__} weights must be 2-D (out, in). "
            f"Received: shape {weight.shape}."
        )
    return weight


def compose(outer, inner):
    """``outer @ inner`` where None is the identity and 1-D is a diagonal."""
    if outer is None or is_identity(outer):
        return inner
    if inner is None:
        return outer
    if outer.ndim == 1:
        return outer * inner if inner.ndim == 1 else outer[:, None] * inner
    return outer * inner[None, :] if inner.ndim == 1 else outer @ inner


def is_identity(weight) -> bool:
    if weight.ndim == 1:
        return bool(np.all(weight == 1))
    return weight.shape[0] == weight.shape[1] and np.array_equal(
        weight, np.eye(weight.shape[0])
    )


def prune(nodes: dict, edges: list) -> tuple:
    """(nodes, edges) without the nodes from which no ``Output`` is reached.

    ``Input`` nodes stay: they are the graph's interface.
    """
    keep = {name for name, node in nodes.items() if isinstance(node, nir.Output)}
    frontier = list(keep)
    while frontier:
        target = frontier.pop()
        for source, destination in edges:
            if destination == target and source not in keep:
                keep.add(source)
                frontier.append(source)
    keep |= {name for name, node in nodes.items() if isinstance(node, nir.Input)}
    kept = {name: node for name, node in nodes.items() if name in keep}
    return kept, [(a, b) for a, b in edges if a in keep and b in keep]
