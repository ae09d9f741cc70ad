r"""Task-loss weighting strategies, pluggable into the trainer's train step.

* :class:`Fixed` — the article's :math:`L = \sum_k \lambda_k L_k`.
* :class:`Uncertainty` — Kendall et al. (2018): learn :math:`s_k = \log\sigma_k^2`; a regression task
  contributes :math:`L_k / (2\sigma_k^2) + \log\sigma_k`, a classification task
  :math:`L_k / \sigma_k^2 + \log\sigma_k`.
* :class:`GradNorm` — Chen et al. (2018): weights :math:`w_k` move so that the gradient norms
  :math:`G_k = \lVert\nabla_W w_k L_k\rVert` at the last shared layer approach
  :math:`\bar G \cdot r_k^\alpha`, with :math:`r_k` the relative inverse training rate; renormalised so
  :math:`\sum_k w_k = K`.
* :class:`DWA` — Liu et al. (2019): :math:`w_k(t) = K \exp(r_k(t-1)/T) / \sum_j \exp(r_j(t-1)/T)`,
  :math:`r_k(t-1) = L_k(t-1)/L_k(t-2)` on epoch-averaged losses; 1 for the first two epochs.
* :class:`PCGrad` — Yu et al. (2020): project each task's gradient on the shared parameters off
  every other task gradient it conflicts with (negative dot product), then sum.

The pure functions (:func:`dwa_weights`, :func:`pcgrad`, :func:`uncertainty_total`,
:func:`gradnorm_step`) hold the math and are tested against hand-worked values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from keras import ops

WEIGHTINGS = ("fixed", "uncertainty", "gradnorm", "dwa", "pcgrad")


def check_lambdas(lambdas: Sequence[float], tasks: Sequence[str]) -> np.ndarray:
    """Validate fixed weights: one per task, none negative, not all zero.

    Used by mtrec_study.training.weighting.
    """
    lam = np.asarray(lambdas, dtype="float64")
    if lam.shape != (len(tasks),):
        raise ValueError(f"need one λ per task {list(tasks)}, got {list(lambdas)}")
    if (lam < 0).any():
        raise ValueError(f"λ must be non-negative, got {dict(zip(tasks, lam.tolist(), strict=True))}")
    if not (lam > 0).any():
        raise ValueError(f"all λ are zero: nothing would be trained ({dict(zip(tasks, lam.tolist(), strict=True))})")
    return lam


def dwa_weights(history: Sequence[Sequence[float]], temperature: float = 2.0) -> np.ndarray:
    """DWA weights for the next epoch from per-epoch average losses (oldest first).

    Introduced in notebooks/03_model_math.ipynb.
    """
    if temperature <= 0:
        raise ValueError(f"DWA temperature must be positive, got {temperature}")
    hist = np.asarray(history, dtype="float64")
    k = hist.shape[1] if hist.ndim == 2 else 0
    if hist.ndim != 2 or hist.shape[0] < 2:
        return np.ones(k or len(history[0]) if len(history) else 0)
    r = hist[-1] / np.maximum(hist[-2], 1e-12)
    e = np.exp((r - r.max()) / temperature)  # shifted: a loss of 0 two epochs back must not overflow
    return k * e / e.sum()


def uncertainty_total(losses, log_vars, regression_mask):
    r"""Kendall et al.'s total: :math:`\sum_k c_k e^{-s_k} L_k + s_k/2`, :math:`c_k = 1/2` for regression.

    Introduced in notebooks/03_model_math.ipynb.
    """
    c = 1.0 - 0.5 * regression_mask
    return ops.sum(c * ops.exp(-log_vars) * losses + 0.5 * log_vars)


def uncertainty_weights(log_vars, regression_mask):
    """The effective weights :math:`c_k e^{-s_k}` (what is logged).

    Used by mtrec_study.training.weighting.
    """
    return (1.0 - 0.5 * regression_mask) * ops.exp(-log_vars)


def pcgrad(grads):
    """Project conflicting task gradients (a (K, P) matrix of flattened gradients); return the sum.

    Tasks are visited in a fixed order (the paper shuffles; a fixed order keeps runs
    deterministic). For each task i and each j != i: if ``g_i · g_j < 0``, then
    ``g_i -= (g_i · g_j) / |g_j|² · g_j``.

    Introduced in notebooks/03_model_math.ipynb.
    """
    k = grads.shape[0]
    projected = []
    for i in range(k):
        gi = grads[i]
        for j in range(k):
            if j == i:
                continue
            gj = grads[j]
            dot = ops.sum(gi * gj)
            coef = ops.where(dot < 0, dot / ops.maximum(ops.sum(gj * gj), 1e-20), 0.0)
            gi = gi - coef * gj
        projected.append(gi)
    return ops.sum(ops.stack(projected), axis=0)


def gradnorm_step(weights, grad_norms, loss_ratios, alpha: float, lr: float):
    r"""One GradNorm update of the task weights.

    Args:
        weights: Current :math:`w_k` (K,).
        grad_norms: :math:`\lVert\nabla_W L_k\rVert` (K,), *unweighted*.
        loss_ratios: :math:`\tilde L_k = L_k(t)/L_k(0)` (K,).
        alpha: Restoring-force strength.
        lr: Step size for the weights.

    Returns:
        New weights, positive and renormalised to sum to K.

    Used by mtrec_study.training.trainer.
    """
    k = ops.cast(ops.shape(weights)[0], "float32")
    g = weights * grad_norms
    target = ops.mean(g) * ops.power(loss_ratios / ops.mean(loss_ratios), alpha)
    grad_w = ops.sign(g - ops.stop_gradient(target)) * grad_norms
    new = ops.maximum(weights - lr * grad_w, 1e-3)
    return new * k / ops.sum(new)


class Weighting:
    """Base class: a strategy with a name, hyperparameters and per-task weights to log.

    Used by mtrec_study.training.weighting, mtrec_study.training.trainer.
    """

    name = "base"
    gradient_based = False

    def __init__(self, lambdas: Sequence[float] | None = None):
        self.lambdas = None if lambdas is None else np.asarray(lambdas, dtype="float32")

    def setup(self, trainer, tasks: list[str], regression: list[bool]) -> None:
        self.tasks = tasks
        self.regression = np.asarray(regression, dtype="float32")
        lam = self.lambdas if self.lambdas is not None else np.ones(len(tasks), "float32")
        self.lam = check_lambdas(lam, tasks).astype("float32")

    def total(self, losses):
        return ops.sum(ops.convert_to_tensor(self.lam) * losses)

    def weights(self):
        return ops.convert_to_tensor(self.lam)

    def on_epoch_end(self, epoch: int, task_losses: np.ndarray) -> None:  # noqa: B027
        """Hook for strategies that update per epoch (DWA)."""

    def config(self) -> dict:
        return {"name": self.name, "lambdas": None if self.lambdas is None else self.lambdas.tolist()}


class Fixed(Weighting):
    """The article's fixed λ (default: all 1).

    Used by mtrec_study.training.weighting.
    """

    name = "fixed"


class Uncertainty(Weighting):
    """Homoscedastic-uncertainty weighting with learnt ``s_k = log σ_k²`` (initialised at 0).

    Used by mtrec_study.training.weighting.
    """

    name = "uncertainty"

    def setup(self, trainer, tasks, regression):
        super().setup(trainer, tasks, regression)
        self.log_vars = trainer.add_weight(shape=(len(tasks),), initializer="zeros", name="log_vars", trainable=True)

    def total(self, losses):
        return uncertainty_total(losses, self.log_vars, ops.convert_to_tensor(self.regression))

    def weights(self):
        return uncertainty_weights(self.log_vars, ops.convert_to_tensor(self.regression))


class DWA(Weighting):
    """Dynamic Weight Average with temperature ``T``.

    Used by mtrec_study.training.weighting.
    """

    name = "dwa"

    def __init__(self, temperature: float = 2.0, lambdas=None):
        super().__init__(lambdas)
        if temperature <= 0:
            raise ValueError(f"DWA temperature must be positive, got {temperature}")
        self.temperature = temperature
        self.history: list[np.ndarray] = []

    def setup(self, trainer, tasks, regression):
        super().setup(trainer, tasks, regression)
        self.w = trainer.add_weight(shape=(len(tasks),), initializer="ones", name="dwa_weights", trainable=False)

    def total(self, losses):
        return ops.sum(self.w * losses)

    def weights(self):
        return ops.convert_to_tensor(self.w)

    def on_epoch_end(self, epoch, task_losses):
        self.history.append(np.asarray(task_losses, dtype="float64"))
        self.w.assign(dwa_weights(self.history, self.temperature).astype("float32"))

    def config(self):
        return {**super().config(), "temperature": self.temperature}


class GradNorm(Weighting):
    """GradNorm with restoring force ``alpha`` and weight learning rate ``lr``.

    Used by mtrec_study.training.weighting.
    """

    name = "gradnorm"
    gradient_based = True

    def __init__(self, alpha: float = 1.5, lr: float = 0.025, lambdas=None):
        super().__init__(lambdas)
        if alpha < 0 or lr <= 0:
            raise ValueError(f"GradNorm needs alpha >= 0 and lr > 0, got alpha={alpha}, lr={lr}")
        self.alpha, self.lr = alpha, lr

    def setup(self, trainer, tasks, regression):
        super().setup(trainer, tasks, regression)
        self.w = trainer.add_weight(shape=(len(tasks),), initializer="ones", name="gradnorm_weights", trainable=False)
        self.initial = trainer.add_weight(shape=(len(tasks),), initializer="zeros", name="gradnorm_l0", trainable=False)

    def total(self, losses):
        return ops.sum(self.w * losses)

    def weights(self):
        return ops.convert_to_tensor(self.w)

    def config(self):
        return {**super().config(), "alpha": self.alpha, "lr": self.lr}


class PCGrad(Weighting):
    """PCGrad on the shared parameters (task weights stay the fixed λ).

    Used by mtrec_study.training.weighting.
    """

    name = "pcgrad"
    gradient_based = True


def make_weighting(name: str, lambdas: Sequence[float] | None = None, **hp) -> Weighting:
    """Build a weighting strategy by name (see :data:`WEIGHTINGS`).

    Raises:
        ValueError: For an unknown name (lists the valid ones) or bad hyperparameters.

    Used by mtrec_study.training.trainer.
    """
    classes = {"fixed": Fixed, "uncertainty": Uncertainty, "gradnorm": GradNorm, "dwa": DWA, "pcgrad": PCGrad}
    if name not in classes:
        raise ValueError(f"unknown weighting {name!r}; valid: {', '.join(WEIGHTINGS)}")
    return classes[name](lambdas=lambdas, **hp)
