"""Nengo backend tests that `keras_nengo.Simulator` cannot pass by design.

Keys are node id patterns in Nengo's repository form
(``nengo/tests/test_x.py::test_name[params]``, ``*`` and ``?`` as wildcards,
brackets literal); values say why, in one line. `tests/nengo_suite/plugin.py`
skips them (``--unsupported`` runs them as xfail). Every entry is a design
choice or a limit of the engine named in its reason, never a bug left open.

`NENGO_BUGS` lists tests that fail on this stack with ``nengo.Simulator``
itself (``--simulator nengo.Simulator`` shows it): Nengo's own bugs, run as
strict xfail so that a fixed Nengo shows up.
"""

UNSUPPORTED = {
    "nengo/tests/test_simulator.py::test_signal_init_values": (
        "steps a hand-built Model's operators and reads sim.signals: keras_nengo "
        "builds the network itself and keeps signals inside TensorFlow"
    ),
    "nengo/tests/test_simulator.py::test_dtype[*": (
        "reads sim.signals to check Nengo's rc precision; keras_nengo's precision "
        "is the dtype argument (float32 by default) and signals stay in TensorFlow"
    ),
    "nengo/tests/test_simulator.py::test_simulator_progress_bars": (
        "keras_nengo.Simulator shows no progress bars (progress_bar is accepted "
        "and ignored)"
    ),
    "nengo/tests/test_node.py::test_args": (
        "Nodes with inputs run inside the TensorFlow graph, which passes time as "
        "a NumPy float32/float64 scalar, not a Python float"
    ),
    "nengo/tests/test_copy.py::test_pickle_model": (
        "runs a prebuilt, unpickled nengo Model (Simulator(None, model=...)): "
        "keras_nengo.Simulator builds the network itself"
    ),
    "nengo/tests/test_cache.py::test_cache_*": (
        "passes a Model with a decoder cache (Simulator(net, model=...)): "
        "keras_nengo.Simulator builds the network itself"
    ),
    "nengo/tests/test_ensemble.py::test_gain_bias": (
        "compares gains and biases bit for bit (array_equal) with values Nengo "
        "computed in float64; the build keeps them in the simulation's float32"
    ),
    "nengo/tests/test_transforms.py::test_sparse[False-*": (
        "expects a warning that scipy.sparse is not used; NengoDL's builder "
        "takes Sparse transforms natively and warns of nothing"
    ),
    "nengo/tests/test_copy.py::test_pickle_sim[*": (
        "a keras_nengo.Simulator holds TensorFlow state and refuses pickling "
        "(pickle the network or the probe data instead)"
    ),
    "nengo/tests/test_learning_rules.py::test_rls_*": (
        "NengoDL's planner has no builder for the RLS learning rule"
    ),
    "nengo/tests/test_processes.py::test_x_copy": (
        "a Process returning None is an explicit error in NengoDL's builder "
        "(Nengo allows it with ill-defined behaviour)"
    ),
}

NENGO_BUGS = {
    "nengo/tests/test_synapses.py::test_triangle": (
        "Nengo 4.1's Triangle.filt(y0=1) fails on NumPy 2 ('setting an array "
        "element with a sequence'), also with nengo.Simulator"
    ),
}
