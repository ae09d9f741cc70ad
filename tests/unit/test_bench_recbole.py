"""The RecBole benchmark's own code: the atomic file, the split read back, and the counts re-scored.

RecBole itself never runs here (it lives in .venv-recbole, for the benchmark only).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from benchmarks import bench_recbole as B
from mtrec_study import evaluation as E
from mtrec_study.prepare import prepare_tasks
from mtrec_study.study import published


def test_atomic_file_keeps_the_rows_in_order(tmp_path):
    inter = pd.DataFrame({"user_id": [196, 22, 196], "item_id": [242, 377, 51], "rating": [3.0, 1.0, 4.5],
                          "timestamp": [881250949, 878887116, 881250950]})
    path = B.write_atomic(SimpleNamespace(interactions=inter), tmp_path)
    assert path == tmp_path / "ml-100k" / "ml-100k.inter"
    assert path.read_text().splitlines() == ["user_id:token\titem_id:token\trating:float\ttimestamp:float",
                                             "196\t242\t3\t881250949", "22\t377\t1\t878887116",
                                             "196\t51\t4.5\t881250950"]


def test_recbole_split_maps_to_our_rows_and_names_a_stray_pair(tmp_path):
    ours = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [10, 11, 10, 12, 11]})
    split = tmp_path / "split.csv"
    split.write_text("user_id,item_id,part\n2,12,test\n1,10,train\n3,11,train\n1,11,valid\n2,10,train\n")
    idx = B.recbole_indices(split, ours)
    assert {k: v.tolist() for k, v in idx.items()} == {"train": [0, 2, 4], "valid": [1], "test": [3]}
    split.write_text("user_id,item_id,part\n2,12,test\n1,10,train\n3,99,train\n1,11,valid\n2,10,train\n")
    with pytest.raises(ValueError, match=r"split\.csv: 1 pairs are not among our 5 interactions"):
        B.recbole_indices(split, ours)


def test_our_metrics_on_given_counts_bound_the_tie_rules_and_match_our_popularity(small_world, tmp_path):
    prepared = prepare_tasks(small_world.data, "random", seed=0, neg_ratio=0.0)
    true = prepared.interactions("train").groupby("item_id").size()
    counts = tmp_path / "Pop_counts.csv"
    pd.DataFrame({"item_id": true.index, "count": true.to_numpy()}).to_csv(counts, index=False)
    rows = {r["model"].rsplit(" ", 1)[-1]: r for r in B.with_recbole_counts(prepared, counts)}
    assert rows["pessimistic"]["ndcg@10"] <= rows["stable"]["ndcg@10"] <= rows["optimistic"]["ndcg@10"]
    # With the true training counts the list is our popularity's, so the scores are its scores.
    ours = E.full_catalogue_ranking(prepared, published.fit_popularity(prepared).score_catalogue, ks=(10,))[0]
    assert rows["pessimistic"]["ndcg@10"] == pytest.approx(float(ours["ndcg@10"].mean()), abs=1e-12)
    # Saturated counts (every item seen once, as when each counts once per batch) tie everything.
    pd.DataFrame({"item_id": true.index, "count": np.ones(len(true), int)}).to_csv(counts, index=False)
    flat = {r["model"].rsplit(" ", 1)[-1]: r for r in B.with_recbole_counts(prepared, counts)}
    assert flat["pessimistic"]["hr@10"] < flat["optimistic"]["hr@10"]


def test_09s_reference_quotes_the_recorded_recbole_run():
    """09's random-split reference names RecBole's BPR and ours on its split as benchmarks/results/recbole.json has them."""
    import json

    from mtrec_study.config import PROJECT_ROOT

    rows = json.loads((PROJECT_ROOT / "benchmarks" / "results" / "recbole.json").read_text())["rows"]
    theirs = next(r for r in rows if r["code"].startswith("RecBole") and r["model"] == "BPR")
    ours = next(r for r in rows if r["code"] == "mtrec_study" and r["model"] == "bpr" and r["split"].startswith("RecBole"))
    target = next(t for t in published.TARGETS if t["protocol"].startswith("random"))
    lo, hi = ours["ndcg@10 ci"]
    assert f"NDCG@10 {theirs['ndcg@10']:.4f}" in target["reference"]
    assert f"{ours['ndcg@10']:.4f} [{lo:.4f}, {hi:.4f}]" in target["reference"]
    s = json.loads((PROJECT_ROOT / "benchmarks" / "results" / "recbole.json").read_text())["bpr_setting"]
    assert f"our BPR ({s['factors']} factors, l2 {s['l2']:.0e}, {s['epochs']} epochs)" in target["reference"]
