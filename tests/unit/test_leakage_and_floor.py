"""The leakage check of 02 (fitted statistics, perturbed test rows) and the Wilcoxon floor of 05."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mtrec_study import text as T
from mtrec_study.evaluation.stats import wilcoxon_floor
from mtrec_study.features import FeatureBuilder, compare_statistics, fitted_statistics, perturb_rows
from mtrec_study.prepare import clean, per_user_recent_split


@pytest.fixture(scope="module")
def world_split(small_world):
    cleaned, _ = clean(small_world.data)
    inter = cleaned.interactions
    return cleaned, inter, per_user_recent_split(inter)


def _stats(cleaned, table, rows):
    part = table.iloc[rows]
    return {**fitted_statistics(FeatureBuilder(cleaned.users, cleaned.items).fit(part)),
            "behaviour history": T.behaviour_history(part, 5)}


def test_perturb_rows_changes_only_the_given_rows(world_split):
    cleaned, inter, idx = world_split
    out = perturb_rows(inter, idx["test"], cleaned.users, cleaned.items, seed=1)
    others = np.setdiff1d(np.arange(len(inter)), idx["test"])
    pd.testing.assert_frame_equal(out.iloc[others], inter.iloc[others])
    test_before, test_after = inter.iloc[idx["test"]], out.iloc[idx["test"]]
    for col in ("user_id", "item_id", "timestamp"):
        assert (test_before[col].to_numpy() != test_after[col].to_numpy()).mean() > 0.5, col
    assert out["user_id"].isin(cleaned.users.index).all() and out["item_id"].isin(cleaned.items.index).all()
    assert out.dtypes.equals(inter.dtypes)


def test_fit_on_train_ignores_test_rows_and_the_check_can_fail(world_split):
    cleaned, inter, idx = world_split
    scrambled = perturb_rows(inter, idx["test"], cleaned.users, cleaned.items, seed=1)
    base = _stats(cleaned, inter, idx["train"])
    honest = compare_statistics(base, _stats(cleaned, scrambled, idx["train"]))
    assert honest["unchanged"].all(), honest
    # Fitting on train + test must move the statistics: otherwise the check could not fail.
    leaky = compare_statistics(base, _stats(cleaned, scrambled, np.concatenate([idx["train"], idx["test"]])))
    assert not leaky["unchanged"].all()
    assert not leaky.loc["user counts", "unchanged"] and not leaky.loc["behaviour history", "unchanged"]


def test_compare_statistics_counts_changed_entries():
    a = {"v": pd.Series({1: 1, 2: 2}), "mean": 1.0}
    b = {"v": pd.Series({1: 1, 2: 3, 4: 1}), "mean": 1.0}
    out = compare_statistics(a, b)
    assert out.loc["v", "entries changed"] == 2 and not out.loc["v", "unchanged"]
    assert out.loc["mean", "unchanged"]
    with pytest.raises(ValueError, match="differ in name"):
        compare_statistics(a, {"v": a["v"]})


def test_behaviour_history_is_what_the_vectors_pool():
    train = pd.DataFrame({"user_id": [1, 1, 1, 2], "item_id": [10, 11, 12, 10], "timestamp": [3, 1, 2, 5]})
    hist = T.behaviour_history(train, n_last=2)
    assert hist.to_dict() == {1: "12 10", 2: "10"}
    vecs = pd.DataFrame(np.eye(3), index=[10, 11, 12])
    users = T.user_behaviour_vectors(train, vecs, n_last=2)
    np.testing.assert_allclose(users.loc[1].to_numpy(), np.array([1, 0, 1]) / np.sqrt(2))


@pytest.mark.parametrize("n, expected", [(2, 0.5), (3, 0.25), (5, 0.0625), (6, 0.03125)])
def test_wilcoxon_floor_is_two_over_two_to_the_n(n, expected):
    assert wilcoxon_floor(n) == pytest.approx(expected)
    assert wilcoxon_floor(n) == pytest.approx(2 / 2**n)
    # No arrangement of n differences gets below it.
    rng = np.random.default_rng(n)
    for _ in range(20):
        d = rng.normal(size=n)
        assert stats.wilcoxon(d, method="exact").pvalue >= wilcoxon_floor(n) - 1e-12


def test_wilcoxon_floor_rejects_no_pairs():
    with pytest.raises(ValueError, match="at least one"):
        wilcoxon_floor(0)
