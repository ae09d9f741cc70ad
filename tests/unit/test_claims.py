"""The verdict rule of notebook 07 on hand-worked intervals."""

from __future__ import annotations

import math

import pytest

from mtrec_study.study import claims as C


@pytest.mark.parametrize(("low", "high", "metric", "expected"), [
    (0.01, 0.03, "auc", "better"), (-0.03, -0.01, "auc", "worse"), (-0.01, 0.02, "auc", "no difference"),
    (-0.03, -0.01, "rmse", "better"), (0.01, 0.03, "rmse", "worse"), (math.nan, 0.1, "auc", "undefined"),
    (0.0, 0.2, "auc", "no difference"),  # touching 0 is not excluding it
])
def test_outcome_follows_the_interval_and_the_metric_direction(low, high, metric, expected):
    assert C.outcome(low, high, metric) == expected


def test_outcome_rejects_reversed_interval_and_honours_explicit_direction():
    with pytest.raises(ValueError, match="reversed"):
        C.outcome(0.2, 0.1, "auc")
    assert C.outcome(-0.2, -0.1, "ild_genre", higher_is_better=False) == "better"


@pytest.mark.parametrize(("primary", "expected"), [
    ("better", "supported"), ("worse", "refuted"), ("no difference", "inconclusive"), ("undefined", "inconclusive"),
])
def test_verdict_is_the_primary_comparisons(primary, expected):
    assert C.verdict(primary) == expected


def test_verdict_table_reads_the_primary_comparison_only():
    ev = [C.comparison("a - b, auc", "auc", {"estimate": 0.02, "ci_low": 0.01, "ci_high": 0.03}),
          C.comparison("a - b, rmse", "rmse", {"estimate": 0.02, "ci_low": 0.01, "ci_high": 0.03})]
    base = {"claim": "x", "section": "§1", "experiment": "e", "evidence": ev, "caveats": "-"}
    row = C.verdict_table([{**base, "primary": "a - b, auc"}]).iloc[0]
    assert row["verdict"] == "supported"
    assert row["primary comparison (95% CI)"] == "a - b, auc: +0.0200 [+0.0100, +0.0300] (better)"
    assert row["training seeds"] == 1  # a result without n_seeds rests on one training
    pooled = C.comparison("a - b, auc", "auc", {"estimate": 0.02, "ci_low": 0.01, "ci_high": 0.03, "n_seeds": 5})
    assert C.verdict_table([{**base, "evidence": [pooled], "primary": "a - b, auc"}]).iloc[0]["training seeds"] == 5
    assert row["other comparisons (95% CI)"] == "a - b, rmse: +0.0200 [+0.0100, +0.0300] (worse)"  # shown, not voted
    assert C.verdict_table([{**base, "primary": "a - b, rmse"}]).iloc[0]["verdict"] == "refuted"
    own = C.verdict_table([{**base, "verdict": "inconclusive", "rule": "a stated threshold"}]).iloc[0]
    assert own["verdict"] == "inconclusive" and own["caveats"].endswith("verdict by its own rule: a stated threshold")
    assert own["primary comparison (95% CI)"] == "—" and own["other comparisons (95% CI)"].count("[") == 2
    assert own["training seeds"] == "—"
    with pytest.raises(ValueError, match="no evidence"):
        C.verdict_table([{**base, "evidence": [], "primary": "a - b, auc"}])
    with pytest.raises(ValueError, match="primary comparison 'c' is not among its evidence rows"):
        C.verdict_table([{**base, "primary": "c"}])
    with pytest.raises(ValueError, match="not one of"):
        C.verdict_table([{**base, "verdict": "yes", "rule": "r"}])
    with pytest.raises(ValueError, match="without stating the rule"):
        C.verdict_table([{**base, "verdict": "supported"}])
    with pytest.raises(ValueError, match="unknown outcome 'great'"):
        C.verdict("great")


@pytest.mark.parametrize(("one", "three", "expected"), [
    (1.5, 0.5, "supported"), (1.1, 0.4, "inconclusive"), (1.05, 0.35, "inconclusive"), (1.0, 0.3, "refuted"),
    (0.8, 0.3, "refuted"),
])
def test_slow_verdict_thresholds(one, three, expected):
    v, rule = C.slow_verdict({C.ONE_SINGLE: one, C.ALL_SINGLES: three})
    assert v == expected and f"{one:.2f}× one" in rule
    with pytest.raises(KeyError, match="time_ratios lacks"):
        C.slow_verdict({C.ONE_SINGLE: one})


def test_overfitting_verdict_threshold():
    assert C.overfitting_verdict([0.0, 0.011], [1.0, 1.0])[0] == "supported"
    assert C.overfitting_verdict([0.0, 0.01], [1.0, 1.0])[0] == "refuted"  # exactly 1% is not more than 1%
    with pytest.raises(ValueError, match="one rise per validation loss"):
        C.overfitting_verdict([0.1], [1.0, 2.0])
