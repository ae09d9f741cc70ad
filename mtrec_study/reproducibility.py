"""Seeds and determinism: the same seed and parameters on the CPU give the same metrics."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

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


def training_seeds(seed: int, n: int) -> list[int]:
    """The training seeds of a result reported over seeds: ``seed, seed + 1, …`` (``n`` of them).

    The first is the study's ``SEED``, so the first seed's models are the ones a one-seed run
    trains (and the training cache already holds).

    Args:
        seed: The study's seed.
        n: How many training seeds (the ``SEEDS`` parameter of 05, 07 and 09).

    Raises:
        ValueError: If ``n`` is not a positive integer.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"SEEDS must be a positive integer (training seeds per configuration), got {n!r}")
    return [int(seed) + s for s in range(int(n))]


def package_hash(root: Path | None = None) -> str:
    """Hash of the package's source files (path and bytes of every ``.py`` under ``mtrec_study/``).

    A change to any module changes it: the report reruns every notebook, and the training cache
    (:mod:`mtrec_study.training.cache`) trains afresh.

    Args:
        root: The project folder holding ``mtrec_study/`` (default: this checkout).

    Used by mtrec_study.report.build, mtrec_study.training.cache.
    """
    from mtrec_study.config import PROJECT_ROOT

    root = Path(root or PROJECT_ROOT)
    h = hashlib.sha256()
    for path in sorted((root / "mtrec_study").rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()
