"""metrics.py details that the mutation run found untested: block-wise ranking,
beyond-accuracy bundles, the rank form of AUC at its edges, and the messages that name a task."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtrec_study.evaluation import metrics as M


def _world(n_users=7, n_items=12, seed=0):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n_users, n_items)).round(1)  # rounded: ties occur
    relevant = rng.random((n_users, n_items)) < 0.2
    relevant[0] = False  # a user with nothing held out is dropped
    seen = (rng.random((n_users, n_items)) < 0.2) & ~relevant
    return scores, relevant, seen


def test_rank_in_blocks_equals_one_big_matrix():
    scores, relevant, seen = _world()
    users = np.arange(100, 107)
    pos = {u: i for i, u in enumerate(users)}

    def rows(mat):
        return lambda block: mat[[pos[u] for u in block]]

    got, lists = M.rank_in_blocks(rows(scores), users, rows(relevant), rows(seen), ks=(3, 5), block_size=3)
    masked = np.where(seen, -np.inf, scores)
    want = M.ranking_metrics(masked, relevant, ks=(3, 5))
    want.index = users[want.index]
    pd.testing.assert_frame_equal(got, want)
    assert 100 not in got.index  # the user without a relevant item
    np.testing.assert_array_equal(lists, M.top_k(masked, 5, ties="stable"))  # list_k = max(ks), stable ties
    # The tie rule reaches the metrics; list_k sets the lists' length; no exclusion keeps every item.
    opt, _ = M.rank_in_blocks(rows(scores), users, rows(relevant), rows(seen), ks=(3,), ties="optimistic", block_size=2)
    want_opt = M.ranking_metrics(masked, relevant, ks=(3,), ties="optimistic")
    want_opt.index = users[want_opt.index]
    pd.testing.assert_frame_equal(opt, want_opt)
    _, long = M.rank_in_blocks(rows(scores), users, rows(relevant), None, ks=(3,), list_k=8)
    np.testing.assert_array_equal(long, M.top_k(scores, 8, ties="stable"))
    # Integer scores are ranked as numbers.
    ints, _ = M.rank_in_blocks(lambda b: (rows(scores)(b) * 10).astype(int), users, rows(relevant), rows(seen), ks=(3,))
    pd.testing.assert_frame_equal(ints, M.rank_in_blocks(rows(scores * 10), users, rows(relevant), rows(seen), ks=(3,))[0])


def test_rank_in_blocks_with_no_users():
    metrics, lists = M.rank_in_blocks(lambda b: np.zeros((len(b), 4)), np.array([], int), lambda b: np.zeros((len(b), 4), bool),
                                      None, ks=(2, 3))
    assert metrics.empty and lists.shape == (0, 3) and lists.dtype == np.int64


def test_beyond_accuracy_bundles_the_four_measures():
    lists = np.array([[0, 1, 2], [1, 2, -1]])
    counts = np.array([5.0, 1.0, 0.0, 2.0])
    vecs = {"genre": np.eye(4), "text": np.ones((4, 2))}
    out = M.beyond_accuracy(lists, 4, counts, 9, vecs)
    assert set(out) == {"coverage", "novelty", "gini", "ild_genre", "ild_text"}
    assert out["coverage"] == M.catalogue_coverage(lists, 4) == 3 / 4
    assert out["novelty"] == pytest.approx(M.novelty(lists, counts, 9))
    assert out["gini"] == pytest.approx(M.gini_index(lists, 4))
    assert out["ild_genre"] == pytest.approx(1.0) and out["ild_text"] == pytest.approx(0.0, abs=1e-12)
    assert set(M.beyond_accuracy(lists, 4, counts, 9)) == {"coverage", "novelty", "gini"}
    # By hand: novelty = mean of -log2((c + 1) / 10) over the five listed items.
    p = (counts[[0, 1, 2, 1, 2]] + 1) / 10
    assert out["novelty"] == pytest.approx(float(np.mean(-np.log2(p))))
    # Gini of recommendation counts (1, 2, 2, 0): sorted (0, 1, 2, 2), by the formula.
    x = np.array([0, 1, 2, 2.0])
    i = np.arange(1, 5)
    assert out["gini"] == pytest.approx(((2 * i - 5) * x).sum() / (4 * x.sum()))


def test_intra_list_diversity_by_hand_and_zero_vectors():
    v = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    # List (0, 1, 2): cosines 0, 1/√2, 1/√2 → distances 1, 1 - 1/√2, 1 - 1/√2.
    want = (1 + 2 * (1 - 1 / np.sqrt(2))) / 3
    assert M.intra_list_diversity(np.array([[0, 1, 2]]), v) == pytest.approx(want)
    # A zero vector is at distance 1 from everything; short lists are skipped (NaN per list).
    per = M.intra_list_diversity(np.array([[0, 3, -1], [2, -1, -1]]), v, per_list=True)
    assert per[0] == pytest.approx(1.0) and np.isnan(per[1])
    assert np.isnan(M.intra_list_diversity(np.array([[1, -1]]), v))


def test_novelty_and_gini_edges():
    assert np.isnan(M.novelty(np.array([[-1, -1]]), np.zeros(3), 5))
    assert np.isnan(M.gini_index(np.array([[-1]]), 3))
    assert M.gini_index(np.array([[0, 1, 2]]), 3) == pytest.approx(0.0)  # every item once
    assert M.gini_index(np.array([[0], [0], [0]]), 3) == pytest.approx(2 / 3)  # one item only: (n - 1) / n


def test_rank_auc_edges_and_ties():
    assert np.isnan(M.rank_auc([1, 1], [0.2, 0.3])) and np.isnan(M.rank_auc([0, 0, 0], [0.2, 0.3, 0.1]))
    assert np.isnan(M.rank_auc([], []))
    # One positive, one negative: 1, 0 or one half on a tie.
    assert M.rank_auc([1, 0], [0.9, 0.1]) == 1.0 and M.rank_auc([1, 0], [0.1, 0.9]) == 0.0
    assert M.rank_auc([1, 0], [0.5, 0.5]) == 0.5
    y, s = [1, 0, 1, 0, 0], [0.8, 0.8, 0.3, 0.1, 0.3]
    assert M.rank_auc(y, s) == pytest.approx(M.roc_auc(y, s))
    with pytest.raises(ValueError, match="task 'binary': binary metrics need labels"):
        M.rank_auc([2, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="task 'binary': 1 NaN"):
        M.rank_auc([1, 0], [np.nan, 0.2])
    with pytest.raises(ValueError, match="task 'interest': 1 NaN"):
        M.rank_auc([1, 0], [np.nan, 0.2], task="interest")


def test_regression_metrics_by_hand_and_messages():
    out = M.regression_metrics([3, 4, 5], [3.5, 4, 3])
    assert out["rmse"] == pytest.approx(np.sqrt((0.25 + 0 + 4) / 3)) and out["mae"] == pytest.approx(2.5 / 3)
    one = M.regression_metrics(np.array([4]), np.array([2.0]))
    assert one == {"rmse": pytest.approx(2.0), "mae": pytest.approx(2.0)}
    with pytest.raises(ValueError, match="task 'behaviour': no labelled rows to evaluate"):
        M.regression_metrics([], [])
    with pytest.raises(ValueError, match="task 'behaviour': 0 NaN and 1 infinite"):
        M.regression_metrics([1.0], [np.inf])
    with pytest.raises(ValueError, match="task 'rating': 1 NaN"):
        M.regression_metrics([1.0], [np.nan], task="rating")


def test_check_metric_names_the_valid_tasks():
    with pytest.raises(ValueError, match="unknown task 'clicks'; valid: interest, item, behaviour"):
        M.check_metric("auc", "clicks")


def test_order_keys_break_ties_by_the_rule():
    s = np.array([[1.0, 1.0, 1.0, 0.5]])
    rel = np.array([[False, True, False, False]])
    assert M.top_k(s, 3, rel, ties="pessimistic")[0].tolist() == [0, 2, 1]
    assert M.top_k(s, 3, rel, ties="optimistic")[0].tolist() == [1, 0, 2]
    assert M.top_k(s, 3, rel, ties="stable")[0].tolist() == [0, 1, 2]
