"""Corrected resampled t-test and Holm's adjustment, against hand-worked examples."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mtrec_study import evaluation as E


def test_corrected_ttest_by_hand():
    """d = 0.01..0.05, k = 5, ratio 1/4: mean 0.03, s² = 0.00025, t = 0.03 / sqrt(0.45 · 0.00025) = 2√2."""
    t, p = E.corrected_ttest(np.array([0.01, 0.02, 0.03, 0.04, 0.05]), 0.25)
    assert t == pytest.approx(2 * np.sqrt(2), rel=1e-12)
    assert p == pytest.approx(2 * stats.t.sf(2 * np.sqrt(2), df=4), rel=1e-12)
    assert p == pytest.approx(0.0474, abs=1e-4)  # a t-table's value for t = 2.83 with 4 degrees of freedom


def test_corrected_ttest_with_ratio_zero_is_the_plain_paired_ttest():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=7), rng.normal(size=7)
    t, p = E.corrected_ttest(a - b, 0.0)
    ref = stats.ttest_rel(a, b)
    assert t == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)


def test_correction_only_ever_weakens_the_evidence():
    d = np.array([0.02, 0.03, 0.025, 0.04, 0.035])
    plain = E.corrected_ttest(d, 0.0)[1]
    assert E.corrected_ttest(d, 0.25)[1] > plain
    assert E.corrected_ttest(d, 1.0)[1] > E.corrected_ttest(d, 0.25)[1]


def test_corrected_ttest_undefined_and_bad_input():
    assert all(np.isnan(E.corrected_ttest(np.array([0.1]), 0.25)))
    assert all(np.isnan(E.corrected_ttest(np.array([0.1, 0.1, 0.1]), 0.25)))
    with pytest.raises(ValueError, match="test_train_ratio must be >= 0, got -0.1"):
        E.corrected_ttest(np.array([0.1, 0.2]), -0.1)


def test_holm_by_hand():
    """p = (0.01, 0.04, 0.03), m = 3: sorted 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 -> made monotone 0.06."""
    assert E.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert E.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    out = E.holm([0.02, np.nan, 0.01])  # NaN is not part of the family
    assert np.isnan(out[1]) and out[[0, 2]] == pytest.approx([0.02, 0.02])
    assert E.holm([]).size == 0


def _folds(diffs, base=0.7):
    rows = []
    for f, d in enumerate(diffs):
        rows.append({"model": "a", "task": "interest", "metric": "auc", "protocol": "cv", "fold": f,
                     "segment": "all", "value": base + d})
        rows.append({"model": "b", "task": "interest", "metric": "auc", "protocol": "cv", "fold": f,
                     "segment": "all", "value": base})
    return pd.DataFrame(rows)


def test_paired_test_reports_the_kfold_corrected_p_value():
    tidy = _folds([0.01, 0.02, 0.03, 0.04, 0.05])
    out = E.paired_test(tidy, "a", "b", "interest", "auc")
    assert out["t_corrected"] == pytest.approx(2 * np.sqrt(2), rel=1e-9)  # k = 5 folds: ratio 1/4
    assert out["p_corrected"] > out["p_t"]
    plain = E.paired_test(tidy, "a", "b", "interest", "auc", test_train_ratio=0)
    assert plain["p_corrected"] == pytest.approx(plain["p_t"])
    with pytest.raises(ValueError, match="use 'kfold' or a number"):
        E.paired_test(tidy, "a", "b", "interest", "auc", test_train_ratio="loo")


def test_paired_tests_adjusts_the_family_with_holm():
    tidy = pd.concat([_folds([0.01, 0.02, 0.03, 0.04, 0.05]),
                      _folds([0.03, -0.01, 0.02, 0.0, 0.01]).replace({"a": "c"})], ignore_index=True)
    out = E.paired_tests(tidy, ["a", "c"], "b", [("interest", "auc")])
    assert list(out["model"]) == ["a", "c"]
    assert out["p_holm"].to_numpy() == pytest.approx(E.holm(out["p_corrected"].to_numpy()))
    assert (out["p_holm"] >= out["p_corrected"]).all()
