"""Item recommendation as ranking: scorers, the full-catalogue and sampled protocols, popularity
and the diversity of the lists.

A *scorer* turns users (and, for the sampled protocol, candidate items) into scores: a trained
network (:func:`catalogue_scorer`, :func:`pair_scorer`), BPR or the popularity reference. The
protocols rank each test user's candidates with :mod:`mtrec_study.evaluation.metrics` and return
per-user metrics; :func:`ranking_rows` turns their means into tidy rows.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import pandas as pd

from mtrec_study.evaluation import metrics as M
from mtrec_study.features import FeatureBuilder, id_positions, lookup_positions
from mtrec_study.models.classic import Popularity
from mtrec_study.models.retrieval import is_two_tower, tower_vectors
from mtrec_study.prepare import PreparedData, sample_eval_negatives
from mtrec_study.results import as_tidy, tidy_rows
from mtrec_study.tasks import ITEM_TASK


def _predict(net: keras.Model, feats: dict, output: str, batch_size: int) -> np.ndarray:
    out = net.predict(feats, batch_size=batch_size, verbose=0)
    if output not in out:
        raise ValueError(f"model {net.name!r} has no {output!r} output; it has {sorted(out)}")
    return np.asarray(out[output], dtype="float64").reshape(-1)


def pair_features(builder: FeatureBuilder, users: np.ndarray, items: np.ndarray) -> dict[str, np.ndarray]:
    """Features of every (user, item) in ``users × items``, user-major, built once per side.

    Equivalent to ``builder.transform(np.repeat(users, n), np.tile(items, m))`` but builds each
    side's columns once and broadcasts them.

    Used by mtrec_study.evaluation.ranking.
    """
    users, items = np.asarray(users), np.asarray(items)
    u_side, i_side = _side_features(builder, users, items)
    feats = {name: np.repeat(col, items.size, axis=0) for name, col in u_side.items()}
    feats.update({name: np.tile(col, (users.size,) + (1,) * (col.ndim - 1)) for name, col in i_side.items()})
    return {name: feats[name] for name in builder.spec.names}


def pair_scorer(net: keras.Model, builder: FeatureBuilder, output: str = ITEM_TASK,
                batch_size: int = 32768) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A ``(users, items) -> scores`` function (row-aligned pairs) from a trained network.

    A two-tower network's item task scores by the dot product of its tower outputs.

    Used by mtrec_study.study.published.
    """
    if output == ITEM_TASK and is_two_tower(net):
        def by_towers(users: np.ndarray, items: np.ndarray) -> np.ndarray:
            uu, ui = np.unique(np.asarray(users), return_inverse=True)
            iu, ii = np.unique(np.asarray(items), return_inverse=True)
            U, V, b = tower_vectors(net, *_side_features(builder, uu, iu))
            return np.einsum("nd,nd->n", U[ui], V[ii]) + b[ii]

        return by_towers

    def score(users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return _predict(net, builder.transform(users, items), output, batch_size)

    return score


def _side_features(builder: FeatureBuilder, users: np.ndarray, items: np.ndarray) -> tuple[dict, dict]:
    """The user-side columns of ``users`` and the item-side columns of ``items`` (one row each)."""
    spec = builder.spec
    u = builder.transform(users, np.full(users.size, items[0]))
    i = builder.transform(np.full(items.size, users[0]), items)
    return {n: u[n] for n in spec.user_side}, {n: i[n] for n in spec.item_side}


def catalogue_scorer(net: keras.Model, builder: FeatureBuilder, items: np.ndarray, output: str = ITEM_TASK,
                     batch_size: int = 32768, max_bytes: int = 64 * 2**20) -> Callable[[np.ndarray], np.ndarray]:
    """A ``users -> (len(users), len(items))`` scorer for :func:`mtrec_study.evaluation.metrics.rank_in_blocks`.

    The (user, item) features of a block of users are built in slices of at most ``max_bytes``,
    so wide inputs (384-d text vectors on both sides) never materialise gigabytes at once. A
    two-tower network's item scores are instead one matrix product of its tower outputs
    (:func:`mtrec_study.models.retrieval.tower_vectors`): the same order as its ``item`` sigmoid.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    items = np.asarray(items)
    row_bytes: list[int] = []
    if output == ITEM_TASK and is_two_tower(net):
        vectors: list = []

        def by_towers(users: np.ndarray) -> np.ndarray:
            users = np.asarray(users)
            if not vectors:  # the item side once; each block of users is one matrix product
                vectors.extend(tower_vectors(net, *_side_features(builder, users[:1], items))[1:])
            U = tower_vectors(net, *_side_features(builder, users, items[:1]))[0]
            return U @ vectors[0].T + vectors[1][None, :]

        return by_towers

    def score(users: np.ndarray) -> np.ndarray:
        users = np.asarray(users)
        if not row_bytes:
            one = pair_features(builder, users[:1], items[:1])
            row_bytes.append(max(1, sum(v.nbytes for v in one.values())))
        step = max(1, int(max_bytes // (row_bytes[0] * items.size)))
        parts = [_predict(net, pair_features(builder, users[i:i + step], items), output, batch_size)
                 for i in range(0, users.size, step)]
        return (np.concatenate(parts) if parts else np.empty(0)).reshape(users.size, items.size)

    return score


def cached_scorers(catalogue: Callable[[np.ndarray], np.ndarray],
                   items: np.ndarray) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """A catalogue scorer and a pair scorer that share one score row per user, computed once.

    Both ranking protocols score the same (user, item) pairs: the full-catalogue ranking
    computes each test user's row over the whole catalogue, and the sampled protocol then reads
    its 100 candidates from those rows instead of running the network again.

    Args:
        catalogue: ``users -> (len(users), len(items))`` (from :func:`catalogue_scorer`).
        items: The catalogue's item ids, in the scorer's column order.

    Raises:
        ValueError: If the pair scorer is asked for an item outside ``items``.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    items = np.asarray(items)
    pos = id_positions(items)
    rows: dict[int, np.ndarray] = {}

    def score_catalogue(users: np.ndarray) -> np.ndarray:
        users = np.asarray(users)
        missing = np.unique([u for u in users.tolist() if u not in rows])
        if missing.size:
            for u, row in zip(missing.tolist(), catalogue(missing), strict=True):
                rows[u] = row
        return np.stack([rows[u] for u in users.tolist()]) if users.size else np.empty((0, items.size))

    def score_pairs(users: np.ndarray, pair_items: np.ndarray) -> np.ndarray:
        uniq, inv = np.unique(np.asarray(users), return_inverse=True)
        col = lookup_positions(pos, pair_items, f"items (of the scorer's catalogue of {items.size})")
        return score_catalogue(uniq)[inv, col]

    return score_catalogue, score_pairs


def popularity_scorers(train: pd.DataFrame, items: np.ndarray) -> tuple[Callable, Callable]:
    """Catalogue and pair scorers of :class:`~mtrec_study.models.classic.Popularity` on ``train``.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    pop = Popularity().fit(train, items)
    return pop.score_catalogue, pop.score_pairs


def _user_item_matrix(inter: pd.DataFrame, item_pos: pd.Series) -> Callable:
    """``users -> bool (len(users), n_items)`` marking each user's items in ``inter``."""
    pos = item_pos.reindex(inter["item_id"].to_numpy()).to_numpy()
    by_user = pd.Series(pos, index=inter["user_id"].to_numpy()).dropna().astype("int64").groupby(level=0).agg(list)

    def mask(block: np.ndarray) -> np.ndarray:
        out = np.zeros((len(block), len(item_pos)), bool)
        for r, u in enumerate(block):
            if u in by_user.index:
                out[r, by_user[u]] = True
        return out

    return mask


def full_catalogue_ranking(prepared: PreparedData, scorer: Callable[[np.ndarray], np.ndarray],
                           ks=M.DEFAULT_KS, ties: str = "pessimistic", block_size: int = 256,
                           progress: bool = False,
                           users: np.ndarray | None = None) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Rank every item for every test user; candidates exclude the user's *training* items.

    Validation items are excluded too (they are neither training signal for this score nor
    test targets), so a model is never rewarded or punished for them.

    Args:
        prepared: The split (its test interactions are the relevant items).
        scorer: ``users -> (len(users), n_items)`` over ``prepared.data.items`` in index order,
            from :func:`catalogue_scorer` or :func:`popularity_scorers`.
        ks, ties, block_size, progress: See :func:`mtrec_study.evaluation.metrics.rank_in_blocks`.
        users: Rank only these test users (for example a seeded sample, see
            :func:`sample_test_users`); default every user with a test interaction.

    Returns:
        Per-user metrics, the users' top-``max(ks)`` lists as *item ids*, and the users ranked.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    items = prepared.data.items.index.to_numpy("int64")
    item_pos = id_positions(items)
    test = prepared.interactions("test")
    all_users = np.sort(test["user_id"].unique())
    if users is None:
        users = all_users
    else:
        users = np.sort(np.asarray(users))
        stray = np.setdiff1d(users, all_users)
        if stray.size:
            raise ValueError(f"users {stray[:5].tolist()} have no test interaction; rank only users with one")
    seen = pd.concat([prepared.interactions("train"), prepared.interactions("valid")])
    per_user, lists = M.rank_in_blocks(scorer, users, _user_item_matrix(test, item_pos),
                                       _user_item_matrix(seen, item_pos), ks, ties, block_size,
                                       progress=progress)
    item_lists = np.where(lists >= 0, items[np.maximum(lists, 0)], -1)
    return per_user, item_lists, users


def sample_test_users(prepared: PreparedData, n: int, seed: int = 0) -> np.ndarray | None:
    """A seeded sample of ``n`` users with a test interaction (``None`` when ``n`` is 0 or covers all).

    Ranking every user against the whole catalogue costs one network pass per (user, item);
    ranking a fixed random sample of users estimates the same mean at a fraction of the cost,
    and every model of a fold sees the same users, so comparisons stay paired.

    Used by mtrec_study.study.experiment.
    """
    if n < 0:
        raise ValueError(f"the number of users to rank must be >= 0 (0 = all), got {n}")
    users = np.sort(prepared.interactions("test")["user_id"].unique())
    if n == 0 or n >= users.size:
        return None
    return np.sort(np.random.default_rng(seed).choice(users, size=n, replace=False))


def sampled_candidates(prepared: PreparedData, n_negatives: int = 99, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """For each test positive: its user, and a candidate row ``[positive, n_negatives sampled]``.

    Negatives are items the user never interacted with in any part (NCF protocol). Draw them
    once and score every model on the same candidates, so their metrics are paired.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    test = prepared.interactions("test")
    inter = prepared.data.interactions
    positives = {int(u): g.to_numpy("int64") for u, g in inter.groupby("user_id")["item_id"]}
    users = test["user_id"].to_numpy("int64")
    negs = sample_eval_negatives(users, positives, prepared.data.items.index.to_numpy("int64"), n_negatives,
                                 np.random.default_rng(seed))
    return users, np.concatenate([test["item_id"].to_numpy("int64")[:, None], negs], axis=1)


def sampled_ranking(prepared: PreparedData, scorer: Callable[[np.ndarray, np.ndarray], np.ndarray],
                    n_negatives: int = 99, ks=M.DEFAULT_KS, ties: str = "pessimistic", seed: int = 0,
                    candidates: tuple[np.ndarray, np.ndarray] | None = None) -> pd.DataFrame:
    """Each held-out positive against ``n_negatives`` items its user never interacted with (NCF).

    Args:
        prepared: The split.
        scorer: ``(users, items) -> scores`` for aligned pairs (:func:`pair_scorer`).
        n_negatives: Sampled negatives per positive (99 in the NCF protocol).
        ks, ties: See :func:`mtrec_study.evaluation.metrics.ranking_metrics`.
        seed: Seeds the negatives; use the same seed for every model so the lists are paired.
        candidates: Reuse the output of :func:`sampled_candidates` (then ``n_negatives`` and
            ``seed`` are ignored).

    Returns:
        Per-case metrics, indexed by the test user of each case.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    users, cand = candidates if candidates is not None else sampled_candidates(prepared, n_negatives, seed)
    scores = np.asarray(scorer(np.repeat(users, cand.shape[1]), cand.ravel()), dtype="float64").reshape(cand.shape)
    relevant = np.zeros(cand.shape, bool)
    relevant[:, 0] = True
    out = M.ranking_metrics(scores, relevant, ks, ties)
    out.index = users[out.index]
    return out


def ranking_rows(per_user: pd.DataFrame, model: str, protocol: str, fold: int = 0,
                 segment: str = "all") -> pd.DataFrame:
    """Mean ranking metrics as tidy rows of task ``item``.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    return as_tidy(tidy_rows(per_user.mean().to_dict(), model, ITEM_TASK, protocol, fold, segment))


def popularity_rows(prepared: PreparedData, protocol: str, fold: int = 0, ks=(10,),
                    users: np.ndarray | None = None) -> pd.DataFrame:
    """The popularity reference on one split: item-task AUC and full-catalogue ranking, as tidy rows.

    Popularity scores each item by its number of training interactions, the same for every user.
    ``users`` restricts the ranking as in :func:`full_catalogue_ranking`.

    Introduced in notebooks/06_ablations.ipynb.
    """
    items = prepared.data.items.index.to_numpy()
    catalogue, pairs = popularity_scorers(prepared.interactions("train"), items)
    ts = prepared.test
    m = ts.masks[ITEM_TASK] > 0
    scores = pairs(ts.pairs["user_id"].to_numpy()[m], ts.pairs["item_id"].to_numpy()[m])
    auc = tidy_rows({"auc": M.roc_auc(ts.labels[ITEM_TASK][m], scores, ITEM_TASK)}, "popularity", ITEM_TASK,
                    protocol, fold)
    per_user, _, _ = full_catalogue_ranking(prepared, catalogue, ks=ks, users=users)
    return pd.concat([as_tidy(auc), ranking_rows(per_user, "popularity", protocol, fold)], ignore_index=True)


def item_positions(prepared: PreparedData, item_lists: np.ndarray) -> np.ndarray:
    """Item ids (``-1`` pads) of top-K lists turned into row positions of ``prepared.data.items``.

    Introduced in notebooks/07_article_claims.ipynb.
    """
    pos = id_positions(prepared.data.items.index.to_numpy("int64"))
    lists = np.asarray(item_lists)
    out = pos.reindex(lists.ravel()).fillna(-1).to_numpy("int64").reshape(lists.shape)
    return np.where(lists >= 0, out, -1)


def list_diversity(prepared: PreparedData, item_lists: np.ndarray, k: int = 10,
                   item_vectors: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """Coverage, novelty, Gini and ILD of users' top-``k`` lists, with training counts as popularity.

    Args:
        prepared: The split (its training interactions give each item's popularity).
        item_lists: Item-id lists from :func:`full_catalogue_ranking`.
        k: List length to judge.
        item_vectors: ``{name: vectors in item order}`` for ILD; default the genre multi-hot rows.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    items = prepared.data.items.index.to_numpy()
    train = prepared.interactions("train")
    counts = train.groupby("item_id")["user_id"].nunique().reindex(items).fillna(0).to_numpy()
    vectors = item_vectors if item_vectors is not None else {"genre": genre_vectors(prepared)}
    return M.beyond_accuracy(item_positions(prepared, np.asarray(item_lists)[:, :k]), items.size, counts,
                             train["user_id"].nunique(), vectors)


def genre_vectors(prepared: PreparedData) -> np.ndarray:
    """The items' genre multi-hot rows, in ``prepared.data.items`` order (for ILD).

    Introduced in notebooks/07_article_claims.ipynb.
    """
    return prepared.data.items[list(prepared.data.genres)].to_numpy("float64")


def top_k_dot(user_vectors: np.ndarray, item_vectors: np.ndarray, k: int = 10, block_size: int = 4096,
              exclude: Callable[[np.ndarray], list[np.ndarray]] | None = None) -> np.ndarray:
    """Each user's top ``k`` items by the dot product of tower outputs, one matrix product per block.

    The whole catalogue is scored, ``block_size`` users at a time (memory: one ``(block_size,
    n_items)`` float32 block), by TensorFlow's matrix product and ``top_k``, which use every core.
    Equal scores keep the lower item position first, and a row with fewer than ``k`` items left
    after ``exclude`` is padded with ``-1`` (the ``"stable"`` rule and the padding of
    :func:`mtrec_study.evaluation.metrics.top_k`). It serves lists at scale (the streaming
    benchmark ranks 100k items for 100k users); the evaluation protocols rank through
    :func:`mtrec_study.evaluation.metrics.rank_in_blocks`, which also scores the held-out items.

    Args:
        user_vectors: ``(n_users, d)`` user-tower outputs.
        item_vectors: ``(n_items, d)`` item-tower outputs.
        k: List length (at most ``n_items``).
        block_size: Users scored at a time.
        exclude: ``rows -> [item positions per row]`` to drop (for example each user's training
            items), given the block's row numbers; a dropped item is never returned.

    Returns:
        ``(n_users, k)`` item positions, best first.

    Raises:
        ValueError: If the widths differ or ``k`` is not in ``1..n_items``.

    Used by the tests only.
    """
    import tensorflow as tf

    users = np.asarray(user_vectors, dtype="float32")
    items = tf.constant(np.asarray(item_vectors, dtype="float32"))
    if users.ndim != 2 or items.shape.rank != 2 or users.shape[1] != items.shape[1]:
        raise ValueError(f"user vectors {users.shape} and item vectors {tuple(items.shape)} need the same width")
    if not 1 <= k <= items.shape[0]:
        raise ValueError(f"k must lie in 1..{items.shape[0]} (the catalogue), got {k}")
    out = np.empty((users.shape[0], k), dtype="int64")
    for start in range(0, users.shape[0], block_size):
        rows = np.arange(start, min(start + block_size, users.shape[0]))
        scores = tf.linalg.matmul(users[rows], items, transpose_b=True)
        if exclude is not None:
            drop = [np.asarray(cols, dtype="int64") for cols in exclude(rows)]
            index = np.stack([np.repeat(np.arange(len(drop)), [c.size for c in drop]),
                              np.concatenate(drop) if drop else np.zeros(0, "int64")], axis=1)
            scores = tf.tensor_scatter_nd_update(scores, index, tf.fill([len(index)], -np.inf))
        best = tf.math.top_k(scores, k=k, sorted=True)
        out[rows] = np.where(np.isneginf(best.values.numpy()), -1, best.indices.numpy())
    return out
