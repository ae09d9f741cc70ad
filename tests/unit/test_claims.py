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


@pytest.mark.parametrize(("outcomes", "expected"), [
    (["better", "better"], "supported"), (["better", "undefined"], "supported"),
    (["worse", "no difference"], "not supported"), (["better", "worse"], "mixed"),
    (["better", "no difference"], "mixed"), (["undefined"], "undecided"), ([], "undecided"),
])
def test_verdict_rule(outcomes, expected):
    assert C.verdict(outcomes) == expected


def test_verdict_table_formats_evidence_and_checks_claims():
    ev = [C.comparison("a - b", "auc", {"estimate": 0.02, "ci_low": 0.01, "ci_high": 0.03}),
          C.comparison("a - b", "rmse", {"estimate": 0.02, "ci_low": 0.01, "ci_high": 0.03})]
    table = C.verdict_table([{"claim": "x", "section": "§1", "experiment": "e", "evidence": ev, "caveats": "-"}])
    row = table.iloc[0]
    assert row["verdict"] == "mixed" and "+0.0200 [+0.0100, +0.0300] (better)" in row["numbers (95% CI)"]
    assert "(worse)" in row["numbers (95% CI)"]
    with pytest.raises(ValueError, match="no evidence"):
        C.verdict_table([{"claim": "y", "section": "", "experiment": "", "evidence": [], "caveats": ""}])
    with pytest.raises(ValueError, match="not one of"):
        C.verdict_table([{"claim": "z", "section": "", "experiment": "", "evidence": ev, "caveats": "", "verdict": "yes"}])
    with pytest.raises(ValueError, match="unknown outcomes"):
        C.verdict(["great"])
