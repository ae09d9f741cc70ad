"""Protocols: tidy results, CIs, paired tests, the user bootstrap, Δm%, segments and ranking."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mtrec_study import evaluation as E
from mtrec_study.prepare import prepare_tasks
from mtrec_study.results import TIDY_COLUMNS, load_results, record_results
from mtrec_study.study.experiment import cross_validate
from mtrec_study.training.trainer import predict, train


@pytest.fixture(scope="module")
def prepared(small_world):
    return prepare_tasks(small_world.data, "per_user_recent", seed=0, neg_ratio=1.0)


@pytest.fixture(scope="module")
def trained(prepared):
    return train("shared_bottom", prepared, epochs=2, batch_size=256, seed=0)


def _folds(values_a, values_b, metric="auc", task="interest"):
    rows = []
    for model, values in (("a", values_a), ("b", values_b)):
        rows += [E.tidy_rows({metric: v}, model, task, "cv", fold)[0] for fold, v in enumerate(values)]
    return E.as_tidy(rows)


def test_summarise_gives_t_interval_and_counts_undefined_folds():
    tidy = _folds([0.80, 0.82, 0.81, np.nan], [0.7, 0.7, 0.7, 0.7])
    s = E.summarise(tidy).set_index("model")
    x = np.array([0.80, 0.82, 0.81])
    low, high = stats.t.interval(0.95, 2, loc=x.mean(), scale=stats.sem(x))
    assert s.loc["a", "n"] == 4 and s.loc["a", "n_undefined"] == 1
    assert s.loc["a", "mean"] == pytest.approx(x.mean()) and s.loc["a", "std"] == pytest.approx(x.std(ddof=1))
    assert (s.loc["a", "ci_low"], s.loc["a", "ci_high"]) == pytest.approx((low, high))
    assert s.loc["b", "std"] == 0


def test_paired_test_worked_example():
    a, b = [0.80, 0.83, 0.81, 0.85, 0.84], [0.78, 0.80, 0.80, 0.81, 0.83]
    out = E.paired_test(_folds(a, b), "a", "b", "interest", "auc")
    d = np.subtract(a, b)
    assert out["mean_diff"] == pytest.approx(d.mean())
    assert out["t"] == pytest.approx(d.mean() / (d.std(ddof=1) / math.sqrt(5)))
    assert out["p_wilcoxon"] == pytest.approx(2 / 2 ** 5)  # every difference positive: the smallest p at n = 5
    with pytest.raises(ValueError, match=r"no interest/rmse rows.*models present"):
        E.paired_test(_folds(a, b), "a", "b", "interest", "rmse")
    with pytest.raises(ValueError, match=r"model\(s\) \['c'\]"):
        E.paired_test(_folds(a, b), "a", "c", "interest", "auc")


def test_user_bootstrap_resamples_users_not_rows():
    # User 0 has 100 rows of value 0, user 1 one row of value 1. Resampling users draws
    # {1, 1} a quarter of the time, so the upper bound is 1; row resampling would never get there.
    users = np.r_[np.zeros(100, int), 1]
    values = np.r_[np.zeros(100), 1.0]
    out = E.user_bootstrap(users, lambda rows: values[rows].mean(), n_boot=400, seed=0)
    assert out["estimate"] == pytest.approx(1 / 101)
    assert out["ci_high"] == 1.0 and out["ci_low"] == 0.0 and out["n_users"] == 2
    again = E.user_bootstrap(users, lambda rows: values[rows].mean(), n_boot=400, seed=0)
    assert again == out


def test_user_bootstrap_pools_training_seeds():
    # Seed statistics that are constants (0.1 and 0.3) have no user noise: half the pooled values
    # are 0.1 and half 0.3, so the 95% interval spans both seeds and the estimate is their mean.
    users = np.arange(10)
    out = E.user_bootstrap(users, [lambda r: 0.1, lambda r: 0.3], n_boot=100, seed=0)
    assert out["estimate"] == pytest.approx(0.2) and (out["ci_low"], out["ci_high"]) == pytest.approx((0.1, 0.3))
    assert out["n_seeds"] == 2 and out["seed_sd"] == pytest.approx(np.std([0.1, 0.3], ddof=1))
    # An independent form with user noise: every seed scores the same drawn users, and the
    # percentiles are taken over all seeds' values together.
    rng = np.random.default_rng(1)
    users = np.repeat(np.arange(20), 3)
    x = [rng.random(users.size), rng.random(users.size) + 0.2, rng.random(users.size) - 0.1]
    got = E.user_bootstrap(users, [lambda r, v=v: float(v[r].mean()) for v in x], n_boot=50, seed=7)
    draws = np.random.default_rng(7)
    pooled = []
    for _ in range(50):
        rows = np.concatenate([np.flatnonzero(users == u) for u in draws.integers(0, 20, 20)])
        pooled += [v[rows].mean() for v in x]
    assert got["estimate"] == pytest.approx(np.mean([v.mean() for v in x]))
    assert (got["ci_low"], got["ci_high"]) == pytest.approx(tuple(np.quantile(pooled, [0.025, 0.975])))
    assert got["seed_sd"] == pytest.approx(np.std([v.mean() for v in x], ddof=1))
    # One seed in a list is that seed alone; an empty list is refused.
    alone = E.user_bootstrap(users, lambda r: float(x[0][r].mean()), n_boot=50, seed=7)
    assert E.user_bootstrap(users, [lambda r: float(x[0][r].mean())], n_boot=50, seed=7) == alone
    assert alone["n_seeds"] == 1 and alone["seed_sd"] is None
    with pytest.raises(ValueError, match="empty sequence"):
        E.user_bootstrap(users, [], n_boot=5)


def test_per_seed_pairs_equal_seeds_and_shares_a_seedless_model():
    assert E.per_seed([1, 2], ["a", "b"], "shared") == [(1, "a", "shared"), (2, "b", "shared")]
    assert E.per_seed("x", "y") == [("x", "y")]
    with pytest.raises(ValueError, match=r"different numbers of seeds: \[1, 2\]"):
        E.per_seed([1, 2], ["one seed only"])  # one training cannot stand in for two
    with pytest.raises(ValueError, match=r"different numbers of seeds: \[2, 3\]"):
        E.per_seed([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="empty list"):
        E.per_seed([], "y")


def test_delta_m_worked_example():
    single = {("interest", "auc"): 0.75, ("behaviour", "rmse"): 1.0}
    mtl = {("interest", "auc"): 0.80, ("behaviour", "rmse"): 0.9}
    # +0.05/0.75 for AUC (higher is better), +0.1/1.0 for RMSE (lower is better, sign flipped).
    assert E.delta_m(mtl, single) == pytest.approx(100 * (0.05 / 0.75 + 0.1) / 2)
    assert E.delta_m(single, single) == 0
    with pytest.raises(ValueError, match="same"):
        E.delta_m({("interest", "auc"): 0.8}, single)
    with pytest.raises(ValueError, match="non-zero baseline"):
        E.delta_m(mtl, {**single, ("interest", "auc"): float("nan")})


def test_merge_single_task_keeps_each_model_own_task():
    rows = (E.tidy_rows({"auc": 0.7}, "single_interest", "interest", "p")
            + E.tidy_rows({"auc": 0.6}, "single_item", "item", "p")
            + E.tidy_rows({"auc": 0.9}, "single_item", "interest", "p")  # a stray output: dropped
            + E.tidy_rows({"auc": 0.8}, "mtl", "interest", "p"))
    merged = E.merge_single_task(E.as_tidy(rows))
    single = merged[merged["model"] == "single_task"].set_index("task")["value"]
    assert single.to_dict() == {"interest": 0.7, "item": 0.6}
    assert set(merged["model"]) == {"single_task", "mtl"}


def test_tidy_round_trips_through_csv_and_json(tmp_path):
    tidy = _folds([0.8, np.nan], [0.7, 0.75])
    record_results({"x": 1}, tmp_path, tidy=tidy)
    back = pd.DataFrame(load_results(tmp_path)["tidy"], columns=list(TIDY_COLUMNS))
    pd.testing.assert_frame_equal(back, tidy, check_dtype=False)
    tidy.to_csv(tmp_path / "t.csv", index=False)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv"), tidy, check_dtype=False)


def test_segments_partition_by_what_training_saw(prepared):
    seg = E.segment_masks(prepared, prepared.test)
    train_users = set(prepared.interactions("train")["user_id"])
    users = prepared.test.pairs["user_id"].to_numpy()
    assert np.array_equal(seg["cold_user"], ~np.isin(users, list(train_users)))
    assert not (seg["warm"] & (seg["cold_user"] | seg["cold_item"])).any()
    assert seg["all"].all()


def test_evaluate_predictions_scores_each_task_on_its_mask(prepared, trained):
    preds = predict(trained.net, prepared.test)
    thr = E.tuned_thresholds(predict(trained.net, prepared.valid), prepared.valid)
    tidy = E.evaluate_predictions(preds, prepared.test, "sb", "holdout", thresholds=thr)
    assert list(tidy.columns) == list(TIDY_COLUMNS)
    got = tidy.set_index(["task", "metric"])["value"]
    m = prepared.test.masks["interest"] > 0
    from sklearn.metrics import roc_auc_score
    assert got[("interest", "auc")] == pytest.approx(roc_auc_score(prepared.test.labels["interest"][m],
                                                                   preds["interest"][m]))
    assert ("behaviour", "rmse") in got and ("behaviour", "auc") not in got
    assert ("interest", "f1_tuned") in got and 0 < got[("interest", "threshold")] < 1
    bad = {**preds, "interest": np.where(np.arange(len(preds["interest"])) < 3, np.nan, preds["interest"])}
    with pytest.raises(ValueError, match="task 'interest': .* NaN"):
        E.evaluate_predictions(bad, prepared.test, "sb", "holdout")


def test_pair_features_equal_row_by_row_transform(prepared):
    users = np.array([3, 7, 11])
    items = np.array([1, 5, 9, 13])
    got = E.pair_features(prepared.builder, users, items)
    ref = prepared.builder.transform(np.repeat(users, 4), np.tile(items, 3))
    for name in ref:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)


def test_full_catalogue_excludes_seen_items_and_sampled_ranks_100(prepared, trained):
    items = prepared.data.items.index.to_numpy()
    scorer = E.catalogue_scorer(trained.net, prepared.builder, items)
    per_user, lists, users = E.full_catalogue_ranking(prepared, scorer, ks=(5, 10), block_size=16)
    seen = pd.concat([prepared.interactions("train"), prepared.interactions("valid")])
    seen_pairs = set(zip(seen["user_id"], seen["item_id"], strict=True))
    assert not any((u, i) in seen_pairs for u, row in zip(users, lists, strict=True) for i in row)
    assert set(per_user.index) <= set(users) and (per_user["hr@10"] >= per_user["hr@5"]).all()
    sampled = E.sampled_ranking(prepared, E.pair_scorer(trained.net, prepared.builder), n_negatives=49,
                                ks=(10,), seed=0)
    assert len(sampled) == len(prepared.interactions("test"))
    # A trained model ranks the held-out item above random guessing (HR@10 = 0.2 at random).
    assert sampled["hr@10"].mean() > 0.3
    # Popularity gives every user the same list: the most-trained items not yet seen.
    pop_cat, pop_pair = E.popularity_scorers(prepared.interactions("train"), items)
    _, pop_lists, _ = E.full_catalogue_ranking(prepared, pop_cat, ks=(5,))
    counts = prepared.interactions("train").groupby("item_id").size()
    assert counts.reindex(pop_lists[:, 0]).min() >= counts.quantile(0.9)
    pop_sampled = E.sampled_ranking(prepared, pop_pair, n_negatives=49, ks=(10,), seed=0)
    assert pop_sampled.index.tolist() == sampled.index.tolist()


def test_cross_validation_runs_two_models_with_paired_folds(small_world):
    runs = {"sb": dict(model="shared_bottom"), "single_interest": dict(model="single_task", tasks=["interest"])}
    res = cross_validate(small_world.data, runs, k=2, seed=0,
                         common=dict(epochs=1, batch_size=512, seed=0), progress=False)
    assert set(res.tidy["fold"]) == {0, 1} and set(res.tidy["protocol"]) == {"2-fold CV"}
    out = E.paired_test(res.tidy, "sb", "single_interest", "interest", "auc")
    assert out["n"] == 2
    # The corrected t-test's n_test / n_train: each fold trains on the other folds less their 10%
    # validation part, so the ratio is about 1 / (0.9 (k - 1)), not the 1 / (k - 1) of "kfold".
    folds = [prepare_tasks(small_world.data, "kfold", seed=0, fold=f, k=2).indices for f in (0, 1)]
    assert res.test_train_ratio == pytest.approx(np.mean([f["test"].size / f["train"].size for f in folds]))
    assert res.test_train_ratio == pytest.approx(1 / 0.9, rel=0.05) and res.test_train_ratio > 1
    summary = E.summarise(res.tidy)
    assert (summary["n"] == 2).all()


def test_delta_m_by_fold_and_headline_values(prepared, trained):
    rows = []
    for fold, (mtl_auc, single_auc) in enumerate([(0.8, 0.75), (0.7, 0.7)]):
        for model, auc, rmse in (("mtl", mtl_auc, 0.9), ("single_task", single_auc, 1.0)):
            rows += E.tidy_rows({"auc": auc}, model, "interest", "cv", fold)
            rows += E.tidy_rows({"auc": 0.8}, model, "item", "cv", fold)
            rows += E.tidy_rows({"rmse": rmse}, model, "behaviour", "cv", fold)
    dm = E.delta_m_by_fold(E.as_tidy(rows), "mtl")
    assert dm[("cv", 0)] == pytest.approx(100 * (0.05 / 0.75 + 0 + 0.1) / 3)
    assert dm[("cv", 1)] == pytest.approx(100 * 0.1 / 3)
    preds = predict(trained.net, prepared.test)
    vals = E.primary_values(preds, prepared.test)
    tidy = E.evaluate_predictions(preds, prepared.test, "sb", "h").set_index(["task", "metric"])["value"]
    for key, v in vals.items():
        assert v == pytest.approx(tidy[key])
    boot = E.delta_m_bootstrap(prepared.test, preds, preds, n_boot=20)
    assert boot["estimate"] == 0 and boot["ci_low"] == 0 and boot["ci_high"] == 0


def test_delta_m_bootstrap_with_a_per_user_term_draws_the_same_users(prepared, trained):
    ts = prepared.test
    preds = predict(trained.net, ts)
    worse = {t: (p * 0.5 if t != "behaviour" else p + 0.3) for t, p in preds.items()}
    users = np.unique(ts.pairs["user_id"].to_numpy())
    ranked = users[::2]  # only some users have a ranking value, as when some have no test item
    rng = np.random.default_rng(3)
    a = pd.Series(rng.random(ranked.size), index=ranked)
    b = pd.Series(rng.random(ranked.size), index=ranked[::-1])  # another order: pairing is by user id
    key = ("item", "ndcg@10")
    got = E.delta_m_bootstrap(ts, preds, worse, n_boot=30, seed=5, per_user={key: (a, b)})
    # An independent form of the same resampling: the users drawn, each one's rows, and the
    # per-user term as a mean over the drawn users that have a value, repeats counted.
    codes = {u: np.flatnonzero(ts.pairs["user_id"].to_numpy() == u) for u in users}

    def stat(drawn):
        rows = np.concatenate([codes[u] for u in drawn])
        ranked_drawn = [u for u in drawn if u in a.index]
        m = {**E.primary_values(preds, ts, rows), key: float(np.mean([a[u] for u in ranked_drawn]))}
        s = {**E.primary_values(worse, ts, rows), key: float(np.mean([b[u] for u in ranked_drawn]))}
        return E.delta_m(m, s)

    draws = np.random.default_rng(5)
    vals = [stat(users[draws.integers(0, users.size, users.size)]) for _ in range(30)]
    assert got["estimate"] == pytest.approx(stat(users))
    assert got["ci_low"] == pytest.approx(np.quantile(vals, 0.025)) and got["ci_high"] == pytest.approx(
        np.quantile(vals, 0.975))
    # Two training seeds, the second the same models: each resample's value counts twice in the pool.
    two = E.delta_m_bootstrap(ts, [preds, preds], [worse, worse], n_boot=30, seed=5, per_user={key: ([a, a], [b, b])})
    assert two["estimate"] == pytest.approx(got["estimate"])
    assert (two["ci_low"], two["ci_high"]) == pytest.approx(tuple(np.quantile(vals * 2, [0.025, 0.975])))
    assert two["n_seeds"] == 2
    with pytest.raises(ValueError, match="different numbers of seeds"):
        E.delta_m_bootstrap(ts, [preds, preds], worse, n_boot=2, per_user={key: ([a, a, a], b)})
    # A term that only one user has: resamples without that user are undefined, not an error.
    lone = E.delta_m_bootstrap(ts, preds, worse, n_boot=40, seed=5, per_user={key: (a.iloc[:1], b.loc[a.index[:1]])})
    assert 0 < lone["n_undefined"] < 40 and np.isfinite(lone["estimate"])
    # ... and so are resamples whose single-task mean is 0 (Δm% is relative to it).
    zero = E.delta_m_bootstrap(ts, preds, worse, n_boot=40, seed=5,
                               per_user={key: (a.iloc[:2], pd.Series([0.0, 0.5], index=a.index[:2]))})
    assert 0 < zero["n_undefined"] < 40
    with pytest.raises(ValueError, match="also a row-level key"):
        E.delta_m_bootstrap(ts, preds, worse, n_boot=2, per_user={("item", "auc"): (a, b)})
    with pytest.raises(ValueError, match="different users"):
        E.delta_m_bootstrap(ts, preds, worse, n_boot=2, per_user={key: (a, b.iloc[1:])})
    with pytest.raises(ValueError, match=r"users \[-7\] have no row"):
        E.delta_m_bootstrap(ts, preds, worse, n_boot=2, per_user={key: (a.rename({ranked[0]: -7}),
                                                                         b.rename({ranked[0]: -7}))})


def test_metric_difference_bootstrap_is_paired_and_segmented(prepared, trained):
    preds = predict(trained.net, prepared.test)
    same = E.metric_difference_bootstrap(prepared.test, preds, preds, "interest", "auc", n_boot=50, seed=0)
    assert same["estimate"] == 0 and same["ci_low"] == 0 and same["ci_high"] == 0
    # A model that is worse on every row gets a wholly negative AUC interval.
    y = prepared.test.labels["interest"]
    noisy = {"interest": np.where(y > 0, 0.4, 0.6)}
    perfect = {"interest": y.astype(float)}
    d = E.metric_difference_bootstrap(prepared.test, noisy, perfect, "interest", "auc", n_boot=50, seed=0)
    assert d["estimate"] == pytest.approx(-1.0) and d["ci_high"] < 0
    users = prepared.test.pairs["user_id"].to_numpy()
    rows = users == users[0]
    part = E.metric_difference_bootstrap(prepared.test, noisy, perfect, "interest", "auc", rows=rows, n_boot=10)
    assert part["n_users"] == 1 and part["rows"] == int((rows & (prepared.test.masks["interest"] > 0)).sum())
    with pytest.raises(ValueError, match="valid: .*'auc'"):
        E.metric_difference_bootstrap(prepared.test, preds, preds, "interest", "ndcg@10")
    # An empty segment (no new user in this split, say) is named, not a NumPy error about concatenation.
    with pytest.raises(ValueError, match="no row labelled for task 'interest' among the 0 rows selected by rows"):
        E.metric_difference_bootstrap(prepared.test, noisy, perfect, "interest", "auc", rows=np.zeros(len(y), bool))
    with pytest.raises(ValueError, match="users is empty"):
        E.user_bootstrap(np.array([], "int64"), lambda r: 0.0, n_boot=5)
    # Per training seed: seed s of one side is paired with seed s of the other, and the seeds are
    # pooled. Two identical seeds give the one-seed interval; a dict is shared by every seed.
    twice = E.metric_difference_bootstrap(prepared.test, [noisy, noisy], perfect, "interest", "auc", n_boot=50, seed=0)
    assert {k: twice[k] for k in ("estimate", "ci_low", "ci_high")} == {k: d[k] for k in ("estimate", "ci_low", "ci_high")}
    assert twice["n_seeds"] == 2 and twice["seed_sd"] == 0
    mixed = E.metric_difference_bootstrap(prepared.test, [noisy, perfect], [perfect, perfect], "interest", "auc",
                                          n_boot=50, seed=0)
    assert mixed["estimate"] == pytest.approx(-0.5) and mixed["ci_low"] == pytest.approx(-1.0) and mixed["ci_high"] == 0
    with pytest.raises(ValueError, match="different numbers of seeds"):
        E.metric_difference_bootstrap(prepared.test, [noisy, noisy], [perfect], "interest", "auc", n_boot=2)
    # Seed s of a is scored against seed s of b: swapping b's seeds changes each seed's estimate.
    half = {"interest": np.where(np.arange(y.size) % 2 == 0, y.astype(float), 0.5)}
    paired = E.metric_difference_bootstrap(prepared.test, [perfect, noisy], [half, perfect], "interest", "auc",
                                           n_boot=20, seed=0)
    swapped = E.metric_difference_bootstrap(prepared.test, [perfect, noisy], [perfect, half], "interest", "auc",
                                            n_boot=20, seed=0)
    auc_half = E.metric_difference_bootstrap(prepared.test, perfect, half, "interest", "auc", n_boot=2)["estimate"]
    assert paired["seed_estimates"] == pytest.approx([auc_half, -1.0])
    assert swapped["seed_estimates"] == pytest.approx([0.0, -1.0 + auc_half])


def test_list_diversity_of_top_lists(prepared, trained):
    items = prepared.data.items.index.to_numpy()
    _, lists, _ = E.full_catalogue_ranking(prepared, E.catalogue_scorer(trained.net, prepared.builder, items), ks=(10,))
    pos = E.item_positions(prepared, lists)
    assert (items[pos[pos >= 0]] == lists[lists >= 0]).all() and ((pos >= 0) == (lists >= 0)).all()
    div = E.list_diversity(prepared, lists, k=10)
    assert 0 < div["coverage"] <= 1 and 0 <= div["ild_genre"] <= 1 and div["novelty"] > 0


def test_cached_scorers_give_the_network_scores_and_compute_each_user_once(prepared, trained):
    items = prepared.data.items.index.to_numpy()
    calls = []
    base = E.catalogue_scorer(trained.net, prepared.builder, items)

    def counting(users):
        calls.append(len(users))
        return base(users)

    cat, pairs = E.cached_scorers(counting, items)
    users, cand = E.sampled_candidates(prepared, n_negatives=9, seed=0)
    direct = E.pair_scorer(trained.net, prepared.builder)(np.repeat(users, 10), cand.ravel())
    cached = pairs(np.repeat(users, 10), cand.ravel())
    np.testing.assert_allclose(cached, direct, rtol=1e-5, atol=1e-6)
    assert sum(calls) == np.unique(users).size
    cat(users[:3])  # already scored: no new network call
    assert sum(calls) == np.unique(users).size
    with pytest.raises(ValueError, match="scorer's catalogue.*not among"):
        pairs(users[:1], np.array([10**9]))


def test_cross_validation_with_a_view_ranking_and_a_per_fold_reference(small_world):
    seen = []

    def marked(p):
        seen.append(len(p.train))
        return p

    runs = {"sb": dict(model="shared_bottom"), "sb_view": dict(model="shared_bottom", view="same")}
    res = cross_validate(small_world.data, runs, k=2, seed=0, common=dict(epochs=1, batch_size=512, seed=0),
                         progress=False, views={"same": marked}, ranked=["sb"], per_fold=E.popularity_rows)
    assert len(seen) == 2  # the view is built once per fold
    ranked = res.tidy[res.tidy["metric"] == "ndcg@10"]
    assert set(ranked["model"]) == {"sb", "popularity"} and set(ranked["fold"]) == {0, 1}
    assert set(res.tidy.loc[res.tidy["model"] == "popularity", "task"]) == {"item"}
    # The identity view trains the same model on the same rows: identical metrics.
    a = res.tidy[res.tidy["model"] == "sb"].set_index(["task", "metric", "fold"])["value"]
    b = res.tidy[res.tidy["model"] == "sb_view"].set_index(["task", "metric", "fold"])["value"]
    pd.testing.assert_series_equal(a.loc[b.index], b, check_names=False)
    with pytest.raises(ValueError, match="asks for view 'text'"):
        cross_validate(small_world.data, {"x": dict(model="shared_bottom", view="text")}, k=2,
                       common=dict(epochs=1, batch_size=512), progress=False)


def test_paired_tests_skip_missing_keys_and_orient_better():
    tidy = pd.concat([_folds([0.80, 0.82, 0.81], [0.78, 0.79, 0.80]),
                      _folds([0.90, 0.91, 0.92], [0.95, 0.96, 0.97], metric="rmse", task="behaviour")])
    out = E.paired_tests(tidy, ["a"], "b", [("interest", "auc"), ("behaviour", "rmse"), ("item", "auc")])
    assert list(zip(out["task"], out["better"], strict=True)) == [("interest", True), ("behaviour", True)]
    assert out.loc[0, "mean_diff"] == pytest.approx(0.02)


def test_ranking_a_seeded_sample_of_users(prepared, trained):
    sample = E.sample_test_users(prepared, 10, seed=1)
    assert sample.size == 10 and np.array_equal(sample, E.sample_test_users(prepared, 10, seed=1))
    assert E.sample_test_users(prepared, 0) is None and E.sample_test_users(prepared, 10**6) is None
    items = prepared.data.items.index.to_numpy()
    scorer = E.catalogue_scorer(trained.net, prepared.builder, items)
    full, _, _ = E.full_catalogue_ranking(prepared, scorer, ks=(10,))
    part, _, users = E.full_catalogue_ranking(prepared, scorer, ks=(10,), users=sample)
    assert np.array_equal(users, sample)
    pd.testing.assert_frame_equal(part, full.loc[part.index])  # the same users get the same metrics
    with pytest.raises(ValueError, match="no test interaction"):
        E.full_catalogue_ranking(prepared, scorer, users=np.array([10**9]))
    with pytest.raises(ValueError, match=">= 0"):
        E.sample_test_users(prepared, -1)


def test_highlights_must_name_summary_tables(tmp_path):
    record_results({"verdicts": [{"claim": "x", "verdict": "inconclusive"}]}, tmp_path, highlights=["verdicts"])
    assert load_results(tmp_path)["highlights"] == ["verdicts"]
    with pytest.raises(ValueError, match=r"highlights \['missing'\] are not keys"):
        record_results({"x": 1}, tmp_path, highlights=["missing"])
