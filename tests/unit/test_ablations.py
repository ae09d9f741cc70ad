"""Ablation helpers: the MMoE synthetic study, the λ simplex and the Pareto front."""

from __future__ import annotations

import math

import pytest

from mtrec_study.results import as_tidy, tidy_rows
from mtrec_study.study import ablations as A


def test_the_three_models_have_about_the_same_size():
    sizes = {k: A.build_synthetic_model(k).count_params() for k in A.SYNTHETIC_MODELS}
    assert max(sizes.values()) / min(sizes.values()) < 1.15, sizes
    with pytest.raises(ValueError, match="valid: shared_bottom, omoe, mmoe"):
        A.build_synthetic_model("ple")


def test_one_tiny_run_is_finite_and_deterministic():
    a = A.run_synthetic("mmoe", p=0.5, seed=1, n_train=400, n_test=100, epochs=2)
    b = A.run_synthetic("mmoe", p=0.5, seed=1, n_train=400, n_test=100, epochs=2)
    assert math.isfinite(a["total"]) and a["total"] == pytest.approx(a["task1"] + a["task2"])
    assert a == b


def test_degradation_worked_example():
    rows = []
    for model, hi, lo in (("mmoe", 1.0, 1.1), ("shared_bottom", 1.0, 1.5)):
        for seed in (0, 1):
            rows += tidy_rows({"test_mse_total": hi}, model, "synthetic", "p=1", seed)
            rows += tidy_rows({"test_mse_total": lo}, model, "synthetic", "p=0.5", seed)
    d = A.degradation(as_tidy(rows))
    assert d.loc["mmoe", "growth"] == pytest.approx(0.1) and d.loc["shared_bottom", "growth_pct"] == pytest.approx(50)


def test_simplex_grid_covers_vertices_midpoints_and_equal_weights():
    one = A.simplex_grid(1)
    assert sorted(one) == sorted([(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1 / 3, 1 / 3, 1 / 3)])
    two = A.simplex_grid(2)
    assert len(two) == 7 and (0.5, 0.5, 0.0) in two and all(math.isclose(sum(p), 1.0) for p in two)
    three = A.simplex_grid(3)
    assert len(three) == 10 and sum(all(math.isclose(x, 1 / 3) for x in p) for p in three) == 1  # not doubled
    assert A.lambda_name((0.5, 0.5, 0.0)) == "λ=(0.50,0.50,0.00)"
    with pytest.raises(ValueError, match="steps >= 1"):
        A.simplex_grid(0)


def test_pareto_front_worked_example():
    import pandas as pd

    frame = pd.DataFrame({"auc": [0.80, 0.78, 0.79, 0.70, float("nan")], "rmse": [0.95, 0.90, 0.96, 0.90, 0.1]},
                         index=["a", "b", "c", "d", "e"])
    front = A.pareto_front(frame, {"auc": "max", "rmse": "min"})
    # c is dominated by a (lower AUC, higher RMSE); d by b (same RMSE, lower AUC); e has a NaN.
    assert front.to_dict() == {"a": True, "b": True, "c": False, "d": False, "e": False}
    with pytest.raises(ValueError, match="valid: 'max', 'min'"):
        A.pareto_front(frame, {"auc": "up"})
    with pytest.raises(ValueError, match="is not a column"):
        A.pareto_front(frame, {"ndcg": "max"})
