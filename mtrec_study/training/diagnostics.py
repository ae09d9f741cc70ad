"""What the shared parameters do during and after training: gate usage and gradient conflicts.

Diagnostics for ``08_sharing_mechanisms``: per-example gate weights of MMoE/OMoE/PLE networks
and the cosine between the tasks' gradients on the shared parameters.
"""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import ops

from mtrec_study.models.layers import CGC, MixtureOfExperts
from mtrec_study.training.sharing import _gradients, shared_variables
from mtrec_study.training.trainer import MultiTaskTrainer


def _gate_outputs(net: keras.Model, features: dict, batch_size: int) -> dict[str, np.ndarray]:
    """Per-example gate weights ``(rows, n_experts)`` of every gate of an MMoE/OMoE/PLE network."""
    out = {}
    for layer in net.layers:
        if isinstance(layer, MixtureOfExperts):
            gates = layer.output[layer.n_gates:]
            names = [f"{layer.name}/gate_{k}" for k in range(layer.n_gates)]
        elif isinstance(layer, CGC):
            gates = layer.output[-layer.n_tasks:]
            names = [f"{layer.name}/gate_{k}" for k in range(layer.n_tasks)]
        else:
            continue
        probe = keras.Model(net.inputs, gates)
        values = probe.predict(features, batch_size=batch_size, verbose=0)
        values = values if isinstance(values, list) else [values]
        out.update({n: np.asarray(v) for n, v in zip(names, values, strict=True)})
    return out


def gate_weights(net: keras.Model, features: dict, batch_size: int = 8192) -> dict[str, np.ndarray]:
    """Mean gate weight per expert for each gate of an MMoE/OMoE/PLE network.

    Returns:
        ``{gate_name: (n_experts,) mean weights}``; empty for models without gates.

    Introduced in notebooks/04_training.ipynb.
    """
    return {n: v.mean(axis=0) for n, v in _gate_outputs(net, features, batch_size).items()}


def gate_statistics(net: keras.Model, features: dict, batch_size: int = 8192) -> pd.DataFrame:
    r"""Per gate: how peaked each example's gate is, and how evenly the experts are used overall.

    ``entropy`` is the mean per-example entropy :math:`-\sum_i g_i \log g_i` (0 = one expert per
    example, :math:`\log n` = uniform); ``utilisation_entropy`` is the entropy of the mean gate
    (low = some experts are rarely used by anyone); ``max_share`` is the most used expert's share.

    Introduced in notebooks/08_sharing_mechanisms.ipynb.
    """
    rows = []
    for name, g in _gate_outputs(net, features, batch_size).items():
        g = np.clip(g, 1e-12, 1.0)
        mean = g.mean(axis=0)
        rows.append({"gate": name, "n_experts": g.shape[1], "entropy": float(np.mean(-(g * np.log(g)).sum(axis=1))),
                     "utilisation_entropy": float(-(mean * np.log(mean)).sum()), "max_share": float(mean.max()),
                     "uniform_entropy": float(np.log(g.shape[1]))})
    return pd.DataFrame(rows)


class GradientConflictCallback(keras.callbacks.Callback):
    """Record :func:`task_gradient_cosines` on a fixed batch at the end of every epoch.

    Pass it to :func:`train` (``callbacks=[...]``); Keras sets ``self.model`` to the trainer.

    Introduced in notebooks/08_sharing_mechanisms.ipynb.
    """

    def __init__(self, features: dict, targets: dict):
        super().__init__()
        self.features, self.targets = features, targets
        self.history: list[dict[str, float]] = []

    def on_epoch_end(self, epoch, logs=None):
        self.history.append({"epoch": epoch + 1, **task_gradient_cosines(self.model, self.features, self.targets)})


def task_gradient_cosines(trainer: MultiTaskTrainer, features: dict, targets: dict) -> dict[str, float]:
    """Cosine similarity of each pair of task gradients on the shared parameters, on one batch.

    Negative values are conflicts: a step that helps one task hurts the other.

    Used by mtrec_study.training.diagnostics.
    """
    shared = shared_variables(trainer.net, trainer.tasks)
    x = {k: ops.convert_to_tensor(v) for k, v in features.items()}
    y = {k: ops.convert_to_tensor(v) for k, v in targets.items()}
    with tf.GradientTape(persistent=True) as tape:
        losses = trainer.task_losses(y, trainer.net(x, training=False))  # a list: each recorded
    flat = []
    for k in range(len(trainer.tasks)):
        g = _gradients(tape, losses[k], shared)
        flat.append(np.concatenate([np.asarray(gi).ravel() for gi in g]))
    out = {}
    for i in range(len(flat)):
        for j in range(i + 1, len(flat)):
            den = np.linalg.norm(flat[i]) * np.linalg.norm(flat[j])
            out[f"{trainer.tasks[i]}~{trainer.tasks[j]}"] = float(flat[i] @ flat[j] / den) if den else float("nan")
    return out
