"""Optimizers: Keras's Adam, and lazy Adam for embedding tables too large to update whole each step.

Keras 3's Adam updates every row of every variable at every step: an embedding table's rows
that the batch never looked up still have their moments decayed and take a step. With a million
users that is most of a training step's cost, so examples/s falls as the user table grows
(``benchmarks/bench_streaming.py`` measures both). Lazy Adam (``tfa.optimizers.LazyAdam`` of
TensorFlow Addons, which no longer exists for Keras 3, and PyTorch's ``SparseAdam``) updates
only the rows a batch looked up, whose gradient TensorFlow hands over as ``tf.IndexedSlices``;
every dense variable gets exactly Keras's Adam step.

A gradient is sparse only where nothing made it dense on the way: an embedding read through
:func:`mtrec_study.models.layers.lookup` (the encoder of every pointwise network; MF, BPR and the
two-tower network use Keras's ``Embedding``), without an L2 penalty on the table (its gradient is
dense), and a weighting that does not project gradients (PCGrad flattens them). Elsewhere lazy
Adam takes Keras's Adam step, correct but not lazy.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from mtrec_study.models.layers import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class LazyAdam(keras.optimizers.Adam):
    """Adam whose embedding rows move only when a batch looks them up.

    For a sparse gradient (rows ``r`` with values ``g``, repeated rows summed first) the step is
    Adam's on those rows alone: ``m[r] ← β1·m[r] + (1-β1)·g``, ``v[r] ← β2·v[r] + (1-β2)·g²``,
    ``w[r] ← w[r] - α·m[r] / (√v[r] + ε)`` with Adam's bias-corrected ``α`` (from the global
    step count, as Keras's Adam). Dense gradients, and every gradient with ``amsgrad=True``, take
    :class:`keras.optimizers.Adam`'s step unchanged.

    Raises:
        ValueError: For ``weight_decay`` or ``use_ema``, which Keras applies to every row at
            every step, so that rows a batch skipped would move after all.

    Used by mtrec_study.training.optimizers.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.weight_decay or self.use_ema:
            raise ValueError(f"LazyAdam moves only the rows a batch looked up, but weight_decay={self.weight_decay!r} "
                             f"and use_ema={self.use_ema!r} change every row at every step; leave both unset, or use "
                             f"keras.optimizers.Adam")

    def update_step(self, gradient, variable, learning_rate):
        """One step for ``variable``: lazy on an ``IndexedSlices`` gradient, else Keras's Adam."""
        if not isinstance(gradient, tf.IndexedSlices) or self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        rows, position = tf.unique(gradient.indices)
        grad = tf.math.unsorted_segment_sum(tf.cast(gradient.values, dtype), position, tf.shape(rows)[0])
        step = tf.cast(self.iterations + 1, dtype)
        alpha = (tf.cast(learning_rate, dtype) * tf.sqrt(1 - tf.pow(tf.cast(self.beta_2, dtype), step))
                 / (1 - tf.pow(tf.cast(self.beta_1, dtype), step)))
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        m_rows = self.beta_1 * tf.gather(m.value, rows) + (1 - self.beta_1) * grad
        v_rows = self.beta_2 * tf.gather(v.value, rows) + (1 - self.beta_2) * tf.square(grad)
        self.assign(m, tf.IndexedSlices(m_rows, rows))
        self.assign(v, tf.IndexedSlices(v_rows, rows))
        self.assign_sub(variable, tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))


OPTIMIZERS: dict[str, type[keras.optimizers.Optimizer]] = {"adam": keras.optimizers.Adam, "lazy_adam": LazyAdam}


def optimizer_class(name: str) -> type[keras.optimizers.Optimizer]:
    """The optimizer class called ``name``, one of :data:`OPTIMIZERS`.

    Raises:
        ValueError: For an unknown name, listing the valid ones.

    Used by mtrec_study.training.optimizers, mtrec_study.training.trainer.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer {name!r} is not known; use one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name]


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """The optimizer called ``name`` (one of :data:`OPTIMIZERS`) at ``learning_rate``.

    Raises:
        ValueError: For an unknown name, listing the valid ones.

    Used by mtrec_study.training.trainer.
    """
    return optimizer_class(name)(learning_rate)
