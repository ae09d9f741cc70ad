"""prepare.py against hand-worked tables: exact split sizes, labels, negatives and the cleaning log
(mutation testing showed which details no test pinned down)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtrec_study import prepare
from mtrec_study.datasets.movielens import RatingsData
from mtrec_study.tasks import BEHAVIOUR, INTEREST, ITEM_TASK, label_rows


def _inter(counts: dict[int, int]) -> pd.DataFrame:
    """Users with the given numbers of interactions; item i at time 100 - i (so time order is
    the reverse of item order)."""
    rows = [(u, i, 3.0, 100 - i) for u, n in counts.items() for i in range(1, n + 1)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def _sizes(inter, idx, part):
    return inter.iloc[idx[part]].groupby("user_id").size().to_dict()


def test_per_user_recent_split_sizes_and_order_by_hand():
    inter = _inter({1: 20, 2: 3, 3: 2, 4: 9})
    idx = prepare.per_user_recent_split(inter, valid_frac=0.1, test_frac=0.2)
    # n >= 3: test = max(1, floor(0.2 n)), valid = max(1, floor(0.1 n)); n < 3 stays in training.
    assert _sizes(inter, idx, "test") == {1: 4, 2: 1, 4: 1}
    assert _sizes(inter, idx, "valid") == {1: 2, 2: 1, 4: 1}
    assert _sizes(inter, idx, "train") == {1: 14, 2: 1, 3: 2, 4: 7}
    # The latest rows (smallest item ids here) are test, the ones just before them validation.
    t = inter.iloc[idx["test"]]
    assert sorted(t[t.user_id == 1].item_id) == [1, 2, 3, 4]
    v = inter.iloc[idx["valid"]]
    assert sorted(v[v.user_id == 1].item_id) == [5, 6]
    none = prepare.per_user_recent_split(inter, valid_frac=0.0, test_frac=0.2)
    assert len(none["valid"]) == 0 and _sizes(inter, none, "test") == {1: 4, 2: 1, 4: 1}


def test_per_user_recent_ties_break_by_the_seeded_pair_key():
    inter = pd.DataFrame({"user_id": [1, 1, 1, 1], "item_id": [9, 7, 8, 6], "rating": 3.0, "timestamp": [5, 5, 5, 1]})
    idx = prepare.per_user_recent_split(inter, 0.0, 0.25)
    tied = np.array([9, 7, 8])
    last = tied[np.argmax(prepare.tie_break(np.ones(3, "int64"), tied))]
    assert inter.iloc[idx["test"]]["item_id"].tolist() == [last]


def test_random_split_truncates_each_users_share_and_is_seeded():
    inter = _inter({1: 20, 2: 10, 3: 4})
    idx = prepare.random_split(inter, valid_frac=0.1, test_frac=0.25, seed=3)
    assert _sizes(inter, idx, "test") == {1: 5, 2: 2, 3: 1}  # int(0.25 n): 5, 2.5 → 2, 1
    assert _sizes(inter, idx, "valid") == {1: 2, 2: 1, 3: 1}  # int(0.1 n): 2, 1; 0.4 → 0, then RecBole's one row
    parts = [set(idx[p].tolist()) for p in ("train", "valid", "test")]
    assert sum(map(len, parts)) == len(inter) and set.union(*parts) == set(range(len(inter)))
    again = prepare.random_split(inter, 0.1, 0.25, seed=3)
    other = prepare.random_split(inter, 0.1, 0.25, seed=4)
    assert all(np.array_equal(idx[p], again[p]) for p in idx)
    assert any(not np.array_equal(idx[p], other[p]) for p in idx)
    assert np.array_equal(prepare.split_indices(inter, "random", seed=3, valid_frac=0.1, test_frac=0.25)["test"],
                          idx["test"])


@pytest.mark.parametrize("valid, test", [(0.5, 0.5), (-0.1, 0.2), (0.1, 0.0), (0.1, 1.0), (1.0, 0.1)])
def test_bad_fractions_are_named(valid, test):
    inter = _inter({1: 5})
    with pytest.raises(ValueError, match=rf"valid_frac={valid} and test_frac={test} must be in \[0, 1\) and sum below 1"):
        prepare.per_user_recent_split(inter, valid, test)
    with pytest.raises(ValueError, match="must be in"):
        prepare.random_split(inter, valid, test)


def test_leave_one_out_by_hand():
    inter = _inter({1: 4, 2: 2, 3: 3})
    idx = prepare.leave_one_out_split(inter)
    t, v = inter.iloc[idx["test"]], inter.iloc[idx["valid"]]
    assert dict(zip(t.user_id, t.item_id, strict=True)) == {1: 1, 3: 1}  # the latest is item 1
    assert dict(zip(v.user_id, v.item_id, strict=True)) == {1: 2, 3: 2}
    assert _sizes(inter, idx, "train") == {1: 2, 2: 2, 3: 1}
    assert np.array_equal(prepare.split_indices(inter, "loo")["test"], idx["test"])


def test_cold_start_counts_validation_and_errors():
    inter = _inter({u: 6 for u in range(1, 21)})
    idx = prepare.cold_start_split(inter, "user", frac=0.25, seed=1, valid_frac=0.5)
    cold = set(inter.iloc[idx["test"]]["user_id"])
    assert len(cold) == 5 and len(idx["test"]) == 30  # round(0.25 * 20) users, all their rows
    warm_rows = len(inter) - 30
    assert 0.3 * warm_rows < len(idx["valid"]) < 0.7 * warm_rows
    assert not cold & set(inter.iloc[idx["valid"]]["user_id"])
    again = prepare.cold_start_split(inter, "user", frac=0.25, seed=1, valid_frac=0.5)
    assert all(np.array_equal(idx[p], again[p]) for p in idx)
    other = prepare.cold_start_split(inter, "user", frac=0.25, seed=2, valid_frac=0.5)
    assert set(inter.iloc[other["test"]]["user_id"]) != cold
    small = prepare.cold_start_split(inter, "item", frac=0.01, seed=0)
    assert inter.iloc[small["test"]]["item_id"].nunique() == 1  # at least one item is withheld
    via = prepare.split_indices(inter, "cold_user", seed=1, cold_frac=0.25, valid_frac=0.5)
    assert all(np.array_equal(idx[p], via[p]) for p in idx)
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match=rf"cold-start frac must lie in \(0, 1\).*got frac={bad}"):
            prepare.cold_start_split(inter, "user", frac=bad)
    with pytest.raises(ValueError, match="cold-start split by 'zip'; valid: 'user', 'item', 'both'"):
        prepare.cold_start_split(inter, "zip")


def test_kfold_errors_are_named():
    inter = _inter({1: 5})
    with pytest.raises(ValueError, match=r"k-fold needs k >= 2, got k=2\.0"):
        prepare.kfold_split(inter, 2.0)
    with pytest.raises(ValueError, match=r"k=6 is larger than the number of interactions \(5\)"):
        prepare.kfold_split(inter, 6)
    folds = prepare.kfold_split(inter, 5)  # k equal to the rows: one test row per fold
    assert [len(f["test"]) for f in folds] == [1] * 5
    with pytest.raises(ValueError, match=r"fold must lie in 0\.\.4, got -1"):
        prepare.split_indices(inter, "kfold", fold=-1, k=5)
    with pytest.raises(ValueError, match="unknown split 'weekly'; valid: per_user_recent, global_time, random, kfold, loo, cold_user"):
        prepare.split_indices(inter, "weekly")
    # The former key names its successor and why it was renamed, instead of "unknown split".
    with pytest.raises(ValueError, match="split 'temporal' is now called 'per_user_recent': it holds out each user's own "
                                         "recent ratings, which is not a cut in time"):
        prepare.split_indices(inter, "temporal")


def test_positive_keys_and_negative_sampling_by_hand():
    inter = pd.DataFrame({"user_id": [1, 1, 2, 1], "item_id": [2, 3, 3, 2]})
    keys = prepare.positive_keys(inter, 10)
    assert keys.tolist() == [12, 13, 23]  # sorted, unique
    rng = np.random.default_rng(0)
    users = np.array([1, 1, 2, 2, 1] * 20)
    items = prepare.sample_negatives(users, np.array([1, 2, 3, 4]), keys, 10, rng)
    assert items.shape == users.shape
    assert not ((users == 1) & np.isin(items, [2, 3])).any() and not ((users == 2) & (items == 3)).any()
    assert set(items[users == 1]) == {1, 4} and set(items[users == 2]) == {1, 2, 4}
    with pytest.raises(ValueError, match=r"could not sample negatives for users \[1\]: they have interacted"):
        prepare.sample_negatives(np.array([1, 2]), np.array([2, 3]), keys, 10, np.random.default_rng(0), max_rounds=50)


def test_label_rows_by_hand():
    pairs = pd.DataFrame({"rating": [5.0, 3.0, np.nan, 4.0]})
    labels, masks = label_rows(pairs["rating"].to_numpy())
    assert labels[INTEREST].tolist() == [1, 0, 0, 1] and labels[ITEM_TASK].tolist() == [1, 1, 0, 1]
    assert labels[BEHAVIOUR].tolist() == [5, 3, 0, 4] and labels["ctcvr"].tolist() == [1, 0, 0, 1]
    assert masks[INTEREST].tolist() == [1, 1, 0, 1] and masks[BEHAVIOUR].tolist() == [1, 1, 0, 1]
    assert masks[ITEM_TASK].tolist() == [1, 1, 1, 1] and masks["ctcvr"].tolist() == [1, 1, 1, 1]
    assert all(v.dtype == np.float32 for v in (*labels.values(), *masks.values()))


def test_taskset_sizes_summary_and_custom_split(small_world):
    d = small_world.data
    p0 = prepare.prepare_tasks(d, "per_user_recent", seed=0, neg_ratio=0.0)
    assert (p0.train.pairs["observed"]).all() and len(p0.train) == len(p0.indices["train"])
    p = prepare.prepare_tasks(d, "per_user_recent", seed=0, neg_ratio=0.5)
    n_obs = len(p.indices["test"])
    assert len(p.test) == n_obs + round(0.5 * n_obs) and p.test.pairs["observed"].sum() == n_obs
    assert p.split == "per_user_recent" and p.interactions("test").equals(p.data.interactions.iloc[p.indices["test"]])
    custom = prepare.prepare_tasks(d, indices=p.indices, seed=0, neg_ratio=0.5)
    assert custom.split == "custom"
    pd.testing.assert_frame_equal(custom.test.pairs, p.test.pairs)  # same seed, same indices: same rows
    table = prepare.task_summary(p).set_index(["part", "task"])
    for part in ("train", "valid", "test"):
        ts = getattr(p, part)
        for task in (INTEREST, ITEM_TASK, BEHAVIOUR):
            m = ts.masks[task] > 0
            assert table.loc[(part, task), "labelled"] == m.sum()
            assert table.loc[(part, task), "mean_label"] == pytest.approx(ts.labels[task][m].mean())
    assert table.loc[("train", ITEM_TASK), "mean_label"] == pytest.approx(2 / 3, abs=1e-3)
    sub = p.test.subset(np.array([3, 1]))
    assert len(sub) == 2 and sub.pairs["item_id"].tolist() == p.test.pairs["item_id"].iloc[[3, 1]].tolist()
    assert set(sub.targets()) == {*p.test.labels, *(f"{t}_mask" for t in p.test.masks)}
    other_seed = prepare.prepare_tasks(d, indices=p.indices, seed=1, neg_ratio=0.5)
    assert not other_seed.test.pairs.equals(p.test.pairs)


def test_clean_log_and_rating_range(small_world):
    d = small_world.data
    cleaned, log = prepare.clean(d)
    assert log["step"].tolist() == ["missing values", "out-of-range ratings", "unknown users", "unknown items",
                                    "duplicates"]
    assert log["dropped"].tolist() == [0, 0, 0, 0, 0]
    assert log["reason"].iloc[1] == "rating outside [1, 5]"
    strict, log2 = prepare.clean(d, rating_range=(2.0, 4.0))
    assert log2["reason"].iloc[1] == "rating outside [2, 4]"
    assert log2["dropped"].iloc[1] == (~d.interactions["rating"].between(2, 4)).sum()
    assert strict.interactions["rating"].between(2, 4).all()
    # Sorted by user, then time, then item; the index restarts at 0.
    inter = cleaned.interactions
    assert inter.index.tolist() == list(range(len(inter)))
    assert inter.equals(inter.sort_values(["user_id", "timestamp", "item_id"], kind="stable").reset_index(drop=True))
    assert cleaned.name == d.name and cleaned.users is d.users and cleaned.items is d.items
    dup = RatingsData("x", pd.DataFrame({"user_id": [1, 1], "item_id": [1, 1], "rating": [2.0, 5.0],
                                         "timestamp": [10, 5]}), d.users, d.items)
    kept, _ = prepare.clean(dup)
    assert kept.interactions["rating"].tolist() == [2.0]  # the later timestamp wins, not the later row


def test_defaults_of_every_split_and_of_prepare_tasks(small_world):
    inter = small_world.data.interactions
    same = lambda a, b: all(np.array_equal(a[p], b[p]) for p in ("train", "valid", "test"))  # noqa: E731
    assert same(prepare.per_user_recent_split(inter), prepare.per_user_recent_split(inter, 0.1, 0.1))
    assert same(prepare.random_split(inter), prepare.random_split(inter, 0.1, 0.1, 0))
    assert same(prepare.cold_start_split(inter, "user"), prepare.cold_start_split(inter, "user", 0.1, 0, 0.1))
    folds, explicit = prepare.kfold_split(inter), prepare.kfold_split(inter, 5, 0)
    assert len(folds) == 5 and all(same(a, b) for a, b in zip(folds, explicit, strict=True))
    assert len(prepare.kfold_split(inter, 2)) == 2 and len(prepare.kfold_split(inter, 4)) == 4
    a = prepare.prepare_tasks(small_world.data)
    b = prepare.prepare_tasks(small_world.data, "per_user_recent", seed=0, neg_ratio=1.0)
    pd.testing.assert_frame_equal(a.test.pairs, b.test.pairs)
    # The seed and the split's own arguments reach the split.
    r = prepare.prepare_tasks(small_world.data, "random", seed=3, neg_ratio=0.0, test_frac=0.3)
    assert same(r.indices, prepare.random_split(r.data.interactions, 0.1, 0.3, seed=3))


def test_kfold_validation_draw_is_the_documented_one(small_world):
    """Fold f: scikit-learn's shuffled KFold(k, random_state=seed); validation is the rows of its
    training part where default_rng(seed + 1) draws below 0.1, fold after fold."""
    from sklearn.model_selection import KFold

    inter = small_world.data.interactions
    rng = np.random.default_rng(4 + 1)
    for got, (train_val, test) in zip(prepare.kfold_split(inter, 3, seed=4),
                                      KFold(3, shuffle=True, random_state=4).split(np.arange(len(inter))), strict=True):
        is_valid = rng.random(train_val.size) < 0.1
        np.testing.assert_array_equal(got["valid"], np.sort(train_val[is_valid]))
        np.testing.assert_array_equal(got["test"], np.sort(test))


def test_random_split_does_not_depend_on_the_row_labels():
    inter = _inter({1: 20, 2: 10, 3: 4})
    relabelled = inter.set_index(inter.index * 7 + 3)
    a, b = prepare.random_split(inter, seed=2), prepare.random_split(relabelled, seed=2)
    assert all(np.array_equal(a[p], b[p]) for p in a)


def test_cold_start_draws_distinct_ids():
    inter = _inter({u: 3 for u in range(1, 21)})
    idx = prepare.cold_start_split(inter, "user", frac=0.5, seed=0)
    assert inter.iloc[idx["test"]]["user_id"].nunique() == 10


def test_sampler_messages_and_users_without_positives():
    keys = prepare.positive_keys(pd.DataFrame({"user_id": np.arange(1, 8), "item_id": [1] * 7}), 10)
    with pytest.raises(ValueError, match=r"could not sample negatives for users \[1, 2, 3, 4, 5\]: they"):
        prepare.sample_negatives(np.arange(1, 8), np.array([1]), keys, 10, np.random.default_rng(0), max_rounds=3)
    out = prepare.sample_eval_negatives(np.array([9]), {1: np.array([1])}, np.arange(1, 6), 5, np.random.default_rng(0))
    assert sorted(out[0]) == [1, 2, 3, 4, 5]  # user 9 has no positives: every item is a candidate


def test_tasksets_keep_their_columns(small_world):
    p = prepare.prepare_tasks(small_world.data, "per_user_recent", seed=0, neg_ratio=1.0)
    assert p.test.pairs.columns.tolist() == ["user_id", "item_id", "rating", "observed"]
    assert p.test.pairs.index.tolist() == list(range(len(p.test)))
    sub = p.test.subset(np.array([4, 0, 2]))
    assert sub.pairs.columns.tolist() == p.test.pairs.columns.tolist() and sub.pairs.index.tolist() == [0, 1, 2]
    assert set(sub.features) == set(p.test.features)
    for name, arr in sub.features.items():
        np.testing.assert_array_equal(arr, p.test.features[name][[4, 0, 2]])


def test_task_summary_of_an_empty_part_is_nan(small_world):
    p = prepare.prepare_tasks(small_world.data, "per_user_recent", seed=0, valid_frac=0.0)
    table = prepare.task_summary(p).set_index(["part", "task"])
    assert len(p.valid) == 0 and (table.loc["valid", "labelled"] == 0).all()
    assert table.loc["valid", "mean_label"].isna().all()


def test_implicit_data_is_cleaned_and_masked_without_ratings(small_world):
    """Interactions without ratings: cleaning keeps them (no rating to be missing or out of range),
    every observed row is a positive of the item task, and the rating tasks are masked out."""
    import dataclasses

    d = small_world.data
    implicit = dataclasses.replace(d, interactions=d.interactions.assign(rating=np.nan), implicit=True)
    cleaned, log = prepare.clean(implicit)
    assert len(cleaned.interactions) == len(prepare.clean(d)[0].interactions)
    assert log.set_index("step").loc["out-of-range ratings", "dropped"] == 0
    assert log.set_index("step").loc["missing values", "dropped"] == 0
    p = prepare.prepare_tasks(implicit, "per_user_recent", seed=0, neg_ratio=1.0)
    for part in (p.train, p.valid, p.test):
        observed = part.pairs["observed"].to_numpy()
        assert observed.sum() > 0 and (~observed).sum() > 0
        np.testing.assert_array_equal(part.labels[ITEM_TASK], observed.astype("float32"))
        assert (part.masks[ITEM_TASK] == 1).all()
        for task in (INTEREST, BEHAVIOUR, "ctcvr"):
            assert (part.masks[task] == 0).all(), task
    explicit = prepare.prepare_tasks(d, "per_user_recent", seed=0, neg_ratio=1.0)
    assert (explicit.train.masks[INTEREST] == explicit.train.pairs["observed"].to_numpy()).all()


# --------------------------------------------------------------------------- precomputed vectors
def test_vector_rows_are_pandas_reindex_byte_for_byte():
    """The NumPy gather that builds text columns equals ``reindex(ids).fillna(0).astype(float32)``:
    unknown ids and missing values give 0, order follows ``ids``, float64 tables round the same way."""
    from mtrec_study.features import _rows_of

    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(50, 7)), index=rng.permutation(200)[:50])
    table.iloc[3, 2] = np.nan
    ids = np.concatenate([rng.integers(0, 200, size=500), table.index[[3]]])  # many unknown ids, the NaN row
    expected = table.reindex(ids).fillna(0.0).to_numpy("float32")
    got = _rows_of(table, ids)
    assert got.dtype == np.float32 and got.tobytes() == expected.tobytes()
    assert (got[~np.isin(ids, table.index)] == 0).all() and got[-1, 2] == 0


def test_a_vector_table_with_a_repeated_id_is_refused(small_world):
    from mtrec_study.features import FeatureBuilder

    builder = prepare.prepare_tasks(small_world.data, "per_user_recent", seed=0, neg_ratio=1.0).builder
    table = pd.DataFrame(np.ones((3, 4)), index=[7, 7, 9])
    with pytest.raises(ValueError, match=r"vector feature 'txt': one row per item id, but ids \[7\] repeat"):
        builder.with_vectors({"txt": ("item", table)})
    assert isinstance(builder, FeatureBuilder)
