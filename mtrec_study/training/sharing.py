"""Which parameters the tasks share: the layers that belong to no task's tower or head.

Layers of a task's tower are named after the task (``interest_tower``, ``item_head`` ...; see
:mod:`mtrec_study.models.zoo`). Every other trainable layer is *shared*. Gradient-based weighting
(GradNorm, PCGrad) and the gradient-conflict probe of 08 look at those.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from mtrec_study.tasks import REGISTRY


def _gradients(tape: tf.GradientTape, target, variables: list) -> list:
    """Gradients with zeros for unconnected variables.

    (``unconnected_gradients=ZERO`` fails on Keras 3 variables, whose dtype is a string.)
    """
    grads = tape.gradient(target, variables)
    # Embedding gradients arrive as IndexedSlices; make them dense so they can be flattened.
    return [ops.zeros(v.shape, "float32") if g is None else tf.convert_to_tensor(g)
            for g, v in zip(grads, variables, strict=True)]


def shared_layers(net: keras.Model, tasks: list[str]) -> list[keras.layers.Layer]:
    """Layers with weights that belong to no task tower or head (not named ``<task>_...``).

    Used by mtrec_study.training.sharing.
    """
    prefixes = tuple(f"{t}_" for t in dict.fromkeys((*tasks, *REGISTRY)))
    return [la for la in net.layers if la.trainable_weights and not la.name.startswith(prefixes)]


def shared_variables(net: keras.Model, tasks: list[str]) -> list:
    """Trainable variables of the shared layers.

    Used by mtrec_study.training.diagnostics, mtrec_study.training.trainer.
    """
    return [v for layer in shared_layers(net, tasks) for v in layer.trainable_weights]


def last_shared_layer(net: keras.Model, tasks: list[str]) -> keras.layers.Layer:
    """The last shared layer with weights that every task passes through (GradNorm measures
    gradient norms there). In a two-tower network the ranking part after the towers is shared by
    the interest and rating heads only, so it is the user tower, which all three tasks reach.

    Used by mtrec_study.training.trainer.
    """
    shared = shared_layers(net, tasks)
    towers = [layer for layer in shared if layer.name == "shared_user_tower"]
    return towers[0] if towers else shared[-1]
