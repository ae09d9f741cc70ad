"""Evaluation protocols over predictions: per-task metrics, segments, ranking, CIs and paired tests.

Nothing here trains. Functions take predictions (or a trained network to *score* with) and
return rows of the one result format, :data:`mtrec_study.results.TIDY_COLUMNS`
(``model, task, metric, protocol, fold, segment, value``). :mod:`mtrec_study.experiment` runs
the protocols that train (holdout and k-fold cross-validation) and calls into this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import keras
import numpy as np
import pandas as pd
from scipy import stats

from mtrec_study import metrics as M
from mtrec_study.config import BEHAVIOUR, GENRES, INTEREST, ITEM_TASK, TASK_TYPES, TASKS
from mtrec_study.features import FeatureBuilder, id_positions, lookup_positions
from mtrec_study.models.classic import Popularity
from mtrec_study.prepare import PreparedData, TaskSet, sample_eval_negatives
from mtrec_study.results import TIDY_COLUMNS

SEGMENTS = ("all", "warm", "cold_user", "cold_item")
# One headline metric per task: what Δm% averages and what the report's headline tables show.
HEADLINE_METRICS = ((INTEREST, "auc"), (ITEM_TASK, "auc"), (BEHAVIOUR, "rmse"))
_FAST_METRICS = {"auc": M.rank_auc, "rmse": lambda y, p, task: M.regression_metrics(y, p, task)["rmse"],
                 "mae": lambda y, p, task: M.regression_metrics(y, p, task)["mae"]}


# --------------------------------------------------------------------------- per-task metrics
def tidy_rows(values: dict[str, float], model: str, task: str, protocol: str, fold: int = 0,
              segment: str = "all") -> list[dict]:
    """Turn ``{metric: value}`` into rows of the one result format.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    return [{"model": model, "task": task, "metric": m, "protocol": protocol, "fold": int(fold),
             "segment": segment, "value": float(v)} for m, v in values.items()]


def as_tidy(rows: list[dict]) -> pd.DataFrame:
    """Rows → a frame with exactly :data:`TIDY_COLUMNS`, in that order.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    return pd.DataFrame(rows, columns=list(TIDY_COLUMNS))


def task_metrics(task: str, y_true: np.ndarray, y_pred: np.ndarray, users: np.ndarray | None = None,
                 threshold: float | None = None) -> dict[str, float]:
    """Every metric that fits ``task``'s type.

    Binary tasks get the article's four metrics at 0.5 and, if ``threshold`` (chosen on
    validation) is given, again at that threshold with the suffix ``_tuned``.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    if TASK_TYPES.get(task) == "regression":
        return M.regression_metrics(y_true, y_pred, task)
    M.check_metric("auc", task)
    out = M.binary_metrics(y_true, y_pred, 0.5, users, task)
    if threshold is not None:
        tuned = M.binary_metrics(y_true, y_pred, threshold, None, task)
        out.update({f"{k}_tuned": tuned[k] for k in ("accuracy", "precision", "recall", "f1")})
        out["threshold"] = threshold
    return out


def segment_masks(prepared: PreparedData, taskset: TaskSet) -> dict[str, np.ndarray]:
    """Rows of ``taskset`` whose user and/or item training never saw.

    ``cold_user``: the user has no training interaction; ``cold_item``: the item has none;
    ``warm``: both were seen; ``all``: every row.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    b = prepared.builder
    seen_u = np.isin(taskset.pairs["user_id"].to_numpy(), b.user_index.index.to_numpy())
    seen_i = np.isin(taskset.pairs["item_id"].to_numpy(), b.item_index.index.to_numpy())
    return {"all": np.ones(len(taskset), bool), "warm": seen_u & seen_i, "cold_user": ~seen_u, "cold_item": ~seen_i}


def evaluate_predictions(preds: dict[str, np.ndarray], taskset: TaskSet, model: str, protocol: str,
                         fold: int = 0, thresholds: dict[str, float] | None = None,
                         segments: dict[str, np.ndarray] | None = None, tasks=TASKS,
                         min_rows: int = 20) -> pd.DataFrame:
    """Per-task metrics of ``preds`` on ``taskset``, per segment, as tidy rows.

    Each task is scored only on its labelled rows (its mask). A segment with fewer than
    ``min_rows`` labelled rows for a task is skipped rather than reported as noise.

    Args:
        preds: ``{task: scores}`` aligned with ``taskset`` rows (from :func:`mtrec_study.train.predict`).
        taskset: Labels and masks.
        model, protocol, fold: Written into the rows.
        thresholds: Per binary task, the threshold chosen on validation.
        segments: ``{name: bool rows}``; default: only ``all``.
        tasks: Tasks to score (those absent from ``preds`` are skipped).
        min_rows: Smallest segment that is scored.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    segments = segments or {"all": np.ones(len(taskset), bool)}
    users = taskset.pairs["user_id"].to_numpy()
    rows = []
    for task in tasks:
        if task not in preds:
            continue
        M.check_scores(preds[task], task)  # NaN anywhere means a broken model, labelled row or not
        labelled = taskset.masks[task] > 0
        for seg, in_seg in segments.items():
            m = labelled & in_seg
            if m.sum() < min_rows:
                continue
            vals = task_metrics(task, taskset.labels[task][m], preds[task][m], users[m],
                                (thresholds or {}).get(task))
            rows += tidy_rows(vals, model, task, protocol, fold, seg)
    return as_tidy(rows)


def tuned_thresholds(preds: dict[str, np.ndarray], taskset: TaskSet, tasks=TASKS) -> dict[str, float]:
    """Per binary task, the F1-maximising threshold on ``taskset`` (validation, never test).

    Introduced in notebooks/05_evaluation.ipynb.
    """
    out = {}
    for task in tasks:
        if task in preds and TASK_TYPES.get(task) == "binary":
            m = taskset.masks[task] > 0
            out[task] = M.choose_threshold(taskset.labels[task][m], preds[task][m], task)
    return out


# --------------------------------------------------------------------------- scoring for ranking
def _predict(net: keras.Model, feats: dict, output: str, batch_size: int) -> np.ndarray:
    out = net.predict(feats, batch_size=batch_size, verbose=0)
    if output not in out:
        raise ValueError(f"model {net.name!r} has no {output!r} output; it has {sorted(out)}")
    return np.asarray(out[output], dtype="float64").reshape(-1)


def pair_features(builder: FeatureBuilder, users: np.ndarray, items: np.ndarray) -> dict[str, np.ndarray]:
    """Features of every (user, item) in ``users × items``, user-major, built once per side.

    Equivalent to ``builder.transform(np.repeat(users, n), np.tile(items, m))`` but builds each
    side's columns once and broadcasts them.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    users, items = np.asarray(users), np.asarray(items)
    spec = builder.spec
    u_side = builder.transform(users, np.full(users.size, items[0]))
    i_side = builder.transform(np.full(items.size, users[0]), items)
    feats = {}
    for name in spec.names:
        if name in spec.user_side:
            feats[name] = np.repeat(u_side[name], items.size, axis=0)
        else:
            feats[name] = np.tile(i_side[name], (users.size,) + (1,) * (i_side[name].ndim - 1))
    return feats


def pair_scorer(net: keras.Model, builder: FeatureBuilder, output: str = "item",
                batch_size: int = 32768) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A ``(users, items) -> scores`` function (row-aligned pairs) from a trained network.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    def score(users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return _predict(net, builder.transform(users, items), output, batch_size)

    return score


def catalogue_scorer(net: keras.Model, builder: FeatureBuilder, items: np.ndarray, output: str = "item",
                     batch_size: int = 32768, max_bytes: int = 64 * 2**20) -> Callable[[np.ndarray], np.ndarray]:
    """A ``users -> (len(users), len(items))`` scorer for :func:`mtrec_study.metrics.rank_in_blocks`.

    The (user, item) features of a block of users are built in slices of at most ``max_bytes``,
    so wide inputs (384-d text vectors on both sides) never materialise gigabytes at once.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    items = np.asarray(items)
    row_bytes: list[int] = []

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
    """Catalogue and pair scorers of the popularity baseline (training counts; same for everyone).

    Introduced in notebooks/05_evaluation.ipynb.
    """
    pop = Popularity().fit(train)
    row = pop.score_items(np.asarray(items))
    return (lambda users: np.tile(row, (len(users), 1))), (lambda users, it: pop.score_items(it))


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
        ks, ties, block_size, progress: See :func:`mtrec_study.metrics.rank_in_blocks`.
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

    Introduced in notebooks/06_ablations.ipynb.
    """
    if n < 0:
        raise ValueError(f"the number of users to rank must be >= 0 (0 = all), got {n}")
    users = np.sort(prepared.interactions("test")["user_id"].unique())
    if n == 0 or n >= users.size:
        return None
    return np.sort(np.random.default_rng(seed).choice(users, size=n, replace=False))


def item_positions(prepared: PreparedData, item_lists: np.ndarray) -> np.ndarray:
    """Item ids (``-1`` pads) of top-K lists turned into row positions of ``prepared.data.items``.

    Introduced in notebooks/05_evaluation.ipynb.
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

    Introduced in notebooks/05_evaluation.ipynb.
    """
    return prepared.data.items[list(GENRES)].to_numpy("float64")


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
        ks, ties: See :func:`mtrec_study.metrics.ranking_metrics`.
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
    return as_tidy(tidy_rows(per_user.mean().to_dict(), model, "item", protocol, fold, segment))


# --------------------------------------------------------------------------- uncertainty
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


def summarise(tidy: pd.DataFrame, confidence: float = 0.95,
              by=("model", "task", "metric", "protocol", "segment")) -> pd.DataFrame:
    """Mean, std and a t-based CI over folds; undefined (NaN) folds are counted, not averaged.

    Columns: ``n`` (folds), ``n_undefined``, ``mean``, ``std`` (ddof=1), ``ci_low``, ``ci_high``.
    With one defined fold, std and the CI are NaN.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    def agg(v: pd.Series) -> pd.Series:
        x = v.dropna().to_numpy(dtype="float64")
        n = x.size
        mean = x.mean() if n else np.nan
        std = x.std(ddof=1) if n > 1 else np.nan
        half = stats.t.ppf((1 + confidence) / 2, n - 1) * std / np.sqrt(n) if n > 1 else np.nan
        return pd.Series({"n": len(v), "n_undefined": len(v) - n, "mean": mean, "std": std,
                          "ci_low": mean - half, "ci_high": mean + half})

    return tidy.groupby(list(by), sort=False)["value"].apply(agg).unstack().reset_index()


def wilcoxon_floor(n: int) -> float:
    """The smallest two-sided p-value an exact Wilcoxon signed-rank test can give on ``n`` pairs.

    Under the null hypothesis each of the ``2**n`` sign patterns of the ranked differences is
    equally likely; the most extreme outcome (every difference on one side) has probability
    ``1 / 2**n`` per side, so the two-sided floor is ``2 / 2**n``: 0.5 for 2 folds, 0.25 for 3,
    0.0625 for 5. Below 6 folds it can never reach 0.05. Computed with SciPy's exact test, so the
    number is SciPy's, not ours.

    Args:
        n: Number of paired differences (folds), at least 1.

    Raises:
        ValueError: If ``n`` < 1.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    if n < 1:
        raise ValueError(f"need at least one pair, got n={n}")
    return float(stats.wilcoxon(np.arange(1.0, n + 1), method="exact").pvalue)


def paired_test(tidy: pd.DataFrame, model_a: str, model_b: str, task: str, metric: str,
                protocol: str | None = None, segment: str = "all") -> dict[str, float]:
    """Paired t-test and Wilcoxon signed-rank test of ``a - b`` over matching folds.

    With k folds the smallest two-sided Wilcoxon p-value is ``2 / 2**k`` (:func:`wilcoxon_floor`:
    0.0625 at k = 5), so it can only reject with enough folds. The t-test assumes roughly normal
    differences and independent folds; folds share most of their training rows, so it is
    optimistic (Nadeau & Bengio, 2003).

    Returns:
        ``n, mean_a, mean_b, mean_diff, t, p_t, w, p_wilcoxon`` (NaN where undefined).

    Raises:
        ValueError: If the two models share no fold for that task and metric.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    sel = tidy[(tidy["task"] == task) & (tidy["metric"] == metric) & (tidy["segment"] == segment)]
    if protocol is not None:
        sel = sel[sel["protocol"] == protocol]
    wide = sel.pivot_table(index="fold", columns="model", values="value")
    missing = [m for m in (model_a, model_b) if m not in wide]
    if missing:
        raise ValueError(f"no {task}/{metric} rows for model(s) {missing}; models present: {list(wide.columns)}")
    pair = wide[[model_a, model_b]].dropna()
    if pair.empty:
        raise ValueError(f"models {model_a!r} and {model_b!r} share no fold with a defined {task}/{metric}")
    a, b = pair[model_a].to_numpy(), pair[model_b].to_numpy()
    d = a - b
    out = {"n": float(d.size), "mean_a": float(a.mean()), "mean_b": float(b.mean()), "mean_diff": float(d.mean()),
           "t": np.nan, "p_t": np.nan, "w": np.nan, "p_wilcoxon": np.nan}
    if d.size > 1 and np.std(d) > 0:
        t = stats.ttest_rel(a, b)
        out.update(t=float(t.statistic), p_t=float(t.pvalue))
    if d.size > 0 and np.any(d != 0):
        w = stats.wilcoxon(a, b)
        out.update(w=float(w.statistic), p_wilcoxon=float(w.pvalue))
    return out


def paired_tests(tidy: pd.DataFrame, models: Iterable[str], reference: str, keys, segment: str = "all",
                 protocol: str | None = None) -> pd.DataFrame:
    """:func:`paired_test` of each model against ``reference`` on each ``(task, metric)``.

    Keys that a model does not report (a single-task model's other tasks, MF's binary tasks)
    are skipped, not failed.

    Returns:
        One row per (model, task, metric): ``n, mean_a, mean_b, mean_diff, p_t, p_wilcoxon`` and
        ``better``, whether the mean difference favours the model (for lower-is-better metrics
        a negative difference).

    Introduced in notebooks/06_ablations.ipynb.
    """
    rows = []
    have = tidy[tidy["segment"] == segment].groupby(["model", "task", "metric"]).size()
    for model in models:
        for task, metric in keys:
            if (model, task, metric) not in have.index or (reference, task, metric) not in have.index:
                continue
            t = paired_test(tidy, model, reference, task, metric, protocol, segment)
            sign = -1 if metric in M.LOWER_IS_BETTER else 1
            rows.append({"model": model, "task": task, "metric": metric, **t, "better": bool(sign * t["mean_diff"] > 0)})
    cols = ["model", "task", "metric", "n", "mean_a", "mean_b", "mean_diff", "t", "p_t", "w", "p_wilcoxon", "better"]
    return pd.DataFrame(rows, columns=cols)


def user_bootstrap(users: np.ndarray, statistic: Callable[[np.ndarray], float], n_boot: int = 1000,
                   seed: int = 0, confidence: float = 0.95) -> dict[str, float]:
    """Percentile CI of ``statistic`` when *users* (not rows) are resampled with replacement.

    Rows of one user are correlated, so resampling rows would understate the uncertainty.

    Args:
        users: The user of each row.
        statistic: ``rows -> value`` (rows may repeat); for example a difference of two models'
            RMSE on those rows.
        n_boot: Resamples.
        seed: Seeds the resampling.

    Returns:
        ``estimate`` (on all rows), ``ci_low``, ``ci_high``, ``n_boot``, ``n_users``, and
        ``n_undefined`` resamples where the statistic was NaN (left out of the CI).

    Introduced in notebooks/05_evaluation.ipynb.
    """
    users = np.asarray(users)
    order = np.argsort(users, kind="stable")
    uniq, starts = np.unique(users[order], return_index=True)
    groups = np.split(order, starts[1:])
    rng = np.random.default_rng(seed)
    vals = np.empty(n_boot)
    for b in range(n_boot):
        pick = rng.integers(0, uniq.size, uniq.size)
        vals[b] = statistic(np.concatenate([groups[i] for i in pick]))
    ok = vals[~np.isnan(vals)]
    alpha = (1 - confidence) / 2
    low, high = (np.quantile(ok, [alpha, 1 - alpha]) if ok.size else (np.nan, np.nan))
    return {"estimate": float(statistic(np.arange(users.size))), "ci_low": float(low), "ci_high": float(high),
            "n_boot": n_boot, "n_users": int(uniq.size), "n_undefined": int(n_boot - ok.size)}


def delta_m(mtl: dict[tuple[str, str], float], single: dict[tuple[str, str], float]) -> float:
    r"""The multi-task gain Δm% (Maninis et al., 2019; Vandenhende et al., 2021), higher is better.

    $\Delta_m = \frac{100}{T} \sum_{t=1}^{T} (-1)^{l_t}\, \frac{M_{m,t} - M_{s,t}}{M_{s,t}}$, where
    $l_t = 1$ when lower is better for metric $t$ (RMSE, log loss) and 0 otherwise.

    Args:
        mtl: ``{(task, metric): value}`` of the multi-task model.
        single: The same keys for the single-task models.

    Raises:
        ValueError: If the keys differ or a single-task value is zero or NaN.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    if set(mtl) != set(single):
        raise ValueError(f"Δm needs the same (task, metric) keys: multi-task {sorted(mtl)}, single {sorted(single)}")
    terms = []
    for key, base in single.items():
        if not np.isfinite(base) or base == 0:
            raise ValueError(f"single-task value for {key} is {base}; Δm% needs a finite, non-zero baseline")
        sign = -1.0 if key[1] in M.LOWER_IS_BETTER else 1.0
        terms.append(sign * (mtl[key] - base) / base)
    return 100.0 * float(np.mean(terms))


def merge_single_task(tidy: pd.DataFrame, prefix: str = "single_", name: str = "single_task") -> pd.DataFrame:
    """Rows of the per-task models ``single_<task>`` joined into one model ``single_task``.

    Each single-task model contributes only its own task's rows.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    own = tidy["model"] == prefix + tidy["task"]
    merged = tidy[own].assign(model=name)
    return pd.concat([tidy[~tidy["model"].str.startswith(prefix)], merged], ignore_index=True)


def headline_values(preds: dict[str, np.ndarray], taskset: TaskSet, rows: np.ndarray | None = None,
                    keys=HEADLINE_METRICS) -> dict[tuple[str, str], float]:
    """``{(task, metric): value}`` on ``rows`` of ``taskset`` (rows may repeat, as in a bootstrap).

    Introduced in notebooks/05_evaluation.ipynb.
    """
    rows = np.arange(len(taskset)) if rows is None else np.asarray(rows)
    out = {}
    for task, metric in keys:
        m = taskset.masks[task][rows] > 0
        out[(task, metric)] = float(_FAST_METRICS[metric](taskset.labels[task][rows][m], preds[task][rows][m], task))
    return out


def delta_m_by_fold(tidy: pd.DataFrame, model: str, baseline: str = "single_task", keys=HEADLINE_METRICS,
                    segment: str = "all") -> pd.Series:
    """Δm% of ``model`` over ``baseline`` in each (protocol, fold) where both have every key.

    Run :func:`merge_single_task` first to get the ``single_task`` baseline.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    sel = tidy[(tidy["segment"] == segment) & tidy["model"].isin([model, baseline])]
    out = {}
    for (protocol, fold), g in sel.groupby(["protocol", "fold"]):
        vals = g.set_index(["model", "task", "metric"])["value"]
        try:
            mtl = {k: vals[(model, *k)] for k in keys}
            single = {k: vals[(baseline, *k)] for k in keys}
        except KeyError:
            continue
        out[(protocol, fold)] = delta_m(mtl, single)
    return pd.Series(out, name="delta_m_pct", dtype="float64")


def metric_difference_bootstrap(taskset: TaskSet, preds_a: dict[str, np.ndarray], preds_b: dict[str, np.ndarray],
                                task: str, metric: str, rows: np.ndarray | None = None, n_boot: int = 1000,
                                seed: int = 0) -> dict[str, float]:
    """User-bootstrap CI of ``metric(a) - metric(b)`` for one task on ``rows`` (a boolean mask or positions).

    Both models are scored on the same resampled rows, so the interval is for the paired
    difference. For RMSE a negative difference means model ``a`` is better.

    Args:
        taskset: The scored set.
        preds_a, preds_b: ``{task: predictions}`` of the two models (aligned with ``taskset``).
        task, metric: One of the fast metrics (``auc``, ``rmse``, ``mae``).
        rows: Restrict to a segment (default: every row).
        n_boot, seed: See :func:`user_bootstrap`.

    Returns:
        :func:`user_bootstrap`'s dictionary plus ``rows`` (labelled rows used).

    Introduced in notebooks/07_article_claims.ipynb.
    """
    if metric not in _FAST_METRICS:
        raise ValueError(f"metric {metric!r} has no bootstrap form; valid: {sorted(_FAST_METRICS)}")
    sel = np.arange(len(taskset)) if rows is None else np.asarray(rows)
    if sel.dtype == bool:
        sel = np.flatnonzero(sel)
    sel = sel[taskset.masks[task][sel] > 0]
    y, a, b = taskset.labels[task][sel], preds_a[task][sel], preds_b[task][sel]
    fn = _FAST_METRICS[metric]

    def stat(r: np.ndarray) -> float:
        return float(fn(y[r], a[r], task) - fn(y[r], b[r], task))

    return {**user_bootstrap(taskset.pairs["user_id"].to_numpy()[sel], stat, n_boot, seed), "rows": int(sel.size)}


def delta_m_bootstrap(taskset: TaskSet, mtl_preds: dict[str, np.ndarray], single_preds: dict[str, np.ndarray],
                      n_boot: int = 1000, seed: int = 0, keys=HEADLINE_METRICS) -> dict[str, float]:
    """User-bootstrap CI of Δm% on one test set (``single_preds[task]`` from each task's own model).

    Introduced in notebooks/05_evaluation.ipynb.
    """
    def stat(rows: np.ndarray) -> float:
        return delta_m(headline_values(mtl_preds, taskset, rows, keys), headline_values(single_preds, taskset, rows, keys))

    return user_bootstrap(taskset.pairs["user_id"].to_numpy(), stat, n_boot, seed)
