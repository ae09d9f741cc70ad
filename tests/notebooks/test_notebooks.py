"""Each notebook, executed by papermill on the fast preset (inside the report build), recorded
the numbers it promises, within sane ranges."""

from __future__ import annotations

import json

import pytest

from mtrec_study.params import notebooks


def _summary(report_dir, stem):
    return json.loads((report_dir / stem / "results.json").read_text())["summary"]


def test_every_notebook_was_executed(fast_report):
    for nb in notebooks():
        assert (fast_report / nb.stem / f"{nb.stem}.html").exists(), nb.stem
        assert (fast_report / nb.stem / "results.json").exists(), nb.stem


def test_00_overview(fast_report):
    s = _summary(fast_report, "00_overview")
    assert s["n_questions"] == 7 and "01_data_preprocessing" in s["notebooks_present"]
    assert s["versions"]["tensorflow"] != "not installed"


def test_01_data_preprocessing(fast_report):
    s = _summary(fast_report, "01_data_preprocessing")
    assert s["n_ratings"] == 100_000 and s["n_users"] == 943 and s["n_items"] == 1682
    assert s["dropped"] == 0
    assert 3.4 < s["mean_rating"] < 3.7 and 0.5 < s["train_like_rate"] < 0.6
    splits = {r["split"]: r for r in s["splits"]}
    assert splits["temporal"]["train"] + splits["temporal"]["valid"] + splits["temporal"]["test"] == 100_000
    assert splits["loo"]["test"] == 943
    tasks = {(r["part"], r["task"]): r for r in s["task_summary"]}
    assert tasks[("train", "item")]["mean_label"] == pytest.approx(0.5)


def test_04_training(fast_report):
    s = _summary(fast_report, "04_training")
    table = {r["model"]: r for r in s["table"]}
    expected = {"article", "shared_bottom", "mmoe", "ple", "esmm", "single_interest", "single_item",
                "single_behaviour", "mf"}
    assert expected <= set(table)
    for name in ("shared_bottom", "mmoe", "ple", "esmm", "single_interest"):
        assert 0.7 < table[name]["interest_auc"] < 0.95, name
    for name in ("shared_bottom", "mmoe", "ple", "single_behaviour"):
        assert 0.85 < table[name]["behaviour_rmse"] < 1.2, name
    # The article's interest head sees no item: it must trail the corrected model.
    assert table["article"]["interest_auc"] < table["shared_bottom"]["interest_auc"] - 0.05
    assert s["gates"] and all(abs(sum(g) - 1) < 1e-4 for g in s["gates"].values())
    for fig in ("learning_curves.png", "task_weights.png", "gate_usage.png"):
        assert (fast_report / "04_training" / "figures" / fig).stat().st_size > 5_000
    tidy = json.loads((fast_report / "04_training" / "results.json").read_text())["tidy"]
    assert {r["metric"] for r in tidy} == {"auc", "rmse"}
