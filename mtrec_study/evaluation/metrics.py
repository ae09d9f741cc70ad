"""Metrics per task: the article's, the field's, and beyond accuracy. Plain NumPy on arrays.

Binary tasks (interest, item as a classifier) get accuracy, precision, recall and F1 at a
threshold, ROC-AUC, log loss, calibration (ECE and a reliability curve) and per-user AUC (GAUC).
The rating task gets RMSE and MAE. Item recommendation as *ranking* gets HR, Recall, Precision,
NDCG, MRR and MAP at K over a score matrix (users × candidates), and the top-K lists get
coverage, intra-list diversity, novelty and Gini.

Standard metrics delegate to scikit-learn; the ranking and beyond-accuracy metrics are ours and
are tested against scikit-learn's ``ndcg_score`` and hand-worked examples.

**Tie rule (ranking).** Accuracy metrics rank ties *pessimistically* by default: among equal
scores, non-relevant candidates come first, so a scorer never gains from ties and a constant
scorer gets the worst possible result. ``ties="optimistic"`` puts relevant candidates first and
``ties="stable"`` keeps the candidates' column order. Top-K lists for the beyond-accuracy metrics
(which know nothing of relevance) break ties by column order.

**K larger than the candidate set.** A user's list is cut at ``min(K, n_candidates)``; Precision@K
divides by that number, so a list that holds every candidate is not penalised for the slots that
cannot exist. Every other metric is unaffected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn import metrics as skm

from mtrec_study.config import show_progress
from mtrec_study.tasks import TASK_TYPES

DEFAULT_KS = (5, 10, 20)
BINARY_METRICS = ("accuracy", "precision", "recall", "f1", "auc", "logloss", "ece", "gauc")
REGRESSION_METRICS = ("rmse", "mae")
RANKING_METRICS = ("hr", "recall", "precision", "ndcg", "mrr", "map")
TIES = ("pessimistic", "optimistic", "stable")
# Lower is better for these; everything else is higher-is-better (used by Δm% and plots).
LOWER_IS_BETTER = frozenset({"logloss", "ece", "rmse", "mae", "gini"})


# --------------------------------------------------------------------------- checks
def check_scores(scores: np.ndarray, task: str = "scores", allow_neg_inf: bool = False) -> np.ndarray:
    """Return ``scores`` as a float array, or raise if any value is NaN (or infinite).

    Args:
        scores: Predicted scores or probabilities.
        task: Named in the error message.
        allow_neg_inf: Let ``-inf`` through (it marks excluded candidates in a score matrix).

    Raises:
        ValueError: Naming how many scores are NaN or infinite, and the task.

    Used by mtrec_study.evaluation.metrics, mtrec_study.evaluation.predictions.
    """
    s = np.asarray(scores, dtype="float64")
    n_nan = int(np.isnan(s).sum())
    bad_inf = np.isposinf(s) if allow_neg_inf else np.isinf(s)
    n_inf = int(bad_inf.sum())
    if n_nan or n_inf:
        raise ValueError(f"task {task!r}: {n_nan} NaN and {n_inf} infinite scores out of {s.size}; "
                         "a diverged model or a broken feature pipeline is the usual cause")
    return s


def check_metric(metric: str, task: str) -> str:
    """Raise if ``metric`` does not fit ``task``'s type (for example AUC on the rating task).

    Returns:
        The task type, ``"binary"`` or ``"regression"``.

    Used by mtrec_study.evaluation.predictions.
    """
    kind = TASK_TYPES.get(task)
    if kind is None:
        raise ValueError(f"unknown task {task!r}; valid: {', '.join(TASK_TYPES)}")
    valid = BINARY_METRICS if kind == "binary" else REGRESSION_METRICS
    if metric not in valid:
        raise ValueError(f"metric {metric!r} does not fit task {task!r}, which is {kind}; "
                         f"valid metrics for it: {', '.join(valid)}")
    return kind


def _binary_labels(y_true: np.ndarray, task: str) -> np.ndarray:
    y = np.asarray(y_true, dtype="float64")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"task {task!r}: binary metrics need labels in {{0, 1}}, got values "
                         f"{np.unique(y)[:5].tolist()}")
    return y.astype("int64")


def _check_probabilities(p: np.ndarray, task: str) -> None:
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError(f"task {task!r}: probabilities must lie in [0, 1], got [{p.min():.3g}, {p.max():.3g}]")


# --------------------------------------------------------------------------- binary
def roc_auc(y_true: np.ndarray, y_score: np.ndarray, task: str = "binary") -> float:
    """ROC-AUC, or NaN (*undefined*, never 0.5) when only one class is present.

    Introduced in notebooks/07_article_claims.ipynb.
    """
    y = _binary_labels(y_true, task)
    s = check_scores(y_score, task)
    if y.size == 0 or y.min() == y.max():
        return float("nan")
    return float(skm.roc_auc_score(y, s))


def rank_auc(y_true: np.ndarray, y_score: np.ndarray, task: str = "binary") -> float:
    r"""ROC-AUC in its Mann-Whitney form, $\frac{R_+ - n_+(n_+ + 1)/2}{n_+ n_-}$ with average ranks.

    The same value as :func:`roc_auc` (ties count one half), about five times faster because
    it skips scikit-learn's curve; the user bootstrap calls it thousands of times.

    Used by mtrec_study.evaluation.predictions.
    """
    y = _binary_labels(y_true, task)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(check_scores(y_score, task))
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def choose_threshold(y_true: np.ndarray, y_prob: np.ndarray, task: str = "binary") -> float:
    """The threshold that maximises F1 on *validation* data; apply it unchanged to test data.

    Returns 0.5 when the labels hold a single class (F1 is then undefined or trivial).

    Used by mtrec_study.evaluation.predictions.
    """
    y = _binary_labels(y_true, task)
    p = check_scores(y_prob, task)
    if y.size == 0 or y.min() == y.max():
        return 0.5
    precision, recall, thresholds = skm.precision_recall_curve(y, p)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(precision),
                   where=(precision + recall) > 0)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def reliability_curve(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = 10,
                      task: str = "binary") -> pd.DataFrame:
    """Equal-width bins of predicted probability: count, mean prediction and observed positive rate.

    Bin ``b`` holds ``b/n_bins <= p < (b+1)/n_bins`` (the last bin includes 1). Empty bins are
    kept with ``count == 0`` and NaN rates, so the table always has ``n_bins`` rows.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    y = _binary_labels(y_true, task)
    p = check_scores(y_prob, task)
    _check_probabilities(p, task)
    b = np.minimum((p * n_bins).astype("int64"), n_bins - 1)
    count = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = np.bincount(b, weights=p, minlength=n_bins) / count
        frac_pos = np.bincount(b, weights=y, minlength=n_bins) / count
    edges = np.arange(n_bins) / n_bins
    return pd.DataFrame({"bin_low": edges, "bin_high": edges + 1 / n_bins, "count": count,
                         "mean_pred": mean_pred, "frac_pos": frac_pos})


def expected_calibration_error(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = 10,
                               task: str = "binary") -> float:
    r"""ECE $= \sum_b \frac{n_b}{N}\,|\bar y_b - \bar p_b|$ over equal-width probability bins.

    Used by mtrec_study.evaluation.metrics.
    """
    curve = reliability_curve(y_true, y_prob, n_bins, task)
    used = curve["count"] > 0
    if not used.any():
        return float("nan")
    w = curve.loc[used, "count"] / curve.loc[used, "count"].sum()
    return float((w * (curve.loc[used, "frac_pos"] - curve.loc[used, "mean_pred"]).abs()).sum())


def gauc(users: np.ndarray, y_true: np.ndarray, y_score: np.ndarray, task: str = "binary") -> float:
    r"""Per-user AUC averaged with weights = the user's rows (Zhou et al., DIN, 2018).

    $\mathrm{GAUC} = \sum_u n_u\,\mathrm{AUC}_u / \sum_u n_u$ over users whose rows hold both
    classes; users with one class have no AUC and are left out. NaN if no user qualifies.

    Used by mtrec_study.evaluation.metrics.
    """
    y = _binary_labels(y_true, task)
    s = check_scores(y_score, task)
    frame = pd.DataFrame({"u": np.asarray(users), "y": y, "s": s})
    # Mann-Whitney form of each user's AUC from within-user average ranks (ties count 1/2).
    rank = frame.groupby("u", sort=False)["s"].rank(method="average")
    by_user = frame.assign(rank_pos=rank * frame["y"]).groupby("u", sort=False)
    n = by_user.size()
    n_pos = by_user["y"].sum()
    n_neg = n - n_pos
    ok = (n_pos > 0) & (n_neg > 0)
    if not ok.any():
        return float("nan")
    auc = (by_user["rank_pos"].sum()[ok] - n_pos[ok] * (n_pos[ok] + 1) / 2) / (n_pos[ok] * n_neg[ok])
    return float((n[ok] * auc).sum() / n[ok].sum())


def binary_metrics(y_true: np.ndarray, y_prob: np.ndarray, threshold: float = 0.5, users: np.ndarray | None = None,
                   task: str = "binary", n_bins: int = 10) -> dict[str, float]:
    """The article's metrics at ``threshold`` plus AUC, log loss, ECE and (with ``users``) GAUC.

    Args:
        y_true: Labels in {0, 1}.
        y_prob: Predicted probabilities in [0, 1].
        threshold: Predict positive when ``p >= threshold``; choose it on validation with
            :func:`choose_threshold`.
        users: Row owners, for GAUC.
        task: Named in errors.
        n_bins: Bins for ECE.

    Returns:
        ``accuracy, precision, recall, f1, auc, logloss, ece`` (and ``gauc``). AUC and GAUC are
        NaN when undefined (one class); precision is 0 when nothing is predicted positive.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    y = _binary_labels(y_true, task)
    p = check_scores(y_prob, task)
    _check_probabilities(p, task)
    if y.size == 0:
        raise ValueError(f"task {task!r}: no labelled rows to evaluate")
    pred = (p >= threshold).astype("int64")
    out = {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)),
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "auc": roc_auc(y, p, task),
        "logloss": float(skm.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "ece": expected_calibration_error(y, p, n_bins, task),
    }
    if users is not None:
        out["gauc"] = gauc(users, y, p, task)
    return out


# --------------------------------------------------------------------------- regression
def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray, task: str = "behaviour") -> dict[str, float]:
    r"""RMSE $=\sqrt{\frac1N\sum (y-\hat y)^2}$ and MAE $=\frac1N\sum|y-\hat y|$.

    Used by mtrec_study.evaluation.predictions.
    """
    y = np.asarray(y_true, dtype="float64")
    p = check_scores(y_pred, task)
    if y.size == 0:
        raise ValueError(f"task {task!r}: no labelled rows to evaluate")
    return {"rmse": float(np.sqrt(skm.mean_squared_error(y, p))), "mae": float(skm.mean_absolute_error(y, p))}


# --------------------------------------------------------------------------- ranking
def _order_keys(scores: np.ndarray, relevant: np.ndarray, cols: np.ndarray, ties: str) -> tuple:
    """Keys for ``np.lexsort`` (last key is primary): score descending, then the tie rule."""
    if ties == "pessimistic":
        tie = relevant.astype("int8")  # non-relevant (0) first
    elif ties == "optimistic":
        tie = (~relevant).astype("int8")
    else:
        tie = np.zeros(relevant.shape, "int8")
    return cols, tie, -scores


def top_k(scores: np.ndarray, k: int, relevant: np.ndarray | None = None, ties: str = "stable") -> np.ndarray:
    """Column indices of each row's top ``k`` candidates under a tie rule, best first.

    ``-inf`` marks an excluded candidate: it is never returned. Rows with fewer than ``k``
    candidates are padded with ``-1``.

    Args:
        scores: ``(n_rows, n_candidates)``; ``-inf`` = excluded.
        k: List length.
        relevant: Boolean like ``scores``; needed for the pessimistic/optimistic rules.
        ties: One of :data:`TIES`.

    Used by mtrec_study.evaluation.metrics.
    """
    if ties not in TIES:
        raise ValueError(f"unknown tie rule {ties!r}; valid: {', '.join(TIES)}")
    if k < 1:
        raise ValueError(f"K must be >= 1, got {k}")
    scores = np.asarray(scores, dtype="float64")
    n, m = scores.shape
    rel = np.zeros(scores.shape, bool) if relevant is None else np.asarray(relevant, bool)
    kk = min(k, m)
    out = np.full((n, k), -1, dtype="int64")
    if n == 0 or m == 0:
        return out
    part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
    rows = np.arange(n)[:, None]
    kth = scores[rows, part].min(axis=1)
    n_ge = (scores >= kth[:, None]).sum(axis=1)
    simple = n_ge == kk  # no tie straddles the cut: the partition is the exact top-k set
    if simple.any():
        p = part[simple]
        r = rows[simple]
        order = np.lexsort(_order_keys(scores[r, p], rel[r, p], p, ties), axis=-1)
        out[simple, :kk] = np.take_along_axis(p, order, axis=1)
    for i in np.flatnonzero(~simple):
        cand = np.flatnonzero(scores[i] >= kth[i])
        order = np.lexsort(_order_keys(scores[i, cand], rel[i, cand], cand, ties))
        out[i, :kk] = cand[order[:kk]]
    # Excluded candidates (-inf) can only enter when a row has fewer than k candidates.
    valid = out >= 0
    excluded = np.zeros_like(valid)
    excluded[valid] = np.isneginf(scores[np.nonzero(valid)[0], out[valid]])
    out[excluded] = -1
    return out


def ranking_metrics(scores: np.ndarray, relevant: np.ndarray, ks: Iterable[int] = DEFAULT_KS,
                    ties: str = "pessimistic", task: str = "item") -> pd.DataFrame:
    r"""HR, Recall, Precision, NDCG, MRR and MAP at each K, one row per user (score-matrix row).

    With $L_K$ the top-K list, $R$ the relevant set, $\mathrm{rel}_i \in \{0,1\}$ at position $i$:

    - HR@K $= [\,|L_K \cap R| > 0\,]$
    - Recall@K $= |L_K \cap R| / |R|$
    - Precision@K $= |L_K \cap R| / \min(K, n_\text{candidates})$
    - NDCG@K $= \sum_{i\le K} \mathrm{rel}_i/\log_2(i+1) \,/\, \sum_{i \le \min(|R|,K)} 1/\log_2(i+1)$
    - MRR@K $= 1/\text{rank of the first relevant item in } L_K$ (0 if none)
    - MAP@K $= \frac{1}{\min(|R|,K)} \sum_{i \le K} \mathrm{rel}_i \cdot \mathrm{Precision@}i$

    Rows without any relevant candidate have no defined value and are dropped (the returned
    frame keeps the original row position in its index).

    Args:
        scores: ``(n_users, n_candidates)``; ``-inf`` marks an excluded candidate (for the
            full-catalogue protocol, the user's training items).
        relevant: Boolean, same shape: the held-out positives.
        ks: Cut-offs.
        ties: Tie rule, see the module docstring.
        task: Named in errors.

    Raises:
        ValueError: NaN scores; shapes that differ; a relevant candidate that is excluded.

    Used by mtrec_study.evaluation.metrics, mtrec_study.evaluation.ranking.
    """
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"K values must be >= 1, got {ks}")
    s = check_scores(scores, task, allow_neg_inf=True)
    rel = np.asarray(relevant, bool)
    if s.shape != rel.shape or s.ndim != 2:
        raise ValueError(f"scores {s.shape} and relevant {rel.shape} must be the same 2-D shape")
    excluded = np.isneginf(s)
    if (rel & excluded).any():
        raise ValueError(f"task {task!r}: {int((rel & excluded).sum())} relevant candidates are excluded "
                         "(held-out items that also occur in training?)")
    n_rel = rel.sum(axis=1)
    keep = np.flatnonzero(n_rel > 0)
    s, rel, n_rel = s[keep], rel[keep], n_rel[keep]
    n_cand = (~np.isneginf(s)).sum(axis=1)
    kmax = ks[-1]
    lists = top_k(s, kmax, rel, ties)
    hits = np.zeros(lists.shape, bool)
    ok = lists >= 0
    hits[ok] = rel[np.nonzero(ok)[0], lists[ok]]
    pos = np.arange(1, kmax + 1)
    discount = 1.0 / np.log2(pos + 1)
    ideal = np.concatenate([[0.0], np.cumsum(discount)])
    prec_at_i = np.cumsum(hits, axis=1) / pos
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)
    out = {}
    for k in ks:
        h = hits[:, :k]
        n_hit = h.sum(axis=1)
        denom = np.minimum(n_rel, k)
        out[f"hr@{k}"] = (n_hit > 0).astype("float64")
        out[f"recall@{k}"] = n_hit / n_rel
        out[f"precision@{k}"] = n_hit / np.minimum(k, n_cand)
        out[f"ndcg@{k}"] = (h * discount[:k]).sum(axis=1) / ideal[denom]
        out[f"mrr@{k}"] = np.where((first > 0) & (first <= k), 1.0 / np.maximum(first, 1), 0.0)
        out[f"map@{k}"] = (prec_at_i[:, :k] * h).sum(axis=1) / denom
    return pd.DataFrame(out, index=keep)


def rank_in_blocks(score_block: Callable[[np.ndarray], np.ndarray], users: np.ndarray,
                   relevant: Callable[[np.ndarray], np.ndarray], exclude: Callable[[np.ndarray], np.ndarray] | None,
                   ks: Iterable[int] = DEFAULT_KS, ties: str = "pessimistic", block_size: int = 1024,
                   list_k: int | None = None, progress: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    """Full-catalogue ranking for many users, scored ``block_size`` users at a time.

    Memory is bounded by one ``(block_size, n_items)`` score matrix, whatever the user count.

    Args:
        score_block: ``users -> (len(users), n_items)`` scores.
        users: The users to rank for (row labels of the result).
        relevant: ``users -> bool (len(users), n_items)``, the held-out positives.
        exclude: ``users -> bool (len(users), n_items)``, candidates to drop (training items).
        ks, ties: As in :func:`ranking_metrics`.
        block_size: Users per block.
        list_k: Also return each user's top-``list_k`` list (stable ties) for beyond-accuracy
            metrics; default ``max(ks)``.
        progress: Show a tqdm bar over blocks.

    Returns:
        Per-user metrics (index = user id; users without a relevant item are dropped), and the
        ``(len(users), list_k)`` top lists of column indices (``-1`` pads short lists).

    Used by mtrec_study.evaluation.ranking.
    """
    from tqdm.auto import tqdm

    users = np.asarray(users)
    list_k = list_k or max(ks)
    frames, lists = [], []
    starts = range(0, len(users), block_size)
    for start in tqdm(starts, desc="ranking", unit="block", disable=not show_progress(progress)):
        u = users[start:start + block_size]
        s = np.asarray(score_block(u), dtype="float64")
        if exclude is not None:
            s = np.where(exclude(u), -np.inf, s)
        m = ranking_metrics(s, relevant(u), ks, ties)
        m.index = u[m.index]
        frames.append(m)
        lists.append(top_k(s, list_k, ties="stable"))  # relevance-blind: what the user would see
    metrics = pd.concat(frames) if frames else pd.DataFrame()
    return metrics, (np.concatenate(lists) if lists else np.empty((0, list_k), "int64"))


# --------------------------------------------------------------------------- beyond accuracy
def _valid_items(lists: np.ndarray) -> np.ndarray:
    lists = np.asarray(lists)
    return lists[lists >= 0]


def catalogue_coverage(lists: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one top-K list (``-1`` pads are ignored).

    Used by mtrec_study.evaluation.metrics.
    """
    return np.unique(_valid_items(lists)).size / n_items


def intra_list_diversity(lists: np.ndarray, item_vectors: np.ndarray, per_list: bool = False) -> float | np.ndarray:
    r"""Mean pairwise cosine distance within each list, averaged over lists.

    $\mathrm{ILD}(L) = \frac{2}{|L|(|L|-1)} \sum_{i<j} (1 - \cos(v_i, v_j))$. Use genre multi-hot
    rows or text embeddings as ``item_vectors`` (row = column index of the score matrix). A zero
    vector has distance 1 to everything. Lists shorter than two items are skipped.

    Args:
        lists: Top-K lists of item positions, ``-1`` for padding.
        item_vectors: One row per item position.
        per_list: Return each list's ILD (NaN for lists shorter than two) instead of the mean.

    Introduced in notebooks/07_article_claims.ipynb.
    """
    v = np.asarray(item_vectors, dtype="float64")
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    unit = np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)
    lists = np.asarray(lists)
    vals = np.full(len(lists), np.nan)
    for r, row in enumerate(lists):
        items = row[row >= 0]
        if items.size < 2:
            continue
        sim = unit[items] @ unit[items].T
        iu = np.triu_indices(items.size, k=1)
        vals[r] = float(np.mean(1.0 - sim[iu]))
    if per_list:
        return vals
    ok = vals[~np.isnan(vals)]
    return float(np.mean(ok)) if ok.size else float("nan")


def novelty(lists: np.ndarray, item_user_counts: np.ndarray, n_users: int) -> float:
    r"""Mean self-information of recommended items, $-\log_2 p(i)$, in bits.

    $p(i) = (c_i + 1)/(n_\text{users} + 1)$ with $c_i$ the number of *training* users who
    interacted with item $i$; the +1 keeps never-seen items finite.

    Used by mtrec_study.evaluation.metrics.
    """
    items = _valid_items(lists)
    if items.size == 0:
        return float("nan")
    p = (np.asarray(item_user_counts, dtype="float64")[items] + 1.0) / (n_users + 1.0)
    return float(np.mean(-np.log2(p)))


def gini_index(lists: np.ndarray, n_items: int) -> float:
    r"""Gini coefficient of how often each catalogue item is recommended (0 = even, → 1 = few items).

    With counts sorted ascending, $G = \frac{\sum_{i=1}^{n} (2i - n - 1)\,x_{(i)}}{n \sum_i x_i}$.

    Used by mtrec_study.evaluation.metrics.
    """
    counts = np.sort(np.bincount(_valid_items(lists), minlength=n_items)).astype("float64")
    total = counts.sum()
    if total == 0:
        return float("nan")
    i = np.arange(1, n_items + 1)
    return float(((2 * i - n_items - 1) * counts).sum() / (n_items * total))


def beyond_accuracy(lists: np.ndarray, n_items: int, item_user_counts: np.ndarray, n_users: int,
                    item_vectors: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """Coverage, novelty, Gini and one ILD per entry of ``item_vectors`` (``ild_<name>``).

    Used by mtrec_study.evaluation.ranking.
    """
    out = {"coverage": catalogue_coverage(lists, n_items), "novelty": novelty(lists, item_user_counts, n_users),
           "gini": gini_index(lists, n_items)}
    for name, vecs in (item_vectors or {}).items():
        out[f"ild_{name}"] = intra_list_diversity(lists, vecs)
    return out
