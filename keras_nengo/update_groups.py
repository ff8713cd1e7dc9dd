"""Optimizer updates of many named weights as one flat update per dtype.

A Nengo network has one named variable per trainable parameter: an SPA-style
network has hundreds to thousands. Keras's optimizers update each variable on
its own, with about ten graph ops per variable, and tracing and first running
those ops was most of the first ``fit`` on such networks (profiled on the
bench's ``spa_cconv2``: 594 variables, 14.1 s first fit, 5.6 s with one op per
variable). Members of one shape are moved in and out of the flat variable
together, and each adds its update with one op on its ``tf.Variable``: the
training graph went from 5,470 to 3,704 ops and the first ``fit`` from 6.4 to
3.5 s (same machine, alternating runs).

`UpdateGroups` hands the compiled optimizer one flat variable per dtype in
place of the named variables of that dtype. Each training step zeroes it,
lets the optimizer update it from the concatenated gradients, and adds its
pieces to the named variables. The optimizer's state (momenta, moments,
iteration count) lives in the optimizer as usual, one slot per flat variable.

That is the same arithmetic as updating each named variable, element by
element, when the optimizer's update does not read the variable's value and
treats every element alike: `ELEMENTWISE` lists those optimizers (checked in
their ``update_step``), and options that look at whole variables or at their
values (``clipnorm``, ``global_clipnorm``, ``weight_decay``, ``use_ema``)
keep the per-variable path. So do subclasses (they may override the update),
legacy optimizers and ``tf.distribute`` strategies. With a zeroed flat
variable the optimizer leaves ``-u`` (or ``0 + u``) in it, and adding that to
a weight ``w`` gives ``w - u`` (or ``w + u``) exactly as the per-variable
update does.
"""

from __future__ import annotations

import itertools

import numpy as np
import tensorflow as tf

from keras_nengo._compat import KERAS_3, keras
from keras_nengo._keras_apis import tf_variable

ELEMENTWISE = tuple(
    getattr(keras.optimizers, name)
    for name in (
        "SGD",
        "Adam",
        "RMSprop",
        "Adagrad",
        "Adadelta",
        "Adamax",
        "Lion",
    )
)


def why_not_grouped(optimizer) -> str | None:
    """Why ``optimizer`` must update the named variables one by one, or None."""
    if type(optimizer) not in ELEMENTWISE:
        return (
            f"{type(optimizer).__name__} is not one of the element-wise "
            "optimizers " + ", ".join(kind.__name__ for kind in ELEMENTWISE)
        )
    for option in ("clipnorm", "global_clipnorm", "weight_decay"):
        if getattr(optimizer, option, None) is not None:
            return f"{option} is set (it looks at whole variables or their values)"
    if getattr(optimizer, "use_ema", False):
        return "use_ema is set (it averages the variables' values)"
    if getattr(optimizer, "gradient_accumulation_steps", None):
        # Keras 3: the update would land in the flat variable on later steps
        return "gradient_accumulation_steps is set (updates wait for later steps)"
    if tf.distribute.has_strategy():
        return "a tf.distribute strategy is in use"
    return None


class _Group:
    """The named variables of one dtype and the flat variable standing in for them.

    Members of one shape sit next to each other in the flat variable (a
    "run"), so that a run's gradients go in with one stack and one reshape
    and its updates come out with one reshape and one unstack: an SPA-style
    network has hundreds of variables but a few dozen shapes, and a reshape
    per variable each way was a third of its training graph's ops.
    """

    def __init__(self, variables):
        # a stable sort: members of one shape keep their order
        self.members = sorted(variables, key=lambda v: tuple(v.shape))
        self.runs = [
            (shape, list(run))
            for shape, run in itertools.groupby(
                self.members, key=lambda v: tuple(v.shape)
            )
        ]
        self.sizes = [len(run) * int(np.prod(shape)) for shape, run in self.runs]
        dtype = tf.as_dtype(self.members[0].dtype)
        with tf.init_scope():
            self.flat = _flat_variable(sum(self.sizes), dtype)

    def gradient(self, by_id):
        """The flat gradient, from ``{id(variable): gradient}`` of the members."""
        parts = []
        for _, run in self.runs:
            ours = [by_id[id(variable)] for variable in run]
            stacked = ours[0] if len(ours) == 1 else tf.stack(ours)
            parts.append(_reshaped(stacked, [-1]))
        return parts[0] if len(parts) == 1 else tf.concat(parts, axis=0)

    def add_update(self):
        """Add the optimizer's update (left in the zeroed flat variable) to members.

        One ``AssignAddVariableOp`` per member, on the ``tf.Variable`` itself:
        Keras 3's ``assign_add`` reads, adds and assigns (three ops, and
        Python checks), which on hundreds of variables was a quarter of the
        first ``fit``'s tracing.
        """
        flat = tf.convert_to_tensor(self.flat)
        pieces = [flat] if len(self.runs) == 1 else tf.split(flat, self.sizes)
        for (shape, run), piece in zip(self.runs, pieces):
            if len(run) == 1:
                updates = [_reshaped(piece, shape)]
            else:
                updates = tf.unstack(tf.reshape(piece, [len(run), *shape]))
            for variable, update in zip(run, updates):
                tf_variable(variable).assign_add(update, read_value=False)


def _flat_variable(size, dtype):
    """The zeroed flat variable the optimizer updates, of the optimizer's Keras.

    Keras 3's optimizers take Keras variables only (and update trainable
    ones); no layer tracks this one, so it is in no model's weights.
    """
    name = f"named_weights_{dtype.name}"
    if KERAS_3:
        return keras.Variable(np.zeros(size, dtype.as_numpy_dtype), name=name)
    return tf.Variable(tf.zeros([size], dtype), trainable=False, name=name)


def _reshaped(tensor, shape):
    # vectors (biases) are already flat: no reshape ops for them in the step
    if len(tensor.shape) == 1 and len(shape) == 1:
        return tensor
    return tf.reshape(tensor, shape)


class UpdateGroups:
    """Which variables the optimizer sees: flat groups of named ones, and the rest.

    Parameters
    ----------
    named : list of tf.Variable
        Named Nengo variables that may be grouped.
    variables : list of tf.Variable
        Everything the optimizer updates (``model.trainable_variables``), in order.
    """

    def __init__(self, named, variables):
        named_ids = {id(v) for v in named}
        by_dtype = {}
        self.others = []
        for variable in variables:
            if id(variable) in named_ids:
                by_dtype.setdefault(variable.dtype, []).append(variable)
            else:
                self.others.append(variable)
        self.groups = [_Group(members) for members in by_dtype.values()]
        self.key = tuple(id(v) for v in variables)

    @property
    def optimizer_variables(self) -> list:
        """What the optimizer is built with and updates, in order."""
        return [group.flat for group in self.groups] + self.others

    def matches(self, variables) -> bool:
        """Whether ``variables`` are the ones these groups were made for."""
        return tuple(id(v) for v in variables) == self.key

    def optimizer_gradients(self, gradients, variables) -> list:
        """``gradients`` (one per variable of ``variables``) as the optimizer's list."""
        by_id = {id(v): g for v, g in zip(variables, gradients)}
        flat = [group.gradient(by_id) for group in self.groups]
        return flat + [by_id[id(v)] for v in self.others]

    def zero(self):
        for group in self.groups:
            group.flat.assign(tf.zeros_like(group.flat))

    def add_updates(self):
        for group in self.groups:
            group.add_update()


def update_groups_for(optimizer, named, variables, previous=None, distributed=False):
    """`UpdateGroups` for ``optimizer`` to update ``variables`` with, or None.

    None means per-variable updates: the optimizer is not element-wise (see
    `why_not_grouped`), the model trains under a ``tf.distribute`` strategy
    (``distributed``), or the optimizer was already built for other variables
    (then Keras's own error names them). ``previous`` groups made for the same
    ``variables`` are reused, so that recompiling with the same optimizer keeps
    its state.
    """
    if distributed or why_not_grouped(optimizer) is not None:
        return None
    if previous is not None and previous.matches(variables):
        groups = previous
    else:
        groups = UpdateGroups(named, variables)
    # pylint: disable=protected-access
    built_for = getattr(optimizer, "_index_dict", None)
    if KERAS_3:
        built_for = optimizer._trainable_variables_indices
    built = optimizer.built if KERAS_3 else getattr(optimizer, "_built", False)
    if built and any(
        optimizer._var_key(v) not in built_for for v in groups.optimizer_variables
    ):
        return None
    return groups
