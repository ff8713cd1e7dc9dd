"""Neuron types with exactly the dynamics of NIR's ``LIF`` and ``IF`` nodes.

`nir_lif` is a ``nengo.LIF`` without what Nengo adds to NIR's equation
(refractory period, voltage floor, random start); `IntegrateAndFire` is
NIR's ``IF``, with its NengoDL builder registered on import.
"""

import nengo
import numpy as np
import tensorflow as tf
from nengo.params import NumberParam
from nengo_dl.neuron_builders import SimNeuronsBuilder, TFNeuronBuilder


def nir_lif(tau_rc: float = 0.02, amplitude: float = 1.0, initial_voltage=0.0):
    """A ``nengo.LIF`` with exactly the dynamics of a NIR ``LIF`` node.

    No refractory period, no voltage floor and a membrane at rest at the
    start: the three things Nengo's default LIF adds to the NIR equation.

    Parameters
    ----------
    tau_rc : float
        Membrane time constant in seconds.
    amplitude : float
        Area of one output spike (Nengo emits ``amplitude / dt`` for a step).
    initial_voltage : float or array_like
        Normalised membrane voltage at the start (0 is the reset value).

    Returns
    -------
    neuron_type : nengo.LIF

    Examples
    --------
    >>> lif = nir_lif(0.01)
    >>> lif.tau_rc, lif.tau_ref, lif.min_voltage
    (0.01, 0, -inf)
    """
    initial = np.asarray(initial_voltage, dtype=float)
    voltage = nengo.dists.Choice([float(initial)]) if initial.ndim == 0 else initial
    return nengo.LIF(
        tau_rc=tau_rc,
        tau_ref=0,
        min_voltage=-np.inf,
        amplitude=amplitude,
        initial_state={"voltage": voltage},
    )


class IntegrateAndFire(nengo.neurons.NeuronType):
    """Integrate-and-fire neurons (NIR's ``IF``): ``dv/dt = J``, reset to 0.

    The voltage is normalised to threshold 1. Each step adds ``J * dt``
    (exact for an input held over the step); a neuron whose voltage exceeds
    1 emits one spike of area ``amplitude`` and resets to 0. Its rate
    approximation, used while training, is ``amplitude * max(J, 0)``.

    Parameters
    ----------
    amplitude : float
        Area of one output spike.
    initial_state : dict, optional
        ``{"voltage": Distribution or array_like}``; default: all 0.

    Examples
    --------
    >>> with nengo.Network() as net:
    ...     ens = nengo.Ensemble(2, 1, neuron_type=IntegrateAndFire(),
    ...                          gain=[1.0, 1.0], bias=[45.0, 130.0])
    ...     probe = nengo.Probe(ens.neurons)
    >>> with nengo.Simulator(net, progress_bar=False) as sim:
    ...     sim.run(1.0)
    >>> (sim.data[probe] > 0).sum(axis=0)
    array([ 43, 125])
    """

    state = {"voltage": nengo.dists.Choice([0])}
    spiking = True
    amplitude = NumberParam("amplitude", low=0, low_open=True)

    def __init__(self, amplitude: float = 1.0, initial_state=None):
        super().__init__(initial_state=initial_state)
        self.amplitude = amplitude

    def gain_bias(self, max_rates, intercepts):
        gain = max_rates / (1 - intercepts)
        return gain, -gain * intercepts

    def max_rates_intercepts(self, gain, bias):
        intercepts = -bias / gain
        return gain * (1 - intercepts), intercepts

    def rates(self, x, gain, bias):
        return self.amplitude * np.maximum(gain * x + bias, 0)

    def step(self, dt, J, output, voltage):
        voltage += J * dt
        spiked = voltage > 1
        output[:] = spiked * (self.amplitude / dt)
        voltage[spiked] = 0


class _IntegrateAndFireBuilder(TFNeuronBuilder):
    """NengoDL's TensorFlow implementation of `IntegrateAndFire`."""

    spiking = True

    def step(self, J, dt, voltage):
        voltage = voltage + J * dt
        spiked = voltage > 1
        spikes = tf.cast(spiked, J.dtype) * self.alpha
        return spikes, tf.where(spiked, tf.zeros_like(voltage), voltage)

    def training_step(self, J, dt, **state):
        return tf.nn.relu(J) * self.alpha * dt


SimNeuronsBuilder.TF_NEURON_IMPL[IntegrateAndFire] = _IntegrateAndFireBuilder
