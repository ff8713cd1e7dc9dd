"""Closed loop: a spiking controller steering a NumPy plant, chunk by chunk.

A long simulation does not have to be one call. With ``stateful=True`` a
`keras_nengo.NengoLayer` keeps the simulation state (neuron voltages and
refractory times, synapse and probe filters) from the end of one call to the
start of the next, separately for each sample row, so a run can be driven from
Python a chunk at a time, and each chunk's input can be computed from what the
previous chunks produced. Calling the layer on chunks is the same as one long
run; ``reset_states()`` goes back to the start.

Here the loop closes through a plant outside the network. The plant is a point
mass on a line (``position'' = force``), simulated in NumPy; the controller is
a spiking Nengo network. Every chunk (20 steps of 1 ms by default):

1. a sensor reads the plant: the position error (target - position) and the
   velocity, held for the whole chunk (a sampled-data controller);
2. the layer runs the chunk: 200 LIF neurons represent the two sensor values,
   and their spikes decode the force of a PD controller,
   ``kp * error - kd * velocity``, read out through a 10 ms synapse;
3. the plant integrates the chunk's force, step by step, to its new position
   and velocity, which the next chunk's sensor reads.

Four plants (the batch rows) run side by side, each stepping through its own
sequence of targets. The script prints how the mean tracking error falls after
each change of target, and writes ``closed_loop.png`` (position against target
over time, and the force the neurons produce) into ``--out``.

Notes
-----
Without ``stateful=True`` every chunk would start again from silent synapses
and the neurons' initial voltages: the filtered force would restart from zero
every chunk, as if each chunk began a new run.

The sensor sample is held for a chunk, so the controller acts on readings up
to a chunk old; longer chunks (``--chunk-steps``) mean fewer calls but a
longer delay in the loop. The error left at the end of each target comes
mostly from the spiking decode of the force near zero (a small force bias,
divided by ``kp``), which more neurons shrink.

Examples
--------
From the repository root::

    python examples/closed_loop.py
    python examples/closed_loop.py --chunk-steps 50 --out plots
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import keras_nengo as kn  # noqa: E402  (first: makes NengoDL importable)
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nengo  # noqa: E402
import numpy as np  # noqa: E402

DT = 0.001
ERROR_SCALE = 2.0  # targets lie in [-1, 1], so errors in [-2, 2]
VELOCITY_SCALE = 8.0
OMEGA, ZETA = 8.0, 0.8  # the PD loop's natural frequency (rad/s) and damping
KP, KD = OMEGA**2, 2 * ZETA * OMEGA


def build_controller(n_neurons, seed=0):
    """sensor (scaled error, scaled velocity) -> LIF ensemble -> PD force."""
    with nengo.Network(seed=seed) as net:
        sensor = nengo.Node(np.zeros(2), label="sensor")
        ens = nengo.Ensemble(n_neurons, 2, label="controller")
        force = nengo.Node(size_in=1, label="force")
        nengo.Connection(sensor, ens, synapse=None)
        nengo.Connection(
            ens,
            force,
            function=lambda x: KP * ERROR_SCALE * x[0] - KD * VELOCITY_SCALE * x[1],
            synapse=0.01,
        )
        nengo.Probe(force, label="force")
    return net


def target_sequences(n_rows, n_segments, rng):
    """Each row's targets: ``n_segments`` values in [-1, 1], the first away from 0."""
    targets = rng.uniform(-1, 1, size=(n_rows, n_segments))
    targets[:, 0] = rng.choice([-1, 1], n_rows) * rng.uniform(0.5, 1, n_rows)
    return targets


def run_loop(layer, targets, segment_steps, chunk_steps):
    """Drive the plants chunk by chunk; return the time courses, one row each."""
    n_rows, n_segments = targets.shape
    n_steps = n_segments * segment_steps
    target = np.repeat(targets, segment_steps, axis=1)
    position, velocity = np.zeros(n_rows), np.zeros(n_rows)
    positions = np.zeros((n_rows, n_steps))
    forces = np.zeros((n_rows, n_steps))
    for start in range(0, n_steps, chunk_steps):
        steps = min(chunk_steps, n_steps - start)
        # the sensor sample, held for the chunk: this is where the loop closes
        error = target[:, start] - position
        sensor = np.stack([error / ERROR_SCALE, velocity / VELOCITY_SCALE], axis=-1)
        x = np.repeat(sensor[:, None, :], steps, axis=1).astype(np.float32)
        force = np.asarray(layer({"sensor": x}))[:, :, 0]  # (rows, steps)
        for k in range(steps):  # the plant, semi-implicit Euler
            velocity = velocity + DT * force[:, k]
            position = position + DT * velocity
            positions[:, start + k] = position
        forces[:, start : start + steps] = force
    return target, positions, forces


def error_after_changes(error, segment_steps, windows):
    """Mean |error| over all rows and targets, in windows after each target change."""
    n_rows, n_steps = error.shape
    per_segment = np.abs(error).reshape(n_rows, -1, segment_steps)
    return [float(per_segment[:, :, a:b].mean()) for a, b in windows]


def plot(path, target, positions, forces, chunk_steps):
    t = np.arange(1, target.shape[1] + 1) * DT
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for row, color in zip(range(len(target)), plt.cm.tab10.colors):
        top.plot(t, target[row], "--", color=color, lw=1)
        top.plot(t, positions[row], color=color, lw=1.5, label=f"plant {row}")
        bottom.plot(t, forces[row], color=color, lw=0.8)
    top.set_ylabel("position (solid) / target (dashed)")
    bottom.legend(
        *top.get_legend_handles_labels(),
        loc="lower right",
        fontsize="small",
        ncol=len(target),
    )
    top.set_title(
        f"Spiking PD controller closing the loop every {chunk_steps} steps "
        "(NengoLayer, stateful=True)"
    )
    bottom.set_ylabel("force decoded from spikes")
    bottom.set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=200)
    parser.add_argument("--rows", type=int, default=4, help="plants run side by side")
    parser.add_argument("--segments", type=int, default=3, help="targets per plant")
    parser.add_argument(
        "--segment-steps", type=int, default=1500, help="steps (ms) per target"
    )
    parser.add_argument("--chunk-steps", type=int, default=20, help="steps per call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=Path("closed_loop"), help="folder for the plot"
    )
    args = parser.parse_args(argv)
    if args.segment_steps < 600:
        parser.error("--segment-steps must be at least 600 (it needs time to settle)")

    layer = kn.NengoLayer(
        build_controller(args.neurons, args.seed), seed=args.seed, stateful=True
    )
    targets = target_sequences(
        args.rows, args.segments, np.random.RandomState(args.seed)
    )
    n_steps = args.segments * args.segment_steps
    n_chunks = -(-n_steps // args.chunk_steps)
    print(
        f"{args.rows} plants, {args.segments} targets each, {n_steps} steps "
        f"({n_steps * DT:g} s) in {n_chunks} chunks of {args.chunk_steps} steps"
    )

    start = time.perf_counter()
    target, positions, forces = run_loop(
        layer, targets, args.segment_steps, args.chunk_steps
    )
    seconds = time.perf_counter() - start
    print(
        f"closed loop: {seconds:.1f} s, {1e3 * seconds / n_chunks:.1f} ms per chunk "
        f"(network and plant)"
    )

    error = target - positions
    windows = [
        (0, 100),
        (100, 200),
        (200, 400),
        (400, 600),
        (args.segment_steps - 500, args.segment_steps),
    ]
    means = error_after_changes(error, args.segment_steps, windows)
    print("\nmean |target - position| after each change of target:")
    for (a, b), value in zip(windows[:-1], means[:-1]):
        print(f"  {a:5d}-{b:<5d} ms   {value:.4f}")
    print(f"  last 500 ms     {means[-1]:.4f}")
    print(
        f"tracking error: {means[0]:.4f} in the first 100 ms after a change, "
        f"{means[-1]:.4f} over the last 500 ms of each target"
    )
    print("\nplant  final target  final position")
    for row in range(args.rows):
        print(f"  {row}       {target[row, -1]:6.3f}        {positions[row, -1]:6.3f}")

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "closed_loop.png"
    plot(path, target, positions, forces, args.chunk_steps)
    print(f"\nplot written to {path}")
    return {"error_first_100ms": means[0], "error_settled": means[-1]}


if __name__ == "__main__":
    main()
