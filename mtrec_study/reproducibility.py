"""Seeds and determinism: the same seed and parameters on the CPU give the same metrics."""

from __future__ import annotations

import os
import random

import numpy as np


def set_seed(seed: int, deterministic_ops: bool = True) -> None:
    """Seed Python, NumPy and Keras, and turn on TensorFlow op determinism.

    Args:
        seed: Any non-negative integer.
        deterministic_ops: Ask TensorFlow for deterministic kernels. Costs a little speed
            and makes two runs with the same seed give identical weights.

    Raises:
        ValueError: If ``seed`` is negative or not an integer.

    Introduced in notebooks/01_data_preprocessing.ipynb.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    import keras  # deferred: data-only notebooks need not pay for TensorFlow
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()
