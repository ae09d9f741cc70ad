"""Serializable Keras 3 layers shared by the models (no Python lambdas: ``.keras`` round trips
load with the default ``safe_mode``)."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers, ops

from mtrec_study.features import FeatureSpec

PACKAGE = "mtrec"


def lookup(embedding: layers.Embedding, ids) -> tf.Tensor:
    """``embedding(ids)``, gathered from the table's variable row by row.

    Keras's ``Embedding`` reads its whole table into a tensor before gathering. An optimizer that
    then writes a few rows in place (:class:`mtrec_study.training.optimizers.LazyAdam`) must
    first copy the table, because that read may still hold it: with a million users, most of a
    step. Gathering from the variable itself gives the same rows and the same (sparse) gradient.
    Unlike ``Embedding``, ids must lie in ``[0, rows)`` (no wrapping of negative ids), and neither
    ``mask_zero``, LoRA nor quantized tables are supported; the encoder uses none of them.

    Used by mtrec_study.models.layers.
    """
    if ids.dtype not in ("int32", "int64"):
        ids = ops.cast(ids, "int32")
    return ops.cast(tf.gather(embedding.embeddings.value, ids), embedding.compute_dtype)


# The feature encoder's widths and embedding L2 when a model's settings leave them out.
ENCODER_DEFAULTS = {"id_dim": 32, "side_dim": 8, "vector_dim": 32, "emb_l2": 0.0}


@keras.saving.register_keras_serializable(package=PACKAGE)
class FeatureEncoder(layers.Layer):
    """The one place where inputs become vectors.

    Ids get ``id_dim``-wide embeddings, other categoricals ``side_dim``-wide ones; multi-hot and
    dense features pass through; precomputed vectors (text embeddings) are projected to
    ``vector_dim`` so a 384-wide embedding does not swamp the rest. ``call(inputs, side=...)``
    returns the user part, the item part or (default) both, concatenated.

    Introduced in notebooks/02_feature_extraction.ipynb.
    """

    def __init__(self, spec: dict, id_dim: int = 32, side_dim: int = 8, vector_dim: int = 32,
                 l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.spec_dict = spec
        self.spec = FeatureSpec.from_dict(spec)
        self.id_dim, self.side_dim, self.vector_dim, self.l2 = id_dim, side_dim, vector_dim, l2
        reg = keras.regularizers.L2(l2) if l2 else None
        self.embeddings = {
            name: layers.Embedding(size, id_dim if name.endswith("_idx") else side_dim,
                                   embeddings_regularizer=reg, name=f"emb_{name}")
            for name, size in self.spec.categorical.items()
        }
        self.projections = {name: layers.Dense(vector_dim, name=f"proj_{name}") for name in self.spec.vectors}

    def build(self, input_shape):
        for emb in self.embeddings.values():
            emb.build((None,))
        for name, proj in self.projections.items():
            proj.build((None, self.spec.vectors[name]))
        self.built = True

    def _part(self, name, inputs):
        x = inputs[name]
        if name in self.embeddings:
            return lookup(self.embeddings[name], x)
        if name in self.projections:
            return self.projections[name](x)
        if name in self.spec.dense:
            return ops.expand_dims(ops.cast(x, "float32"), -1)
        return ops.cast(x, "float32")

    def call(self, inputs, side: str = "all"):
        if side == "user":
            names = self.spec.user_side
        elif side == "item":
            names = self.spec.item_side
        else:
            names = self.spec.names
        return ops.concatenate([self._part(n, inputs) for n in names], axis=-1)

    def output_width(self, side: str = "all") -> int:
        names = {"user": self.spec.user_side, "item": self.spec.item_side}.get(side, self.spec.names)
        width = 0
        for n in names:
            if n in self.spec.categorical:
                width += self.id_dim if n.endswith("_idx") else self.side_dim
            elif n in self.spec.vectors:
                width += self.vector_dim
            elif n in self.spec.multi_hot:
                width += self.spec.multi_hot[n]
            else:
                width += 1
        return width

    def get_config(self):
        return {**super().get_config(), "spec": self.spec_dict, "id_dim": self.id_dim,
                "side_dim": self.side_dim, "vector_dim": self.vector_dim, "l2": self.l2}


@keras.saving.register_keras_serializable(package=PACKAGE)
class RatingHead(layers.Layer):
    r"""Map a tower's output onto the rating scale: :math:`\hat r = lo + (hi-lo)\,\sigma(w^\top h + b)`.

    The article puts a sigmoid on every head. A rating is not a probability, but squashing into
    [1, 5] with ``1 + 4·sigmoid`` keeps the article's sigmoid while making the output a valid
    rating; it is trained with MSE against the raw rating.

    Used by mtrec_study.models.zoo.
    """

    def __init__(self, lo: float = 1.0, hi: float = 5.0, **kwargs):
        super().__init__(**kwargs)
        self.lo, self.hi = lo, hi
        self.dense = layers.Dense(1, name="logit")

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.built = True

    def call(self, x):
        return self.lo + (self.hi - self.lo) * ops.sigmoid(self.dense(x))

    def get_config(self):
        return {**super().get_config(), "lo": self.lo, "hi": self.hi}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ExpertGroup(layers.Layer):
    r"""``n`` parallel MLP experts of the same widths, computed as one batched matmul per layer.

    Expert :math:`i` is :math:`e_i(x) = \mathrm{relu}(\dots\mathrm{relu}(x W^{(1)}_i + b^{(1)}_i)\dots)`;
    the kernels of all experts are stacked as ``(n, d_in, d_out)``, so one ``einsum`` replaces
    ``n`` small matmuls. Output: ``(batch, n, units[-1])``. Each expert is initialised like a
    Glorot-uniform ``Dense`` of its own shape.

    Used by mtrec_study.models.layers.
    """

    def __init__(self, n: int, units: list[int], dropout: float = 0.0, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if n < 1 or not units:
            raise ValueError(f"an expert group needs n >= 1 and at least one layer width, got n={n}, units={units}")
        self.n, self.units, self.dropout, self.l2 = n, list(units), dropout, l2
        self.drop = layers.Dropout(dropout) if dropout else None

    def build(self, input_shape):
        reg = keras.regularizers.L2(self.l2) if self.l2 else None
        self.kernels, self.biases = [], []
        d_in = input_shape[-1]
        for i, u in enumerate(self.units):
            limit = (6.0 / (d_in + u)) ** 0.5
            self.kernels.append(self.add_weight(shape=(self.n, d_in, u), name=f"kernel_{i}", regularizer=reg,
                                                initializer=keras.initializers.RandomUniform(-limit, limit)))
            self.biases.append(self.add_weight(shape=(self.n, u), name=f"bias_{i}", initializer="zeros"))
            d_in = u
        self.built = True

    def call(self, x, training=None):
        h = ops.einsum("bi,nio->bno", x, self.kernels[0]) + self.biases[0]
        for i in range(len(self.units)):
            if i:
                h = ops.einsum("bni,nio->bno", h, self.kernels[i]) + self.biases[i]
            h = ops.relu(h)
            if self.drop is not None:
                h = self.drop(h, training=training)
        return h

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, self.units[-1])

    def get_config(self):
        return {**super().get_config(), "n": self.n, "units": self.units, "dropout": self.dropout, "l2": self.l2}


@keras.saving.register_keras_serializable(package=PACKAGE)
class MixtureOfExperts(layers.Layer):
    r"""MMoE (Ma et al., 2018): :math:`f^k(x) = \sum_i g^k_i(x)\, e_i(x)`, :math:`g^k = \mathrm{softmax}(W_k x)`.

    ``n_gates=1`` gives OMoE (one gate shared by every task). Returns a list: the ``n_gates``
    mixed outputs followed by the ``n_gates`` gate-weight tensors (batch, n_experts), so gate
    usage can be read out for plots.

    Introduced in notebooks/03_model_math.ipynb.
    """

    def __init__(self, n_experts: int, expert_units: list[int], n_gates: int, dropout: float = 0.0,
                 l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if n_experts < 1 or n_gates < 1:
            raise ValueError(f"n_experts and n_gates must be >= 1, got {n_experts}, {n_gates}")
        self.n_experts, self.expert_units, self.n_gates = n_experts, list(expert_units), n_gates
        self.dropout, self.l2 = dropout, l2
        self.experts = ExpertGroup(n_experts, expert_units, dropout, l2, name="experts")
        self.gates = [layers.Dense(n_experts, activation="softmax", name=f"gate_{k}") for k in range(n_gates)]

    def build(self, input_shape):
        self.experts.build(input_shape)
        for g in self.gates:
            g.build(input_shape)
        self.built = True

    def call(self, x, training=None):
        experts = self.experts(x, training=training)  # (b, E, d)
        gates = [g(x) for g in self.gates]  # each (b, E)
        mixed = [ops.sum(experts * ops.expand_dims(g, -1), axis=1) for g in gates]
        return [*mixed, *gates]

    def compute_output_shape(self, input_shape):
        d = self.expert_units[-1]
        return [(input_shape[0], d)] * self.n_gates + [(input_shape[0], self.n_experts)] * self.n_gates

    def get_config(self):
        return {**super().get_config(), "n_experts": self.n_experts, "expert_units": self.expert_units,
                "n_gates": self.n_gates, "dropout": self.dropout, "l2": self.l2}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CGC(layers.Layer):
    r"""One Customized Gate Control level of PLE (Tang et al., RecSys 2020).

    Task :math:`k` mixes its own ``n_specific`` experts and the ``n_shared`` shared experts with
    gate :math:`g^k(x_k) = \mathrm{softmax}(W_k x_k)`; unless this is the last level, a shared gate
    mixes all experts for the next level's shared input. Inputs: a list of ``n_tasks + 1`` tensors
    (each task's input, then the shared input). Outputs: ``n_tasks`` task tensors (+ the shared
    tensor if not last), then the ``n_tasks`` task gate weights.

    Introduced in notebooks/03_model_math.ipynb.
    """

    def __init__(self, n_tasks: int, n_specific: int, n_shared: int, expert_units: list[int],
                 last: bool, dropout: float = 0.0, l2: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.n_tasks, self.n_specific, self.n_shared = n_tasks, n_specific, n_shared
        self.expert_units, self.last, self.dropout, self.l2 = list(expert_units), last, dropout, l2
        if n_specific < 1 or n_shared < 1:
            raise ValueError(f"CGC needs n_specific >= 1 and n_shared >= 1, got {n_specific}, {n_shared}")
        self.task_experts = [ExpertGroup(n_specific, expert_units, dropout, l2, name=f"t{k}_experts")
                             for k in range(n_tasks)]
        self.shared_experts = ExpertGroup(n_shared, expert_units, dropout, l2, name="shared_experts")
        self.task_gates = [layers.Dense(n_specific + n_shared, activation="softmax", name=f"gate_{k}")
                           for k in range(n_tasks)]
        self.shared_gate = None if last else layers.Dense(n_tasks * n_specific + n_shared, activation="softmax",
                                                          name="gate_shared")

    def build(self, input_shape):
        for k in range(self.n_tasks):
            self.task_experts[k].build(input_shape[k])
            self.task_gates[k].build(input_shape[k])
        self.shared_experts.build(input_shape[-1])
        if self.shared_gate is not None:
            self.shared_gate.build(input_shape[-1])
        self.built = True

    def call(self, inputs, training=None):
        shared_out = self.shared_experts(inputs[-1], training=training)  # (b, S, d)
        task_out, gates, all_specific = [], [], []
        for k in range(self.n_tasks):
            own = self.task_experts[k](inputs[k], training=training)  # (b, s, d)
            all_specific.append(own)
            experts = ops.concatenate([own, shared_out], axis=1)
            g = self.task_gates[k](inputs[k])
            gates.append(g)
            task_out.append(ops.sum(experts * ops.expand_dims(g, -1), axis=1))
        outputs = list(task_out)
        if self.shared_gate is not None:
            experts = ops.concatenate([*all_specific, shared_out], axis=1)
            g = self.shared_gate(inputs[-1])
            outputs.append(ops.sum(experts * ops.expand_dims(g, -1), axis=1))
        return [*outputs, *gates]

    def compute_output_shape(self, input_shape):
        b, d = input_shape[0][0], self.expert_units[-1]
        n_out = self.n_tasks + (0 if self.last else 1)
        return [(b, d)] * n_out + [(b, self.n_specific + self.n_shared)] * self.n_tasks

    def get_config(self):
        return {**super().get_config(), "n_tasks": self.n_tasks, "n_specific": self.n_specific,
                "n_shared": self.n_shared, "expert_units": self.expert_units, "last": self.last,
                "dropout": self.dropout, "l2": self.l2}


def mlp(units: list[int], dropout: float = 0.0, l2: float = 0.0, name: str | None = None,
        activation: str = "relu") -> keras.Sequential:
    """A stack of Dense(relu) layers with optional dropout and L2.

    Used by mtrec_study.models.retrieval, mtrec_study.models.zoo, mtrec_study.study.ablations.
    """
    reg = keras.regularizers.L2(l2) if l2 else None
    stack = []
    for i, u in enumerate(units):
        stack.append(layers.Dense(u, activation=activation, kernel_regularizer=reg, name=f"dense_{i}"))
        if dropout:
            stack.append(layers.Dropout(dropout, name=f"dropout_{i}"))
    return keras.Sequential(stack, name=name)
