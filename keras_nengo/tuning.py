"""keras-tuner helpers: a Nengo-level `NengoHyperModel` and a local distributed run.

After ``import keras_nengo``, ``import keras_tuner as kt`` runs in its tf.keras
mode, so any build function returning a compiled `~keras_nengo.NengoModel` works
with ``kt.RandomSearch``, ``kt.BayesianOptimization`` and ``kt.Hyperband``
directly. This module adds:

- `NengoHyperModel`, which lets a search be written in terms of Nengo choices
  (neuron counts, neuron types, synapses, learning rates) with no Keras glue;
- `run_distributed`, which runs keras-tuner's own distributed mode (one chief
  oracle and several workers talking gRPC) on this machine.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Callable, Mapping, Sequence

import nengo

from keras_nengo._compat import keras_tuner as kt
from keras_nengo._compat import tf
from keras_nengo.model import NengoModel

__all__ = [
    "NengoHyperModel",
    "ProcessResult",
    "default_compile_kwargs",
    "free_port",
    "run_distributed",
]


def default_compile_kwargs(hp: kt.HyperParameters) -> dict:
    """Adam with a tuned learning rate and MSE loss.

    The learning rate is the hyperparameter ``"learning_rate"``, sampled
    log-uniformly from [1e-4, 1e-1] (default 1e-3). To fix it, pass
    ``hyperparameters=hp`` with ``hp.Fixed("learning_rate", value)`` to the tuner.

    Parameters
    ----------
    hp : keras_tuner.HyperParameters
        The trial's hyperparameters.

    Returns
    -------
    dict
        Keyword arguments for ``NengoModel.compile``.
    """
    learning_rate = hp.Float("learning_rate", 1e-4, 1e-1, sampling="log", default=1e-3)
    return {"optimizer": tf.keras.optimizers.Adam(learning_rate), "loss": "mse"}


class NengoHyperModel(kt.HyperModel):
    """A keras-tuner HyperModel whose search space is a Nengo network builder.

    ``build(hp)`` calls ``build_network(hp)``, wraps the result in a
    `~keras_nengo.NengoModel` and compiles it, so a search is written entirely in
    terms of Nengo choices.

    Parameters
    ----------
    build_network : callable or None
        ``build_network(hp)`` returns either a ``nengo.Network`` (all input Nodes
        and all Probes are used, see `~keras_nengo.NengoModel`) or a tuple
        ``(network, inputs, outputs)`` with lists of Nodes and Probes (either may
        be None for the default). Declare hyperparameters inside it with
        ``hp.Int``, ``hp.Choice``, ... If None, a subclass must override the
        method ``build_network(self, hp)``.
    compile_kwargs : callable or None
        ``compile_kwargs(hp)`` returns keyword arguments for
        ``NengoModel.compile``. Default: `default_compile_kwargs` (Adam with the
        tuned ``"learning_rate"`` in [1e-4, 1e-1], MSE loss).
    model_kwargs : mapping or None
        Keyword arguments for every ``NengoModel`` (``dt``, ``seed``, ``dtype``,
        ``gradient_norms``).
    name : str or None
        Name of the HyperModel (keras-tuner).
    tunable : bool
        Whether the hyperparameters declared here may be tuned (keras-tuner).

    Examples
    --------
    >>> import keras_nengo as kn
    >>> import keras_tuner as kt
    >>> import nengo
    >>> from keras_nengo.tuning import NengoHyperModel
    >>> def build_network(hp):
    ...     with nengo.Network(seed=0) as net:
    ...         stim = nengo.Node([0.0], label="stim")
    ...         hidden = nengo.Ensemble(
    ...             hp.Choice("n_neurons", [10, 20]),
    ...             1,
    ...             neuron_type=nengo.LIFRate()
    ...             if hp.Choice("neuron_type", ["lif_rate", "relu"]) == "lif_rate"
    ...             else nengo.RectifiedLinear(),
    ...             label="hidden",
    ...         )
    ...         nengo.Connection(stim, hidden, synapse=None)
    ...         probe = nengo.Probe(hidden, label="out")
    ...     return net, [stim], [probe]
    >>> hypermodel = NengoHyperModel(build_network, model_kwargs={"seed": 0})
    >>> model = hypermodel.build(kt.HyperParameters())
    >>> model.input_names, model.output_names
    (['stim'], ['out'])
    """

    def __init__(
        self,
        build_network: Callable[[kt.HyperParameters], object] | None = None,
        compile_kwargs: Callable[[kt.HyperParameters], dict] | None = None,
        model_kwargs: Mapping | None = None,
        name: str | None = None,
        tunable: bool = True,
    ):
        super().__init__(name=name, tunable=tunable)
        if build_network is not None:
            if not callable(build_network):
                raise TypeError(
                    "build_network must be a function hp -> nengo.Network. "
                    f"Received: build_network={build_network!r}."
                )
            self.build_network = build_network
        elif type(self).build_network is NengoHyperModel.build_network:
            raise TypeError(
                "NengoHyperModel needs a network builder. Received: "
                "build_network=None. Pass build_network=<function hp -> "
                "nengo.Network> or override the method build_network(self, hp)."
            )
        if compile_kwargs is not None and not callable(compile_kwargs):
            raise TypeError(
                "compile_kwargs must be a function hp -> dict. "
                f"Received: compile_kwargs={compile_kwargs!r}."
            )
        self.compile_kwargs = compile_kwargs or default_compile_kwargs
        self.model_kwargs = dict(model_kwargs or {})

    def build_network(self, hp: kt.HyperParameters):
        """Build the network for ``hp`` (override, or pass ``build_network``)."""
        raise NotImplementedError

    def build(self, hp: kt.HyperParameters) -> NengoModel:
        """Build and compile the NengoModel for one trial.

        Parameters
        ----------
        hp : keras_tuner.HyperParameters
            The trial's hyperparameters.

        Returns
        -------
        NengoModel
            The compiled model.

        Raises
        ------
        TypeError
            If ``build_network`` returns something other than a Network or a
            ``(network, inputs, outputs)`` tuple.
        """
        built = self.build_network(hp)
        if isinstance(built, nengo.Network):
            network, inputs, outputs = built, None, None
        elif (
            isinstance(built, tuple)
            and len(built) == 3
            and isinstance(built[0], nengo.Network)
        ):
            network, inputs, outputs = built
        else:
            raise TypeError(
                "build_network(hp) must return a nengo.Network or a tuple "
                f"(network, inputs, outputs). Received: {built!r}."
            )
        model = NengoModel(network, inputs=inputs, outputs=outputs, **self.model_kwargs)
        model.compile(**self.compile_kwargs(hp))
        return model


# -- distributed mode on one machine ---------------------------------------------


@dataclasses.dataclass
class ProcessResult:
    """Outcome of one chief or worker process of `run_distributed`.

    Attributes
    ----------
    tuner_id : str
        The process's ``KERASTUNER_TUNER_ID`` (``"chief"``, ``"worker0"``, ...).
    pid : int
        Its process id (the process has been waited for).
    returncode : int
        Exit code (negative: killed by that signal).
    output : str
        Everything the process wrote to stdout and stderr.
    """

    tuner_id: str
    pid: int
    returncode: int
    output: str


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free when asked (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _kill(process: subprocess.Popen):
    if process.poll() is None:
        try:
            # each process leads its own session, so this reaches its children too
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


def _summary(results: Sequence[ProcessResult], tail: int = 2000) -> str:
    return "\n".join(
        f"--- {r.tuner_id} (exit code {r.returncode}), last output:\n"
        f"{r.output[-tail:]}"
        for r in results
    )


def run_distributed(
    script: str | os.PathLike,
    args: Sequence[str] = (),
    n_workers: int = 2,
    host: str = "127.0.0.1",
    port: int | None = None,
    timeout: float = 600.0,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
    check: bool = True,
) -> list[ProcessResult]:
    """Run a keras-tuner search script as one chief and ``n_workers`` workers.

    This is keras-tuner's own distributed mode, on one machine: every process
    runs ``python script *args`` with ``KERASTUNER_TUNER_ID`` (``"chief"``,
    ``"worker0"``, ``"worker1"``, ...), ``KERASTUNER_ORACLE_IP=host`` and
    ``KERASTUNER_ORACLE_PORT=port``. The chief serves the oracle over gRPC; the
    workers ask it for trials and run them. The script is an ordinary search
    script (build the tuner with a shared ``directory``, call ``search``), exactly
    as for a single process.

    To use many machines, start the same script on each host with the same
    three environment variables by hand (or with a cluster scheduler): the
    chief on the host whose address is ``KERASTUNER_ORACLE_IP``, workers with any
    other unique ``KERASTUNER_TUNER_ID``; the ``directory`` must be a shared
    file system if best models are to be loaded from any host. Do not pass
    ``overwrite=True`` to the tuner in a distributed script: every process
    would delete the shared project directory when it starts.

    Parameters
    ----------
    script : str or os.PathLike
        Python script to run in every process (with this interpreter).
    args : sequence of str
        Command-line arguments for the script.
    n_workers : int
        Number of worker processes (besides the chief).
    host : str
        Address the chief listens on. Default: loopback only.
    port : int or None
        Port of the chief. Default: a free port chosen by the OS.
    timeout : float
        Seconds to wait for all processes; then every process is killed.
    env : mapping or None
        Extra environment variables for all processes.
    cwd : str or os.PathLike or None
        Working directory of the processes.
    check : bool
        If True, raise when any process exits with a non-zero code.

    Returns
    -------
    list of ProcessResult
        The chief first, then the workers in order.

    Raises
    ------
    ValueError
        If ``n_workers < 1``.
    TimeoutError
        If the processes do not finish within ``timeout`` (all are killed first).
    RuntimeError
        If ``check`` and a process failed. When one process fails, the others are
        killed at once instead of waiting for the timeout.

    Notes
    -----
    The chief checks for stragglers every 20 s (keras-tuner's
    ``oracle_chief``), so it may exit up to 20 s after the last trial ends.
    """
    if int(n_workers) < 1:
        raise ValueError(
            "Distributed tuning needs at least one worker. "
            f"Received: n_workers={n_workers}."
        )
    port = free_port(host) if port is None else int(port)
    base_env = dict(os.environ, **(env or {}))
    base_env.update(KERASTUNER_ORACLE_IP=host, KERASTUNER_ORACLE_PORT=str(port))
    tuner_ids = ["chief"] + [f"worker{i}" for i in range(int(n_workers))]
    command = [sys.executable, os.fspath(script), *map(str, args)]

    with tempfile.TemporaryDirectory(prefix="keras_nengo_distributed_") as log_dir:
        processes = {}
        logs = {}
        timed_out = False
        try:
            for tuner_id in tuner_ids:
                logs[tuner_id] = open(
                    os.path.join(log_dir, f"{tuner_id}.log"), "w+", encoding="utf-8"
                )
                processes[tuner_id] = subprocess.Popen(
                    command,
                    env=dict(base_env, KERASTUNER_TUNER_ID=tuner_id),
                    cwd=cwd,
                    stdout=logs[tuner_id],
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            deadline = time.monotonic() + timeout
            while any(p.poll() is None for p in processes.values()):
                if any(p.poll() not in (None, 0) for p in processes.values()):
                    break
                if time.monotonic() > deadline:
                    timed_out = True
                    break
                time.sleep(0.2)
        finally:
            for process in processes.values():
                _kill(process)
            results = []
            for tuner_id, log in logs.items():
                log.seek(0)
                results.append(
                    ProcessResult(
                        tuner_id,
                        processes[tuner_id].pid if tuner_id in processes else -1,
                        processes[tuner_id].returncode if tuner_id in processes else -1,
                        log.read(),
                    )
                )
                log.close()

    if timed_out:
        raise TimeoutError(
            f"The distributed search did not finish within timeout={timeout} s; "
            "all processes were killed. Increase timeout or make the search "
            "smaller.\n" + _summary(results)
        )
    if check and any(r.returncode != 0 for r in results):
        raise RuntimeError(
            "A process of the distributed search failed; the others were "
            "stopped.\n" + _summary(results)
        )
    return results
