"""Run NengoDL 3.6.0's own shipped test suite on keras_nengo's stack.

NengoDL's tests (``nengo_dl/tests`` in site-packages) need the ``Simulator``
fixture, command line options and markers that NengoDL's *repository*
``conftest.py`` provides; it is not installed with the package. This plugin
provides them, after importing keras_nengo so that NengoDL runs behind
keras_nengo's compatibility layer (that import is what is under test).

Run it from the repository root (it is not collected by a plain ``pytest``)::

    python -m pytest -p tests.nengo_dl_suite.plugin --pyargs nengo_dl -n 2

It adapts the *tests themselves*, never NengoDL (everything NengoDL needs on
this stack lives in ``keras_nengo/_compat.py``):

- ``seed``/``rng`` come from the node id NengoDL's own CI gives a test, not the
  one this invocation does (`_upstream_nodeid`): some NengoDL training tests
  converge for some seeds only, on the original stack as on this one; Python's
  and NumPy's global RNGs are seeded the same way before each test;
- ``pytest.warns(None)`` (removed in pytest 8) and ``nengo.networks.Oscillator``
  (removed in Nengo 4), both used only by the tests, are provided again;
- Python subprocesses that tests start import keras_nengo first;
- `DESELECTED` lists the only tests not run, each with its reason.
"""

import os
import pathlib
import random

# NengoDL's tests are tf-keras code (tf.keras at module level): run them in a
# tf-keras process, as keras_nengo runs NengoDL's own modules on tf-keras
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

# before NengoDL: the layer under test
import keras_nengo  # noqa: F401,E402  isort: skip
import nengo  # noqa: E402
import nengo_dl  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from _pytest.recwarn import WarningsRecorder  # noqa: E402
from nengo_dl import utils  # noqa: E402
from nengo_dl.tests import make_test_sim  # noqa: E402
from pytest_rng.plugin import Seed  # noqa: E402

# Tests deselected because they check NengoDL's own packaging and release
# metadata, not behaviour on this stack. Keys are node ids in NengoDL's
# repository form (see `_upstream_nodeid`).
DESELECTED = {
    "nengo_dl/tests/test_setup.py::test_setup_compat": (
        "parses NengoDL's setup.py, which is only in its source repository, not "
        "in the installed package"
    ),
    "nengo_dl/tests/test_version.py::test_nengo_version_check": (
        "asserts the installed Nengo is no newer than the newest release NengoDL "
        "3.6.0 was tested with (3.2.0); running on Nengo 4 is the point of "
        "keras_nengo"
    ),
}


def _upstream_nodeid(item):
    """Return ``item``'s node id as it is in NengoDL's own repository.

    pytest's node ids for ``--pyargs`` tests depend on where and how pytest is
    invoked (``tests/test_x.py::t``, ``::t``, ...). pytest-rng derives the
    ``seed`` and ``rng`` fixtures from the node id, so we normalize it: tests
    then get the same seeds wherever they are run from, and the same seeds as
    in NengoDL's own CI (``nengo_dl/tests/test_x.py::t``).
    """
    package_parent = pathlib.Path(nengo_dl.__file__).parents[1]
    try:
        path = pathlib.Path(item.path).relative_to(package_parent).as_posix()
    except ValueError:  # not one of NengoDL's tests
        return item.nodeid
    return f"{path}::{item.name}"


class _Nengo3Oscillator(nengo.Network):
    """``nengo.networks.Oscillator`` as in Nengo 3.2 (removed in Nengo 4.0).

    ``test_simulator.py`` builds one at import time (a parameter of
    ``test_freeze_network``), so without it the whole module fails to collect.
    """

    def __init__(self, recurrent_tau, frequency, n_neurons, **kwargs):
        kwargs.setdefault("label", "Oscillator")
        super().__init__(**kwargs)
        with self:
            self.input = nengo.Node(label="In", size_in=2)
            self.ensemble = nengo.Ensemble(n_neurons, dimensions=2, label="Oscillator")
            transform = [
                [1, -frequency * recurrent_tau],
                [frequency * recurrent_tau, 1],
            ]
            nengo.Connection(
                self.ensemble, self.ensemble, synapse=recurrent_tau, transform=transform
            )
            nengo.Connection(self.input, self.ensemble, synapse=None)
        self.output = self.ensemble


class _UpstreamSeeds:
    """pytest-rng's ``seed`` and ``rng`` fixtures, keyed by `_upstream_nodeid`,
    and per-test seeding of the global RNGs.

    Registered in `pytest_configure`, after pytest-rng, so that these win.
    """

    @pytest.fixture
    def seed(self, request):
        return Seed.generate(_upstream_nodeid(request.node))

    @pytest.fixture
    def rng(self, request):
        return np.random.RandomState(
            Seed.generate(_upstream_nodeid(request.node), extra_salt="rng")
        )

    @pytest.fixture(autouse=True)
    def _reseed_global_rngs(self, request):
        """Seed Python's and NumPy's global RNGs for each test.

        Unseeded tf-keras initializers draw their seeds from Python's ``random``
        (``tf.random.set_seed`` does not reach them), and unseeded Nengo objects
        from ``np.random``; without this, a test's weights depend on which tests
        ran before it in the same process, i.e. on order and on xdist's split.
        """
        nodeid = _upstream_nodeid(request.node)
        random.seed(Seed.generate(nodeid, extra_salt="random"))
        np.random.seed(Seed.generate(nodeid, extra_salt="np.random"))


def _warns_accepting_none(pytest_warns):
    """Wrap ``pytest.warns`` so that ``pytest.warns(None)`` works again.

    NengoDL's tests use ``pytest.warns(None)`` to record warnings and then
    assert that there were none; pytest 8 removed that form (it raises
    ``TypeError``). A plain ``WarningsRecorder`` is what it used to return.
    """

    def warns(expected_warning=Warning, *args, **kwargs):
        if expected_warning is None:
            return WarningsRecorder(_ispytest=True)
        return pytest_warns(expected_warning, *args, **kwargs)

    return warns


def pytest_addoption(parser):
    group = parser.getgroup("nengo_dl", "NengoDL test suite")
    group.addoption(
        "--simulator-only",
        action="store_true",
        default=False,
        help="Only run tests involving Simulator",
    )
    group.addoption(
        "--inference-only",
        action="store_true",
        default=False,
        help="Run tests in inference-only mode",
    )
    group.addoption(
        "--dtype",
        default="float32",
        choices=("float32", "float64"),
        help="Simulator float precision",
    )
    group.addoption(
        "--unroll-simulation",
        default=1,
        type=int,
        help="`unroll_simulation` parameter for Simulator",
    )
    group.addoption("--device", default=None, help="`device` parameter for Simulator")
    group.addoption(
        "--performance",
        action="store_true",
        default=False,
        help="Run performance tests (they need NengoDL's benchmark machine)",
    )


# what pytest_configure replaced: (pytest.warns, nengo.networks.Oscillator or None)
_SAVED_KEY = pytest.StashKey()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "training: mark test as requiring training functionality"
    )
    config.addinivalue_line(
        "markers", "performance: mark tests that depend on a specific benchmark machine"
    )
    config.addinivalue_line("markers", "gpu: mark tests that require a GPU")
    config.pluginmanager.register(_UpstreamSeeds(), "keras_nengo_upstream_seeds")

    # Test-only shims; all are undone in pytest_unconfigure.
    config.stash[_SAVED_KEY] = (
        pytest.warns,
        getattr(nengo.networks, "Oscillator", None),
        nengo_dl.Simulator.__init__,
    )
    pytest.warns = _warns_accepting_none(pytest.warns)
    if not hasattr(nengo.networks, "Oscillator"):
        nengo.networks.Oscillator = _Nengo3Oscillator
    # keras_nengo quiets NengoDL's "No GPU support detected" warning on machines
    # without a GPU; NengoDL's suite tests that warning, so it sees NengoDL's own
    init = nengo_dl.Simulator.__init__
    nengo_dl.Simulator.__init__ = getattr(init, "__wrapped__", init)


def pytest_unconfigure(config):
    saved_warns, saved_oscillator, saved_init = config.stash[_SAVED_KEY]
    pytest.warns = saved_warns
    nengo_dl.Simulator.__init__ = saved_init
    if saved_oscillator is None:
        del nengo.networks.Oscillator


def pytest_collection_modifyitems(config, items):
    selected, deselected = [], []
    for item in items:
        upstream = _upstream_nodeid(item).split("[")[0]
        (deselected if upstream in DESELECTED else selected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


def pytest_runtest_setup(item):
    if item.get_closest_marker("gpu") and not utils.tf_gpu_installed:
        pytest.skip("This test requires tensorflow-gpu")
    elif item.config.getoption("--simulator-only") and "Simulator" not in getattr(
        item, "fixturenames", ("Simulator",)
    ):
        pytest.skip("Only running tests that require a Simulator")
    elif item.get_closest_marker("training") and item.config.getoption(
        "--inference-only"
    ):
        pytest.skip("Skipping training test in inference-only mode")
    elif item.get_closest_marker("performance") and not item.config.getoption(
        "--performance"
    ):
        pytest.skip("Skipping performance test (needs NengoDL's benchmark machine)")


@pytest.fixture(scope="session")
def Simulator(request):
    """Simulator class to be used in tests (use this instead of
    ``nengo_dl.Simulator``)."""
    return make_test_sim(request)


@pytest.fixture(scope="session")
def _sitecustomize_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keras_nengo_site")
    (directory / "sitecustomize.py").write_text(
        "import os\n"
        "# Only this process: NengoDL's import spawns a Python subprocess itself.\n"
        "os.environ['PYTHONPATH'] = os.environ.pop('_KERAS_NENGO_PYTHONPATH')\n"
        "import keras_nengo\n",
        encoding="utf-8",
    )
    return directory


@pytest.fixture(autouse=True)
def _python_subprocesses_import_keras_nengo(_sitecustomize_dir, monkeypatch):
    """Make Python subprocesses started by a test import keras_nengo first.

    ``test_deterministic_order`` runs a script that imports NengoDL in a fresh
    interpreter; like any user code, that needs ``import keras_nengo`` first.
    """
    package_parent = pathlib.Path(keras_nengo.__file__).parents[1]
    original = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("_KERAS_NENGO_PYTHONPATH", original)
    monkeypatch.setenv(
        "PYTHONPATH",
        os.pathsep.join(
            p for p in (str(_sitecustomize_dir), str(package_parent), original) if p
        ),
    )


@pytest.fixture(autouse=True)
def clear_session():
    """Free the previous test's Keras graph state, as NengoDL's conftest does."""
    tf.keras.backend.clear_session()
