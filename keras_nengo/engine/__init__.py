"""The simulation engine: what runs a Nengo network (see DESIGN §2).

`Simulator` is Nengo's backend API (``run``, ``step``, ``data``, ``trange``...)
over the `keras_nengo.NengoLayer` engine; `tensor_graph` and `hoisting` are the
time loop and the work taken out of it. `Simulator` is imported on first use,
so that the engine's lower modules import without the layer above them.
"""

__all__ = ["Simulator"]


def __getattr__(name):
    if name == "Simulator":
        # pylint: disable-next=import-outside-toplevel
        from keras_nengo.engine.simulator import (
            Simulator,
        )

        return Simulator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
