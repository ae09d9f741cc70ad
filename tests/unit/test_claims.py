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


def test_verdict_table_counts_many_secondary_comparisons_without_a_difference():
    def row(label, low, high):
        return C.comparison(label, "auc", {"estimate": (low + high) / 2, "ci_low": low, "ci_high": high})

    primary = row("p", 0.01, 0.03)
    flat = [row(f"s{k}", -0.01, 0.01) for k in range(4)]
    base = {"claim": "x", "section": "§1", "experiment": "e", "caveats": "-", "primary": "p"}
    few = C.verdict_table([{**base, "evidence": [primary, *flat[:3]]}]).iloc[0]["other comparisons (95% CI)"]
    assert few.count("[") == 3 and "s2: +0.0000 [-0.0100, +0.0100] (no difference)" in few  # three: each in full
    many = C.verdict_table([{**base, "evidence": [primary, *flat]}]).iloc[0]["other comparisons (95% CI)"]
    assert many == "4 comparisons, all with no difference (07 shows each)"
    mixed = C.verdict_table([{**base, "evidence": [primary, *flat, row("w", -0.03, -0.01)]}]).iloc[0]
    assert mixed["other comparisons (95% CI)"] == ("w: -0.0200 [-0.0300, -0.0100] (worse); "
                                                   "4 more with no difference (07 shows each)")
    assert mixed["verdict"] == "supported"  # the count changes what is shown, never the verdict


def _log_t_interval(ratios, t):
    """Worked by hand: the mean and sample sd of the log ratios, t times the standard error, mapped back."""
    logs = [math.log(r) for r in ratios]
    m = sum(logs) / len(logs)
    se = math.sqrt(sum((x - m) ** 2 for x in logs) / (len(logs) - 1) / len(logs))
    return math.exp(m) - 1, math.exp(m - t * se) - 1, math.exp(m + t * se) - 1


# t(0.975, 2) = 4.302653 and t(0.975, 4) = 2.776445, from a printed table.
@pytest.mark.parametrize(("ratios", "t", "reads", "expected"), [
    ([1.1, 1.2, 1.3], 4.302653, "no difference", "inconclusive"),
    ([1.15, 1.2, 1.25, 1.2, 1.2], 2.776445, "longer", "supported"),
    ([0.5, 0.55, 0.6], 4.302653, "shorter", "refuted"),
    ([0.4, 3.0], 12.706205, "no difference", "inconclusive"),  # a wide interval still stays above -1
])
def test_ratio_comparison_is_a_t_interval_of_log_ratios_over_seeds(ratios, t, reads, expected):
    row = C.ratio_comparison(C.ONE_SINGLE, ratios)
    assert (row["estimate"], row["ci_low"], row["ci_high"]) == pytest.approx(_log_t_interval(ratios, t), rel=1e-6, abs=1e-6)
    assert row["ci_low"] > -1
    assert row["seeds"] == len(ratios) and row["seed_estimates"] == pytest.approx([r - 1 for r in ratios])
    assert row["outcome_reads"] == reads and C.verdict(row["outcome"]) == expected
    # The verdict table takes it by the one rule and shows the outcome in the words of time.
    table = C.verdict_table([{"claim": "slow", "section": "§3.3", "experiment": "e", "caveats": "c",
                              "evidence": [row], "primary": f"{C.ONE_SINGLE} − 1"}])
    assert table.loc[0, "verdict"] == expected and f"({reads})" in table.loc[0, "primary comparison (95% CI)"]
    assert "own rule" not in table.loc[0, "caveats"]


def test_ratio_comparison_edge_cases():
    one = C.ratio_comparison(C.ONE_SINGLE, [1.2])  # one seed: no interval, so no verdict either way
    assert one["outcome"] == "undefined" and C.verdict(one["outcome"]) == "inconclusive"
    same = C.ratio_comparison(C.ONE_SINGLE, [1.2, 1.2])  # no spread to estimate: no interval either
    assert same["estimate"] == pytest.approx(0.2) and same["outcome"] == "undefined"
    assert one["comparison"] == f"{C.ONE_SINGLE} − 1"
    with pytest.raises(ValueError, match="confidence must lie strictly between 0 and 1"):
        C.ratio_comparison(C.ONE_SINGLE, [1.1, 1.2], confidence=95)
    for bad in ([], [1.2, 0.0], [1.2, float("nan")], [-1.0]):
        with pytest.raises(ValueError, match="one positive finite ratio per training seed"):
            C.ratio_comparison(C.ONE_SINGLE, bad)


def test_overfitting_verdict_threshold():
    assert C.overfitting_verdict([0.0, 0.011], [1.0, 1.0])[0] == "supported"
    assert C.overfitting_verdict([0.0, 0.01], [1.0, 1.0])[0] == "refuted"  # exactly 1% is not more than 1%
    with pytest.raises(ValueError, match="one rise per validation loss"):
        C.overfitting_verdict([0.1], [1.0, 2.0])
