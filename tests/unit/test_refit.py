"""The refit after model selection: training + validation, the epoch count chosen on validation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mtrec_study.models.retrieval import user_history
from mtrec_study.prepare import prepare_tasks, refit_split
from mtrec_study.study import published as H
from mtrec_study.training import train


@pytest.fixture(scope="module")
def loo(small_world):
    return prepare_tasks(small_world.data, "loo", seed=0, neg_ratio=1.0)


def _pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
    observed = frame[frame["observed"]] if "observed" in frame else frame
    return set(zip(observed["user_id"].tolist(), observed["item_id"].tolist(), strict=True))


def test_a_refit_split_trains_on_train_and_valid_and_tests_the_same_rows(loo):
    refit = refit_split(loo, seed=0, neg_ratio=1.0)
    assert len(refit.indices["valid"]) == 0 and len(refit.valid) == 0
    assert _pairs(refit.interactions("train")) == _pairs(loo.interactions("train")) | _pairs(loo.interactions("valid"))
    assert _pairs(refit.test.pairs) == _pairs(loo.test.pairs)  # the same test positives
    assert not _pairs(refit.interactions("train")) & _pairs(loo.interactions("test"))
    # What is fitted on training is fitted again: each user's validation item joins the history.
    valid = loo.interactions("valid")
    user, item = int(valid["user_id"].iloc[0]), int(valid["item_id"].iloc[0])
    assert int(refit.builder.item_index[item]) in user_history(refit)[int(refit.builder.user_index[user])]
    before = loo.builder.item_index.get(item)  # the selection split's history never holds it
    assert before is None or int(before) not in user_history(loo)[int(loo.builder.user_index[user])]
    assert "refit" in refit.split
    with pytest.raises(ValueError, match="no validation rows"):
        refit_split(refit)


def test_a_refit_training_runs_exactly_its_epochs_without_validation(loo):
    refit = refit_split(loo, seed=0, neg_ratio=1.0)
    res = train("shared_bottom", refit, epochs=3, patience=None, batch_size=256, seed=0, progress=False)
    assert len(res.epoch_seconds) == 3 and res.best_epoch == 3 and res.config["patience"] is None
    assert not [k for k in res.history if k.startswith("val_")] and len(res.history["loss"]) == 3


def test_a_refit_stopped_by_a_nan_reports_the_epoch_whose_weights_it_kept(loo):
    import warnings

    broken = refit_split(loo, seed=0, neg_ratio=1.0)
    broken.train.labels["behaviour"][:] = np.nan
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        res = train("shared_bottom", broken, epochs=3, patience=None, batch_size=256, seed=0, progress=False)
    assert res.stopped is not None and "epoch 1" in res.stopped
    assert len(res.history["loss"]) == 1 and res.best_epoch == 0  # the start's weights, not epoch 1's


def test_the_refit_epochs_come_from_the_search_record_or_from_the_validation_run(loo):
    setting = {**H.GRIDS["single_item"][0]}
    chosen = {"single_item": {"loo": setting}, "bpr": {"loo": {"factors": 8, "l2": 0.0, "epochs": 2}}}
    recorded = pd.DataFrame({"split": ["loo"], "model": ["single_item"], "setting": [json.dumps(setting)],
                             "valid_score": [-0.1], "chosen": [True],
                             "trained": [json.dumps({"best_epoch": 7, "epochs_run": 10})]})
    assert H.chosen_epochs(recorded, chosen, "loo", ["single_item", "bpr"]) == {"single_item": 7}
    # Without a record, the validation run is trained now: the one the search would have made.
    run = H.fit_model("single_item", loo, setting, epochs=4, patience=1, seed=0)
    assert H.chosen_epochs(pd.DataFrame(), chosen, "loo", ["single_item"], loo, epochs=4, patience=1) == \
        {"single_item": run.extra["best_epoch"]}
    with pytest.raises(ValueError, match="recorded no best epoch.*selection="):
        H.chosen_epochs(pd.DataFrame(), chosen, "loo", ["single_item"])


def test_final_runs_refit_the_networks_for_their_epochs_and_the_others_on_the_same_rows(loo):
    refit = refit_split(loo, seed=0, neg_ratio=1.0)
    chosen = {"single_item": {**H.GRIDS["single_item"][0]}, "bpr": {"factors": 8, "l2": 0.0, "epochs": 2}}
    per_user, cost = H.ranking_per_user(refit, "loo", chosen, ["single_item", "bpr"], epochs=9, patience=1,
                                        n_negatives=20, refit_epochs={"single_item": 2})
    by_model = {c["model"]: c for c in cost}
    assert by_model["single_item"]["best epoch"] == 2  # trained exactly the chosen count, not up to the cap of 9
    # BPR and popularity fit the refit's training part: validation items count as seen history.
    bpr = H.fit_bpr(refit, chosen["bpr"])
    again = H.ranking_metrics_on(refit, bpr, "loo", 20, 0)
    pd.testing.assert_frame_equal(again, per_user["bpr"][0])
    assert set(per_user) == {"single_item", "bpr", "popularity"}
    with pytest.raises(ValueError, match="no epoch count for 'single_item'"):
        H.ranking_per_user(refit, "loo", chosen, ["single_item"], n_negatives=20, refit_epochs={})
    assert np.isfinite(per_user["single_item"][0]["ndcg@10"]).all()
