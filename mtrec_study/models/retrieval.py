r"""The two-tower multi-task network: item recommendation as retrieval, sharing its towers with ranking.

The shape of industrial multi-task recommenders (YouTube's, the TFRS multi-task tutorial's):

* a **user tower** over the user's features and their *history* (the items they interacted with
  in the training part, as a masked mean of item embeddings, SVD++/FISM-style) gives
  :math:`u`, an **item tower** over the item's features (and text) gives :math:`v`;
* the **item task is retrieval**: :math:`s(u, i) = \tau\,\hat u^\top \hat v_i + b_i` (cosine with a
  learnt temperature :math:`\tau` and an item bias), trained with a softmax over the catalogue,
  :math:`-\log p(i \mid u) = -s(u,i) + \log\sum_j e^{s(u,j)}`; the full catalogue when it fits
  (:data:`FULL_SOFTMAX_MAX_ITEMS`), otherwise the in-batch sampled softmax with log-Q correction
  (``keras_rs.layers``) and accidental hits removed (:class:`InBatchLogProb`);
* the **interest and rating heads** sit on a ranking part that sees :math:`u`, :math:`v`,
  :math:`u \odot v` and the features, through the same sharing mechanisms as the other models
  (shared-bottom, MMoE, PLE, or ESMM's entire-space product). So retrieval shares its towers with
  ranking.

Scoring a catalogue is one matrix product of tower outputs (:func:`tower_scores`), not a network
pass per (user, item). The model's ``item`` output stays the article's sigmoid: with negatives drawn
uniformly at ``neg_ratio`` per positive, Bayes' rule gives
:math:`P(\text{interacted} \mid u, i) = \sigma(\log p(i \mid u) + \log N - \log r)`, monotone in
:math:`s` for a user, so ranking by it or by :math:`s` is the same.
"""

from __future__ import annotations

import logging
import math

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import layers, ops

from mtrec_study.features import FeatureSpec
from mtrec_study.models.layers import (
    CGC,
    ENCODER_DEFAULTS,
    PACKAGE,
    MixtureOfExperts,
    mlp,
)
from mtrec_study.prepare import PreparedData, time_order
from mtrec_study.tasks import BEHAVIOUR, CTCVR, INTEREST, ITEM_TASK, RETRIEVAL, TASKS, get_task

log = logging.getLogger(__name__)

FULL_SOFTMAX_MAX_ITEMS = 50_000  # logits (batch × catalogue) of 4096 × 50k floats: 0.8 GB, the most we allow
MAX_HISTORY = 100  # the user's most recent training items that the history bag keeps
TOWER_ARCHS = ("shared_bottom", "mmoe", "ple", "esmm")  # the ranking parts the towers can share
TOWER_FORMAT = 1  # bumped when the saved layout of the towers changes; old files then name the version


class RetrievalInputError(ValueError):
    """History or catalogue built from the wrong data (names the part or the limit).

    Used by mtrec_study.models.retrieval.
    """


# --------------------------------------------------------------------------- data the model holds
def user_history(prepared: PreparedData, part: str = "train", max_history: int = MAX_HISTORY) -> np.ndarray:
    """Each user's most recent ``max_history`` *training* items as ``item_idx`` codes, 0-padded.

    Row ``user_idx`` of the result holds that user's items in time order (the builder's codes:
    0 is the unknown user and the padding). Only the training part may be used: a history that
    saw validation or test interactions would hand the model the answers.

    Raises:
        RetrievalInputError: If ``part`` is not ``"train"``, naming it.

    Introduced in notebooks/03_model_math.ipynb.
    """
    if part != "train":
        raise RetrievalInputError(f"user history must come from the training part, not {part!r}: "
                                  "validation and test interactions are what the model is scored on")
    if max_history < 1:
        raise RetrievalInputError(f"max_history must be >= 1, got {max_history}")
    train = time_order(prepared.interactions("train"))
    return history_matrix(prepared.builder, [(train["user_id"].to_numpy(), train["item_id"].to_numpy())], max_history)


def history_matrix(builder, chunks, max_history: int = MAX_HISTORY) -> np.ndarray:
    """The history table of :func:`user_history` from training pairs, chunk by chunk.

    Row ``user_idx`` holds that user's last ``max_history`` items as the builder's ``item_idx``
    codes, in the order given, 0-padded; the table is as wide as the longest history (at most
    ``max_history``, from the builder's training counts). Memory holds one chunk at a time.

    Args:
        builder: The fitted feature builder (its codes and training counts).
        chunks: ``(user_ids, item_ids)`` pairs of arrays, each user's pairs in time order and
            all within one chunk.

    Raises:
        ValueError: Naming up to five ids the builder does not know, or a user found in two chunks.

    Used by mtrec_study.models.retrieval.
    """
    counts = builder.user_counts
    width = max(1, min(max_history, int(counts.max()) if len(counts) else 1))
    out = np.zeros((len(builder.user_index) + 1, width), dtype="int32")
    done = np.zeros(len(out), bool)
    for user_ids, item_ids in chunks:
        u = builder.user_index.reindex(np.asarray(user_ids)).to_numpy()
        i = builder.item_index.reindex(np.asarray(item_ids)).to_numpy()
        for codes, ids, what in ((u, user_ids, "user"), (i, item_ids, "item")):
            if np.isnan(codes).any():
                raise ValueError(f"{what} ids {np.unique(np.asarray(ids)[np.isnan(codes)])[:5].tolist()} have no "
                                 f"training interaction, so they cannot be in a training history")
        frame = pd.DataFrame({"u": u.astype("int64"), "i": i.astype("int64")}).groupby("u", sort=True).tail(max_history)
        users = frame["u"].unique()
        if done[users].any():
            raise ValueError(f"user codes {users[done[users]][:5].tolist()} have training pairs in two chunks; "
                             f"a user's history must be in one")
        done[users] = True
        out[frame["u"].to_numpy(), frame.groupby("u").cumcount().to_numpy()] = frame["i"].to_numpy()
    return out


def catalogue_features(prepared: PreparedData) -> dict[str, np.ndarray]:
    """Item-side features of every training item, row ``item_idx`` (row 0, the unknown item, is zeros).

    Introduced in notebooks/03_model_math.ipynb.
    """
    return catalogue_from_tables(prepared.builder, prepared.builder.tables())


def catalogue_from_tables(builder, tables) -> dict[str, np.ndarray]:
    """:func:`catalogue_features` from the builder's feature tables (in memory or a shard folder's).

    Used by mtrec_study.models.retrieval.
    """
    rows = tables.rows("item", builder.item_index.index.to_numpy("int64"))  # in item_idx order 1..N
    return {n: np.concatenate([np.zeros((1, *tables.item[n].shape[1:]), tables.item[n].dtype), tables.item[n][rows]])
            for n in builder.spec.item_side}


def tower_data(prepared, max_history: int = MAX_HISTORY) -> dict[str, object]:
    """What :func:`build_two_tower` needs from a split: history, catalogue and negative ratio.

    ``prepared`` is a :class:`~mtrec_study.prepare.PreparedData`, or a shard folder read by
    :func:`mtrec_study.streaming.load_shards`, whose history comes from its ``history`` files
    and whose catalogue comes from its feature tables.

    Used by mtrec_study.models.zoo.
    """
    from mtrec_study.streaming import StreamedData

    if isinstance(prepared, StreamedData):
        return _streamed_tower_data(prepared, max_history)
    ts = prepared.train
    observed = ts.pairs["observed"].to_numpy(bool)
    ratio = float((~observed).sum() / max(1, observed.sum()))
    return {"history": user_history(prepared, "train", max_history), "catalogue": catalogue_features(prepared),
            "neg_ratio": ratio}


def _streamed_tower_data(data, max_history: int) -> dict[str, object]:
    """:func:`tower_data` of a shard folder (:class:`mtrec_study.streaming.StreamedData`): the
    history file by file, the catalogue from the folder's tables.

    Raises:
        DataFormatError: Naming the file or folder whose history or examples do not fit its
            ``counts.parquet`` (the training interactions).
    """
    from mtrec_study.datasets.errors import DataFormatError

    builder, seen = data.builder, []

    def chunks():
        for path, users, items in data.history_parts():
            seen.append((path, len(users)))
            yield users, items

    try:
        history = history_matrix(builder, chunks(), max_history)
    except ValueError as err:
        raise DataFormatError(f"{seen[-1][0] if seen else data.folder}: {err}") from None
    held, expected = sum(n for _, n in seen), int(builder.user_counts.sum())
    if held != expected:
        raise DataFormatError(f"{data.folder / 'history'}: {held:,} training pairs, but counts.parquet counts "
                              f"{expected:,}; write the folder again with python -m mtrec_study shards")
    positives = data.train.count_rows(["observed"])  # of the training files in use
    if positives == 0:
        raise DataFormatError(f"{data.folder / 'train'}: no observed interaction among the training examples")
    return {"history": history, "catalogue": catalogue_from_tables(builder, data.tables),
            "neg_ratio": (len(data.train) - positives) / positives}


# --------------------------------------------------------------------------- layers
class _Table(layers.Layer):
    """Base of the layers that hold fixed tables (non-trainable weights, saved with the model)."""

    def _table(self, name: str, shape: tuple, dtype: str) -> keras.Variable:
        return self.add_weight(shape=shape, dtype=dtype, initializer="zeros", trainable=False, name=name)


def _check_format(format_version: int) -> None:
    """Refuse a saved two-tower layout other than :data:`TOWER_FORMAT`, naming both."""
    if format_version != TOWER_FORMAT:
        raise RetrievalInputError(f"this two-tower model was saved with tower format {format_version}; this "
                                  f"version of mtrec_study reads format {TOWER_FORMAT}: retrain it")


@keras.saving.register_keras_serializable(package=PACKAGE)
class UserHistory(_Table):
    r"""The user's training items as a masked mean of their own embeddings (SVD++'s :math:`|N(u)|^{-1}\sum_j y_j`).

    ``call(user_idx, item_idx)`` leaves the row's own item out of the mean, so a training
    positive is never predicted from a history that contains it (as at test time, when the
    held-out item is never in the training history). ``item_idx=None`` pools the whole history;
    ``return_items=True`` returns the item codes instead.

    Used by mtrec_study.models.retrieval.
    """

    def __init__(self, n_users: int, width: int, n_items: int, dim: int, l2: float = 0.0,
                 format_version: int = TOWER_FORMAT, **kwargs):
        super().__init__(**kwargs)
        _check_format(format_version)  # every two-tower model has a history, whatever its softmax
        self.n_users, self.width, self.n_items, self.dim, self.l2 = n_users, width, n_items, dim, l2
        self.format_version = format_version
        self.items = self._table("items", (n_users, width), "int32")
        self.embedding = layers.Embedding(n_items, dim, embeddings_regularizer=keras.regularizers.L2(l2) if l2 else None,
                                          name="history_embedding")
        self.embedding.build((None,))

    def set_history(self, history: np.ndarray) -> None:
        if history.shape != (self.n_users, self.width):
            raise RetrievalInputError(f"history has shape {history.shape}, the layer holds {(self.n_users, self.width)}")
        self.items.assign(history.astype("int32"))

    def history(self, user_idx):
        """The users' history item codes, ``(batch, width)``, 0-padded."""
        return ops.take(self.items, ops.cast(user_idx, "int32"), axis=0)

    def call(self, user_idx, item_idx=None, return_items: bool = False):
        hist = self.history(user_idx)
        if return_items:
            return hist
        keep = hist > 0
        if item_idx is not None:
            keep = ops.logical_and(keep, hist != ops.expand_dims(ops.cast(item_idx, "int32"), -1))
        # The mean over the kept entries only, as one sparse segment mean, whose backward pass is one
        # segment sum into the table; a gather of the padded (batch, width) block and a masked sum
        # cost about three times as much per training step. A user with nothing kept gets zeros.
        at = tf.where(keep)
        return tf.sparse.segment_mean(self.embedding.embeddings.value, tf.gather_nd(hist, at),
                                      tf.cast(at[:, 0], "int32"), num_segments=ops.shape(hist)[0])

    def get_config(self):
        return {**super().get_config(), "n_users": self.n_users, "width": self.width, "n_items": self.n_items,
                "dim": self.dim, "l2": self.l2, "format_version": self.format_version}

    @classmethod
    def from_config(cls, config):
        # The history recorded no format before it held one; every file of that time was format 1.
        return super().from_config({"format_version": 1, **config})


@keras.saving.register_keras_serializable(package=PACKAGE)
class Catalogue(_Table):
    """Item-side features of the whole catalogue (row = ``item_idx``), returned as a feature dict.

    ``call(x)`` ignores ``x`` (a functional graph needs an input) and returns the tables, which
    the item tower encodes into one vector per catalogue item.

    Used by mtrec_study.models.retrieval.
    """

    def __init__(self, spec: dict, n_items: int, format_version: int = TOWER_FORMAT, **kwargs):
        super().__init__(**kwargs)
        _check_format(format_version)
        self.spec_dict, self.n_items, self.format_version = spec, n_items, format_version
        spec = FeatureSpec.from_dict(spec)
        self.tables = {}
        for name in spec.item_side:
            if name in spec.categorical:
                self.tables[name] = self._table(name, (n_items,), "int32")
            elif name in spec.dense:
                self.tables[name] = self._table(name, (n_items,), "float32")
            else:
                width = {**spec.multi_hot, **spec.vectors}[name]
                self.tables[name] = self._table(name, (n_items, width), "float32")

    def set_catalogue(self, features: dict[str, np.ndarray]) -> None:
        missing = sorted(set(self.tables) - set(features))
        if missing:
            raise RetrievalInputError(f"catalogue features lack {missing}; the item side needs {sorted(self.tables)}")
        for name, var in self.tables.items():
            value = np.asarray(features[name])
            if tuple(value.shape) != tuple(var.shape):
                raise RetrievalInputError(f"catalogue feature {name!r} has shape {value.shape}, expected {tuple(var.shape)}")
            var.assign(value.astype(var.dtype))

    def call(self, x):
        return {name: ops.convert_to_tensor(var) for name, var in self.tables.items()}

    def get_config(self):
        return {**super().get_config(), "spec": self.spec_dict, "n_items": self.n_items,
                "format_version": self.format_version}

    @classmethod
    def from_config(cls, config):
        # The catalogue has recorded its format from the start: a file without one is not ours, or older.
        return super().from_config({"format_version": 0, **config})


@keras.saving.register_keras_serializable(package=PACKAGE)
class CosineScore(layers.Layer):
    r"""The retrieval score :math:`s = \tau\,\hat u^\top \hat v + b_i` with a learnt temperature.

    ``call(u, v, item_idx)`` scores row-aligned pairs (``(batch,)``); with ``pairwise=True`` it
    scores every user of ``u`` against every row of ``v`` (``(len(u), len(v))``), ``item_idx``
    naming the items of ``v``. :math:`\tau = e^{t}` starts at 10 and is kept at most 100.

    Used by mtrec_study.models.retrieval.
    """

    def __init__(self, n_items: int, **kwargs):
        super().__init__(**kwargs)
        self.n_items = n_items
        self.log_scale = self.add_weight(shape=(), initializer=keras.initializers.Constant(math.log(10.0)),
                                         name="log_scale")
        self.bias = self.add_weight(shape=(n_items,), initializer="zeros", name="item_bias")

    def call(self, u, v, item_idx, pairwise: bool = False):
        u, v = ops.normalize(u, axis=-1), ops.normalize(v, axis=-1)
        scale = ops.exp(ops.minimum(self.log_scale, math.log(100.0)))
        b = ops.take(self.bias, ops.cast(item_idx, "int32"))
        if pairwise:
            return scale * ops.matmul(u, ops.transpose(v)) + b[None, :]
        return scale * ops.sum(u * v, axis=-1) + b

    def get_config(self):
        return {**super().get_config(), "n_items": self.n_items}


@keras.saving.register_keras_serializable(package=PACKAGE)
class FullSoftmaxLogProb(layers.Layer):
    r"""``log p(i | u)`` of each row's item under a softmax over the whole catalogue.

    The row's own score comes from its own features (so a cold item is scored by its side
    features); the catalogue's copy of that item and row 0 (the unknown item) are left out of
    the normaliser: :math:`\log p = s_{ui} - \log(e^{s_{ui}} + \sum_{j \ne i, j > 0} e^{s_{uj}})`.

    Used by mtrec_study.models.retrieval.
    """

    def call(self, row_score, catalogue_scores, item_idx, history=None):
        n = ops.shape(catalogue_scores)[1]
        same = ops.one_hot(ops.cast(item_idx, "int32"), n) > 0
        unknown = ops.arange(n) == 0
        masked = ops.where(ops.logical_or(same, unknown[None, :]), -1e9, catalogue_scores)
        if history is not None:  # the user's other training items are not candidates either
            # A boolean mask from one segment sum over the flat (row, item) positions: the scores
            # themselves are only selected, never scattered into, so their gradient is a plain select.
            b = ops.shape(history)[0]
            flat = ops.reshape(ops.arange(b)[:, None] * n + ops.cast(history, "int32"), (-1,))
            seen = ops.segment_sum(ops.ones_like(flat, "float32"), flat, num_segments=b * n)
            masked = ops.where(ops.reshape(seen, (b, n)) > 0, -1e9, masked)
        return row_score - ops.logaddexp(row_score, ops.logsumexp(masked, axis=-1))


@keras.saving.register_keras_serializable(package=PACKAGE)
class InBatchLogProb(layers.Layer):
    r"""``log p(i | u)`` under a softmax over the batch's items (sampled softmax for large catalogues).

    The batch's items are a sample from the item popularity, so each logit is corrected by
    :math:`-\log q_j` (``keras_rs.layers.SamplingProbabilityCorrection``, with :math:`q` from the
    items' training counts) and another row's copy of the same item is removed from the
    normaliser. The removal is ours: ``keras_rs.layers.RemoveAccidentalHits`` (0.4.0) adds
    ``finfo.smallest_normal / 100``, about 1e-40, to the hits' logits, which leaves them
    unchanged (keras-team/keras-rs pull request #206, open), so it removes nothing; a unit test
    works a batch by hand.

    Used by mtrec_study.models.retrieval.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        import keras_rs

        # keras-rs floors a probability at its epsilon (1e-6 by default); a batch of 4096 rows over a
        # catalogue of 50k+ items gives a once-seen item about 1e-7, so the floor would under-correct
        # every rare item. A probability here is never below 1 / (the batch's total count).
        self.correction = keras_rs.layers.SamplingProbabilityCorrection(epsilon=1e-30)

    def call(self, batch_scores, item_idx, item_log_count):
        q = ops.maximum(ops.expm1(ops.reshape(ops.cast(item_log_count, "float32"), (-1,))), 1.0)
        logits = self.correction(batch_scores, q / ops.sum(q))  # a constant factor of q cancels in the softmax
        ids = ops.reshape(ops.cast(item_idx, "int32"), (-1,))
        same = ops.equal(ops.expand_dims(ids, 1), ops.expand_dims(ids, 0))
        hit = ops.logical_and(same, ops.logical_not(ops.cast(ops.eye(ops.shape(ids)[0]), "bool")))
        logits = ops.where(hit, -1e9, logits)  # another row's copy of this row's item is not a negative
        return ops.diagonal(logits) - ops.logsumexp(logits, axis=-1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class InteractionProbability(layers.Layer):
    r"""The article's item head from ``log p(i|u)``: :math:`\sigma(\log p + \log N - \log r)`.

    With ``r`` uniform negatives per positive over ``N`` items this is Bayes' posterior that the
    row is an observed interaction; it needs no parameters of its own. (Negatives avoid the
    user's training items, so for a user with ``|H_u|`` of them the exact shift is
    ``log(N - |H_u|)``; on ml-100k the difference is at most 0.06 in the logit.)

    Used by mtrec_study.models.retrieval.
    """

    def __init__(self, n_candidates: int, neg_ratio: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.n_candidates, self.neg_ratio = int(n_candidates), float(neg_ratio)

    def call(self, logp):
        shift = math.log(max(self.n_candidates, 1)) - math.log(max(self.neg_ratio, 1e-6))
        return ops.expand_dims(ops.sigmoid(logp + shift), -1)

    def get_config(self):
        return {**super().get_config(), "n_candidates": self.n_candidates, "neg_ratio": self.neg_ratio}


# --------------------------------------------------------------------------- the model
def build_two_tower(spec: FeatureSpec, tasks=TASKS, history: np.ndarray | None = None,
                    catalogue: dict[str, np.ndarray] | None = None, neg_ratio: float = 1.0, arch: str = "shared_bottom",
                    history_width: int | None = None, n_catalogue: int | None = None, dim: int = 64,
                    tower_units=(128,), ranking=(128, 64), tower=(32,), n_experts: int = 4, dropout: float = 0.1,
                    l2: float = 0.0, full_softmax_max_items: int = FULL_SOFTMAX_MAX_ITEMS, mask_history: bool = True,
                    **hp) -> keras.Model:
    """The two-tower multi-task network (see the module docstring).

    Args:
        spec: The feature spec.
        tasks: The article tasks to predict; the item task is trained as ``retrieval``. One task
            gives the single-task baseline on the same towers.
        history: :func:`user_history` (``(n_users, width)`` item codes); ``None`` builds the layer
            empty (``history_width`` wide) for weights loaded later.
        catalogue: :func:`catalogue_features`; ``None`` with ``n_catalogue`` likewise.
        neg_ratio: Uniform negatives per positive in the item task's rows (for its sigmoid).
        arch: The ranking part (:data:`TOWER_ARCHS`): ``shared_bottom``, ``mmoe`` or ``ple``; or
            ``esmm``, a shared bottom whose ``ctcvr`` output, the item head's p(interact) times
            the interest head's p(like | interact), is trained over every row in place of interest
            (Ma et al., SIGIR 2018; :func:`mtrec_study.models.zoo.build_esmm` without the towers).
            ESMM needs the item and interest tasks. With the full softmax p(interact) is the
            retrieval posterior; with the in-batch softmax it is σ(s), which ranks but is not
            calibrated.
        dim: Width of the tower outputs ``u`` and ``v``.
        tower_units, ranking, tower: Hidden widths of each tower, the ranking part and the heads.
        full_softmax_max_items: Catalogues larger than this train with the in-batch softmax.
        mask_history: Leave the user's other training items out of the full softmax's normaliser
            (they are never candidates at evaluation either); only the ``max_history`` most recent
            ones are known to the model, so a user's older training items stay in it.
        **hp: Embedding widths and L2 for the feature encoder (``id_dim``, ``side_dim``, ``emb_l2`` ...).

    Raises:
        ValueError: For an unknown ``arch`` or task, or missing history/catalogue sizes.

    Used by mtrec_study.models.zoo.
    """
    from mtrec_study.models.zoo import _encoder, _head, model_inputs  # zoo imports this module

    tasks = tuple(tasks)
    for t in tasks:
        get_task(t)
    if arch not in TOWER_ARCHS:
        raise ValueError(f"unknown arch {arch!r}; valid: {', '.join(TOWER_ARCHS)}")
    if arch == "esmm" and not {ITEM_TASK, INTEREST} <= set(tasks):
        raise ValueError(f"arch 'esmm' multiplies the item and interest heads, so it needs both tasks; got {tasks}")
    n_items = spec.categorical["item_idx"]
    if ITEM_TASK in tasks and catalogue is None and n_catalogue is None:
        raise ValueError("build_two_tower needs catalogue (from catalogue_features) or n_catalogue for the item task")
    n_cat = len(next(iter(catalogue.values()))) if catalogue else (n_catalogue or n_items)
    full = n_cat <= full_softmax_max_items
    if not full:
        log.info("catalogue of %d items is above full_softmax_max_items=%d: training with the in-batch "
                 "sampled softmax (log-Q corrected)", n_cat, full_softmax_max_items)
    inputs = model_inputs(spec)
    enc = _encoder(spec, hp)
    width = history.shape[1] if history is not None else history_width
    if width is None:
        raise ValueError("build_two_tower needs history (from user_history) or history_width")
    hist_layer = UserHistory(spec.categorical["user_idx"], int(width), n_items,
                             hp.get("id_dim", ENCODER_DEFAULTS["id_dim"]), hp.get("emb_l2", ENCODER_DEFAULTS["emb_l2"]),
                             name="shared_user_history")
    if history is not None:
        hist_layer.set_history(history)
    user_tower = mlp([*tower_units, dim], dropout, l2, name="shared_user_tower")
    item_tower = mlp([*tower_units, dim], dropout, l2, name="shared_item_tower")
    score = CosineScore(n_items, name="shared_score")

    u = user_tower(layers.Concatenate(name="shared_user_input")(
        [enc(inputs, side="user"), hist_layer(inputs["user_idx"], inputs["item_idx"])]))
    v = item_tower(enc(inputs, side="item"))
    s_row = score(u, v, inputs["item_idx"])
    outputs = {}
    if ITEM_TASK in tasks:
        if full:
            cat = Catalogue(spec.to_dict(), n_cat, name="catalogue")
            if catalogue is not None:
                cat.set_catalogue(catalogue)
            table = cat(inputs["item_idx"])
            v_all = item_tower(enc(table, side="item"))
            all_scores = score(u, v_all, table["item_idx"], pairwise=True)
            seen = hist_layer(inputs["user_idx"], return_items=True) if mask_history else None
            logp = FullSoftmaxLogProb(name=RETRIEVAL)(s_row, all_scores, inputs["item_idx"], seen)
            outputs[ITEM_TASK] = InteractionProbability(n_cat - 1, neg_ratio, name=f"{ITEM_TASK}_head")(logp)
        else:
            in_batch = score(u, v, inputs["item_idx"], pairwise=True)
            logp = InBatchLogProb(name=RETRIEVAL)(in_batch, inputs["item_idx"], inputs["item_log_count"])
            # A batch's softmax is no posterior over the catalogue: the item head is then σ(s), which
            # ranks like s and does not depend on the batch, but is not calibrated.
            outputs[ITEM_TASK] = layers.Activation("sigmoid", name=f"{ITEM_TASK}_head")(
                layers.Reshape((1,), name=f"{ITEM_TASK}_score")(s_row))
        outputs[RETRIEVAL] = layers.Reshape((1,), name=f"{RETRIEVAL}_logp")(logp)
    ranked = [t for t in tasks if t != ITEM_TASK]
    if ranked:
        h = layers.Concatenate(name="shared_ranking_input")([u, v, layers.Multiply(name="shared_uv")([u, v]),
                                                             enc(inputs)])
        if arch in ("shared_bottom", "esmm"):
            hs = [mlp(list(ranking), dropout, l2, name="shared_ranking")(h)] * len(ranked)
        elif arch == "mmoe":
            hs = MixtureOfExperts(n_experts, list(ranking), len(ranked), dropout, l2, name="shared_moe")(h)[:len(ranked)]
        else:
            xs = [h] * (len(ranked) + 1)
            out = CGC(len(ranked), 1, 2, list(ranking), True, dropout, l2, name="shared_cgc_0")(xs)
            hs = out[:len(ranked)]
        for k, t in enumerate(ranked):
            outputs[t] = _head(t, hs[k], list(tower), dropout, l2)
    if arch == "esmm":  # both heads exist: arch "esmm" refused a model without either task above
        # ESMM over the entire space: p(interact ∧ like) = p(interact) · p(like | interact), with the
        # item head as p(interact); ctcvr is trained in place of interest (tasks.trained_tasks).
        outputs[CTCVR] = layers.Multiply(name=CTCVR)([outputs[ITEM_TASK], outputs[INTEREST]])
    order = [t for t in (INTEREST, ITEM_TASK, BEHAVIOUR, CTCVR, RETRIEVAL) if t in outputs]
    return keras.Model(inputs, {t: outputs[t] for t in order}, name="two_tower")


def is_two_tower(net: keras.Model) -> bool:
    """Whether ``net`` has user and item towers whose outputs score by a dot product.

    Used by mtrec_study.evaluation.ranking.
    """
    names = {layer.name for layer in net.layers}
    return {"shared_user_tower", "shared_item_tower", "shared_score"} <= names


def tower_vectors(net: keras.Model, user_features: dict[str, np.ndarray], item_features: dict[str, np.ndarray],
                  batch_size: int = 8192) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The tower outputs of a two-tower network, ready for dot products.

    Returns ``(U, V, b)``: the users' :math:`\tau \hat u` (one row per row of ``user_features``,
    the user-side columns), the items' :math:`\hat v` and item biases :math:`b_i` (one per row of
    ``item_features``, the item-side columns), so that :math:`s(u, i) = U_u \cdot V_i + b_i`. The
    user's whole training history is pooled (there is no row item to leave out).

    Introduced in notebooks/03_model_math.ipynb.
    """
    enc, hist = net.get_layer("encoder"), net.get_layer("shared_user_history")
    score = net.get_layer("shared_score")
    user_tower, item_tower = net.get_layer("shared_user_tower"), net.get_layer("shared_item_tower")

    def users(f):
        return user_tower(ops.concatenate([enc(f, side="user"), hist(f["user_idx"])], axis=-1), training=False)

    def items(f):
        return item_tower(enc(f, side="item"), training=False)

    def blocks(fn, feats):
        n = len(next(iter(feats.values())))
        out = [ops.convert_to_numpy(ops.normalize(fn({k: v[lo:lo + batch_size] for k, v in feats.items()}), axis=-1))
               for lo in range(0, n, batch_size)]
        return np.concatenate(out).astype("float64")

    scale = float(np.exp(min(float(ops.convert_to_numpy(score.log_scale)), math.log(100.0))))
    bias = np.asarray(ops.convert_to_numpy(score.bias), "float64")[np.asarray(item_features["item_idx"], "int64")]
    return scale * blocks(users, user_features), blocks(items, item_features), bias
