"""Run Nengo's own backend test suite on `keras_nengo.Simulator`.

Nengo ships its tests (``nengo/tests``) and a pytest plugin (``pytest_nengo``,
registered as ``nengo``) that gives them the ``Simulator`` fixture and the
neuron-type parameters. That plugin does not load under pytest 9 (one of its
hooks asks for ``startdir``, which pytest 9 no longer passes), so setup.cfg
disables it (``-p no:nengo``). This plugin provides what the suite needs in its
place, reusing ``pytest_nengo``'s options and helpers, after importing
keras_nengo (the stack under test). Run it from the repository root::

    python -m pytest -p tests.nengo_suite.plugin --pyargs nengo -n 2

It selects the *backend* tests (those that take the ``Simulator`` fixture; the
others test Nengo's frontend whatever the backend is) and adapts them, never
Nengo:

- ``Simulator`` is ``keras_nengo.Simulator`` (``--simulator`` names another);
- tests listed in `tests.nengo_suite.unsupported` cannot pass by design: they
  are skipped with their reason (``--unsupported`` runs them as xfail); the
  few that fail with ``nengo.Simulator`` too (Nengo's bugs on this stack) are
  strict xfails;
- ``seed``/``rng`` come from the node id Nengo's own CI gives a test (as for
  NengoDL's suite, see ``tests/nengo_dl_suite/plugin.py``), so a run gives the
  same seeds wherever it is started;
- ``plt`` is matplotlib's pyplot on the Agg backend, closed after each test
  and never saved (pytest-plt is not a dependency);
- float32 tolerances for the tests NengoDL's own configuration loosens for
  float32 (`ALLCLOSE_TOLERANCES`).

The default run leaves out Nengo's ``slow`` tests (setup.cfg deselects the
marker); ``-m "" --slow`` runs them too.
"""

import fnmatch

import keras_nengo  # noqa: F401  isort: skip  (first: the stack under test)
import pytest
import pytest_nengo
import tensorflow as tf

from tests.nengo_dl_suite.plugin import _upstream_nodeid, _UpstreamSeeds
from tests.nengo_suite.unsupported import NENGO_BUGS, UNSUPPORTED

# pytest-allclose tolerances per test (node id patterns, as in an ini file): the
# ones NengoDL's setup.cfg sets for running Nengo's suite in float32.
# pytest-allclose matches pytest's own node ids ("tests/test_synapses.py::..."
# when the suite runs as --pyargs nengo), hence no leading directory.
ALLCLOSE_TOLERANCES = """
test_synapses.py::test_lowpass atol=5e-7
test_synapses.py::test_triangle atol=5e-7
test_synapses.py::test_decoders atol=5e-7
test_synapses.py::test_alpha atol=5e-5
test_synapses.py::test_linearfilter atol=1e-4
test_transforms.py::test_convolution[* atol=1e-6
test_transforms_conv.py::test_convolution[* atol=1e-4
test_transforms_conv.py::test_convolution_groups[* atol=1e-4
"""


def pytest_addoption(parser):
    # Nengo's options (--unsupported, --slow, --spa, --noexamples) and ini keys
    pytest_nengo.pytest_addoption(parser)
    parser.getgroup("nengo", "Nengo backend test suite").addoption(
        "--simulator",
        default="keras_nengo.Simulator",
        help="The Simulator class under test (default: keras_nengo.Simulator)",
    )
    # pytest-allclose reads this key without declaring it
    parser.addini("allclose_tolerances", help="pytest-allclose tolerance overrides")


def pytest_configure(config):
    pytest_nengo.pytest_configure(config)
    config.pluginmanager.register(_UpstreamSeeds(), "keras_nengo_nengo_seeds")
    # pytest-allclose reads its overrides from the ini configuration
    own = config.inicfg.get("allclose_tolerances", "")
    config.inicfg["allclose_tolerances"] = f"{own}\n{ALLCLOSE_TOLERANCES}"


# AnyNeuronType, NonDirectNeuronType, PositiveNeuronType from the nengo_neurons ini
pytest_generate_tests = pytest_nengo.pytest_generate_tests


def _is_nengo_test(item) -> bool:
    return _upstream_nodeid(item).startswith("nengo/")


def listed_reason(item, listing) -> str | None:
    """The reason ``item`` is in ``listing`` (pattern: reason), or None."""
    nodeid = _upstream_nodeid(item)
    for pattern, reason in listing.items():
        # brackets in the patterns are literal (parameters), as in Nengo's plugin
        escaped = "".join(f"[{c}]" if c in "[]" else c for c in pattern)
        if fnmatch.fnmatchcase(nodeid, escaped):
            return reason
    return None


def pytest_collection_modifyitems(config, items):
    selected, deselected = [], []
    for item in items:
        frontend = "Simulator" not in getattr(item, "fixturenames", ())
        spa = "/spa/" in _upstream_nodeid(item) and not config.getoption("spa")
        example = item.get_closest_marker("example") and config.getoption("noexamples")
        if _is_nengo_test(item) and (frontend or spa or example):
            deselected.append(item)
        else:
            selected.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected
    for item in items:
        if item.get_closest_marker("slow") and not config.getoption("slow"):
            item.add_marker(pytest.mark.skip("slow tests not requested (--slow)"))
        bug = listed_reason(item, NENGO_BUGS)
        if bug is not None:
            item.add_marker(pytest.mark.xfail(reason=f"Nengo bug: {bug}", strict=True))
        reason = listed_reason(item, UNSUPPORTED)
        if reason is None:
            continue
        if config.getoption("unsupported"):
            item.add_marker(pytest.mark.xfail(reason=reason, strict=False))
        else:
            item.add_marker(pytest.mark.skip(f"unsupported: {reason}"))


@pytest.fixture(scope="session")
def Simulator(request):  # noqa: N802  (the fixture name Nengo's tests use)
    """The Simulator class under test (``--simulator``)."""
    return pytest_nengo.load_class(request.config.getoption("simulator"))


@pytest.fixture
def plt():
    """pytest-plt's ``plt`` when no plots are saved: pyplot, drawing nowhere.

    Nengo's tests plot with it (some through ``nengo.utils.matplotlib``, which
    computes with the axes), so it is matplotlib's pyplot on the Agg backend;
    figures are closed after the test and nothing is written.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    yield pyplot
    pyplot.close("all")


@pytest.fixture(autouse=True)
def _clear_keras_session():
    """Free the previous test's Keras graph state (thousands of simulators)."""
    tf.keras.backend.clear_session()
