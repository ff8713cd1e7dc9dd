"""Nengo's backend API over the `keras_nengo.NengoLayer` engine.

`Simulator` runs a network the way ``nengo.Simulator`` does (``run``,
``run_steps``, ``step``, ``data``, ``trange``, ``reset``, ``close``, a context
manager), so that code written for Nengo, and Nengo's own backend test suite,
run on keras_nengo's engine. It holds one stateful `keras_nengo.NengoLayer`
fed no data (input Nodes run their own output): each run continues from the
state the previous one ended with, and probe data accumulates across runs,
sampled every ``probe.sample_every`` seconds as in Nengo.
"""

from __future__ import annotations

import numbers
import warnings

import nengo
import numpy as np
import tensorflow as tf
from nengo.exceptions import (
    ReadonlyError,
    SimulationError,
    SimulatorClosed,
    ValidationError,
)
from nengo.simulator import SimulationData

from keras_nengo.layer import NengoLayer


class Simulator:
    """Run a Nengo network with keras_nengo's engine, through Nengo's backend API.

    Parameters
    ----------
    network : nengo.Network
        The network to build and simulate.
    dt : float
        Length of a simulation time step, in seconds.
    seed : int or None
        Seed of the simulation's random number generators (noise, Processes);
        also of the build when the network has none. Default: ``network.seed +
        1`` when the network has a seed, else a random seed.
    model : None
        Accepted for Nengo's signature; only None is supported (keras_nengo
        builds the network itself, with NengoDL's builder).
    progress_bar : bool or nengo.utils.progress.ProgressBar
        Accepted for Nengo's signature; keras_nengo shows no progress bar.
    optimize : bool
        Accepted for Nengo's signature; the engine always plans its operators.
    dtype : {"float32", "float64"}
        Precision of the simulation and of the probe data.

    Attributes
    ----------
    data : nengo.simulator.SimulationData
        Probe data (``data[probe]``, a read-only NumPy array of shape
        ``(samples, *probe shape)``) and the built parameters of the network's
        objects (``data[ens].encoders``, ``data[conn].weights``...).
    model : nengo.builder.Model
        The built model (NengoDL's builder).
    closed : bool
        Whether `close` has been called (a closed simulator cannot run).

    Examples
    --------
    >>> import keras_nengo as kn
    >>> import nengo, numpy as np
    >>> with nengo.Network(seed=0) as net:
    ...     stim = nengo.Node(np.sin)
    ...     ens = nengo.Ensemble(50, 1)
    ...     _ = nengo.Connection(stim, ens)
    ...     probe = nengo.Probe(ens, synapse=0.01)
    >>> with kn.Simulator(net) as sim:
    ...     sim.run(0.1)
    ...     sim.run_steps(50)
    >>> sim.data[probe].shape, sim.trange().shape
    ((150, 1), (150,))
    """

    def __init__(
        self,
        network: nengo.Network,
        dt: float = 0.001,
        seed: int | None = None,
        model=None,
        progress_bar=True,
        optimize: bool = True,
        dtype: str = "float32",
    ):
        self.closed = True  # until built, as in Nengo: a failed build leaves none
        if model is not None:
            raise ValueError(
                "keras_nengo.Simulator builds the network itself (with NengoDL's "
                f"builder) and cannot run a prebuilt Nengo model. Received: model="
                f"{model!r}. Pass the network instead: Simulator(network)."
            )
        if not isinstance(network, nengo.Network):
            raise TypeError(
                "keras_nengo.Simulator needs a nengo.Network. Received: "
                f"network={network!r} ({type(network).__name__})."
            )
        if not (np.isscalar(dt) and float(dt) > 0):
            raise ValueError(
                "dt must be a positive number of seconds. Received: "
                f"dt={dt!r}. Pass e.g. dt=0.001."
            )
        self.network = network
        self.progress_bar = progress_bar
        self.optimize = optimize
        self.dtype = dtype
        self._dt = float(dt)
        self._layer = self._make_layer(seed)
        self.seed = self._layer.seed
        #: the seed the network was built with (kept by `reset` with a new seed)
        self._build_seed = network.seed if network.seed is not None else self.seed
        self.model = self._layer.simulation.model
        self._probes = list(self._layer.output_probes)
        self._raw = dict(self.model.params)
        self.data = SimulationData(self._raw)
        self.clear_probes()
        self._n_steps = 0
        self.closed = False

    def _make_layer(self, seed):
        layer = NengoLayer(
            self.network,
            inputs=[],
            dt=self._dt,
            seed=seed,
            dtype=self.dtype,
            stateful=True,
        )
        # one sample row: the simulation graph is built for that size only
        layer.minibatch_size = 1
        # input Nodes' Processes make their step functions now, so that their
        # errors come from the constructor, as in Nengo
        layer.simulation.node_outputs(1)
        return layer

    # -- Nengo's properties ------------------------------------------------------

    @property
    def dt(self) -> float:
        """The length of a time step, in seconds (read-only)."""
        return self._dt

    @dt.setter
    def dt(self, value):
        raise ReadonlyError(attr="dt", obj=self)

    @property
    def n_steps(self) -> int:
        """The number of time steps simulated so far."""
        return self._n_steps

    @property
    def time(self) -> float:
        """The current simulation time, in seconds."""
        return self._n_steps * self._dt

    # -- running ---------------------------------------------------------------

    def run(self, time_in_seconds: float, progress_bar=None) -> None:
        """Simulate ``time_in_seconds`` (rounded to the nearest step).

        Parameters
        ----------
        time_in_seconds : float
            How long to run on from the current time; must not be negative.
        progress_bar : bool or None
            Accepted for Nengo's signature; ignored.

        Raises
        ------
        nengo.exceptions.ValidationError
            If ``time_in_seconds`` is negative (a ``ValueError``).
        nengo.exceptions.SimulatorClosed
            If the simulator is closed.
        """
        if time_in_seconds < 0:
            raise ValidationError(
                "Must be positive: a simulation cannot run backwards. Received: "
                f"time_in_seconds={time_in_seconds!r}.",
                attr="time_in_seconds",
                obj=self,
            )
        steps = int(np.round(float(time_in_seconds) / self._dt))
        if steps == 0:
            warnings.warn(
                f"{time_in_seconds} seconds is less than half a time step "
                f"(dt={self._dt}), so the simulator runs 0 steps and stays at "
                f"time {self.time}."
            )
            return
        self.run_steps(steps)

    def run_steps(self, steps: int, progress_bar=None) -> None:
        """Simulate ``steps`` time steps, continuing from the current state.

        Parameters
        ----------
        steps : int
            Number of steps; 0 runs nothing.
        progress_bar : bool or None
            Accepted for Nengo's signature; ignored.

        Raises
        ------
        ValueError
            If ``steps`` is not a non-negative integer.
        nengo.exceptions.SimulatorClosed
            If the simulator is closed.
        nengo.exceptions.SimulationError
            If a Python function of the network (a Node's output...) returned an
            invalid value or raised Nengo's SimulationError.
        """
        self._check_open("run")
        if (
            not isinstance(steps, numbers.Integral)
            or isinstance(steps, (bool, np.bool_))
            or steps < 0
        ):
            raise ValueError(
                "steps must be a non-negative whole number of time steps. "
                f"Received: steps={steps!r}."
            )
        steps = int(steps)
        if steps == 0:
            return
        outputs = self._simulate(steps)
        if len(self._probes) == 1:
            outputs = [outputs]
        first = self._n_steps + 1
        self._n_steps += steps
        for probe, value in zip(self._probes, outputs):
            value = value.numpy()[0]
            sampled = self._sampled(np.arange(first, self._n_steps + 1), probe)
            shape = self.model.sig[probe]["in"].shape
            self._raw[probe].extend(value[sampled].reshape((-1,) + shape))

    def _simulate(self, steps):
        try:
            return self._layer(None, n_steps=steps)
        except tf.errors.OpError as error:
            # a Python function (a Node's output, a Direct-mode Ensemble) raised
            # Nengo's SimulationError inside the graph: raise it as Nengo does
            found = [
                line.split("SimulationError:", 1)[1].strip()
                for line in error.message.splitlines()
                if "SimulationError:" in line
            ]
            if not found:
                raise
            raise SimulationError(
                f"A Python function in the network failed while simulating: "
                f"{found[-1]}"
            ) from error

    def step(self) -> None:
        """Simulate one time step (``dt`` seconds)."""
        self.run_steps(1)

    def _sampled(self, steps, probe):
        """Which of ``steps`` (numbers from 1) ``probe`` records, as in Nengo."""
        return self._on_period(steps, probe.sample_every)

    def _on_period(self, steps, sample_every):
        period = 1 if sample_every is None else sample_every / self._dt
        return steps % period < 1

    def trange(self, dt: float | None = None, sample_every: float | None = None):
        """The times of the probe samples so far (from ``dt``, not 0).

        Parameters
        ----------
        dt : float or None
            Deprecated name of ``sample_every`` (as in Nengo).
        sample_every : float or None
            The probe's sampling period; None: every step.

        Returns
        -------
        np.ndarray
            Times in seconds.
        """
        if dt is not None:
            if sample_every is not None:
                raise ValidationError(
                    "Cannot specify both `dt` and `sample_every`. Received: "
                    f"dt={dt!r}, sample_every={sample_every!r}. Use `sample_every` "
                    "only.",
                    attr="dt",
                    obj=self,
                )
            warnings.warn(
                "`dt` is deprecated. Use `sample_every` instead.", DeprecationWarning
            )
            sample_every = dt
        steps = np.arange(1, self._n_steps + 1)
        return self._dt * steps[self._on_period(steps, sample_every)]

    # -- state and life cycle ----------------------------------------------------

    def clear_probes(self) -> None:
        """Forget the probe data recorded so far (the simulation state stays)."""
        for probe in self._probes:
            self._raw[probe] = []
        self.data.reset()

    def reset(self, seed: int | None = None) -> None:
        """Return to time 0 and the initial state, with no probe data.

        Parameters
        ----------
        seed : int or None
            A new seed for the simulation's random number generators (noise,
            Processes); the built network stays the same. None keeps the seed.

        Raises
        ------
        nengo.exceptions.SimulatorClosed
            If the simulator is closed.
        """
        self._check_open("reset")
        if seed is not None and int(seed) != self.seed:
            self._layer = self._rebuilt_layer(int(seed))
            self.seed = self._layer.seed
        else:
            self._layer.reset_states()
        self.clear_probes()
        self._n_steps = 0

    def _rebuilt_layer(self, seed):
        # the network's seed (or the first build's) keeps the built objects
        # the same while the simulation draws from the new seed
        own_seed = self.network.seed
        self.network.seed = self._build_seed
        try:
            return self._make_layer(seed)
        finally:
            self.network.seed = own_seed

    def close(self) -> None:
        """Close the simulator: ``data`` stays readable, running is refused."""
        self.closed = True
        self._layer = None

    def _check_open(self, action):
        if self.closed:
            raise SimulatorClosed(
                f"Cannot {action}: this keras_nengo.Simulator is closed (by close() "
                "or the end of its `with` block). Make a new Simulator to run the "
                "network again."
            )

    def __enter__(self) -> Simulator:
        if self.closed:
            raise SimulatorClosed(
                "Cannot re-open after the simulator is closed. Make a new "
                "keras_nengo.Simulator to run the network again."
            )
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self.close()

    def __del__(self):
        if not getattr(self, "closed", True):
            warnings.warn(
                f"Simulator of {self.network} was deallocated while open. Close "
                "simulators (close() or a `with` block) to free their resources.",
                ResourceWarning,
            )

    def __getstate__(self):
        raise NotImplementedError(
            "A keras_nengo.Simulator cannot be pickled (it holds TensorFlow "
            "state). Pickle the network or the probe data (sim.data[probe]) "
            "instead, and make a new Simulator from the network."
        )
