"""Metrics against scikit-learn, an independent brute-force ranker, and hand-worked examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from mtrec_study.evaluation import metrics as M


@pytest.fixture
def binary_data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.3 * y + 0.7 * rng.random(500), 0, 1)
    return y, p


# --------------------------------------------------------------------------- binary vs scikit-learn
def test_binary_metrics_match_sklearn(binary_data):
    y, p = binary_data
    out = M.binary_metrics(y, p, threshold=0.6)
    pred = (p >= 0.6).astype(int)
    assert out["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert out["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert out["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert out["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert out["auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert out["logloss"] == pytest.approx(skm.log_loss(y, p), rel=1e-6)


def test_threshold_chosen_on_validation_maximises_f1(binary_data):
    y, p = binary_data
    t = M.choose_threshold(y, p)
    best = M.binary_metrics(y, p, threshold=t)["f1"]
    grid = [skm.f1_score(y, (p >= g).astype(int)) for g in np.linspace(0.01, 0.99, 99)]
    assert best >= max(grid) - 1e-12
    assert M.choose_threshold(np.ones(5), np.linspace(0, 1, 5)) == 0.5  # single class: the default


def test_ece_and_reliability_curve(binary_data):
    y, p = binary_data
    curve = M.reliability_curve(y, p, n_bins=10)
    assert len(curve) == 10 and curve["count"].sum() == len(y)
    frac, mean = calibration_curve(y, p, n_bins=10, strategy="uniform")
    used = curve[curve["count"] > 0]
    np.testing.assert_allclose(used["frac_pos"], frac)
    np.testing.assert_allclose(used["mean_pred"], mean)
    # Worked by hand: bin [0.2, 0.3) holds p = 0.25, 0.25 with labels 0, 1 -> |0.5 - 0.25| = 0.25;
    # bin [0.9, 1] holds p = 0.95 with label 1 -> |1 - 0.95| = 0.05. ECE = 2/3*0.25 + 1/3*0.05.
    assert M.expected_calibration_error([0, 1, 1], [0.25, 0.25, 0.95]) == pytest.approx(2 / 3 * 0.25 + 0.05 / 3)


def test_gauc_worked_example():
    users = np.array([1, 1, 1, 2, 2, 3, 3])
    y = np.array([1, 0, 0, 1, 0, 1, 1])  # user 3 has one class: left out
    s = np.array([0.9, 0.5, 0.95, 0.1, 0.2, 0.3, 0.4])
    # user 1: AUC = 1/2 (0.9 beats 0.5, loses to 0.95); user 2: AUC = 0. Weights 3 and 2.
    assert M.gauc(users, y, s) == pytest.approx((3 * 0.5 + 2 * 0.0) / 5)
    assert math.isnan(M.gauc([1, 1], [1, 1], [0.2, 0.3]))


def test_gauc_matches_a_per_user_sklearn_loop_with_ties():
    rng = np.random.default_rng(5)
    users = rng.integers(0, 40, 2000)
    y = rng.integers(0, 2, 2000)
    s = rng.integers(0, 5, 2000) / 4  # heavy ties
    num = den = 0.0
    for u in np.unique(users):
        m = users == u
        if len(set(y[m])) == 2:
            num += m.sum() * skm.roc_auc_score(y[m], s[m])
            den += m.sum()
    assert M.gauc(users, y, s) == pytest.approx(num / den)


def test_regression_metrics():
    out = M.regression_metrics([1, 2, 3, 4], [1.5, 2, 2, 4])
    assert out["rmse"] == pytest.approx(math.sqrt((0.25 + 1) / 4))
    assert out["mae"] == pytest.approx(1.5 / 4)


# --------------------------------------------------------------------------- bad input
def test_nan_scores_name_count_and_task():
    with pytest.raises(ValueError, match=r"task 'interest': 2 NaN"):
        M.binary_metrics([0, 1, 1], [0.1, np.nan, np.nan], task="interest")
    with pytest.raises(ValueError, match="task 'item': 1 NaN"):
        M.ranking_metrics(np.array([[0.1, np.nan]]), np.array([[True, False]]), task="item")


def test_metric_that_does_not_fit_the_task():
    with pytest.raises(ValueError, match=r"'auc' does not fit task 'behaviour', which is regression.*rmse, mae"):
        M.check_metric("auc", "behaviour")
    with pytest.raises(ValueError, match="valid metrics for it: accuracy"):
        M.check_metric("rmse", "interest")
    assert M.check_metric("auc", "interest") == "binary"


def test_single_class_auc_is_undefined_not_half():
    out = M.binary_metrics([1, 1, 1], [0.2, 0.6, 0.9])
    assert math.isnan(out["auc"])
    assert out["accuracy"] == pytest.approx(2 / 3)


def test_labels_and_probabilities_are_checked():
    with pytest.raises(ValueError, match=r"labels in \{0, 1\}"):
        M.binary_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        M.binary_metrics([0, 1], [0.1, 1.7])


# --------------------------------------------------------------------------- ranking
def _brute_force(scores, relevant, k, ties):
    """An independent reference: sort every candidate with Python's sorted() and a tie key."""
    out = []
    sign = {"pessimistic": 1, "optimistic": -1, "stable": 0}[ties]
    for s, r in zip(scores, relevant, strict=True):
        cands = [j for j in range(len(s)) if not np.isneginf(s[j])]
        order = sorted(cands, key=lambda j, s=s, r=r: (-s[j], sign * int(r[j]), j))[:k]
        hits = [bool(r[j]) for j in order]
        n_rel = int(np.sum(r))
        if n_rel == 0:
            continue
        dcg = sum(h / math.log2(i + 2) for i, h in enumerate(hits))
        idcg = sum(1 / math.log2(i + 2) for i in range(min(n_rel, k)))
        first = next((i + 1 for i, h in enumerate(hits) if h), None)
        ap = sum(sum(hits[:i + 1]) / (i + 1) for i, h in enumerate(hits) if h) / min(n_rel, k)
        out.append({"hr": float(any(hits)), "recall": sum(hits) / n_rel, "precision": sum(hits) / min(k, len(cands)),
                    "ndcg": dcg / idcg, "mrr": 1 / first if first else 0.0, "map": ap})
    return out


@pytest.mark.parametrize("ties", M.TIES)
def test_ranking_matches_brute_force_with_many_ties(ties):
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 4, (60, 25)).astype(float)  # few distinct values: ties everywhere
    relevant = rng.random((60, 25)) < 0.15
    excluded = (rng.random((60, 25)) < 0.2) & ~relevant
    scores[excluded] = -np.inf
    got = M.ranking_metrics(scores, relevant, ks=(3, 10), ties=ties)
    for k in (3, 10):
        ref = _brute_force(scores, relevant, k, ties)
        for name in M.RANKING_METRICS:
            np.testing.assert_allclose(got[f"{name}@{k}"].to_numpy(), [r[name] for r in ref], err_msg=f"{name}@{k}")


def test_ndcg_matches_sklearn_without_ties():
    rng = np.random.default_rng(2)
    scores = rng.random((40, 30))
    relevant = rng.random((40, 30)) < 0.2
    relevant[:, 0] = True
    got = M.ranking_metrics(scores, relevant, ks=(5, 10))
    for k in (5, 10):
        assert got[f"ndcg@{k}"].mean() == pytest.approx(skm.ndcg_score(relevant.astype(int), scores, k=k))


def test_hand_worked_ties():
    scores = np.array([[0.9, 0.8, 0.8, 0.5, 0.1]])
    relevant = np.array([[False, True, False, False, True]])
    pess = M.ranking_metrics(scores, relevant, ks=(2, 3, 5)).iloc[0]
    # Pessimistic order: 0, 2, 1, 3, 4 -> relevant at positions 3 and 5.
    assert pess["hr@2"] == 0 and pess["mrr@2"] == 0 and pess["map@2"] == 0
    assert pess["hr@3"] == 1 and pess["mrr@3"] == pytest.approx(1 / 3)
    assert pess["recall@3"] == pytest.approx(1 / 2) and pess["precision@3"] == pytest.approx(1 / 3)
    assert pess["map@3"] == pytest.approx(1 / 2 * 1 / 3)
    assert pess["map@5"] == pytest.approx(1 / 2 * (1 / 3 + 2 / 5))
    assert pess["ndcg@5"] == pytest.approx((1 / 2 + 1 / math.log2(6)) / (1 + 1 / math.log2(3)))
    opt = M.ranking_metrics(scores, relevant, ks=(2,), ties="optimistic").iloc[0]
    # Optimistic order: 0, 1, 2, 3, 4 -> relevant at 2 and 5.
    assert opt["hr@2"] == 1 and opt["mrr@2"] == pytest.approx(1 / 2) and opt["map@2"] == pytest.approx(1 / 4)


def test_constant_scorer_gains_nothing_from_ties():
    scores = np.full((1, 100), 0.5)
    relevant = np.zeros((1, 100), bool)
    relevant[0, 0] = True  # the sampled protocol: positive first, then 99 negatives
    assert M.ranking_metrics(scores, relevant, ks=(10,))["hr@10"].iloc[0] == 0
    assert M.ranking_metrics(scores, relevant, ks=(10,), ties="stable")["hr@10"].iloc[0] == 1


def test_sampled_protocol_rank():
    scores = np.linspace(1, 0, 100)[None, :].copy()
    relevant = np.zeros((1, 100), bool)
    relevant[0, 6] = True  # rank 7
    row = M.ranking_metrics(scores, relevant, ks=(5, 10)).iloc[0]
    assert row["hr@5"] == 0 and row["hr@10"] == 1
    assert row["ndcg@10"] == pytest.approx(1 / math.log2(8)) and row["mrr@10"] == pytest.approx(1 / 7)


def test_k_larger_than_candidate_set():
    scores = np.array([[0.9, 0.2, 0.5, -np.inf, -np.inf]])
    relevant = np.array([[True, False, False, False, False]])
    row = M.ranking_metrics(scores, relevant, ks=(20,)).iloc[0]
    # Three candidates: the list holds all three, precision divides by 3, not 20.
    assert row["hr@20"] == 1 and row["precision@20"] == pytest.approx(1 / 3) and row["ndcg@20"] == 1
    lists = M.top_k(scores, 5)
    assert lists.tolist() == [[0, 2, 1, -1, -1]]


def test_rows_without_relevant_items_are_dropped_and_excluded_relevant_is_an_error():
    scores = np.array([[0.1, 0.2], [0.3, 0.4]])
    got = M.ranking_metrics(scores, np.array([[False, False], [True, False]]), ks=(1,))
    assert got.index.tolist() == [1]
    with pytest.raises(ValueError, match="1 relevant candidates are excluded"):
        M.ranking_metrics(np.array([[-np.inf, 0.2]]), np.array([[True, False]]), ks=(1,))


def test_rank_in_blocks_equals_one_block():
    rng = np.random.default_rng(3)
    full = rng.random((50, 40))
    rel = rng.random((50, 40)) < 0.1
    exc = (rng.random((50, 40)) < 0.3) & ~rel
    users = np.arange(100, 150)
    blocks, lists = M.rank_in_blocks(lambda u: full[u - 100], users, lambda u: rel[u - 100],
                                     lambda u: exc[u - 100], ks=(5, 10), block_size=7)
    whole = M.ranking_metrics(np.where(exc, -np.inf, full), rel, ks=(5, 10))
    np.testing.assert_allclose(blocks.to_numpy(), whole.to_numpy())
    assert blocks.index.tolist() == (users[whole.index]).tolist()
    assert lists.shape == (50, 10)
    assert not exc[np.arange(50)[:, None], lists].any()  # no excluded item is ever listed


# --------------------------------------------------------------------------- beyond accuracy
def test_beyond_accuracy_worked_examples():
    lists = np.array([[0, 1], [0, 2], [0, -1]])
    assert M.catalogue_coverage(lists, 5) == pytest.approx(3 / 5)
    counts = np.array([9, 1, 0, 0, 0])
    # p = (c + 1) / (n_users + 1) with 10 users: items 0, 1, 0, 2, 0 -> p = 10/11, 2/11, 10/11, 1/11, 10/11
    expected = np.mean(-np.log2(np.array([10, 2, 10, 1, 10]) / 11))
    assert M.novelty(lists, counts, 10) == pytest.approx(expected)
    genres = np.array([[1, 0], [1, 0], [0, 1]])
    # list 0: same genre -> 0; list 1: orthogonal -> 1; list 2: one item, skipped.
    assert M.intra_list_diversity(lists, genres) == pytest.approx(0.5)


def test_gini_matches_mean_absolute_difference_formula():
    rng = np.random.default_rng(4)
    lists = rng.integers(0, 30, (200, 10))
    g = M.gini_index(lists, 40)
    x = np.bincount(lists.ravel(), minlength=40).astype(float)
    reference = np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) ** 2 * x.mean())
    assert g == pytest.approx(reference)
    assert M.gini_index(np.arange(10)[:, None], 10) == pytest.approx(0.0)


def test_rank_auc_matches_sklearn_with_ties(binary_data):
    y, p = binary_data
    tied = np.round(p, 1)  # heavy ties: both must count them one half
    for scores in (p, tied):
        assert M.rank_auc(y, scores) == pytest.approx(skm.roc_auc_score(y, scores), abs=1e-12)
    assert math.isnan(M.rank_auc(np.ones(5), np.arange(5.0)))


def test_per_list_ild_averages_to_the_mean_and_skips_short_lists():
    vecs = np.array([[1, 0], [0, 1], [1, 1], [1, 0]], dtype=float)
    lists = np.array([[0, 1, -1], [0, 3, -1], [2, -1, -1]])
    per = M.intra_list_diversity(lists, vecs, per_list=True)
    assert per[0] == pytest.approx(1.0) and per[1] == pytest.approx(0.0) and math.isnan(per[2])
    assert M.intra_list_diversity(lists, vecs) == pytest.approx(0.5)
