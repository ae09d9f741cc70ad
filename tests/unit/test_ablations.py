"""The MMoE paper's synthetic study: model sizes, one tiny run, and the degradation summary."""

from __future__ import annotations

import math

import pytest

from mtrec_study import ablations as A
from mtrec_study.evaluation import as_tidy, tidy_rows


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
