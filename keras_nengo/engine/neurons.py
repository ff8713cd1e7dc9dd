"""keras_nengo's own LIF and LIFRate steps, for its TensorGraphs only.

NengoDL's LIF step (spiking, i.e. ``predict`` and stateful runs) spends most
of its time in two transcendental functions and two selects per step. Here
the same update takes Nengo's closed forms with cheaper functions:

- the voltage decays towards the input current as ``J + (v - J) * exp(-t /
  tau_rc)`` instead of ``v - (J - v) * expm1(-t / tau_rc)`` (TensorFlow's
  ``exp`` is vectorised on CPU, its ``expm1`` is not: 12 vs 44 us on a
  16 x 1024 batch);
- the spike time within the step is ``tau_rc * log((J - v) / (J - 1))``
  instead of ``log1p(-(v - 1) / (J - 1))`` (the same number);
- spiking neurons' voltages are zeroed by a product with the spike mask, not
  a select.

In float64 these agree with Nengo to rounding (``tests/test_builders.py``);
in float32 the voltages differ from NengoDL's by a few units in the last
place, which moves a spike by one step at most.

The LIF rate curve (LIFRate, and LIF in training) has its derivative written
out (`lif_rates`): ``rate**2 * tau_rc / (amplitude * j * (j + 1))`` for
``j = J - 1 > 0``, else 0. TensorFlow's own gradient of the curve is about
fifteen operations per step, two of them selects, and keeps each
intermediate of every step for the backward pass; this one is six, from the
rates and ``j`` alone. Graphs for forward-mode Jacobians
(`keras_nengo.engine.modes.stepwise_reads`) keep TensorFlow's derivative.
"""

from __future__ import annotations

import tensorflow as tf
from nengo.builder.neurons import SimNeurons
from nengo.neurons import LIF, LIFRate

from keras_nengo._compat import nengo_dl
from keras_nengo.engine.modes import stepwise

_neuron_builders = nengo_dl.neuron_builders


def lif_rates(J, tau_rc, tau_ref, amplitude, epsilon):
    """Nengo's LIF rates of the currents ``J``, with their derivative written out.

    ``amplitude / (tau_ref + tau_rc * log1p(1 / (J - 1)))`` where ``J > 1``,
    else 0 (NengoDL's curve: ``J - 1`` is kept at least ``epsilon`` inside).
    """

    @tf.custom_gradient
    def rates(J):
        j = J - 1
        above = tf.cast(j > 0, J.dtype)
        j = tf.maximum(j, epsilon)
        out = above * amplitude / (tau_ref + tau_rc * tf.math.log1p(1 / j))

        def grad(upstream):
            return upstream * out * out * (tau_rc / amplitude) / (j * (j + 1))

        return out, grad

    return rates(J)


def _rate_step(builder, J):
    """The LIF rates of ``J`` for a LIF or LIFRate ``builder``."""
    if stepwise():  # forward mode: TensorFlow's own derivative
        return _neuron_builders.LIFRateBuilder.step(builder, J, None)
    amplitude = builder.one if builder.amplitude is None else builder.amplitude
    return lif_rates(J, builder.tau_rc, builder.tau_ref, amplitude, builder.epsilon)


class LIFRateBuilder(_neuron_builders.LIFRateBuilder):
    """`~nengo.LIFRate` groups: NengoDL's curve, `lif_rates`' derivative."""

    def step(self, J, dt):
        return _rate_step(self, J)


class LIFBuilder(_neuron_builders.LIFBuilder):
    """`~nengo.LIF` groups: Nengo's update with ``exp`` and ``log``.

    The refractory time follows NengoDL's convention (Nengo's minus ``dt``).
    """

    def step(self, J, dt, voltage, refractory_time):
        delta_t = tf.clip_by_value(dt - refractory_time, self.zero, dt)
        voltage = J + (voltage - J) * tf.exp(delta_t * (-1 / self.tau_rc))
        spiked = voltage > self.one
        spikes = tf.cast(spiked, J.dtype)
        spike_time = self.tau_rc * tf.math.log((J - voltage) / (J - self.one))
        refractory_time = tf.where(
            spiked, self.tau_ref + spike_time, refractory_time - dt
        )
        voltage = tf.maximum(voltage, self.min_voltage) * (self.one - spikes)
        return spikes * self.alpha, voltage, refractory_time

    def training_step(self, J, dt, **state):
        if self.config.lif_smoothing is not None:
            return super().training_step(J, dt, **state)
        return _rate_step(self, J)


class SimNeuronsBuilder(_neuron_builders.SimNeuronsBuilder):
    """NengoDL's neuron builder with `LIFBuilder` and `LIFRateBuilder`."""

    TF_NEURON_IMPL = {
        **_neuron_builders.SimNeuronsBuilder.TF_NEURON_IMPL,
        LIF: LIFBuilder,
        LIFRate: LIFRateBuilder,
    }


OWN_NEURON_BUILDERS = {SimNeurons: SimNeuronsBuilder}
