"""metrics.py behaviour that the mutation run left untested: exact hand-worked values of
the binary metrics, the reliability table and GAUC, the edges (empty input, one row, one class,
K beyond the catalogue, excluded item 0), silence where a value is defined by convention, and the
messages that name the task. References are scikit-learn, brute force or worked by hand."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from mtrec_study.evaluation import metrics as M

INF = np.inf


def _silently(fn, *args, **kwargs):
    """Call ``fn`` with every warning turned into an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kwargs)


def _best_f1_threshold(y, p):
    """Brute force: the lowest score threshold (predict p >= t) with the highest F1."""
    best_t, best_f1 = None, -1.0
    for t in np.unique(p):
        f1 = skm.f1_score(y, (np.asarray(p) >= t).astype(int), zero_division=0)
        if f1 > best_f1 + 1e-12:
            best_t, best_f1 = float(t), f1
    return best_t


# --------------------------------------------------------------------------- validation messages
BAD_INPUT = {  # kind -> (labels, probabilities, message after "task '<name>': ")
    "labels": ([0, 2], [0.1, 0.2], r"binary metrics need labels in \{0, 1\}, got values \[0\.0, 2\.0\]"),
    "scores": ([0, 1], [0.1, np.nan], "1 NaN and 0 infinite scores out of 2; a diverged model"),
    "probabilities": ([0, 1], [0.1, 1.5], r"probabilities must lie in \[0, 1\], got \[0\.1, 1\.5\]"),
}
CALLS = {
    "roc_auc": (M.roc_auc, ("labels", "scores")),
    "choose_threshold": (M.choose_threshold, ("labels", "scores")),
    "reliability_curve": (M.reliability_curve, ("labels", "scores", "probabilities")),
    "expected_calibration_error": (M.expected_calibration_error, ("labels", "scores", "probabilities")),
    "gauc": (lambda y, p, **kw: M.gauc(np.zeros(len(y)), y, p, **kw), ("labels", "scores")),
    "binary_metrics": (M.binary_metrics, ("labels", "scores", "probabilities")),
}
CASES = [(name, kind) for name, (_, kinds) in CALLS.items() for kind in kinds]


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_binary_checks_name_the_task_default_binary(name, kind):
    """Catches a check that drops the task name, passes another, or changes the default 'binary'."""
    fn = CALLS[name][0]
    y, p, msg = BAD_INPUT[kind]
    with pytest.raises(ValueError, match=f"^task 'binary': {msg}"):
        fn(np.array(y), np.array(p))
    with pytest.raises(ValueError, match=f"^task 'click': {msg}"):
        fn(np.array(y), np.array(p), task="click")


def test_bad_labels_message_lists_the_first_five_distinct_values():
    """Catches a message that shows other values, or more or fewer than five of them."""
    with pytest.raises(ValueError, match=r"got values \[0\.0, 1\.0, 2\.0, 3\.0, 4\.0\]$"):
        M.roc_auc(np.array([6, 5, 4, 3, 2, 1, 0, 0]), np.zeros(8))


def test_labels_are_converted_to_numbers_before_the_check():
    """Catches a check on the raw values: text labels '0'/'1' (as read from a CSV) are 0 and 1."""
    y = np.array(["1", "0", "1", "0"])
    p = np.array([0.9, 0.2, 0.4, 0.6])
    assert M.roc_auc(y, p) == pytest.approx(skm.roc_auc_score([1, 0, 1, 0], p))


def test_check_scores_messages_and_neg_inf_rule():
    """Catches a changed default task, message, -inf rule, or a result that is not float."""
    with pytest.raises(ValueError, match=r"^task 'scores': 1 NaN and 0 infinite scores out of 3; "
                                         "a diverged model or a broken feature pipeline is the usual cause$"):
        M.check_scores([0.1, np.nan, 0.3])
    with pytest.raises(ValueError, match="0 NaN and 1 infinite scores out of 2"):
        M.check_scores([0.5, -INF])  # -inf is only let through on request
    np.testing.assert_array_equal(M.check_scores([0.5, -INF], allow_neg_inf=True), [0.5, -INF])
    with pytest.raises(ValueError, match="0 NaN and 1 infinite scores out of 2"):
        M.check_scores([INF, -INF], allow_neg_inf=True)
    out = M.check_scores([1, 2, 3])
    assert out.dtype == np.float64


# --------------------------------------------------------------------------- binary metrics
def test_binary_metrics_hand_worked_example_every_key():
    """Catches a wrong, renamed, missing or extra key, and GAUC computed from the wrong inputs."""
    y = np.array([1, 0, 1, 0, 1])
    p = np.array([0.9, 0.6, 0.4, 0.2, 0.7])
    users = np.array(["a", "a", "a", "b", "b"])
    got = M.binary_metrics(y, p, users=users)
    # predictions at 0.5: [1, 1, 0, 0, 1] -> TP 2, FP 1, FN 1, TN 1
    want = {
        "accuracy": 3 / 5, "precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3,
        "auc": 5 / 6,  # 5 of the 6 (positive, negative) pairs are ordered correctly
        "logloss": -(math.log(0.9) + math.log(0.4) + math.log(0.4) + math.log(0.8) + math.log(0.7)) / 5,
        "ece": (0.1 + 0.6 + 0.6 + 0.2 + 0.3) / 5,  # every prediction alone in its bin
        "gauc": (3 * 0.5 + 2 * 1.0) / 5,  # user a: AUC 1/2 over 3 rows; user b: AUC 1 over 2 rows
    }
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    without = M.binary_metrics(y, p)
    assert set(without) == set(want) - {"gauc"}


def test_binary_metrics_one_row_and_no_rows():
    """Catches a one-row input being refused, and a changed or missing empty-input message."""
    got = M.binary_metrics(np.array([1]), np.array([0.8]))
    assert (got["accuracy"], got["precision"], got["recall"], got["f1"]) == (1.0, 1.0, 1.0, 1.0)
    assert math.isnan(got["auc"])
    assert got["logloss"] == pytest.approx(-math.log(0.8))
    assert got["ece"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="^task 'binary': no labelled rows to evaluate$"):
        M.binary_metrics(np.array([]), np.array([]))
    with pytest.raises(ValueError, match="^task 'click': no labelled rows to evaluate$"):
        M.binary_metrics(np.array([]), np.array([]), task="click")


def test_undefined_precision_recall_f1_are_zero_silently():
    """Catches zero_division left at scikit-learn's warning default or set to 1."""
    got = _silently(M.binary_metrics, np.array([0, 0, 0]), np.array([0.1, 0.2, 0.3]))
    assert (got["precision"], got["recall"], got["f1"]) == (0.0, 0.0, 0.0)
    assert got["accuracy"] == 1.0
    got = _silently(M.binary_metrics, np.array([0, 1, 1]), np.array([0.1, 0.2, 0.3]))
    assert (got["precision"], got["recall"], got["f1"]) == (0.0, 0.0, 0.0)


def test_logloss_caps_a_certain_wrong_prediction_at_minus_log_1e7():
    """Catches a changed or missing clip bound: p = 0 or 1 (both allowed) costs -ln(1e-7), not more."""
    got = M.binary_metrics(np.array([1, 0]), np.array([0.0, 1.0]))
    assert got["logloss"] == pytest.approx(-math.log(1e-7), rel=1e-6)
    assert got["accuracy"] == 0.0
    right = M.binary_metrics(np.array([0, 1]), np.array([0.0, 1.0]))
    assert right["logloss"] == pytest.approx(-math.log(1 - 1e-7), rel=1e-6)


def test_default_ece_uses_ten_bins():
    """Catches a changed default bin count: 0.05 and 0.095 share bin 0 of 10 but not of 11."""
    y, p = np.array([0, 1]), np.array([0.05, 0.095])
    want = abs(0.5 - (0.05 + 0.095) / 2)  # one bin: positive rate 1/2, mean prediction 0.0725
    assert M.expected_calibration_error(y, p) == pytest.approx(want)
    assert M.binary_metrics(y, p)["ece"] == pytest.approx(want)
    assert M.expected_calibration_error(y, p, n_bins=11) == pytest.approx((0.05 + 0.905) / 2)


# --------------------------------------------------------------------------- AUC and thresholds
def test_auc_of_one_class_or_no_rows_is_nan_without_warnings():
    """Catches the single-class shortcut being lost (scikit-learn warns) or failing on empty input."""
    for fn in (M.roc_auc, M.rank_auc):
        assert math.isnan(_silently(fn, np.array([0, 0, 0]), np.array([0.1, 0.2, 0.3])))
        assert math.isnan(_silently(fn, np.array([1, 1]), np.array([0.1, 0.2])))
        assert math.isnan(_silently(fn, np.array([]), np.array([])))


def test_choose_threshold_edges_against_brute_force():
    """Catches 0/0 F1 taken as the best, the top threshold being skipped, and F1 computed only where P+R > 1."""
    cases = [
        (np.array([0, 1]), np.array([0.9, 0.1]), 0.1),  # at 0.9, P = R = 0: F1 must be 0, not NaN
        (np.array([0, 1]), np.array([0.1, 0.9]), 0.9),  # the best threshold is the highest score
        # 2 positives in 10: at >= 0.9, P = R = 1/2 (F1 1/2); at full recall P = 1/5 (F1 1/3)
        (np.array([0, 1, 0, 0, 0, 0, 0, 0, 0, 1]),
         np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]), 0.9),
    ]
    for y, p, want in cases:
        assert _best_f1_threshold(y, p) == want
        assert M.choose_threshold(y, p) == want


def test_choose_threshold_without_rows_is_one_half():
    """Catches the empty-input shortcut failing (no min of an empty array)."""
    assert M.choose_threshold(np.array([]), np.array([])) == 0.5


# --------------------------------------------------------------------------- calibration
def test_reliability_curve_hand_worked_with_edges_and_an_empty_bin():
    """Catches wrong bin edges, p = 1 outside the last bin, p = 0 refused, renamed columns, warnings."""
    y = np.array([0, 0, 1, 0, 1])
    p = np.array([0.0, 0.1, 0.3, 0.3, 1.0])
    got = _silently(M.reliability_curve, y, p, n_bins=4)
    want = pd.DataFrame({"bin_low": [0.0, 0.25, 0.5, 0.75], "bin_high": [0.25, 0.5, 0.75, 1.0],
                         "count": np.array([2, 2, 0, 1], dtype="int64"),
                         "mean_pred": [0.05, 0.3, np.nan, 1.0], "frac_pos": [0.0, 0.5, np.nan, 1.0]})
    pd.testing.assert_frame_equal(got, want)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=4)  # scikit-learn drops the empty bin
    used = got["count"] > 0
    np.testing.assert_allclose(got.loc[used, "frac_pos"], prob_true)
    np.testing.assert_allclose(got.loc[used, "mean_pred"], prob_pred)
    assert M.expected_calibration_error(y, p, n_bins=4) == pytest.approx(2 / 5 * 0.05 + 2 / 5 * 0.2)


def test_reliability_curve_keeps_empty_top_bins_and_defaults_to_ten():
    """Catches bincount without minlength (short columns) and a changed default bin count."""
    got = M.reliability_curve(np.array([0, 1]), np.array([0.1, 0.3]), n_bins=4)
    assert got["count"].tolist() == [1, 1, 0, 0]
    assert got["frac_pos"].isna().tolist() == [False, False, True, True]
    got = M.reliability_curve(np.array([0, 1]), np.array([0.05, 0.95]))
    assert len(got) == 10
    np.testing.assert_allclose(got["bin_low"], np.arange(10) / 10)
    np.testing.assert_allclose(got["bin_high"], np.arange(1, 11) / 10)


def test_ece_of_no_rows_is_nan():
    """Catches empty bins counted as used (0/0 weights summed to 0) or a broken NaN literal."""
    assert math.isnan(M.expected_calibration_error(np.array([]), np.array([])))


# --------------------------------------------------------------------------- GAUC
def test_gauc_leaves_out_users_with_only_negatives():
    """Catches users with no positive being counted (their n in the denominator)."""
    users = np.array(["a", "a", "b", "b", "b", "c", "c", "c", "c"])
    y = np.array([1, 0, 0, 0, 0, 1, 0, 1, 0])
    s = np.array([0.9, 0.1, 0.5, 0.6, 0.7, 0.2, 0.4, 0.6, 0.6])
    auc_c = skm.roc_auc_score([1, 0, 1, 0], [0.2, 0.4, 0.6, 0.6])  # 1.5 / 4
    assert auc_c == pytest.approx(0.375)
    assert M.gauc(users, y, s) == pytest.approx((2 * 1.0 + 4 * auc_c) / 6)


# --------------------------------------------------------------------------- top-K
def test_top_k_messages():
    """Catches missing or altered messages for a bad tie rule or K."""
    with pytest.raises(ValueError, match=r"^unknown tie rule 'random'; valid: pessimistic, optimistic, stable$"):
        M.top_k(np.zeros((1, 3)), 2, ties="random")
    with pytest.raises(ValueError, match=r"^K must be >= 1, got 0$"):
        M.top_k(np.zeros((1, 3)), 0)


def test_top_k_pads_short_rows_with_minus_one():
    """Catches another pad value, an empty catalogue, a one-candidate catalogue and excluded item 0."""
    np.testing.assert_array_equal(M.top_k(np.array([[0.2, 0.9]]), 4), [[1, 0, -1, -1]])
    np.testing.assert_array_equal(M.top_k(np.zeros((2, 0)), 3), -np.ones((2, 3), int))
    np.testing.assert_array_equal(M.top_k(np.array([[5.0], [1.0]]), 2), [[0, -1], [0, -1]])
    np.testing.assert_array_equal(M.top_k(np.array([[-INF, 1.0, -INF]]), 3), [[1, -1, -1]])
    np.testing.assert_array_equal(M.top_k(np.array([[-INF, -INF], [3.0, -INF]]), 2), [[-1, -1], [0, -1]])


def test_top_k_ranks_unsigned_scores_as_numbers():
    """Catches negating unsigned integers (0 wraps to the top) instead of converting to float."""
    scores = np.array([[0, 3, 1], [2, 0, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(M.top_k(scores, 2), [[1, 2], [0, 1]])


def test_top_k_tie_rules_without_or_with_numeric_relevance():
    """Catches relevance that is not read as bool: absent (all non-relevant) or given as 0.0/1.0."""
    scores = np.array([[1.0, 1.0, 1.0, 0.0]])
    for ties in M.TIES:  # nothing relevant: every rule keeps column order
        np.testing.assert_array_equal(M.top_k(scores, 2, ties=ties), [[0, 1]])
    rel = np.array([[0.0, 0.0, 1.0, 0.0]])
    np.testing.assert_array_equal(M.top_k(scores, 2, rel, ties="optimistic"), [[2, 0]])
    np.testing.assert_array_equal(M.top_k(scores, 2, rel, ties="pessimistic"), [[0, 1]])


# --------------------------------------------------------------------------- ranking
def test_ranking_metrics_messages():
    """Catches missing or altered messages (K, shapes, excluded relevant items and their count)."""
    ok = np.zeros((2, 3))
    rel = np.array([[True, False, False], [False, True, False]])
    with pytest.raises(ValueError, match=r"^K values must be >= 1, got \[0, 3\]$"):
        M.ranking_metrics(ok, rel, ks=(3, 0))
    with pytest.raises(ValueError, match=r"^K values must be >= 1, got \[\]$"):
        M.ranking_metrics(ok, rel, ks=())
    with pytest.raises(ValueError, match=r"^scores \(2, 3\) and relevant \(2, 2\) must be the same 2-D shape$"):
        M.ranking_metrics(ok, rel[:, :2])
    with pytest.raises(ValueError, match=r"^scores \(3,\) and relevant \(3,\) must be the same 2-D shape$"):
        M.ranking_metrics(ok[0], rel[0])
    scores = np.array([[-INF, 0.5, -INF], [0.1, 0.2, 0.3]])
    with pytest.raises(ValueError, match=r"^task 'item': 1 relevant candidates are excluded "
                                         r"\(held-out items that also occur in training\?\)$"):
        M.ranking_metrics(scores, rel)
    with pytest.raises(ValueError, match="^task 'click': 1 relevant"):
        M.ranking_metrics(scores, rel, task="click")


def test_ranking_metrics_precision_counts_each_users_own_candidates():
    """Catches the candidate count taken over the whole matrix instead of per user."""
    scores = np.array([[3.0, 2.0, 1.0], [3.0, -INF, -INF]])
    rel = np.array([[True, False, False], [True, False, False]])
    got = M.ranking_metrics(scores, rel, ks=(5,))
    np.testing.assert_allclose(got["precision@5"], [1 / 3, 1 / 1])
    np.testing.assert_allclose(got["hr@5"], [1.0, 1.0])


def test_ranking_metrics_reads_numeric_relevance_as_bool():
    """Catches relevance kept as floats (bitwise & on floats fails)."""
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(5, 8)).round(1)
    rel = rng.random((5, 8)) < 0.3
    want = M.ranking_metrics(scores, rel, ks=(2, 4))
    pd.testing.assert_frame_equal(M.ranking_metrics(scores, rel.astype(float), ks=(2, 4)), want)


def test_rank_in_blocks_passes_the_tie_rule():
    """Catches the tie rule not reaching the metrics: constant scores, one relevant item of three."""
    def block(users):
        return np.zeros((len(users), 3))

    def relevant(users):
        return np.tile([False, True, False], (len(users), 1))

    for ties, hr in (("optimistic", 1.0), ("pessimistic", 0.0), ("stable", 0.0)):
        got, lists = M.rank_in_blocks(block, np.array([7, 8]), relevant, None, ks=(1,), ties=ties)
        assert got["hr@1"].tolist() == [hr, hr], ties
        np.testing.assert_array_equal(lists, [[0], [0]])  # lists are relevance-blind


# --------------------------------------------------------------------------- beyond accuracy
def test_ild_goes_on_after_a_short_list_and_is_silent_when_none_qualifies():
    """Catches stopping at the first short list, and a mean over nothing (NaN with a warning)."""
    lists = np.array([[0, -1, -1], [0, 1, -1], [1, -1, -1], [0, 1, 2]])
    vecs = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    per = M.intra_list_diversity(lists, vecs, per_list=True)
    d02 = 1 - 1 / math.sqrt(2)  # cosine distance of [1, 0] and [1, 1]
    np.testing.assert_allclose(per, [np.nan, 1.0, np.nan, (1.0 + d02 + d02) / 3])
    assert M.intra_list_diversity(lists, vecs) == pytest.approx((1.0 + (1.0 + 2 * d02) / 3) / 2)
    assert math.isnan(_silently(M.intra_list_diversity, np.array([[0, -1], [-1, -1]]), vecs))


def test_novelty_of_a_single_recommended_item():
    """Catches one recommended item being treated as none."""
    # p(2) = (3 + 1) / (7 + 1) = 1/2 -> 1 bit
    assert M.novelty(np.array([[2, -1]]), np.array([5, 1, 3]), 7) == pytest.approx(1.0)


def test_gini_of_a_single_recommendation():
    """Catches one recommendation being treated as none; checked against mean absolute difference."""
    counts = np.array([0.0, 0.0, 1.0])
    mad = np.abs(counts[:, None] - counts[None, :]).sum() / (2 * counts.size ** 2 * counts.mean())
    assert mad == pytest.approx(2 / 3)
    assert M.gini_index(np.array([[2]]), 3) == pytest.approx(mad)


# --------------------------------------------------------------------------- larger inputs
def _ild_brute_force(lists, vecs):
    """Per-list mean pairwise cosine distance by explicit loops; a zero vector is at distance 1."""
    out = []
    for row in lists:
        items = [i for i in row if i >= 0]
        dists = []
        for a in range(len(items)):
            for b in range(a + 1, len(items)):
                va, vb = vecs[items[a]], vecs[items[b]]
                na, nb = np.linalg.norm(va), np.linalg.norm(vb)
                dists.append(1.0 if na == 0 or nb == 0 else 1.0 - float(va @ vb) / (na * nb))
        out.append(np.mean(dists) if dists else np.nan)
    return np.array(out)


@pytest.mark.parametrize("n_items", [16, 65, 128, 129, 1000])
@pytest.mark.parametrize("dim", [1, 2, 3, 8])
def test_ild_zero_vectors_at_distance_one_in_larger_catalogues(n_items, dim):
    """Catches unit vectors left uninitialised for zero rows (no out= buffer of zeros).

    Only when that memory happens to hold non-zeros: it often does at these sizes, not always."""
    rng = np.random.default_rng(n_items * 10 + dim)
    vecs = rng.random((n_items, dim)) + 0.1
    zero = [0, n_items // 2, n_items - 1]
    vecs[zero] = 0.0
    lists = np.array([[0, 1, -1], [n_items - 1, 2, 3], [n_items // 2, 0, n_items - 1], [1, 2, 3]])
    got = M.intra_list_diversity(lists, vecs, per_list=True)
    np.testing.assert_allclose(got, _ild_brute_force(lists, vecs), rtol=1e-12, atol=1e-12)


def _best_f1(y, p):
    """Brute force: the highest F1 over every threshold ``p >= t`` with t a score."""
    pred = p[None, :] >= np.unique(p)[:, None]
    tp = (pred & (y[None, :] == 1)).sum(axis=1)
    f1 = 2 * tp / (pred.sum(axis=1) + (y == 1).sum())
    return f1.max()


@pytest.mark.parametrize("n", [40, 200, 300, 1000])
def test_choose_threshold_maximises_f1_when_the_top_scores_are_negatives(n):
    """Catches F1 left uninitialised where precision + recall = 0 (the top scores, all negatives).

    Only when that memory happens to hold non-zeros (seen at n = 300), so not in every run."""
    rng = np.random.default_rng(n)
    p = rng.permutation(np.linspace(0.001, 0.999, n))
    y = (rng.random(n) < p).astype(int)
    y[np.argsort(p)[-5:]] = 0  # P = R = 0 at the five highest thresholds
    t = M.choose_threshold(y, p)
    f1 = skm.f1_score(y, (p >= t).astype(int))
    assert f1 == pytest.approx(_best_f1(y, p), abs=1e-12)
    assert t < np.sort(p)[-5]
