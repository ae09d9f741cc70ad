"""Tests that a mutation run showed missing: each one fails for a plausible bug.

Every test names, in its docstring, the bug it is there to catch. The expected values are worked
by hand or derived independently (scikit-learn, a formula), never copied from a run.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from mtrec_study import evaluation as E
from mtrec_study import prepare
from mtrec_study.datasets.movielens import RatingsData
from mtrec_study.training import weighting


@pytest.fixture(scope="module")
def prepared(small_world):
    return prepare.prepare_tasks(small_world.data, "per_user_recent", seed=0, neg_ratio=1.0)


@pytest.fixture(scope="module")
def wide():
    """A catalogue wide enough for 99 negatives per user (the small world has 200 items)."""
    from mtrec_study.datasets.synthetic import make_recsys_world

    world = make_recsys_world(n_users=60, n_items=500, n_interactions=2000, seed=5)
    return prepare.prepare_tasks(world.data, "per_user_recent", seed=0, neg_ratio=0.0)


# --------------------------------------------------------------------------- uncertainty weighting
def test_uncertainty_total_by_hand_at_nonzero_log_variances():
    """Kills 0.5·s → s, exp(-s) → exp(s) and a wrong regression factor c_k."""
    L = [0.5, 2.0, 1.2]
    s = [0.3, -0.7, 1.1]
    reg = [0.0, 1.0, 0.0]  # the middle task is the regression one: c = 1/2
    c = [1.0, 0.5, 1.0]
    by_hand = sum(c[k] * math.exp(-s[k]) * L[k] + s[k] / 2 for k in range(3))
    got = float(weighting.uncertainty_total(np.array(L, "float32"), np.array(s, "float32"), np.array(reg, "float32")))
    assert got == pytest.approx(by_hand, rel=1e-6)
    w = np.asarray(weighting.uncertainty_weights(np.array(s, "float32"), np.array(reg, "float32")))
    assert w == pytest.approx([c[k] * math.exp(-s[k]) for k in range(3)], rel=1e-6)


def test_uncertainty_minimiser_reached_by_gradient_descent_on_the_package_function():
    r"""d/ds (c e^{-s} L + s/2) = 0 at s* = log(2 c L): the effective weight c e^{-s*} is 1/(2L).

    The gradient comes from autodiff of :func:`weighting.uncertainty_total` itself, so a wrong
    total moves the minimiser (s → 2·s/2 sends the weights to 1/L; exp(s) has no minimum).
    """
    L = tf.constant([0.5, 2.0, 0.8])
    reg = tf.constant([0.0, 1.0, 1.0])
    s = tf.Variable([0.0, 0.0, 0.0])
    for _ in range(300):  # the curvature c L e^{-s} stays within (0, 1] on the way: step 1 is stable
        with tf.GradientTape() as tape:
            total = weighting.uncertainty_total(L, s, reg)
        s.assign_sub(1.0 * tape.gradient(total, s))
    c = np.array([1.0, 0.5, 0.5])
    np.testing.assert_allclose(s.numpy(), np.log(2 * c * L.numpy()), atol=1e-4)
    w = np.asarray(weighting.uncertainty_weights(s, reg))
    np.testing.assert_allclose(w, 1.0 / (2.0 * L.numpy()), rtol=1e-4)


# --------------------------------------------------------------------------- 99-negative sampler
def test_sample_eval_negatives_excludes_positives_distinct_and_seeded():
    """Kills a sampler that draws with replacement, ignores a user's positives or its seed."""
    all_items = np.arange(1, 31)
    positives = {1: np.arange(1, 21), 2: np.array([5, 6]), 3: np.array([], "int64")}
    users = np.array([1, 2, 3, 1])
    out = prepare.sample_eval_negatives(users, positives, all_items, 10, np.random.default_rng(4))
    assert out.shape == (4, 10) and out.dtype == np.int64
    for u, row in zip(users, out, strict=True):
        assert len(set(row)) == 10
        assert not set(row) & set(positives[u]) and set(row) <= set(all_items)
    # User 1 has exactly 10 items left: every one of them, in some order.
    assert set(out[0]) == set(range(21, 31)) == set(out[3])
    again = prepare.sample_eval_negatives(users, positives, all_items, 10, np.random.default_rng(4))
    other = prepare.sample_eval_negatives(users, positives, all_items, 10, np.random.default_rng(5))
    np.testing.assert_array_equal(out, again)
    assert not np.array_equal(out, other)
    with pytest.raises(ValueError, match="user 1 has only 10 non-interacted items, fewer than n=11"):
        prepare.sample_eval_negatives(np.array([1]), positives, all_items, 11, np.random.default_rng(0))


def test_sampled_candidates_follow_the_ncf_protocol(wide):
    """Column 0 is the test item; 99 distinct negatives, none observed by that user in any part."""
    users, cand = E.sampled_candidates(wide, n_negatives=99, seed=3)
    test = wide.interactions("test")
    assert cand.shape == (len(test), 100) and users.shape == (len(test),)
    np.testing.assert_array_equal(users, test["user_id"].to_numpy())
    np.testing.assert_array_equal(cand[:, 0], test["item_id"].to_numpy())
    inter = wide.data.interactions
    seen = inter.groupby("user_id")["item_id"].agg(set)
    items = set(wide.data.items.index)
    for u, row in zip(users, cand, strict=True):
        negs = row[1:]
        assert len(set(negs)) == 99 and set(negs) <= items
        assert not set(negs) & seen[u], u  # never a train, valid or test item of this user
    # The users' held-out parts really hold items a careless sampler would have drawn.
    assert inter.groupby("user_id").size().max() > 20
    np.testing.assert_array_equal(cand, E.sampled_candidates(wide, 99, seed=3)[1])
    assert not np.array_equal(cand, E.sampled_candidates(wide, 99, seed=4)[1])


def test_sampled_ranking_scores_the_test_item_in_column_zero(wide):
    """An oracle that scores only the held-out item highest gets HR@1 = 1 on every case."""
    users, cand = E.sampled_candidates(wide, n_negatives=99, seed=0)
    held = set(zip(users.tolist(), cand[:, 0].tolist(), strict=True))

    def oracle(u, i):
        return np.array([1.0 if (a, b) in held else 0.0 for a, b in zip(u.tolist(), i.tolist(), strict=True)])

    out = E.sampled_ranking(wide, oracle, ks=(1,), candidates=(users, cand))
    assert len(out) == len(users) and (out["hr@1"] == 1.0).all()


# --------------------------------------------------------------------------- k-fold
def test_kfold_parts_are_disjoint_cover_all_rows_and_validation_comes_from_training(small_world):
    """Kills validation drawn from the test part, overlapping parts and lost rows."""
    inter = small_world.data.interactions
    n = len(inter)
    folds = prepare.kfold_split(inter, 5, seed=0)
    assert len(folds) == 5
    for f in folds:
        tr, va, te = (set(f[p].tolist()) for p in ("train", "valid", "test"))
        assert not tr & va and not tr & te and not va & te
        assert tr | va | te == set(range(n))
        assert len(te) == pytest.approx(n / 5, abs=1)
        # About 10% of the fold's training part is held out for validation.
        assert 0.07 < len(va) / (len(va) + len(tr)) < 0.13
    np.testing.assert_array_equal(np.sort(np.concatenate([f["test"] for f in folds])), np.arange(n))


def test_kfold_is_shuffled_so_test_users_are_seen_in_training(small_world):
    """Kills an unshuffled KFold: on user-sorted rows its test folds hold users training never saw."""
    inter = small_world.data.interactions.sort_values(["user_id", "timestamp"]).reset_index(drop=True)
    for f in prepare.kfold_split(inter, 5, seed=0):
        train_users = set(inter["user_id"].iloc[f["train"]])
        share = inter["user_id"].iloc[f["test"]].isin(train_users).mean()
        assert share >= 0.9, share


def test_kfold_respects_its_seed(small_world):
    """Kills a seed that is ignored (for the folds or for the validation draw)."""
    inter = small_world.data.interactions
    a, b, c = (prepare.kfold_split(inter, 4, seed=s) for s in (7, 7, 8))
    for fa, fb in zip(a, b, strict=True):
        for p in ("train", "valid", "test"):
            np.testing.assert_array_equal(fa[p], fb[p])
    assert not np.array_equal(a[0]["test"], c[0]["test"])
    assert not np.array_equal(a[0]["valid"], c[0]["valid"])
    # split_indices passes the seed and the fold through.
    for fold in range(4):
        got = prepare.split_indices(inter, "kfold", seed=7, fold=fold, k=4)
        for p in ("train", "valid", "test"):
            np.testing.assert_array_equal(got[p], a[fold][p])
    with pytest.raises(ValueError, match=r"fold must lie in 0\.\.3"):
        prepare.split_indices(inter, "kfold", fold=4, k=4)
    with pytest.raises(ValueError, match="larger than the number of interactions"):
        prepare.kfold_split(inter.iloc[:3], 4)


# --------------------------------------------------------------------------- leaks
def _perturbed_test(prepared, seed=0):
    """The same data with every *test* interaction changed: other users, other items (some never
    in training), other timestamps and ratings. Returns it with the indices of its parts."""
    inter = prepared.data.interactions
    rng = np.random.default_rng(seed)
    test = inter.iloc[prepared.indices["test"]].copy()
    keep = inter.drop(index=inter.index[prepared.indices["test"]])
    users = prepared.data.users.index.to_numpy()
    items = prepared.data.items.index.to_numpy()
    taken = set(zip(inter["user_id"], inter["item_id"], strict=True))
    new = []
    while len(new) < len(test):
        u, i = int(rng.choice(users)), int(rng.choice(items))
        if (u, i) not in taken:
            taken.add((u, i))
            new.append((u, i))
    test["user_id"] = np.array([u for u, _ in new])
    test["item_id"] = np.array([i for _, i in new])
    test["timestamp"] = rng.integers(0, 2 * inter["timestamp"].max(), size=len(test))
    test["rating"] = rng.integers(1, 6, size=len(test)).astype(float)
    test["_part"] = "test"
    parts = {"train": prepared.indices["train"], "valid": prepared.indices["valid"]}
    keep = keep.assign(_part="")
    for p, rows in parts.items():
        keep.loc[inter.index[rows], "_part"] = p
    changed = RatingsData(prepared.data.name, pd.concat([keep, test]).drop(columns="_part"),
                          prepared.data.users, prepared.data.items)
    cleaned, _ = prepare.clean(changed)
    # Locate every part's rows in the re-cleaned table (cleaning sorts by user and time).
    key = ["user_id", "item_id", "timestamp", "rating"]
    pos = cleaned.interactions.reset_index(drop=True).reset_index().merge(
        pd.concat([keep, test])[[*key, "_part"]], on=key, how="left", validate="one_to_one")
    assert len(pos) == len(inter)
    idx = {p: np.sort(pos.loc[pos["_part"] == p, "index"].to_numpy()) for p in ("train", "valid", "test")}
    assert {p: len(v) for p, v in idx.items()} == {p: len(v) for p, v in prepared.indices.items()}
    return changed, idx


def test_changing_the_test_interactions_moves_nothing_that_is_fitted(prepared, monkeypatch):
    """Users, items, timestamps and ratings of every test row change; the features, the text
    history, the popularity counts and what a tuner sees stay identical.

    Kills a builder, a behaviour history, a popularity count or a tuning view fitted on all
    interactions instead of the training (and validation) part.
    """
    from mtrec_study import text
    from mtrec_study.models import classic
    from mtrec_study.study import tuning

    changed, idx = _perturbed_test(prepared)
    other = prepare.prepare_tasks(changed, indices=idx, seed=0, neg_ratio=1.0)
    assert not other.interactions("test").reset_index(drop=True).equals(
        prepared.interactions("test").reset_index(drop=True))
    pd.testing.assert_frame_equal(other.interactions("train").reset_index(drop=True),
                                  prepared.interactions("train").reset_index(drop=True))
    # Features: the fitted builder gives the same arrays for every (user, item) pair.
    users = np.repeat(prepared.data.users.index.to_numpy(), 7)
    items = np.resize(prepared.data.items.index.to_numpy(), users.size)
    a, b = prepared.builder.transform(users, items), other.builder.transform(users, items)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert prepared.spec.to_dict() == other.spec.to_dict()
    # ... and the observed training rows carry those features (the rows are compared in
    # (user, item) order: the negatives' draw, which avoids every known positive, may differ).
    def observed_rows(ts):
        obs = np.flatnonzero(ts.pairs["observed"].to_numpy())
        return obs[np.lexsort((ts.pairs["item_id"].to_numpy()[obs], ts.pairs["user_id"].to_numpy()[obs]))]

    ra, rb = observed_rows(prepared.train), observed_rows(other.train)
    for name in prepared.train.features:
        np.testing.assert_array_equal(prepared.train.features[name][ra], other.train.features[name][rb], err_msg=name)
    # Text history: the users' behaviour vectors.
    ta, tb = (text.build_text_features(p, source="tfidf") for p in (prepared, other))
    pd.testing.assert_frame_equal(ta.users, tb.users)
    pd.testing.assert_frame_equal(ta.items, tb.items)
    # Popularity: the counts the reference is fitted on, through the function the notebooks call.
    fitted = []
    real_fit = classic.Popularity.fit

    def spy(self, train, items=None):
        fitted.append(train.groupby("item_id").size())
        return real_fit(self, train, items)

    monkeypatch.setattr(classic.Popularity, "fit", spy)
    for p in (prepared, other):
        E.popularity_rows(p, "per_user_recent", users=E.sample_test_users(p, 10, seed=0))
    assert len(fitted) == 2
    pd.testing.assert_series_equal(fitted[0], fitted[1])
    # Tuning: what the score function sees, and the choice it makes.
    seen = []

    def score(view, setting):
        seen.append(view.data.interactions.reset_index(drop=True))
        counts = view.interactions("valid")["rating"].to_numpy()
        return float(abs(counts.mean() - setting["target"]))

    grid = [{"target": 3.0}, {"target": 3.5}, {"target": 4.0}]
    ta_, tb_ = (tuning.grid_search(p, grid, score) for p in (prepared, other))
    pd.testing.assert_frame_equal(ta_, tb_)
    for first, second in zip(seen[:3], seen[3:], strict=True):
        pd.testing.assert_frame_equal(first, second)
    with pytest.raises(tuning.TestSplitSealed):
        _ = tuning.validation_view(other).test.pairs


def test_sampled_ranking_defaults_are_the_ncf_protocol_and_pass_their_settings(wide):
    """Defaults: 99 negatives, seed 0; without ``candidates`` it draws them itself with its own
    ``n_negatives`` and ``seed``; the tie rule reaches the metrics."""
    users, cand = E.sampled_candidates(wide)
    u99, c99 = E.sampled_candidates(wide, 99, 0)
    np.testing.assert_array_equal(cand, c99)
    np.testing.assert_array_equal(users, u99)
    assert cand.shape[1] == 100

    def tied(u, i):  # 50 distinct scores over 100 candidates: ties matter, and so does each draw
        return (np.asarray(i) % 50).astype(float)

    own = E.sampled_ranking(wide, tied)
    pd.testing.assert_frame_equal(own, E.sampled_ranking(wide, tied, candidates=(u99, c99)))
    other = E.sampled_ranking(wide, tied, n_negatives=49, seed=5)
    pd.testing.assert_frame_equal(other, E.sampled_ranking(wide, tied, candidates=E.sampled_candidates(wide, 49, 5)))
    assert not other.equals(own)
    assert not E.sampled_ranking(wide, tied, seed=1).equals(own)  # the seed reaches the draw
    optimistic = E.sampled_ranking(wide, tied, ties="optimistic", candidates=(u99, c99))
    assert (optimistic["hr@10"] >= own["hr@10"]).all() and optimistic["hr@10"].mean() > own["hr@10"].mean()
