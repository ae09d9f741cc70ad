"""Optimizers: Keras's Adam, and lazy Adam for embedding tables too large to update whole each step.

Keras 3's Adam updates every row of every variable at every step: an embedding table's rows
that the batch never looked up still have their moments decayed and take a step. With a million
users that is most of a training step's cost, so examples/s falls as the user table grows
(``benchmarks/bench_streaming.py`` measures both). Lazy Adam (``tfa.optimizers.LazyAdam`` of
TensorFlow Addons, which no longer exists for Keras 3, and PyTorch's ``SparseAdam``) updates
only the rows a batch looked up, whose gradient TensorFlow hands over as ``tf.IndexedSlices``;
every dense variable gets exactly Keras's Adam step.
"""

from __future__ import annotations

import keras
import tensorflow as tf

OPTIMIZERS = ("adam", "lazy_adam")


@keras.saving.register_keras_serializable(package="mtrec_study")
class LazyAdam(keras.optimizers.Adam):
    """Adam whose embedding rows move only when a batch looks them up.

    For a sparse gradient (rows ``r`` with values ``g``, repeated rows summed first) the step is
    Adam's on those rows alone: ``m[r] ← β1·m[r] + (1-β1)·g``, ``v[r] ← β2·v[r] + (1-β2)·g²``,
    ``w[r] ← w[r] - α·m[r] / (√v[r] + ε)`` with Adam's bias-corrected ``α``. Dense gradients
    take :class:`keras.optimizers.Adam`'s step unchanged.

    Used by mtrec_study.training.optimizers.
    """

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


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """The optimizer called ``name`` (one of :data:`OPTIMIZERS`) at ``learning_rate``.

    Raises:
        ValueError: For an unknown name, listing the valid ones.

    Used by mtrec_study.training.trainer.
    """
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "lazy_adam":
        return LazyAdam(learning_rate)
    raise ValueError(f"optimizer {name!r} is not known; use one of {', '.join(OPTIMIZERS)}")
