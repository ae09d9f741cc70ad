"""Training: one trainer for every model and weighting strategy, and what the shared parameters do.

- :mod:`~mtrec_study.training.losses`: the masked per-task losses (the article's λ-weighted sum).
- :mod:`~mtrec_study.training.weighting`: fixed λ, uncertainty, GradNorm, DWA and PCGrad.
- :mod:`~mtrec_study.training.sharing`: which layers the tasks share.
- :mod:`~mtrec_study.training.trainer`: :class:`MultiTaskTrainer`, :func:`train` and :func:`predict`.
- :mod:`~mtrec_study.training.diagnostics`: gate usage and gradient conflicts (notebook 08).
- :mod:`~mtrec_study.training.cache`: trained networks kept by content hash, so a build never trains one twice.
- :mod:`~mtrec_study.training.optimizers`: Keras's Adam, and lazy Adam for embedding tables of millions of rows.
- :mod:`~mtrec_study.training.distribute`: ``tf.distribute`` strategies (several devices or machines).
"""

from mtrec_study.training.diagnostics import (
    GradientConflictCallback,
    gate_statistics,
    gate_weights,
    task_gradient_cosines,
)
from mtrec_study.training.sharing import last_shared_layer, shared_layers, shared_variables
from mtrec_study.training.trainer import (
    MultiTaskTrainer,
    TrainResult,
    WeightingCallback,
    predict,
    train,
)

__all__ = [
    "GradientConflictCallback", "MultiTaskTrainer", "TrainResult", "WeightingCallback", "gate_statistics",
    "gate_weights", "last_shared_layer", "predict", "shared_layers", "shared_variables", "task_gradient_cosines",
    "train",
]
