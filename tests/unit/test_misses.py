"""09's evidence beside each missed target (mtrec_study.study.misses), on hand-made tables and files."""

import json

import pandas as pd
import pytest

from mtrec_study.study import misses
from mtrec_study.tasks import BEHAVIOUR, INTEREST, ITEM_TASK


def _tuning(rows):
    return pd.DataFrame([{"split": s, "model": m, "setting": json.dumps(setting), "valid_score": 0.0,
                          "chosen": chosen, "trained": json.dumps(trained) if trained else None}
                         for s, m, setting, chosen, trained in rows])


TUNING = _tuning([
    ("fold-0", "mtl", {"model": "mmoe", "emb_l2": 1e-3, "lr": 1e-3}, False, {"best_epoch": 5, "epochs_run": 8}),
    ("fold-0", "mtl", {"model": "mmoe", "emb_l2": 1e-2, "lr": 1e-3}, True, {"best_epoch": 20, "epochs_run": 20}),
    ("fold-1", "mtl", {"model": "mmoe", "emb_l2": 1e-3, "lr": 1e-3}, True, {"best_epoch": 9, "epochs_run": 12}),
    ("fold-1", "mtl", {"model": "mmoe", "emb_l2": 1e-2, "lr": 1e-3}, False, {"best_epoch": 20, "epochs_run": 20}),
    ("loo", "two_tower", {"model": "two_tower"}, True, None),
    ("loo", "mtl", {"model": "mmoe", "emb_l2": 0.5}, True, None),
])


def test_search_evidence_counts_settings_names_what_varied_and_the_runs_the_cap_cut():
    text = misses.search_evidence(TUNING, "mtl", "fold-", epochs=20, patience=3)
    # Two settings per fold, differing in emb_l2 only; chosen runs kept epochs 20 (cut at the cap of
    # 20, with patience 3) and 9 (stopped by early stopping at 12).
    assert text == ("mtl: 2 setting(s) on each of 2 split(s), varying emb_l2; the chosen runs kept epoch 9–20, "
                    "1 of 2 cut short by the cap of 20 epochs")
    assert misses.search_evidence(TUNING, "two_tower", "loo") == \
        "two_tower: 1 setting(s) on each of 1 split(s), nothing varied (one setting)"
    assert misses.search_evidence(TUNING, "two_tower", "random") == "two_tower: not searched on random*"


def _bench(tmp_path, name, rows, notes="setting notes"):
    doc = {"benchmark": name, "machine": {"date": "2026-12-06 04:00:00 UTC"}, "rows": rows, "checks": {},
           "notes": notes}
    (tmp_path / f"{name}.json").write_text(json.dumps(doc))


def test_benchmark_evidence_joins_each_model_with_its_difference_to_bpr(tmp_path):
    _bench(tmp_path, "b", [
        {"protocol": "LOO + 99 sampled", "model": "two_tower, variant", "trained on": "train", "valid ndcg@10": 0.41,
         "hr@10": 0.6, "hr@10 95% CI": "[0.58, 0.62]", "ndcg@10": 0.35, "ndcg@10 95% CI": "[0.33, 0.37]"},
        {"protocol": "LOO + 99 sampled", "model": "two_tower, variant", "trained on": "train + validation",
         "valid ndcg@10": float("nan"), "hr@10": 0.7, "ndcg@10": 0.4},
        {"protocol": "LOO + 99 sampled", "difference": "two_tower, variant − bpr", "trained on": "train",
         "metric": "ndcg@10", "estimate": -0.02, "ci_low": -0.04, "ci_high": 0.001},
        {"protocol": "LOO + 99 sampled", "difference": "two_tower, variant − bpr", "trained on": "train",
         "metric": "hr@10", "estimate": 0.01, "ci_low": -0.01, "ci_high": 0.03},
        {"protocol": "LOO + 99 sampled", "difference": "two_tower, variant − ease", "trained on": "train",
         "metric": "ndcg@10", "estimate": -0.05, "ci_low": -0.07, "ci_high": -0.03},  # not the target's baseline
        {"protocol": "LOO + 99 sampled", "difference": "unnamed − bpr", "metric": "ndcg@10",
         "estimate": -0.0, "ci_low": -0.01, "ci_high": 0.01},  # round(-0.00004, 4) reads +0.0000
        {"protocol": "random 80/10/10, full ranking", "model": "other protocol", "ndcg@10": 0.3},
    ])
    got = misses.benchmark_evidence("b", "LOO + 99 sampled", ["ndcg@10"], tmp_path)
    assert got == [
        {"source": "b.json", "what was tried": "two_tower, variant (trained on train)",
         "test": "ndcg@10 0.3500 [0.33, 0.37]", "difference to BPR": "ndcg@10 -0.0200 [-0.0400, +0.0010]",
         "validation ndcg@10": "0.4100"},
        {"source": "b.json", "what was tried": "two_tower, variant (trained on train + validation)",
         "test": "ndcg@10 0.4000", "difference to BPR": "", "validation ndcg@10": ""},
        {"source": "b.json", "what was tried": "unnamed", "test": "",
         "difference to BPR": "ndcg@10 +0.0000 [-0.0100, +0.0100]", "validation ndcg@10": ""}]
    both = misses.benchmark_evidence("b", "LOO + 99 sampled", ["hr@10", "ndcg@10"], tmp_path)[0]
    assert both["test"] == "hr@10 0.6000 [0.58, 0.62]; ndcg@10 0.3500 [0.33, 0.37]"
    assert both["difference to BPR"] == "ndcg@10 -0.0200 [-0.0400, +0.0010]; hr@10 +0.0100 [-0.0100, +0.0300]"
    # Fold rows of one model become their mean, whatever k the benchmark and the build used.
    _bench(tmp_path, "f", [{"protocol": "5-fold CV", "fold": f, "model": "two_tower", "rmse": v}
                           for f, v in enumerate([0.91, 0.92, 0.93])])
    assert misses.benchmark_evidence("f", "2-fold CV", ["rmse"], tmp_path) == [
        {"source": "f.json", "what was tried": "two_tower", "test": "rmse 0.9200 (mean of 3 folds)",
         "difference to BPR": "", "validation ndcg@10": ""}]
    assert misses.benchmark_evidence("absent", "LOO + 99 sampled", ["ndcg@10"], tmp_path) == []


def _results(met):
    return pd.DataFrame([
        {"task": BEHAVIOUR, "protocol": "2-fold CV", "metric": "rmse", "our best multi-task": "0.95 [0.94, 0.96]",
         "met?": met[0]},
        {"task": ITEM_TASK, "protocol": "LOO + 99 sampled", "metric": "hr@10", "our best multi-task": "0.6",
         "met?": met[1]},
        {"task": ITEM_TASK, "protocol": "LOO + 99 sampled", "metric": "ndcg@10", "our best multi-task": "0.3",
         "met?": met[2]},
        {"task": INTEREST, "protocol": "2-fold CV", "metric": "auc", "our best multi-task": "0.8", "met?": met[3]},
    ])


def test_miss_evidence_gives_each_missed_target_its_search_and_benchmarks_and_skips_met_ones(tmp_path):
    _bench(tmp_path, "retrieval_rmse", [{"protocol": "5-fold CV", "fold": 0, "model": "two_tower", "rmse": 0.92}])
    _bench(tmp_path, "retrieval", [{"protocol": "LOO + 99 sampled", "model": "bpr", "ndcg@10": 0.37, "hr@10": 0.6}],
           notes="n1")
    ev = misses.miss_evidence(_results(["no (gap 0.050)", "no (gap 0.1)", "no (gap 0.2)", "yes"]), TUNING, 20, 3,
                              tmp_path)
    assert list(ev.columns) == misses.COLUMNS
    # The met interest row has none; leave-one-out's two missed metrics share one group.
    assert list(dict.fromkeys(ev["target"])) == ["behaviour, 2-fold CV: rmse", "item, LOO + 99 sampled: hr@10, ndcg@10"]
    rmse = ev[ev["target"] == "behaviour, 2-fold CV: rmse"]
    assert list(rmse["source"]) == ["this build's validation search", "retrieval_rmse.json"]
    assert rmse["test"].iloc[0] == "rmse 0.95 [0.94, 0.96] (met? no (gap 0.050))"
    assert rmse["what was tried"].iloc[0].startswith("mtl: 2 setting(s) on each of 2 split(s)")
    item = ev[ev["target"].str.startswith("item")]
    assert list(item["what was tried"]) == ["two_tower: 1 setting(s) on each of 1 split(s), nothing varied (one setting)",
                                            "bpr"]
    assert item["test"].iloc[1] == "hr@10 0.6000; ndcg@10 0.3700"
    assert misses.benchmark_sources(ev, tmp_path) == {
        "retrieval_rmse.json": "benchmarks/results/retrieval_rmse.json, measured 2026-12-06 04:00:00 UTC: setting notes",
        "retrieval.json": "benchmarks/results/retrieval.json, measured 2026-12-06 04:00:00 UTC: n1"}
    assert misses.miss_evidence(_results(["yes"] * 4), TUNING, 20, 3, tmp_path).empty


def test_miss_evidence_refuses_a_row_it_has_no_sources_for():
    frame = pd.DataFrame([{"task": "novelty", "protocol": "LOO + 99 sampled", "metric": "x",
                           "our best multi-task": "1", "met?": "no"}])
    with pytest.raises(ValueError, match=r"no sources for the row \('novelty', 'LOO \+ 99 sampled'\)"):
        misses.miss_evidence(frame, TUNING)


def test_every_headline_target_has_sources():
    from mtrec_study.study.published import TARGETS

    assert {misses._row_key(t["task"], t["protocol"]) for t in TARGETS} == set(misses.ROW_SOURCES)
