"""09's machinery: tuning on validation only, the Surprise peers on our folds, BPR and the results table."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from mtrec_study.models.classic import BPR
from mtrec_study.prepare import prepare_tasks
from mtrec_study.study import peers as P
from mtrec_study.study import published as H
from mtrec_study.study import tuning as T


@pytest.fixture(scope="module")
def fold(small_world):
    return prepare_tasks(small_world.data, "kfold", seed=0, neg_ratio=1.0, fold=0, k=5)


def _keys(frame: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(frame["user_id"].tolist(), frame["item_id"].tolist(), strict=True))


# --------------------------------------------------------------------------- the sealed view
def test_validation_view_holds_only_train_and_valid_rows(fold):
    view = T.validation_view(fold)
    assert len(view.data.interactions) == len(fold.indices["train"]) + len(fold.indices["valid"])
    for part in ("train", "valid"):
        pd.testing.assert_frame_equal(view.interactions(part).reset_index(drop=True),
                                      fold.interactions(part).reset_index(drop=True))
    assert not _keys(view.data.interactions) & _keys(fold.interactions("test"))
    with pytest.raises(T.TestSplitSealed, match="test.labels"):
        _ = view.test.labels
    with pytest.raises(T.TestSplitSealed, match="indices\\['test'\\]"):
        view.interactions("test")
    assert len(fold.test) > 0  # the original is untouched


def test_grid_search_never_lets_a_score_read_the_test_part(fold):
    def peek(view, setting):
        return float(view.test.labels["behaviour"].mean())

    with pytest.raises(T.TestSplitSealed):
        T.grid_search(fold, [{"a": 1}, {"a": 2}], peek)


def test_tuner_sees_only_validation_data(fold):
    """A spy score records every pair it could read; poisoning the test ratings changes nothing."""
    seen: list[set] = []

    def spy(view, setting):
        seen.append(_keys(view.data.interactions))
        valid = view.interactions("valid")
        return float(abs(valid["rating"].mean() - setting["guess"]))

    grid = [{"guess": g} for g in (2.0, 3.5, 4.0)]
    table = T.grid_search(fold, grid, spy)
    allowed = _keys(fold.interactions("train")) | _keys(fold.interactions("valid"))
    assert seen and all(s <= allowed for s in seen)
    assert all(not (s & _keys(fold.interactions("test"))) for s in seen)

    inter = fold.data.interactions.copy()
    rows = inter.index[fold.indices["test"]]
    inter.loc[rows, "rating"] = 1.0 + (inter.loc[rows, "rating"] % 5)  # every test rating changed
    poisoned = dataclasses.replace(fold, data=dataclasses.replace(fold.data, interactions=inter))
    pd.testing.assert_frame_equal(T.grid_search(poisoned, grid, spy), table)
    assert table["chosen"].tolist() == (table["valid_score"] == table["valid_score"].min()).tolist()


def test_a_single_setting_is_chosen_without_training(fold):
    def fail(view, setting):
        raise AssertionError("must not be called")

    table = T.grid_search(fold, [{"x": 1}], fail)
    assert table["chosen"].tolist() == [True] and np.isnan(table["valid_score"].item())


def test_one_setting_grids_build_no_split():
    def never():
        raise AssertionError("the split must not be built when nothing is trained")

    table = T.tune_splits({"s": never}, {"m": [{"x": 1}]}, {"m": {"s": lambda v, s: 0.0}}, progress=False)
    assert table["chosen"].tolist() == [True]


def test_budget_and_plan_errors_name_the_model(fold):
    with pytest.raises(ValueError, match="'big'.*budget"):
        T.check_budget({"big": [{}] * (T.TUNE_BUDGET + 1)})
    with pytest.raises(ValueError, match="no grid"):
        T.tune_splits({"s": lambda: fold}, {"a": [{}]}, {"b": {"s": lambda v, s: 0.0}}, progress=False)
    with pytest.raises(ValueError, match="unknown split 'x'"):
        T.tune_splits({"s": lambda: fold}, {"a": [{}]}, {"a": {"x": lambda v, s: 0.0}}, progress=False)


def test_tune_splits_store_and_load_round_trip(fold, tmp_path):
    grids = {"m": [{"v": 1}, {"v": 2}], "n": [{"w": 0}, {"w": 5}]}
    scores = {"m": {"a": lambda v, s: float(s["v"]), "b": lambda v, s: -float(s["v"])},
              "n": {"b": lambda v, s: float(abs(s["w"] - 4))}}
    table = T.tune_splits({"a": lambda: fold, "b": lambda: fold}, grids, scores, progress=False)
    assert len(table) == 6
    assert T.chosen_settings(table) == {"m": {"a": {"v": 1}, "b": {"v": 2}}, "n": {"b": {"w": 5}}}
    key = {"seed": 1, "k": 5}
    path = T.save_tuned(tmp_path / "tuned.yaml", table, key, grids)
    assert T.load_tuned(path, key, grids) == T.chosen_settings(table)
    chosen, stored = T.tuned_or_tune(path, key, {"a": None, "b": None}, grids, scores)
    assert chosen["n"]["b"] == {"w": 5}
    pd.testing.assert_frame_equal(stored, table)  # the search's own scores come back with the choices
    with pytest.raises(ValueError, match="key 'seed' is 1, this run has 2"):
        T.load_tuned(path, {"seed": 2, "k": 5}, grids)
    with pytest.raises(ValueError, match="stored grid of 'm' differs"):
        T.load_tuned(path, key, {**grids, "m": [{"v": 1}, {"v": 3}]})
    with pytest.raises(FileNotFoundError, match="mtrec_study tune"):
        T.load_tuned(tmp_path / "missing.yaml", key, grids)


def test_a_widened_grid_trains_only_its_new_settings_and_chooses_as_a_fresh_search(fold, tmp_path):
    calls = []

    def score(view, setting):  # one number for m; criteria on two tasks for n (Δm% over the first setting)
        calls.append(json.dumps(setting, sort_keys=True))
        return float((setting["v"] - 3) ** 2)

    def criteria(view, setting):
        calls.append(json.dumps(setting, sort_keys=True))
        return {("interest", "auc"): 0.7 + 0.01 * setting["w"], ("behaviour", "rmse"): 1.0 - 0.002 * setting["w"]}

    splits = {"a": lambda: fold, "b": lambda: fold}
    scores = {"m": {"a": score, "b": score}, "n": {"a": criteria}}
    first = {"m": [{"v": 1}, {"v": 2}], "n": [{"w": 0}, {"w": 1}]}
    round_1 = T.tune_splits(splits, first, scores, progress=False)
    assert T.chosen_settings(round_1) == {"m": {"a": {"v": 2}, "b": {"v": 2}}, "n": {"a": {"w": 1}}}  # both at an edge
    wider = {"m": [{"v": 1}, {"v": 2}, {"v": 3}, {"v": 4}], "n": [{"w": 0}, {"w": 1}, {"w": 2}]}
    calls.clear()
    round_2 = T.tune_splits(splits, wider, scores, progress=False, stored=round_1)
    assert sorted(calls) == sorted(['{"v": 3}', '{"v": 4}'] * 2 + ['{"w": 2}'])  # only the new settings trained
    calls.clear()
    fresh = T.tune_splits(splits, wider, scores, progress=False)
    assert len(calls) == 11
    pd.testing.assert_frame_equal(round_2, fresh)  # read back or trained again: the same scores and choices
    assert T.chosen_settings(round_2) == {"m": {"a": {"v": 3}, "b": {"v": 3}}, "n": {"a": {"w": 2}}}
    # A split whose settings are all known is never built.
    never = {"a": lambda: (_ for _ in ()).throw(AssertionError("built")), "b": lambda: fold}
    calls.clear()
    again = T.tune_splits(never, wider, scores, progress=False, stored=fresh)
    assert calls == [] and again.equals(fresh)


def test_an_interrupted_search_resumes_and_never_leaves_its_file_half_written(fold, tmp_path, capsys):
    key = {"seed": 1, "k": 5}
    grids = {"m": [{"v": 1}, {"v": 2}], "n": [{"w": 0}, {"w": 5}]}
    trained, cut = [], {"after": None}

    class Stop(Exception):
        pass

    def score(view, setting):
        if cut["after"] is not None and len(trained) == cut["after"]:
            raise Stop  # the machine goes away in the middle of a training
        trained.append(setting)
        return float(sum(setting.values()))

    scores = {"m": {"a": score, "b": score}, "n": {"b": score}}
    splits = {"a": lambda: fold, "b": lambda: fold}
    path = tmp_path / "tuned.yaml"
    T.run_search(path, key, splits, grids, scores, progress=False)
    assert len(trained) == 6 and not T.partial_path(path).exists()
    before = path.read_text()
    # A third setting for m: only it trains, on a and then on b, where the run is cut.
    wider = {"m": [{"v": 1}, {"v": 2}, {"v": 0}], "n": grids["n"]}
    trained.clear()
    cut["after"] = 1
    with pytest.raises(Stop):
        T.run_search(path, key, splits, wider, scores, progress=False)
    assert trained == [{"v": 0}] and path.read_text() == before  # the finished search is untouched
    partial = T.partial_path(path)
    doc = yaml.safe_load(partial.read_text())
    assert doc["complete"] is False and {(r["model"], r["split"]) for r in doc["validation"]} == {("m", "a")}
    with pytest.raises(ValueError, match="a search's checkpoint, not a finished search"):
        T.load_tuned(partial, key, wider)
    # Run again: (m, a) comes back from the checkpoint, (m, b)'s new setting trains, then the file is replaced.
    trained.clear()
    cut["after"] = None
    T.run_search(path, key, splits, wider, scores, progress=False)
    assert trained == [{"v": 0}] and "resuming from" in capsys.readouterr().out
    assert not partial.exists() and T.load_tuned(path, key, wider) == {"m": {"a": {"v": 0}, "b": {"v": 0}},
                                                                      "n": {"b": {"w": 0}}}
    # fresh trains everything again; --only (merge) keeps the other models and needs a file of this key.
    trained.clear()
    T.run_search(path, key, splits, wider, scores, fresh=True, progress=False)
    assert len(trained) == 8
    trained.clear()
    T.run_search(path, key, splits, {"n": [{"w": 0}, {"w": 5}, {"w": -1}]}, {"n": {"b": score}}, merge=True,
                 progress=False)
    assert trained == [{"w": -1}]
    assert T.load_tuned(path, key, wider | {"n": [{"w": 0}, {"w": 5}, {"w": -1}]})["m"] == {"a": {"v": 0}, "b": {"v": 0}}
    with pytest.raises(FileNotFoundError, match="without --only"):
        T.run_search(tmp_path / "none.yaml", key, splits, grids, scores, merge=True, progress=False)
    with pytest.raises(ValueError, match="key 'seed' is 1, this run has 2"):
        T.run_search(path, {"seed": 2, "k": 5}, splits, grids, scores, merge=True, progress=False)
    # A whole search of another key reads nothing back, says so, and replaces the file.
    trained.clear()
    T.run_search(path, {"seed": 2, "k": 5}, splits, grids, scores, progress=False)
    assert len(trained) == 6 and "another key" in capsys.readouterr().out


def test_how_each_network_trained_is_stored_and_read_back_with_its_score(fold, tmp_path):
    def score(view, setting):
        value = float(setting["v"])
        return value if setting["v"] == 3 else T.Scored(value, {"best_epoch": setting["v"], "epochs_run": 9})

    grids = {"m": [{"v": 2}, {"v": 1}, {"v": 3}]}
    table = T.tune_splits({"a": lambda: fold}, grids, {"m": {"a": score}}, progress=False)
    assert [t if isinstance(t, str) else None for t in table["trained"]] == [
        '{"best_epoch": 2, "epochs_run": 9}', '{"best_epoch": 1, "epochs_run": 9}', None]
    assert T.chosen_settings(table) == {"m": {"a": {"v": 1}}}
    key = {"seed": 1, "epochs": 20}
    path = T.save_tuned(tmp_path / "tuned.yaml", table, key, grids)
    doc = yaml.safe_load(path.read_text())
    assert doc["validation"][0]["trained"] == {"best_epoch": 2, "epochs_run": 9} and "trained" not in doc["validation"][2]
    stored = T.validation_rows(doc)
    known = T.stored_scores(stored, "a", "m")
    assert known['{"v": 1}'] == T.Scored(1.0, {"best_epoch": 1, "epochs_run": 9}) and known['{"v": 3}'] == 3.0
    again = T.tune_splits({"a": lambda: fold}, grids, {"m": {"a": lambda v, s: pytest.fail("trained again")}},
                          progress=False, stored=stored)
    pd.testing.assert_frame_equal(again, table)  # read back, record included


def test_a_changed_epoch_cap_reads_back_only_the_runs_that_are_the_same_under_it(fold, tmp_path, capsys):
    """A run early stopping ended before both caps is the same run under either; a run the old cap cut is
    not, nor one stored without its record; a model that does not train by epochs never depends on the cap."""
    grids = {"net": [{"v": 1}, {"v": 2}, {"v": 3}, {"v": 4}], "peer": [{"k": 1}, {"k": 2}]}
    ran = {1: 12, 2: 20, 3: 19}  # epochs each network setting runs under a cap of 20 (v=2: cut by it)
    trained = []

    def net(view, setting):
        trained.append(("net", setting["v"]))
        value = float(setting["v"])
        return value if setting["v"] == 4 else T.Scored(value, {"best_epoch": ran[setting["v"]] - 3,
                                                                "epochs_run": ran[setting["v"]]})

    def peer(view, setting):
        trained.append(("peer", setting["k"]))
        return float(setting["k"])

    splits, scores = {"a": lambda: fold}, {"net": {"a": net}, "peer": {"a": peer}}
    path = tmp_path / "tuned.yaml"
    T.run_search(path, {"seed": 1, "epochs": 20}, splits, grids, scores, progress=False, epoch_free=["peer"])
    doc = yaml.safe_load(path.read_text())
    kept = T.rows_under_new_cap(doc, {"seed": 1, "epochs": 60}, epoch_free=["peer"])
    assert sorted(zip(kept["model"], kept["setting"], strict=True)) == [("net", '{"v": 1}'), ("net", '{"v": 3}'),
                                                           ("peer", '{"k": 1}'), ("peer", '{"k": 2}')]
    # A lower cap keeps only the runs that ended before it.
    lower = T.rows_under_new_cap(doc, {"seed": 1, "epochs": 15}, epoch_free=["peer"])
    assert sorted(lower.loc[lower["model"] == "net", "setting"]) == ['{"v": 1}']
    assert T.rows_under_new_cap(doc, {"seed": 1, "epochs": 20}) is None  # the same key: ordinary read-back
    assert T.rows_under_new_cap(doc, {"seed": 2, "epochs": 60}) is None  # another key in more than the cap
    trained.clear()
    T.run_search(path, {"seed": 1, "epochs": 60}, splits, grids, scores, progress=False, epoch_free=["peer"])
    assert sorted(trained) == [("net", 2), ("net", 4)]
    assert "4 of its scored settings are the same runs under epochs=60" in capsys.readouterr().out
    # fresh trains everything.
    trained.clear()
    T.run_search(path, {"seed": 1, "epochs": 20}, splits, grids, scores, progress=False, epoch_free=["peer"], fresh=True)
    assert len(trained) == 6


def test_cut_by_the_cap_by_hand():
    """Keras's early stopping ends a run max(patience, 1) epochs after its best epoch."""
    assert not T.cut_by_cap({"best_epoch": 5, "epochs_run": 8}, 20, 3)  # stopped early
    assert not T.cut_by_cap({"best_epoch": 17, "epochs_run": 20}, 20, 3)  # early stopping fired at the cap
    assert T.cut_by_cap({"best_epoch": 18, "epochs_run": 20}, 20, 3)  # two epochs after the best: cut
    assert T.cut_by_cap({"best_epoch": 19, "epochs_run": 20}, 20, 0) is False  # patience 0 waits one epoch
    assert T.cut_by_cap({"best_epoch": 20, "epochs_run": 20}, 20, 0)
    assert T.cut_by_cap({"best_epoch": 17, "epochs_run": 20}, 20, None)  # without patience, reaching the cap counts
    # With the key's patience, a run early stopping ended at the old cap is read back under a larger one.
    rows = [{"split": "a", "model": "net", "setting": {"v": v}, "valid_score": 0.1, "chosen": v == 1,
             "trained": {"best_epoch": best, "epochs_run": 20}} for v, best in ((1, 17), (2, 18))]
    doc = {"key": {"epochs": 20, "patience": 3}, "validation": rows}
    kept = T.rows_under_new_cap(doc, {"epochs": 60, "patience": 3})
    assert kept["setting"].tolist() == ['{"v": 1}']
    assert T.rows_under_new_cap(doc, {"epochs": 19, "patience": 3}).empty  # a lower cap would cut both


def test_a_run_early_stopping_ended_is_the_same_run_under_a_larger_cap(fold):
    """What lets a raised cap read back the runs that stopped before the old one (exact, not approximate)."""
    setting = {**H.GRIDS["single_behaviour"][0], "learning_rate": 0.05}
    short = H.fit_model("single_behaviour", fold, setting, epochs=30, patience=1)
    stopped = short.extra["epochs_run"]
    assert stopped < 30, "the fixture should stop early; raise the learning rate"
    longer = H.fit_model("single_behaviour", fold, setting, epochs=stopped + 7, patience=1)
    assert longer.extra == short.extra
    a, b = short.predict(fold.test), longer.predict(fold.test)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert H.trains_by_epochs("mtl") and H.trains_by_epochs("single_item") and H.trains_by_epochs("two_tower_item")
    assert not any(H.trains_by_epochs(m) for m in ("bpr", "ease", "logreg", "SVD"))


def test_the_chosen_table_shows_how_each_chosen_network_trained():
    tuning = pd.DataFrame({
        "split": ["a", "a", "a", "b", "a"], "model": ["net", "net", "bpr", "net", "old"],
        "setting": ['{"v": 1}', '{"v": 2}', '{"k": 1}', '{"v": 1}', '{"w": 0}'],
        "valid_score": [0.2, 0.1, 0.3, 0.1, 0.5], "chosen": [False, True, True, True, True],
        "trained": [json.dumps({"best_epoch": 4, "epochs_run": 7}), json.dumps({"best_epoch": 18, "epochs_run": 20}),
                    None, json.dumps({"best_epoch": 17, "epochs_run": 20}), None]})
    chosen = {"net": {"a": {"v": 2}, "b": {"v": 1}}, "bpr": {"a": {"k": 1}}, "old": {"a": {"w": 0}}}
    table = H.chosen_table(chosen, tuning, epochs=20, patience=3).set_index(["model", "split"])
    assert table.loc[("net", "a"), "best epoch"] == 18 and table.loc[("net", "a"), "cut by the cap"] is True
    # Best at 17 with patience 3: early stopping itself ended the run at the cap, which cut nothing.
    assert table.loc[("net", "b"), "epochs run"] == 20 and table.loc[("net", "b"), "cut by the cap"] is False
    for blank in [("bpr", "a"), ("old", "a")]:  # no epochs, or a search stored before the record
        assert pd.isna(table.loc[blank, "best epoch"]) and table.loc[blank, "cut by the cap"] is None
    assert table.loc[("net", "a"), "chosen setting"] == '{"v": 2}'
    assert H.chosen_table(chosen, tuning.drop(columns="trained"))["best epoch"].isna().all()


def test_scores_read_back_that_no_longer_fit_the_score_function_are_named(fold):
    stored = T.tune_splits({"a": lambda: fold}, {"m": [{"v": 1}, {"v": 2}]},
                           {"m": {"a": lambda v, s: {("interest", "auc"): 0.5 + s["v"] / 10}}}, progress=False)
    with pytest.raises(ValueError, match="criteria for others.*read back from an earlier search.*--fresh"):
        T.tune_splits({"a": lambda: fold}, {"m": [{"v": 1}, {"v": 2}, {"v": 3}]}, {"m": {"a": lambda v, s: 0.1}},
                      progress=False, stored=stored)
    with pytest.raises(ValueError, match="different criteria.*--fresh"):
        T.tune_splits({"a": lambda: fold}, {"m": [{"v": 1}, {"v": 3}]},
                      {"m": {"a": lambda v, s: {("behaviour", "rmse"): 1.0}}}, progress=False, stored=stored)


def test_a_search_with_only_replaces_only_the_named_models(fold, tmp_path):
    grids = {"m": [{"v": 1}, {"v": 2}], "n": [{"w": 0}, {"w": 5}]}
    scores = {"m": {"a": lambda v, s: float(s["v"])}, "n": {"a": lambda v, s: float(abs(s["w"] - 4))}}
    key = {"seed": 1, "k": 5}
    path = T.save_tuned(tmp_path / "tuned.yaml", T.tune_splits({"a": lambda: fold}, grids, scores, progress=False),
                        key, grids)
    new_grid = {"n": [{"w": 1}, {"w": 3}], "e": [{"l2": 7}]}
    new_scores = {"n": {"a": lambda v, s: float(abs(s["w"] - 4))}, "e": {"a": lambda v, s: 0.0}}
    table = T.tune_splits({"a": lambda: fold}, new_grid, new_scores, progress=False)
    T.write_search(path, table, key, new_grid, T.check_stored(path, key), merge=True)
    merged = {**grids, **new_grid}
    assert T.load_tuned(path, key, merged) == {"m": {"a": {"v": 1}}, "n": {"a": {"w": 3}}, "e": {"a": {"l2": 7}}}
    with pytest.raises(ValueError, match="key 'seed' is 1, this run has 2.*without --only"):
        T.check_stored(path, {"seed": 2, "k": 5})
    with pytest.raises(FileNotFoundError, match="without --only"):
        T.check_stored(tmp_path / "missing.yaml", key)
    with pytest.raises(ValueError, match="--only: unknown model 'nope'"):
        H.tune_preset("full", tmp_path / "x.yaml", only=["nope"])
    with pytest.raises(ValueError, match="at least one model"):
        H.tune_preset("full", tmp_path / "x.yaml", only=[])


def test_committed_tuning_matches_the_full_preset():
    """params/tuned.yaml must belong to the grids the full preset runs (else 09 would refuse it)."""
    import yaml

    from mtrec_study.config import PROJECT_ROOT

    params = H.preset_parameters("full")
    path = PROJECT_ROOT / "params" / "tuned.yaml"
    doc = yaml.safe_load(path.read_text())
    models = [m for m in H.GRIDS if m not in P.PEERS or m in params["PEERS_TO_RUN"]]
    assert doc["grids"] == H.grids(params["TUNE_SETTINGS"], models)
    assert doc["key"]["seed"] == params["SEED"] and doc["key"]["k"] == params["CV_FOLDS"]
    assert doc["key"]["epochs"] == params["EPOCHS"]
    names = [f"fold-{f}" for f in range(params["CV_FOLDS"])] + ["per_user_recent", "loo", "random"]
    for model in models:
        assert set(doc["chosen"][model]) == set(H.plan_splits(model, names))
    # Every stored choice is the lowest validation score of its (split, model).
    val = pd.DataFrame(doc["validation"])
    for (split, model), g in val.groupby(["split", "model"]):
        best = g.loc[g["valid_score"].idxmin(), "setting"]
        assert doc["chosen"][model][split] == best
    # Where the multi-task network is judged on several tasks, each row carries their criteria and its
    # score is minus their Δm% over the grid's first setting (recomputed here from the stored values).
    mtl = val[val["model"] == "mtl"]
    for split, g in mtl.groupby("split", sort=False):
        keys = {f"{t} {H.CRITERIA[t]}" for t in H.criterion_tasks("mtl", split)}
        if len(keys) == 1:
            assert "criteria" not in g or g["criteria"].isna().all()
            continue
        crit = g["criteria"].tolist()
        assert all(set(c) == keys for c in crit), split
        for c, score in zip(crit, g["valid_score"], strict=True):
            gain = [(-1 if k.endswith("rmse") else 1) * (c[k] - crit[0][k]) / crit[0][k] for k in keys]
            assert score == pytest.approx(-100 * np.mean(gain)), split
    assert len(mtl) == len(H.GRIDS["mtl"]) * len(names)  # every split was searched with the whole grid


# --------------------------------------------------------------------------- grid edges
def test_grid_edges_by_hand():
    grids = {"a": [{"lr": 0.1, "bs": 64, "l2": 0.0, "kind": "x", "flag": True},
                   {"lr": 0.01, "bs": 64, "l2": 1e-4, "kind": "y", "flag": False},
                   {"lr": 0.001, "bs": 64, "l2": 1e-3, "kind": "y", "flag": True, "dim": 64}],
             "b": [{"k": 5}, {"k": 10}, {"k": 20}]}
    chosen = {"a": {"s1": grids["a"][1], "s2": grids["a"][0], "s3": grids["a"][2]},
              "b": {"s1": {"k": 10}, "s2": {"k": 20}}}
    edges = T.grid_edges(grids, chosen, defaults={"dim": 32})
    got = {(r.model, r.split, r.setting, r.edge) for r in edges.itertuples()}
    # s1 of "a" is inside on lr and l2, and bs is tried at one value only; names and flags have no order.
    # Its dim (left out, so the default 32) is the lowest tried, as is s2's.
    # s2 sits at the highest lr; its l2 = 0 is the lower limit of a weight, not an open edge.
    # s3 sits at the lowest lr, the highest l2 and the highest dim.
    assert got == {("a", "s1", "dim", "lowest"), ("a", "s2", "lr", "highest"), ("a", "s2", "dim", "lowest"),
                   ("a", "s3", "lr", "lowest"),
                   ("a", "s3", "l2", "highest"), ("a", "s3", "dim", "highest"), ("b", "s2", "k", "highest")}
    row = edges[(edges["model"] == "b")].iloc[0]
    assert row["value"] == 20 and row["tried"] == [5, 10, 20]
    # Without the limit, l2 = 0 is an edge too.
    assert ("a", "s2", "l2", "lowest") in {(r.model, r.split, r.setting, r.edge)
                                           for r in T.grid_edges(grids, chosen, {"dim": 32}, {}).itertuples()}
    with pytest.raises(ValueError, match="the choice of 'b' on 's1'.*not in its grid"):
        T.grid_edges(grids, {"b": {"s1": {"k": 7}}}, defaults={"dim": 32})
    # A setting that some entries leave out, with no default, has an unknown value there.
    with pytest.raises(ValueError, match="grid of 'a': 'dim' is left out of some settings and has no default"):
        T.grid_edges(grids, chosen)


def test_every_edge_of_the_committed_tuning_says_why_it_stays():
    """A choice at the edge of its grid must be widened away, or 09 must say why it stays."""
    import yaml

    from mtrec_study.config import PROJECT_ROOT

    doc = yaml.safe_load((PROJECT_ROOT / "params" / "tuned.yaml").read_text())
    edges = H.search_edges(doc["grids"], doc["chosen"])
    unexplained = edges[edges["why it stays"] == ""]
    assert unexplained.empty, "choices at the edge of their grid with no reason in published.EDGE_REASONS:\n" + \
        unexplained[["model", "setting", "value", "edge", "splits"]].to_string()
    # The reasons name only edges that exist: a widened grid takes its reason away.
    named = set(zip(edges["model"], edges["setting"], strict=True))
    stale = set(H.EDGE_REASONS) - named
    assert not stale, f"EDGE_REASONS explains settings that sit at no edge any more: {sorted(stale)}"


# --------------------------------------------------------------------------- peers
def test_peer_settings_are_checked_and_translated():
    with pytest.raises(ValueError, match="unknown peer 'NMF'"):
        P.make_peer("NMF")
    with pytest.raises(ValueError, match="unknown setting 'factors'"):
        P.make_peer("SVD", {"factors": 3})
    knn = P.make_peer("KNNBaseline", {"k": 7, "sim": "pearson_baseline", "user_based": False})
    assert knn.k == 7 and knn.sim_options == {"name": "pearson_baseline", "user_based": False}
    assert P.make_peer("BaselineOnly", {"reg_i": 5}).bsl_options == {"method": "als", "reg_i": 5}
    for name, grid in P.PEER_GRIDS.items():
        assert len(grid) == 4  # every peer searches four settings (within the shared cap, TUNE_BUDGET)
        for setting in grid:
            P.make_peer(name, setting)


def test_baseline_only_matches_a_hand_computed_mean_when_unregularised():
    """With no regularisation and one ALS sweep, BaselineOnly predicts μ + b_u + b_i as computed by hand."""
    train = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [1, 2, 1, 3, 2], "rating": [5, 3, 4, 2, 4]})
    test = pd.DataFrame({"user_id": [3], "item_id": [1], "rating": [4]})
    pred = P.fit_predict("BaselineOnly", {"reg_i": 0, "reg_u": 0, "n_epochs": 1}, train, test)
    mu = train["rating"].mean()
    b_i = (train.assign(d=train["rating"] - mu).groupby("item_id")["d"].mean())
    d_u = train.assign(d=train["rating"] - mu - train["item_id"].map(b_i)).groupby("user_id")["d"].mean()
    assert pred[0] == pytest.approx(mu + b_i[1] + d_u[3])


def test_peer_final_fit_uses_train_and_valid_and_is_deterministic(fold):
    a = P.test_rmse("SVD", {"n_factors": 5, "n_epochs": 5, "lr_all": 0.01, "reg_all": 0.05}, fold, seed=1)
    b = P.test_rmse("SVD", {"n_factors": 5, "n_epochs": 5, "lr_all": 0.01, "reg_all": 0.05}, fold, seed=1)
    assert a == b and 0.3 < a["rmse"] < 2.0
    assert len(P.rating_frame(fold, "train", "valid")) == len(fold.indices["train"]) + len(fold.indices["valid"])
    view = T.validation_view(fold)
    assert np.isfinite(P.validation_rmse("BaselineOnly", None, view))


# --------------------------------------------------------------------------- BPR
def test_bpr_learns_the_structure_and_is_deterministic(small_world, tmp_path):
    import keras

    p = prepare_tasks(small_world.data, "random", seed=0, neg_ratio=0.0)
    users, items = p.data.users.index.to_numpy(), p.data.items.index.to_numpy()
    fit = lambda seed: BPR(factors=16, epochs=30, batch_size=256, learning_rate=1e-2, seed=seed).fit(  # noqa: E731
        p.interactions("train"), users, items)
    a, b = fit(0), fit(0)
    test = p.interactions("test")
    np.testing.assert_array_equal(a.score_pairs(test["user_id"], test["item_id"]),
                                  b.score_pairs(test["user_id"], test["item_id"]))
    bpr_ndcg = H.ranking_metrics_on(p, H.Fitted("bpr", 0, score_catalogue=a.score_catalogue), "random")["ndcg@10"]
    rng = np.random.default_rng(0)
    chance = H.ranking_metrics_on(p, H.Fitted("random", 0, score_catalogue=lambda u: rng.random((len(u), items.size))),
                                  "random")["ndcg@10"]
    assert bpr_ndcg.mean() > 2 * chance.mean()  # popularity is stronger still in this small synthetic world
    row = a.score_catalogue(test["user_id"].to_numpy()[:3])
    np.testing.assert_allclose(row[np.arange(3), np.searchsorted(items, test["item_id"].to_numpy()[:3])],
                               a.score_pairs(test["user_id"].to_numpy()[:3], test["item_id"].to_numpy()[:3]),
                               rtol=1e-5)
    a.net.save(tmp_path / "bpr.keras")
    assert keras.saving.load_model(tmp_path / "bpr.keras").count_params() == a.net.count_params()
    with pytest.raises(ValueError, match="factors"):
        BPR(factors=0)


# --------------------------------------------------------------------------- scores and the table
def test_several_criteria_choose_by_delta_m_over_the_first_setting(fold):
    """Worked by hand: AUC +10% and RMSE 5% worse is Δm% +2.5; AUC +5% and RMSE 3% better is +4."""
    values = [{("interest", "auc"): 0.70, ("behaviour", "rmse"): 1.00},
              {("interest", "auc"): 0.77, ("behaviour", "rmse"): 1.05},
              {("interest", "auc"): 0.735, ("behaviour", "rmse"): 0.97}]
    table = T.grid_search(fold, [{"i": i} for i in range(3)], lambda view, s: values[s["i"]])
    np.testing.assert_allclose(table["valid_score"], [0.0, -2.5, -4.0], atol=1e-12)
    assert table["chosen"].tolist() == [False, False, True]
    assert json.loads(table["criteria"][1]) == {"interest auc": 0.77, "behaviour rmse": 1.05}
    # One number per setting keeps its own scale and no criteria column.
    plain = T.grid_search(fold, [{"i": i} for i in range(3)], lambda view, s: [0.3, 0.1, 0.2][s["i"]])
    assert plain["chosen"].tolist() == [False, True, False] and "criteria" not in plain
    with pytest.raises(ValueError, match="a number for some settings and criteria for others"):
        T.grid_search(fold, [{"i": 0}, {"i": 1}], lambda view, s: values[0] if s["i"] else 0.5)
    with pytest.raises(ValueError, match="criteria must be finite"):
        T.grid_search(fold, [{"i": 0}, {"i": 1}], lambda view, s: {("interest", "auc"): np.nan if s["i"] else 0.7})


def test_criteria_are_stored_and_survive_a_merge(fold, tmp_path):
    grids = {"m": [{"v": 1}, {"v": 2}], "n": [{"w": 0}, {"w": 5}]}
    crit = {1: {("interest", "auc"): 0.7, ("behaviour", "rmse"): 1.0}, 2: {("interest", "auc"): 0.8, ("behaviour", "rmse"): 1.0}}
    scores = {"m": {"a": lambda v, s: crit[s["v"]]}, "n": {"a": lambda v, s: float(s["w"])}}
    key = {"seed": 1}
    path = T.save_tuned(tmp_path / "tuned.yaml", T.tune_splits({"a": lambda: fold}, grids, scores, progress=False),
                        key, grids)
    new_grid = {"n": [{"w": 1}, {"w": 3}]}
    T.write_search(path, T.tune_splits({"a": lambda: fold}, new_grid, {"n": {"a": lambda v, s: -float(s["w"])}},
                                       progress=False), key, new_grid, T.check_stored(path, key), merge=True)
    rows = yaml.safe_load(path.read_text())["validation"]
    by = {(r["model"], json.dumps(r["setting"])): r for r in rows}
    assert by[("m", '{"v": 2}')]["criteria"] == {"interest auc": 0.8, "behaviour rmse": 1.0}
    assert by[("m", '{"v": 2}')]["chosen"] and "criteria" not in by[("n", '{"w": 3}')]
    assert T.load_tuned(path, key, {**grids, **new_grid}) == {"m": {"a": {"v": 2}}, "n": {"a": {"w": 3}}}


def test_criteria_table_shows_what_chose_each_setting(fold):
    values = {"fixed": {("interest", "auc"): 0.70, ("behaviour", "rmse"): 1.00},
              "dwa": {("interest", "auc"): 0.77, ("behaviour", "rmse"): 1.05}}
    grids = {"mtl": [{"model": "mmoe", "weighting": w} for w in values], "bpr": [{"f": 1}, {"f": 2}]}
    scores = {"mtl": {"fold-0": lambda v, s: values[s["weighting"]], "loo": lambda v, s: -0.3 - 0.01 * len(s["weighting"])},
              "bpr": {"loo": lambda v, s: -0.2}}
    table = T.tune_splits({"fold-0": lambda: fold, "loo": lambda: fold}, grids, scores, progress=False)
    shown = H.criteria_table(table, "mtl")
    assert shown["split"].tolist() == ["fold-0", "fold-0", "loo", "loo"]
    assert shown["weighting"].tolist() == ["fixed", "dwa"] * 2
    np.testing.assert_allclose(shown["interest auc"][:2], [0.70, 0.77])
    np.testing.assert_allclose(shown["validation Δm% over the first setting"][:2], [0.0, 2.5], atol=1e-12)
    assert shown["validation Δm% over the first setting"][2:].isna().all() and shown["interest auc"][2:].isna().all()
    np.testing.assert_allclose(shown["item ndcg@10"][2:], [0.35, 0.33])  # −score: NDCG@10 itself
    assert shown["chosen"].tolist() == [False, True, True, False]
    assert H.criteria_table(T.tune_splits({"a": lambda: fold}, {"mtl": [{"x": 1}]}, {"mtl": {"a": None}},
                                          progress=False)).empty  # one setting: nothing scored


def test_each_model_is_tuned_on_its_task_familys_criterion():
    assert H.criterion_tasks("mtl", "fold-3") == ("interest", "behaviour")
    assert H.criterion_tasks("mtl", "per_user_recent") == ("interest", "item", "behaviour")
    assert H.criterion_tasks("mtl", "loo") == H.criterion_tasks("mtl", "random") == ("item",)
    assert H.criterion_tasks("single_behaviour", "fold-0") == ("behaviour",)
    assert H.criterion_tasks("logreg", "per_user_recent") == ("interest",)
    assert all(H.criterion_tasks(m, "loo") == ("item",) for m in ("bpr", "ease", "two_tower", "single_item"))
    assert H.CRITERIA == {"interest": "auc", "behaviour": "rmse", "item": "ndcg@10"}
    with pytest.raises(ValueError, match="no validation criterion for model 'SVD'"):
        H.criterion_tasks("SVD", "fold-0")
    with pytest.raises(ValueError, match="unknown split 'later'; valid: fold-<k>, per_user_recent, loo, random"):
        H.criterion_tasks("mtl", "later")
    with pytest.raises(ValueError, match="split 'temporal' is now called 'per_user_recent'.*valid: fold-<k>, per_user_recent"):
        H.criterion_tasks("mtl", "temporal")  # the old name says what it became, here as in prepare
    # Every (model, split) of the plan gets a score function (building one trains nothing).
    names = ["fold-0", "fold-1", "per_user_recent", "loo", "random"]
    scores = H.tuning_scores(names, [m for m in H.GRIDS if m not in P.PEERS])
    assert {m: sorted(v) for m, v in scores.items()} == {m: sorted(H.plan_splits(m, names)) for m in scores}
    # The weighting of the multi-task network's losses is a choice of its search.
    assert {s["weighting"] for s in H.GRIDS["mtl"]} == {"fixed", "uncertainty", "dwa"}


def test_score_functions_read_validation_auc_rmse_and_ndcg(fold):
    """Each score is its family's criterion on the validation part, recomputed here with scikit-learn
    (AUC, RMSE) and with the ranking metric of the validation items (NDCG@10)."""
    from sklearn.metrics import mean_squared_error, roc_auc_score

    view = T.validation_view(fold)
    vs = view.valid
    m = vs.masks["interest"] > 0
    auc = roc_auc_score(vs.labels["interest"][m], H.fit_logreg(view, {"C": 1.0}).predict(vs)["interest"][m])
    assert H.score_function("logreg", "fold-0")(view, {"C": 1.0}) == pytest.approx(-auc, abs=1e-9)

    setting = {**H.GRIDS["single_behaviour"][0]}
    fitted = H.fit_model("single_behaviour", view, setting, epochs=1, patience=1)
    r = vs.masks["behaviour"] > 0
    rmse = mean_squared_error(vs.labels["behaviour"][r], fitted.predict(vs)["behaviour"][r]) ** 0.5
    assert H.score_function("single_behaviour", "fold-0", epochs=1, patience=1)(view, setting).value == \
        pytest.approx(rmse, rel=1e-5)

    mtl = H.score_function("mtl", "per_user_recent", epochs=1, patience=1)(view, H.GRIDS["mtl"][0])
    assert mtl.trained == {"best_epoch": 1, "epochs_run": 1}  # the networks say how they trained
    mtl = mtl.value
    assert set(mtl) == {("interest", "auc"), ("behaviour", "rmse"), ("item", "ndcg@10")}
    net = H.fit_model("mtl", view, H.GRIDS["mtl"][0], epochs=1, patience=1)
    ndcg = H.ranking_metrics_on(H.validation_as_test(view), net, "random")["ndcg@10"].mean()
    assert mtl[("item", "ndcg@10")] == pytest.approx(ndcg, rel=1e-6) and 0 <= ndcg <= 1
    assert H.score_function("mtl", "random", epochs=1, patience=1)(view, H.GRIDS["mtl"][0]).value == \
        pytest.approx(-ndcg, rel=1e-6)
    # On the leave-one-out split the item criterion ranks each validation item among sampled negatives
    # (20 here: some users of this small world have rated most of its 200 items).
    bpr = {"factors": 8, "l2": 0.0, "epochs": 2}
    valid_as_test = H.validation_as_test(view)
    sampled = H.ranking_metrics_on(valid_as_test, H.fit_bpr(view, bpr), "loo", n_negatives=20)["ndcg@10"].mean()
    full = H.ranking_metrics_on(valid_as_test, H.fit_bpr(view, bpr), "random")["ndcg@10"].mean()
    assert H.score_function("bpr", "loo", n_negatives=20)(view, bpr) == pytest.approx(-sampled)
    assert sampled != pytest.approx(full)


def test_logreg_uses_one_hot_features_and_beats_chance(fold):
    lr = H.fit_logreg(fold, {"C": 1.0})
    p = lr.predict(fold.test)["interest"]
    m = fold.test.masks["interest"] > 0
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(fold.test.labels["interest"][m], p[m]) > 0.5
    assert p.shape == (len(fold.test),)


def test_fold_difference_ci_is_the_corrected_t_interval():
    tidy = pd.DataFrame({"model": ["a"] * 3 + ["b"] * 3, "task": "interest", "metric": "auc",
                         "protocol": "3-fold CV", "fold": [0, 1, 2] * 2, "segment": "all",
                         "value": [0.80, 0.82, 0.81, 0.78, 0.79, 0.80]})
    out = H.fold_difference_ci(tidy, "a", "b", "interest", "auc")
    # By hand: differences 0.02, 0.03, 0.01; s² = 1e-4; 3 folds train on 2/3 and test on 1/3
    # (ratio 1/2), so the corrected variance of the mean is (1/3 + 1/2) · 1e-4 = 8.333e-5 (the plain
    # one 3.333e-5); t(0.975, 2) = 4.3027; half-width 4.3027 · 0.0091287 = 0.039278.
    assert out["estimate"] == pytest.approx(0.02)
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((0.02 - 0.039278, 0.02 + 0.039278), abs=1e-6)
    # corrected t = 0.02 / 0.0091287 = 2.1909, two-sided p with 2 df = 0.1598; plain t = 3.4641, p = 0.0742
    assert out["p_corrected"] == pytest.approx(0.1598, abs=1e-4)
    assert out["p_t"] == pytest.approx(0.0742, abs=1e-4)


def test_ranking_difference_is_paired_by_user():
    a = pd.DataFrame({"ndcg@10": [0.5, 0.2, 0.9]}, index=pd.Index([3, 1, 2], name="user_id"))
    b = pd.DataFrame({"ndcg@10": [0.1, 0.4, 0.3]}, index=pd.Index([1, 2, 3], name="user_id"))
    out = H.ranking_difference_ci({"a": a, "b": b}, "a", "b", "ndcg@10", n_boot=200, seed=0)
    # users 3, 1, 2: 0.5 - 0.3, 0.2 - 0.1, 0.9 - 0.4 (matched by user, not by position)
    assert out["estimate"] == pytest.approx((0.2 + 0.1 + 0.5) / 3)
    assert 0.1 - 1e-12 <= out["ci_low"] <= out["estimate"] <= out["ci_high"] <= 0.5 + 1e-12
    other = pd.DataFrame({"ndcg@10": [0.1, 0.4]}, index=pd.Index([1, 2], name="user_id"))
    with pytest.raises(ValueError, match="scored on different users"):
        H.ranking_difference_ci({"a": a, "b": other}, "a", "b", "ndcg@10")


def test_ranking_difference_pools_training_seeds():
    users = pd.Index([1, 2, 3], name="user_id")
    a0 = pd.DataFrame({"ndcg@10": [0.5, 0.2, 0.9]}, index=users)
    a1 = pd.DataFrame({"ndcg@10": [0.3, 0.4, 0.5]}, index=users[::-1])  # another order: paired by user
    b = pd.DataFrame({"ndcg@10": [0.1, 0.4, 0.3]}, index=users)  # a seedless model, shared by both seeds
    out = H.ranking_difference_ci({"a": [a0, a1], "b": b}, "a", "b", "ndcg@10", n_boot=200, seed=0)
    # seed 0: 0.4, -0.2, 0.6 (mean 0.2667); seed 1 (users 1, 2, 3 → 0.5, 0.4, 0.3): 0.4, 0.0, 0.0 (mean 0.1333)
    assert out["estimate"] == pytest.approx(0.2) and out["n_seeds"] == 2
    assert out["seed_sd"] == pytest.approx(np.std([0.8 / 3, 0.4 / 3], ddof=1))
    # An independent form: each draw of users scores both seeds, and the percentiles pool them.
    d = {0: {1: 0.4, 2: -0.2, 3: 0.6}, 1: {1: 0.4, 2: 0.0, 3: 0.0}}
    draws, pooled = np.random.default_rng(0), []
    for _ in range(200):
        drawn = np.array([1, 2, 3])[draws.integers(0, 3, 3)]
        pooled += [np.mean([d[s][u] for u in drawn]) for s in (0, 1)]
    assert (out["ci_low"], out["ci_high"]) == pytest.approx(tuple(np.quantile(pooled, [0.025, 0.975])))
    with pytest.raises(ValueError, match="different numbers of seeds"):
        H.ranking_difference_ci({"a": [a0, a1], "b": [b, b, b]}, "a", "b", "ndcg@10")
    with pytest.raises(ValueError, match="hold different users"):
        H.mean_ci([a0["ndcg@10"], a1["ndcg@10"].iloc[:2]])
    # The per-user mean over seeds, in the first seed's user order.
    mean = H.seed_mean([a0, a1])
    assert list(mean.index) == [1, 2, 3] and mean["ndcg@10"].tolist() == pytest.approx([0.5, 0.3, 0.6])
    assert H.mean_over_seeds([{"x": 1.0, "y": 2.0}, {"x": 3.0, "y": 2.0}]) == {"x": 2.0, "y": 2.0}
    with pytest.raises(ValueError, match="different keys"):
        H.mean_over_seeds([{"x": 1.0}, {"y": 1.0}])
    with pytest.raises(ValueError, match="hold different users"):
        H.seed_mean([a0, a1.iloc[:2]])
    with pytest.raises(ValueError, match="repeats a user"):
        H.seed_mean([pd.concat([a0, a0]), a1])
    assert H.seed_mean([a0, a0]) is a0  # a seedless model's repeated frame counts once


def test_training_seeds():
    from mtrec_study.reproducibility import training_seeds

    assert training_seeds(42, 3) == [42, 43, 44] and training_seeds(0, 1) == [0]
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="SEEDS must be a positive integer"):
            training_seeds(42, bad)


def test_seedless_models_are_fitted_once_and_seeded_ones_per_seed(fold):
    # The models called seedless really ignore the seed...
    for name, setting in (("logreg", {"C": 1.0}), ("ease", {"l2": 250.0})):
        a, b = (H.fit_model(name, fold, setting, seed=s) for s in (0, 7))
        if name == "logreg":
            np.testing.assert_array_equal(a.predict(fold.test)["interest"], b.predict(fold.test)["interest"])
        else:
            pd.testing.assert_frame_equal(H.ranking_metrics_on(fold, a, "random"), H.ranking_metrics_on(fold, b, "random"))
    assert set(H.SEEDLESS) == {"logreg", "ease"}
    # ... so with two training seeds they are fitted once (the one fit repeated for both seeds, so it
    # pairs with either), while BPR trains twice.
    chosen = {"bpr": {"factors": 8, "l2": 0.0, "epochs": 2}, "ease": {"l2": 250.0}}
    per_user, cost = H.ranking_per_user(fold, "random", chosen, ["bpr", "ease"], seeds=[0, 1])
    assert [len(per_user[m]) for m in ("bpr", "ease", "popularity")] == [2, 2, 2]
    assert per_user["ease"][0] is per_user["ease"][1] and len(H.distinct(per_user["ease"])) == 1
    assert H.mean_ci([f["ndcg@10"] for f in H.distinct(per_user["ease"])], n_boot=5)["n_seeds"] == 1
    assert not per_user["bpr"][0].equals(per_user["bpr"][1])  # another seed, another BPR
    assert pd.Series([c["model"] for c in cost]).value_counts().to_dict() == {"bpr": 2, "ease": 1, "popularity": 1}
    one, _ = H.ranking_per_user(fold, "random", chosen, ["bpr"], seed=0)
    pd.testing.assert_frame_equal(one["bpr"][0], per_user["bpr"][0])  # seed 0 alone is the first seed
    assert H.ranking_difference_ci(per_user, "bpr", "ease", "ndcg@10", n_boot=20)["n_seeds"] == 2
    # A model outside `seeded` is trained with the first seed only.
    some, cost = H.ranking_per_user(fold, "random", chosen, ["bpr"], seeds=[0, 1], seeded=())
    assert len(some["bpr"]) == 1 and [c["model"] for c in cost] == ["bpr", "popularity"]
    pd.testing.assert_frame_equal(some["bpr"][0], per_user["bpr"][0])
    with pytest.raises(ValueError, match="different numbers of seeds"):  # one seed cannot stand in for two
        H.ranking_difference_ci({**per_user, "bpr": some["bpr"]}, "bpr", "ease", "ndcg@10")
    with pytest.raises(ValueError, match=r"seeded names \['two-tower'\]"):
        H.ranking_per_user(fold, "random", chosen, ["bpr"], seeds=[0, 1], seeded=("two-tower",))


def test_item_rows_read_the_two_tower_network_when_it_ran():
    def summary(models):
        return pd.DataFrame([{"protocol": "loo", "model": m, "metric": k, "estimate": v, "ci_low": v - 0.01,
                              "ci_high": v + 0.01} for m, v in models.items() for k in ("hr@10", "ndcg@10")])

    common = dict(cv_summary=pd.DataFrame(columns=["model", "task", "metric", "mean", "ci_low", "ci_high"]),
                  rmse_by_fold=pd.DataFrame(), peer_models=[], interest_cv={},
                  holdout_values={"logreg": {("interest", "auc"): 0.7}, "single_interest": {("interest", "auc"): 0.7},
                                  "mtl": {("interest", "auc"): 0.7}},
                  interest_holdout={}, delta_m={}, ranking_protocols={"loo": "LOO + 99 sampled"})
    pointwise = {"mtl": 0.5, "single_item": 0.45, "bpr": 0.6, "popularity": 0.4}
    cells = H.headline_cells(**common, ranking_summary=summary(pointwise))
    assert cells[("item", "LOO + 99 sampled", "hr@10")]["best"]["estimate"] == 0.5
    diff = {("loo", "hr@10"): {"bpr": {"estimate": 0.02, "ci_low": 0.01, "ci_high": 0.03}}}
    cells = H.headline_cells(**common, ranking_summary=summary({**pointwise, "two_tower": 0.62, "two_tower_item": 0.61}),
                             ranking_differences=diff)
    row = cells[("item", "LOO + 99 sampled", "hr@10")]
    assert row["best"]["estimate"] == 0.62 and row["single"]["estimate"] == 0.61
    assert row["seeds"] == "1"  # summary rows without n_seeds rest on one training
    seeded = summary({**pointwise, "two_tower": 0.62, "two_tower_item": 0.61}).assign(
        n_seeds=lambda d: np.where(d["model"] == "two_tower", 5, 1))
    assert H.headline_cells(**common, ranking_summary=seeded)[("item", "LOO + 99 sampled", "hr@10")]["seeds"] == \
        "multi-task 5, pooled; single-task 1"
    assert "two_tower − bpr: 0.0200 [0.0100, 0.0300]" in row["peer"] and "BPR 0.6000" in row["peer"]
    assert row["paired"] == diff[("loo", "hr@10")]  # what the "met?" cell reads
    table = H.headline_table(cells)
    hr_row = table[(table["task"] == "item") & (table["metric"] == "hr@10")].iloc[0]
    assert hr_row["target"] == "≥ 0.70 and above BPR (paired CI > 0)" and hr_row["met?"] == "no (gap 0.080)"


def test_target_met_rules_on_hand_worked_cells():
    rmse, hr, delta = H.TARGETS[0], H.TARGETS[1], H.TARGETS[-1]
    assert H.target_met(rmse, {"estimate": 0.899}) == "yes"
    assert H.target_met(rmse, {"estimate": 0.912}) == "no (gap 0.012)"
    above = {"estimate": 0.02, "ci_low": 0.01, "ci_high": 0.03}
    tied = {"estimate": 0.001, "ci_low": -0.026, "ci_high": 0.029}
    assert H.target_met(hr, {"estimate": 0.70}, against=above) == "yes"
    # Reaching the number is not enough: the paired difference to BPR must lie above 0.
    assert H.target_met(hr, {"estimate": 0.71}, against=tied) == \
        "no (not above BPR: difference 0.0010 [-0.0260, 0.0290])"
    assert H.target_met(hr, {"estimate": 0.64}, against=tied) == \
        "no (gap 0.060; not above BPR: difference 0.0010 [-0.0260, 0.0290])"
    assert H.target_met(hr, {"estimate": 0.64}, against=above) == "no (gap 0.060)"
    assert H.target_met(hr, {"estimate": 0.75}) == "no (no paired difference to BPR)"
    assert H.target_met(hr, None) == "not run"
    random_ndcg = next(t for t in H.TARGETS if t["protocol"].startswith("random"))
    assert random_ndcg["target"] == 0.31 and random_ndcg["beats"] == "bpr"
    assert H.target_met(random_ndcg, {"estimate": 0.2951}, against=above) == "no (gap 0.015)"
    assert H.target_met(delta, {"estimate": 0.4, "ci_low": 0.1, "ci_high": 0.7}) == "yes"
    # Above 0 is not enough: the target asks for a CI that excludes 0.
    assert H.target_met(delta, {"estimate": 0.4, "ci_low": -0.1, "ci_high": 0.9}) == \
        "no (above 0, but the CI includes 0: 0.4000 [-0.1000, 0.9000])"
    assert H.target_met(delta, {"estimate": -0.2, "ci_low": -0.5}) == "no"
    assert H.target_met(H.TARGETS[4], {"estimate": 0.8}, [{"ci_low": 0.01}, {"ci_low": 0.002}]) == "yes"
    assert H.target_met(H.TARGETS[4], {"estimate": 0.8}, [{"ci_low": 0.01}, {"ci_low": -0.002}]) == "no"


def test_headline_table_has_every_target_and_a_generated_met_column():
    cells = {("behaviour", "5-fold CV", "rmse"): {"peer": "SVDpp 0.91", "single": {"estimate": 0.93},
                                                  "best": {"estimate": 0.92, "ci_low": 0.91, "ci_high": 0.93}}}
    table = H.headline_table(cells)
    assert len(table) == len(H.TARGETS)
    assert list(table.columns[-3:]) == ["our best multi-task", "target", "met?"]
    assert table["training seeds"].tolist() == ["1 per fold (5 folds)", "—", "—", "—", "—", "1 per fold (5 folds)", "—"]
    first = table.iloc[0]
    assert first["our best multi-task"] == "0.9200 [0.9100, 0.9300]" and first["met?"] == "no (gap 0.020)"
    assert (table["met?"].iloc[1:] == "not run").sum() >= 3  # missing cells say so, never "yes"
    # A reference measured on another data set (NCF's ml-1m numbers) says so beside the number; ours
    # are on ml-100k, so the others are not labelled. On ml-1m the label moves to the ml-100k rows (the Surprise
    # README's and RecBole's).
    foreign = table["published reference"].str.contains("measured on ml-1m, not on ml-100k")
    assert foreign.tolist() == [t.get("data", "ml-100k") == "ml-1m" for t in H.TARGETS] and foreign.sum() == 2
    on_1m = H.headline_table(cells, dataset="ml-1m")["published reference"]
    assert on_1m.str.contains("measured on").tolist() == [t.get("data", "ml-1m") == "ml-100k" for t in H.TARGETS]
    assert on_1m.str.contains("measured on ml-100k, not on ml-1m").sum() == 2


def test_plan_and_grids():
    names = ["fold-0", "fold-1", "per_user_recent", "loo", "random"]
    assert H.plan_splits("bpr", names) == ["loo", "random"]
    assert H.plan_splits("SVD", names) == ["fold-0", "fold-1"]
    assert H.plan_splits("mtl", names) == names
    assert H.plan_splits("two_tower", names) == H.plan_splits("two_tower_item", names) == ["loo", "random"]
    assert H.GRIDS["two_tower"] == H.GRIDS["two_tower_item"]  # the same search for the twin
    assert all(len(g) == 1 for g in H.grids(1).values())
    assert all(len(g) <= T.TUNE_BUDGET for g in H.GRIDS.values())
    with pytest.raises(ValueError, match="unknown headline model 'nope'"):
        H.grids(2, ["nope"])
    with pytest.raises(ValueError, match="TUNE_SETTINGS"):
        H.grids(0)
