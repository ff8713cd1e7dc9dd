"""keras_nengo's own neuron step for LIF, for its TensorGraphs only.

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
place, which moves a spike by one step at most. The rate approximation used
in training (``training=True``) is NengoDL's.
"""

from __future__ import annotations

import tensorflow as tf
from nengo.builder.neurons import SimNeurons
from nengo.neurons import LIF

from keras_nengo._compat import nengo_dl

_neuron_builders = nengo_dl.neuron_builders


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


class SimNeuronsBuilder(_neuron_builders.SimNeuronsBuilder):
    """NengoDL's neuron builder with `LIFBuilder` for LIF groups."""

    TF_NEURON_IMPL = {
        **_neuron_builders.SimNeuronsBuilder.TF_NEURON_IMPL,
        LIF: LIFBuilder,
    }


OWN_NEURON_BUILDERS = {SimNeurons: SimNeuronsBuilder}
