"""The simulation engine: what runs a Nengo network (see DESIGN §2).

`Simulator` is Nengo's backend API (``run``, ``step``, ``data``, ``trange``...)
over the `keras_nengo.NengoLayer` engine.
"""

from keras_nengo.engine.simulator import Simulator

__all__ = ["Simulator"]
