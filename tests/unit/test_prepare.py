from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtrec_study import prepare
from mtrec_study.datasets.movielens import RatingsData
from mtrec_study.tasks import BEHAVIOUR, INTEREST, ITEM_TASK


def test_clean_reports_each_drop(small_world):
    d = small_world.data
    inter = d.interactions.copy()
    extra = pd.DataFrame({"user_id": [1, 1, 99999, 2, 3], "item_id": [1, 2, 1, 99999, 4],
                          "rating": [7.0, np.nan, 3.0, 3.0, 2.0], "timestamp": [1, 2, 3, 4, 5]})
    dup = inter.iloc[[0]].assign(timestamp=inter.iloc[0]["timestamp"] + 10, rating=1.0)
    dirty = RatingsData("x", pd.concat([inter, extra, dup], ignore_index=True), d.users, d.items)
    cleaned, log = prepare.clean(dirty)
    got = dict(zip(log["step"], log["dropped"], strict=True))
    assert got["missing values"] == 1 and got["out-of-range ratings"] == 1
    assert got["unknown users"] == 1 and got["unknown items"] == 1
    assert got["duplicates"] >= 1
    row = cleaned.interactions.query("user_id == @dup.user_id.iloc[0] and item_id == @dup.item_id.iloc[0]")
    assert row["rating"].tolist() == [1.0]  # the latest rating is kept


def test_per_user_recent_split_respects_each_users_time_order(small_world):
    inter = small_world.data.interactions
    idx = prepare.per_user_recent_split(inter, 0.1, 0.2)
    assert sum(len(v) for v in idx.values()) == len(inter)
    assert len(set(idx["train"]) & set(idx["test"])) == 0
    tr, te = inter.iloc[idx["train"]], inter.iloc[idx["test"]]
    last_train = tr.groupby("user_id")["timestamp"].max()
    first_test = te.groupby("user_id")["timestamp"].min()
    assert (first_test >= last_train.reindex(first_test.index)).all()


def test_kfold_rejects_k_below_two_and_covers_everything(small_world):
    inter = small_world.data.interactions
    for bad in (1, 0, -3):
        with pytest.raises(ValueError, match="k >= 2"):
            prepare.kfold_split(inter, bad)
    folds = prepare.kfold_split(inter, 4, seed=0)
    tests = np.concatenate([f["test"] for f in folds])
    assert np.array_equal(np.sort(tests), np.arange(len(inter)))
    for f in folds:
        assert not set(f["test"]) & set(f["train"]) and not set(f["valid"]) & set(f["train"])


def test_leave_one_out_and_cold_start(small_world):
    inter = small_world.data.interactions
    loo = prepare.leave_one_out_split(inter)
    assert inter.iloc[loo["test"]]["user_id"].is_unique
    for by, col in (("user", "user_id"), ("item", "item_id")):
        idx = prepare.cold_start_split(inter, by, frac=0.2, seed=0)
        cold = set(inter.iloc[idx["test"]][col])
        assert cold and not cold & set(inter.iloc[idx["train"]][col])
    both = prepare.cold_start_split(inter, "both", frac=0.2, seed=0)
    train = inter.iloc[both["train"]]
    test = inter.iloc[both["test"]]
    new_user = ~test["user_id"].isin(train["user_id"])
    new_item = ~test["item_id"].isin(train["item_id"])
    # Every test row has a withheld user or item, and all three kinds of cold row occur.
    assert (new_user | new_item).all() and (new_user & ~new_item).any() and (new_item & ~new_user).any()
    assert (new_user & new_item).any()
    with pytest.raises(ValueError, match="valid: 'user', 'item', 'both'"):
        prepare.cold_start_split(inter, "zip")


def test_negatives_are_never_positives(small_world):
    """Training negatives avoid the user's training items; evaluation negatives every observed pair."""
    d = small_world.data
    prepared = prepare.prepare_tasks(d, "per_user_recent", seed=0, neg_ratio=3.0)
    inter = prepared.data.interactions
    observed = set(zip(inter.user_id, inter.item_id, strict=True))
    train = inter.iloc[prepared.indices["train"]]
    train_pairs = set(zip(train.user_id, train.item_id, strict=True))
    for part, known in (("train", train_pairs), ("valid", observed), ("test", observed)):
        ts = getattr(prepared, part)
        neg = ts.pairs[~ts.pairs["observed"]]
        assert len(neg) == round(3.0 * ts.pairs["observed"].sum())
        assert not set(zip(neg.user_id, neg.item_id, strict=True)) & known, part


def test_a_training_negative_can_be_a_test_positive(small_world):
    """Training must not learn which items the test holds back: its sampler only knows training pairs."""
    d = small_world.data
    prepared = prepare.prepare_tasks(d, "per_user_recent", seed=0, neg_ratio=5.0)
    inter = prepared.data.interactions

    def pairs(part: str) -> set:
        rows = inter.iloc[prepared.indices[part]]
        return set(zip(rows.user_id, rows.item_id, strict=True))

    neg = prepared.train.pairs[~prepared.train.pairs["observed"]]
    negatives = set(zip(neg.user_id, neg.item_id, strict=True))
    # Each held-back part on its own: a test positive, and a validation positive, can be a training negative ...
    assert negatives & pairs("test") and negatives & pairs("valid")
    # ... while a training positive never is one.
    assert not negatives & pairs("train")


def test_no_cold_item_among_training_negatives(small_world):
    """In a cold split the withheld items are not taught as negatives (text would learn their titles)."""
    for split in ("cold_item", "cold_both"):
        prepared = prepare.prepare_tasks(small_world.data, split, seed=42, neg_ratio=2.0, cold_frac=0.2)
        inter = prepared.data.interactions
        train_items = set(inter.iloc[prepared.indices["train"]].item_id)
        neg = prepared.train.pairs[~prepared.train.pairs["observed"]]
        assert set(neg.item_id) <= train_items, split
        cold = set(inter.iloc[prepared.indices["test"]].item_id) - train_items
        assert cold, "the split withholds some items"
        assert not set(neg.item_id) & cold


def test_labels_and_masks_per_task(small_world):
    p = prepare.prepare_tasks(small_world.data, "per_user_recent", seed=0, neg_ratio=1.0)
    ts = p.train
    obs = ts.pairs["observed"].to_numpy()
    assert np.array_equal(ts.masks[INTEREST], obs.astype("float32"))
    assert np.array_equal(ts.masks[BEHAVIOUR], obs.astype("float32"))
    assert (ts.masks[ITEM_TASK] == 1).all() and np.array_equal(ts.labels[ITEM_TASK], obs.astype("float32"))
    rating = ts.pairs["rating"].to_numpy()
    assert np.array_equal(ts.labels[INTEREST][obs] == 1, rating[obs] >= 4)
    assert set(np.unique(ts.labels[BEHAVIOUR][obs])) <= {1, 2, 3, 4, 5}
    assert (ts.labels[INTEREST][~obs] == 0).all() and (ts.labels["ctcvr"] <= ts.labels[ITEM_TASK]).all()
    p.spec.validate(ts.features)


def test_no_test_interaction_leaks_into_training_features(small_world):
    d = small_world.data
    base = prepare.prepare_tasks(d, "per_user_recent", seed=0)
    # Change every test interaction (its rating): training features must not move.
    inter = base.data.interactions.copy()
    test_rows = base.indices["test"]
    inter.loc[inter.index[test_rows], "rating"] = 1.0
    changed = RatingsData(d.name, inter, d.users, d.items)
    other = prepare.prepare_tasks(changed, indices=base.indices, seed=0)
    for name, arr in base.train.features.items():
        np.testing.assert_array_equal(arr, other.train.features[name], err_msg=name)
    # Drop the test rows altogether: the fitted builder is the same.
    only_train = prepare.FeatureBuilder(d.users, d.items).fit(base.interactions("train"))
    feats = only_train.transform(base.test.pairs["user_id"], base.test.pairs["item_id"])
    for name, arr in base.test.features.items():
        np.testing.assert_array_equal(arr, feats[name], err_msg=name)
    # The counts the builder uses are the training counts exactly.
    train = base.interactions("train")
    assert base.builder.item_counts.sum() == len(train)
    assert (base.builder.user_counts == train.groupby("user_id").size()).all()


def test_cold_users_map_to_unknown_index(small_world):
    p = prepare.prepare_tasks(small_world.data, "cold_user", seed=0, cold_frac=0.2)
    obs = p.test.pairs["observed"].to_numpy()
    assert (p.test.features["user_idx"][obs] == 0).all()
    assert (p.train.features["user_idx"] > 0).all()


def test_bad_arguments_are_named(small_world):
    inter = small_world.data.interactions
    with pytest.raises(ValueError, match="unknown split 'weekly'"):
        prepare.split_indices(inter, "weekly")
    with pytest.raises(ValueError, match="neg_ratio"):
        prepare.prepare_tasks(small_world.data, neg_ratio=-1)
    with pytest.raises(ValueError, match="valid_frac"):
        prepare.per_user_recent_split(inter, 0.6, 0.6)


def test_time_ties_break_by_a_seeded_key_not_by_item_id():
    """Ratings in the same second are ordered by a key of the (user, item) pair: the same key in any
    row order, another order under another seed, and not simply item-id order."""
    users = np.repeat([1, 2], 50)
    items = np.tile(np.arange(1, 51), 2)
    a = prepare.tie_break(users, items)
    perm = np.random.default_rng(0).permutation(users.size)
    np.testing.assert_array_equal(prepare.tie_break(users[perm], items[perm]), a[perm])
    assert not np.array_equal(prepare.tie_break(users, items, seed=1), a)
    inter = pd.DataFrame({"user_id": users, "item_id": items, "rating": 4.0, "timestamp": 7})
    ordered = prepare.time_order(inter)
    first_user = ordered[ordered.user_id == 1].item_id.to_numpy()
    assert sorted(first_user) == list(range(1, 51)) and list(first_user) != list(range(1, 51))
    np.testing.assert_array_equal(first_user, items[:50][np.argsort(a[:50], kind="stable")])
    shuffled = inter.iloc[perm]
    pd.testing.assert_frame_equal(prepare.time_order(shuffled).reset_index(drop=True), ordered.reset_index(drop=True))


def test_splits_that_order_by_time_share_the_tie_rule():
    """Leave-one-out holds out the pair the tie key puts last, whatever the file order."""
    inter = pd.DataFrame({"user_id": [1, 1, 1, 1], "item_id": [10, 20, 30, 40], "rating": 4.0,
                          "timestamp": [1, 2, 3, 3]})
    keys = prepare.tie_break(np.array([1, 1]), np.array([30, 40]))
    last = [30, 40][int(np.argmax(keys))]
    for frame in (inter, inter.iloc[::-1].reset_index(drop=True)):
        idx = prepare.leave_one_out_split(frame)
        assert frame.iloc[idx["test"]].item_id.tolist() == [last]


def test_global_time_split_never_trains_on_the_future(small_world):
    """Every training rating precedes every validation rating, which precedes every test rating."""
    inter = prepare.clean(small_world.data)[0].interactions
    idx = prepare.split_indices(inter, "global_time", valid_frac=0.1, test_frac=0.2)
    ts = {part: inter.iloc[rows]["timestamp"] for part, rows in idx.items()}
    assert ts["train"].max() < ts["valid"].min() and ts["valid"].max() < ts["test"].min()
    assert sorted(np.concatenate(list(idx.values()))) == list(range(len(inter)))
    assert len(idx["test"]) == pytest.approx(0.2 * len(inter), rel=0.05)
    assert len(idx["valid"]) == pytest.approx(0.1 * len(inter), rel=0.1)
    # The per-user split does not promise this: some training rows come after some test rows.
    per_user = prepare.split_indices(inter, "per_user_recent")
    assert inter.iloc[per_user["train"]]["timestamp"].max() > inter.iloc[per_user["test"]]["timestamp"].min()
    with pytest.raises(ValueError, match="must be in"):
        prepare.global_time_split(inter, valid_frac=0.5, test_frac=0.6)
    assert prepare.split_profile(inter, idx)["later training share"] == 0.0
    assert prepare.split_profile(inter, per_user)["later training share"] > 0.0


def test_split_profile_by_hand():
    """Training ratings at t = 1, 2, 5, 6 (users a, a, b, b; items 1, 2, 1, 3); test ratings at
    t = 3 (user a, item 4) and t = 7 (user c, item 5). Later training ratings: 2 of 4 for t = 3,
    0 of 4 for t = 7 -> mean 0.25. New users: c only -> 1 of 2 test ratings; new items: both.
    A tie (a training rating in the test rating's second) does not count as later."""
    inter = pd.DataFrame({"user_id": ["a", "a", "b", "b", "a", "c"], "item_id": [1, 2, 1, 3, 4, 5],
                          "timestamp": [1, 2, 5, 6, 3, 7]})
    idx = {"train": np.array([0, 1, 2, 3]), "valid": np.array([], "int64"), "test": np.array([4, 5])}
    assert prepare.split_profile(inter, idx) == {"later training share": 0.25, "new-user test share": 0.5,
                                                 "new-item test share": 1.0}
    assert prepare.split_profile(inter.assign(item_id=[1, 2, 1, 3, 3, 9]), idx)["new-item test share"] == 0.5
    tie = inter.assign(timestamp=[1, 2, 3, 6, 3, 7])
    assert prepare.split_profile(tie, idx)["later training share"] == pytest.approx(0.125)
    with pytest.raises(ValueError, match=r"empty or missing: \['test'\]"):
        prepare.split_profile(inter, {**idx, "test": np.array([], "int64")})


def test_ratio_counts_truncate_as_recbole_does():
    """RecBole 1.2.1's split_by_ratio at 80/10/10, worked by hand per user size:
    1 -> (0, 0); 2 -> test gets the one row its 0.2 share rounds up to, train keeps 1 -> (0, 1);
    5 -> shares 0.5 each round up -> (1, 1); 10 and 15 -> int(1.0), int(1.5) -> (1, 1); 20 -> (2, 2)."""
    valid, test = prepare.ratio_counts(np.array([1, 2, 5, 10, 15, 20]), 0.1, 0.1)
    assert valid.tolist() == [0, 0, 1, 1, 1, 2] and test.tolist() == [0, 1, 1, 1, 1, 2]


def test_random_split_uses_the_recbole_counts(small_world):
    inter = prepare.clean(small_world.data)[0].interactions
    idx = prepare.random_split(inter, 0.1, 0.1, seed=3)
    n = inter.groupby("user_id").size()
    want_valid, want_test = prepare.ratio_counts(n.to_numpy(), 0.1, 0.1)
    got_test = inter.iloc[idx["test"]].groupby("user_id").size().reindex(n.index, fill_value=0)
    got_valid = inter.iloc[idx["valid"]].groupby("user_id").size().reindex(n.index, fill_value=0)
    assert got_test.tolist() == want_test.tolist() and got_valid.tolist() == want_valid.tolist()


def test_cold_splits_keep_a_cold_validation_group(small_world):
    """Early stopping must see new users and items too: a disjoint group of withheld ids goes to
    validation; neither group's ids appear in training."""
    inter = prepare.clean(small_world.data)[0].interactions
    for by, col in (("user", "user_id"), ("item", "item_id")):
        idx = prepare.cold_start_split(inter, by, frac=0.2, seed=1)
        train_ids = set(inter.iloc[idx["train"]][col])
        test_ids = set(inter.iloc[idx["test"]][col]) - train_ids
        valid_cold = set(inter.iloc[idx["valid"]][col]) - train_ids
        assert test_ids and valid_cold, by
        assert not test_ids & valid_cold  # the two groups are disjoint
        n = inter[col].nunique()
        assert len(valid_cold) == pytest.approx(0.1 * n, abs=1)  # frac / 2 by default
        assert not set(inter.iloc[idx["test"]][col]) & train_ids
    none = prepare.cold_start_split(inter, "user", frac=0.2, seed=1, cold_valid_frac=0.0)
    assert set(inter.iloc[none["valid"]]["user_id"]) <= set(inter.iloc[none["train"]]["user_id"])
    with pytest.raises(ValueError, match="cold_valid_frac"):
        prepare.cold_start_split(inter, "user", frac=0.6, cold_valid_frac=0.5)
