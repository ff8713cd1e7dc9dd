"""Which Nengo neurons NIR expresses, exactly or approximately.

NIR's ``LIF`` is Nengo's LIF without a refractory period, a voltage floor and
a random start (`keras_nengo.nir.nir_lif`); its ``IF`` is `IntegrateAndFire`.
Everything else is refused with an `NIRExportError` naming the Ensemble, or
(``approximate=True``) exported as the nearest NIR neuron with a warning.
"""

import nengo
import numpy as np

from keras_nengo._nir_neurons import IntegrateAndFire


class NIRExportError(ValueError):
    """A Nengo object has no exact NIR equivalent."""


def neuron_kind(ens, inexact):
    """("LIF" or "IF", tau_rc or None, spike amplitude) for ``ens``'s neurons.

    ``inexact(obj, lacks, approximation)`` raises, or warns with
    ``approximate=True``; neuron types NIR lacks entirely always raise.
    """
    neuron_type = ens.neuron_type
    fix = (
        "Use keras_nengo.nir.nir_lif(tau_rc) (tau_ref=0, min_voltage=-inf, "
        "voltage starting at 0)."
    )
    if isinstance(neuron_type, nengo.LIF):
        if neuron_type.tau_ref != 0:
            inexact(
                ens,
                f"its LIF has tau_ref={neuron_type.tau_ref} and NIR's LIF has no "
                "refractory period",
                f"With approximate=True the refractory period is dropped. {fix}",
            )
        if neuron_type.min_voltage > -np.inf:
            inexact(
                ens,
                f"its LIF clips the voltage at min_voltage="
                f"{neuron_type.min_voltage} and NIR's LIF has no voltage floor",
                f"With approximate=True the floor is dropped. {fix}",
            )
        if not starts_at_zero(neuron_type):
            inexact(
                ens,
                "its LIF voltages start at random values and NIR neurons start "
                "at rest (no initial state)",
                f"With approximate=True they start at 0. {fix}",
            )
        return "LIF", neuron_type.tau_rc, neuron_type.amplitude
    if isinstance(neuron_type, IntegrateAndFire):
        if not starts_at_zero(neuron_type):
            inexact(
                ens,
                "its voltages start at random values and NIR neurons start at "
                "rest (no initial state)",
                "With approximate=True they start at 0.",
            )
        return "IF", None, neuron_type.amplitude
    if isinstance(neuron_type, nengo.LIFRate):
        inexact(
            ens,
            f"NIR has no rate neurons and {type(neuron_type).__name__} is one",
            "With approximate=True it becomes a spiking LIF with the same "
            "tau_rc (same mean rate when tau_ref=0).",
        )
        return "LIF", neuron_type.tau_rc, neuron_type.amplitude
    if isinstance(neuron_type, (nengo.RectifiedLinear, nengo.SpikingRectifiedLinear)):
        inexact(
            ens,
            f"NIR has no {type(neuron_type).__name__}: its IF resets to v_reset "
            "and emits one spike per step, Nengo's subtracts the threshold "
            "(and RectifiedLinear does not spike)",
            "With approximate=True it becomes an IF node (same rate "
            "max(J, 0) up to one spike per step).",
        )
        return "IF", None, neuron_type.amplitude
    raise NIRExportError(
        f"{ens} has neuron type {type(neuron_type).__name__}, which NIR cannot "
        "express (NIR neurons: LIF, IF, CubaLIF). Use nengo.LIF "
        "(keras_nengo.nir.nir_lif) neurons."
    )


def starts_at_zero(neuron_type) -> bool:
    voltage = (neuron_type.initial_state or {}).get(
        "voltage", type(neuron_type).state.get("voltage")
    )
    if isinstance(voltage, nengo.dists.Choice):
        return bool(np.all(np.asarray(voltage.options) == 0))
    if isinstance(voltage, nengo.dists.Distribution):
        return False
    return bool(np.all(np.asarray(voltage) == 0))
