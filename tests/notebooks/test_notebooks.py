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
