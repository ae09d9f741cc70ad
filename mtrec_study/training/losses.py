r"""Masked per-task losses.

A task's loss is averaged over the rows that carry its label only:

.. math:: L_k = \frac{\sum_i m^k_i\, \ell_k(y^k_i, \hat y^k_i)}{\max(1, \sum_i m^k_i)}

so a batch with no label for task :math:`k` contributes exactly 0 (no NaN, no division by zero).
Binary tasks use binary cross-entropy on the sigmoid output, the rating task squared error, and
the two-tower network's retrieval task the softmax cross-entropy :math:`-\log p(i \mid u)` of its
observed rows (the network outputs the log-probability).
"""

from __future__ import annotations

from keras import ops

EPS = 1e-7


def binary_crossentropy(y, p):
    """Element-wise BCE on probabilities, clipped away from 0 and 1.

    Used by mtrec_study.training.losses.
    """
    p = ops.clip(p, EPS, 1.0 - EPS)
    return -(y * ops.log(p) + (1.0 - y) * ops.log(1.0 - p))


def squared_error(y, r):
    """Element-wise squared error.

    Used by mtrec_study.training.losses.
    """
    return ops.square(y - r)


def masked_mean(values, mask):
    """Mean of ``values`` over rows where ``mask`` is 1; exactly 0 when the mask is empty.

    Introduced in notebooks/03_model_math.ipynb.
    """
    mask = ops.cast(mask, values.dtype)
    return ops.sum(values * mask) / ops.maximum(ops.sum(mask), 1.0)


def task_loss(task_type: str, y, pred, mask):
    """The masked loss of one task (``binary``, ``regression`` or ``retrieval``).

    Introduced in notebooks/03_model_math.ipynb.
    """
    y = ops.reshape(ops.cast(y, "float32"), (-1,))
    pred = ops.reshape(ops.cast(pred, "float32"), (-1,))
    mask = ops.reshape(ops.cast(mask, "float32"), (-1,))
    if task_type == "binary":
        return masked_mean(binary_crossentropy(y, pred), mask)
    if task_type == "regression":
        return masked_mean(squared_error(y, pred), mask)
    if task_type == "retrieval":  # pred is log p(item | user); the positives are the labelled rows
        return masked_mean(-pred, mask * y)
    raise ValueError(f"unknown task type {task_type!r}; valid: 'binary', 'regression', 'retrieval'")
