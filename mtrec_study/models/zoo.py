"""The models: the article's network as written, its correction, and the multi-task family.

Each builder returns a functional ``keras.Model`` whose inputs are the feature spec's columns and
whose outputs are a dict ``{task: (batch, 1)}``. Layers of a task's tower are named after the
task (``interest_tower``, ``interest_head`` ...); every other trainable layer is *shared*, which is
what gradient-based weighting (GradNorm, PCGrad) and the gradient-conflict probe look at.
"""

from __future__ import annotations

from functools import partial

import keras
from keras import layers

from mtrec_study.features import FeatureSpec
from mtrec_study.models.layers import (
    CGC,
    ENCODER_DEFAULTS,
    FeatureEncoder,
    MixtureOfExperts,
    RatingHead,
    mlp,
)
from mtrec_study.models.retrieval import MAX_HISTORY, build_two_tower, tower_data
from mtrec_study.tasks import BEHAVIOUR, CTCVR, INTEREST, ITEM_TASK, TASKS, get_task, trained_tasks

MODELS = ("article", "shared_bottom", "mmoe", "omoe", "ple", "esmm", "single_task", "mf", "two_tower")
TOWER_MODELS = ("two_tower",)  # built from a split's history and catalogue (models.retrieval.tower_data)


def model_inputs(spec: FeatureSpec) -> dict[str, keras.KerasTensor]:
    """One ``keras.Input`` per feature column of the spec.

    Introduced in notebooks/02_feature_extraction.ipynb.
    """
    inputs = {}
    for name in spec.categorical:
        inputs[name] = keras.Input(shape=(), dtype="int32", name=name)
    for name, width in {**spec.multi_hot, **spec.vectors}.items():
        inputs[name] = keras.Input(shape=(width,), dtype="float32", name=name)
    for name in spec.dense:
        inputs[name] = keras.Input(shape=(), dtype="float32", name=name)
    return inputs


def _head(task: str, h, tower: list[int], dropout: float, l2: float):
    if tower:
        h = mlp(tower, dropout, l2, name=f"{task}_tower")(h)
    if get_task(task).regression:
        return RatingHead(name=f"{task}_head")(h)
    return layers.Dense(1, activation="sigmoid", name=f"{task}_head")(h)


def _encoder(spec: FeatureSpec, hp: dict) -> FeatureEncoder:
    d = {**ENCODER_DEFAULTS, **{k: v for k, v in hp.items() if k in ENCODER_DEFAULTS}}
    return FeatureEncoder(spec.to_dict(), id_dim=d["id_dim"], side_dim=d["side_dim"], vector_dim=d["vector_dim"],
                          l2=d["emb_l2"], name="encoder")


def build_article(spec: FeatureSpec, tasks=TASKS, hidden: int = 128, **hp) -> keras.Model:
    """The article's §5 architecture, made runnable: user features → Dense(128, relu) → interest and
    behaviour heads; item features → Dense(128, relu) → item head. Ids and side features are
    embedded (the article feeds raw vectors), the behaviour head predicts the 1–5 rating and the
    losses are masked; ``04_training`` lists every difference from the article's code and why.

    Its item head sees no user at all, so it scores every user's candidate list in the same
    order: it cannot personalise. ``04_training`` and ``05_evaluation`` show where that shows.

    Introduced in notebooks/04_training.ipynb.
    """
    inputs = model_inputs(spec)
    enc = _encoder(spec, hp)
    user_h = layers.Dense(hidden, activation="relu", name="shared_user_dense")(enc(inputs, side="user"))
    item_h = layers.Dense(hidden, activation="relu", name="item_dense")(enc(inputs, side="item"))
    outputs = {}
    for task in tasks:
        h = item_h if task == ITEM_TASK else user_h
        outputs[task] = _head(task, h, [], 0.0, 0.0)
    return keras.Model(inputs, outputs, name="article")


def build_shared_bottom(spec: FeatureSpec, tasks=TASKS, bottom=(128, 64), tower=(32,), dropout: float = 0.1,
                        l2: float = 0.0, name: str = "shared_bottom", **hp) -> keras.Model:
    """The corrected article model: user *and* item features enter one shared MLP, then one
    tower per task. With one task it is the single-task baseline on the same backbone.

    Used by mtrec_study.models.zoo.
    """
    inputs = model_inputs(spec)
    h = _encoder(spec, hp)(inputs)
    h = mlp(list(bottom), dropout, l2, name="shared_bottom")(h)
    outputs = {t: _head(t, h, list(tower), dropout, l2) for t in tasks}
    return keras.Model(inputs, outputs, name=name)


def build_single_task(spec: FeatureSpec, task: str = INTEREST, **hp) -> keras.Model:
    """Single-task baseline: the shared-bottom backbone with one tower.

    Used by mtrec_study.models.zoo.
    """
    get_task(task)  # an unknown task raises, naming the valid ones
    return build_shared_bottom(spec, tasks=(task,), name=f"single_{task}", **hp)


def build_mmoe(spec: FeatureSpec, tasks=TASKS, n_experts: int = 4, expert_units=(64,), tower=(32,),
               dropout: float = 0.1, l2: float = 0.0, one_gate: bool = False, **hp) -> keras.Model:
    """MMoE: ``n_experts`` shared experts, one softmax gate per task (``one_gate``: OMoE).

    Used by mtrec_study.models.zoo.
    """
    inputs = model_inputs(spec)
    h = _encoder(spec, hp)(inputs)
    n_gates = 1 if one_gate else len(tasks)
    out = MixtureOfExperts(n_experts, list(expert_units), n_gates, dropout, l2, name="shared_moe")(h)
    mixed = out[:n_gates]
    outputs = {t: _head(t, mixed[0 if one_gate else k], list(tower), dropout, l2) for k, t in enumerate(tasks)}
    return keras.Model(inputs, outputs, name="omoe" if one_gate else "mmoe")


def build_ple(spec: FeatureSpec, tasks=TASKS, levels: int = 2, n_specific: int = 1, n_shared: int = 2,
              expert_units=(64,), tower=(32,), dropout: float = 0.1, l2: float = 0.0, **hp) -> keras.Model:
    """PLE: ``levels`` stacked CGC levels (``levels=1`` is CGC).

    Used by mtrec_study.models.zoo.
    """
    if levels < 1:
        raise ValueError(f"PLE needs levels >= 1, got {levels}")
    inputs = model_inputs(spec)
    h = _encoder(spec, hp)(inputs)
    xs = [h] * (len(tasks) + 1)
    for lvl in range(levels):
        last = lvl == levels - 1
        out = CGC(len(tasks), n_specific, n_shared, list(expert_units), last, dropout, l2,
                  name=f"shared_cgc_{lvl}")(xs)
        xs = out[: len(tasks) + (0 if last else 1)]
    outputs = {t: _head(t, xs[k], list(tower), dropout, l2) for k, t in enumerate(tasks)}
    return keras.Model(inputs, outputs, name="ple")


def build_esmm(spec: FeatureSpec, bottom=(128, 64), tower=(32,), dropout: float = 0.1, l2: float = 0.0,
               **hp) -> keras.Model:
    r"""ESMM-style entire-space model for the interact → like chain (Ma et al., SIGIR 2018).

    :math:`p(\text{interact} \wedge \text{like}) = p(\text{interact}) \cdot p(\text{like} \mid \text{interact})`.
    Outputs ``item`` (pCTR, trained on every row), ``ctcvr`` (their product, trained on every row
    against ``interact AND like``), ``interest`` (pCVR, read out, never trained on its own) and
    ``behaviour``. Training on the entire space avoids the sample-selection bias of fitting
    ``p(like | interact)`` on interacted rows only.

    Used by mtrec_study.models.zoo.
    """
    inputs = model_inputs(spec)
    h = _encoder(spec, hp)(inputs)
    h = mlp(list(bottom), dropout, l2, name="shared_bottom")(h)
    item = _head(ITEM_TASK, h, list(tower), dropout, l2)
    like = _head(INTEREST, h, list(tower), dropout, l2)
    ctcvr = layers.Multiply(name=CTCVR)([item, like])
    outputs = {INTEREST: like, ITEM_TASK: item, BEHAVIOUR: _head(BEHAVIOUR, h, list(tower), dropout, l2),
               CTCVR: ctcvr}
    return keras.Model(inputs, outputs, name="esmm")


def build_mf(spec: FeatureSpec, factors: int = 32, l2: float = 1e-4, **hp) -> keras.Model:
    r"""Biased matrix factorisation for ratings: :math:`\hat r = \mu + b_u + b_i + p_u^\top q_i`.

    The classic reference (Koren et al., 2009) that any rating model must beat; ``mu`` is
    learnt as a bias initialised at 3.5.

    Used by mtrec_study.models.zoo.
    """
    inputs = model_inputs(spec)
    reg = keras.regularizers.L2(l2)
    nu, ni = spec.categorical["user_idx"], spec.categorical["item_idx"]
    p = layers.Embedding(nu, factors, embeddings_regularizer=reg, name="emb_user")(inputs["user_idx"])
    q = layers.Embedding(ni, factors, embeddings_regularizer=reg, name="emb_item")(inputs["item_idx"])
    bu = layers.Embedding(nu, 1, embeddings_initializer="zeros", name="bias_user")(inputs["user_idx"])
    bi = layers.Embedding(ni, 1, embeddings_initializer="zeros", name="bias_item")(inputs["item_idx"])
    dot = layers.Dot(axes=-1, name="dot")([p, q])
    out = layers.Add(name="sum")([dot, bu, bi])
    out = layers.Dense(1, kernel_initializer="ones", bias_initializer=keras.initializers.Constant(3.5),
                       trainable=True, name=f"{BEHAVIOUR}_head")(out)
    return keras.Model(inputs, {BEHAVIOUR: out}, name="mf")


_BUILDERS = {"article": build_article, "shared_bottom": build_shared_bottom, "mmoe": build_mmoe,
             "omoe": partial(build_mmoe, one_gate=True), "ple": build_ple,
             "esmm": build_esmm, "single_task": build_single_task, "mf": build_mf, "two_tower": build_two_tower}


def build_model(name: str, spec: FeatureSpec, **hp) -> keras.Model:
    """Build a model by name (see :data:`MODELS`).

    Raises:
        ValueError: For an unknown name (lists the valid ones).

    Introduced in notebooks/03_model_math.ipynb.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(MODELS)}")
    return _BUILDERS[name](spec, **hp)


def model_data(name: str, prepared, max_history: int = MAX_HISTORY) -> dict:
    """What model ``name`` is built from beyond the feature spec: for the two-tower network the
    split's training history and item catalogue (:func:`mtrec_study.models.retrieval.tower_data`),
    for every other model nothing.

    Introduced in notebooks/03_model_math.ipynb.
    """
    return tower_data(prepared, max_history) if name in TOWER_MODELS else {}


def loss_tasks(net: keras.Model) -> list[str]:
    """The outputs a model is trained on (ESMM trains ``ctcvr`` instead of ``interest``).

    Used by mtrec_study.training.trainer.
    """
    outs = list(net.output.keys()) if isinstance(net.output, dict) else list(net.output_names)
    return trained_tasks(outs)
