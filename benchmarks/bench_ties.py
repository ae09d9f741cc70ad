"""How much leave-one-out numbers move with the rule that orders ratings given in the same second.

``python -m benchmarks.bench_ties`` builds the NCF protocol's leave-one-out split of ml-100k twice:
once breaking timestamp ties by item id (the study's old rule) and once by the seeded key of
:func:`mtrec_study.prepare.tie_break` (the rule every split uses now). It reports how many users'
held-out item changes, the mean popularity of the held-out items, and popularity's and BPR's
HR@10 / NDCG@10 against 99 sampled negatives under each rule. Results go to
``benchmarks/results/ties.json`` and the ``ties`` block of ``benchmarks/README.md``.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from benchmarks.common import check, update_readme, write_result
from mtrec_study import evaluation as E
from mtrec_study import prepare
from mtrec_study.datasets import load_dataset
from mtrec_study.study import published

# The setting its recorded results used (the first of 09's BPR grid until that grid was widened).
BPR_SETTING = {"factors": 64, "l2": 0.0, "epochs": 20}


def loo_by_item_id(inter: pd.DataFrame) -> dict[str, np.ndarray]:
    """Leave-one-out with ties in time broken by item id (the old rule), on ``inter``'s rows."""
    order = inter.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    pos = order.groupby("user_id").cumcount().reindex(inter.index).to_numpy()
    n = inter.groupby("user_id")["user_id"].transform("size").to_numpy()
    from_end = n - 1 - pos
    test, valid = (from_end == 0) & (n >= 3), (from_end == 1) & (n >= 3)
    return {"train": np.flatnonzero(~test & ~valid), "valid": np.flatnonzero(valid), "test": np.flatnonzero(test)}


def run(seed: int = 0) -> list[dict]:
    data = load_dataset("ml-100k", seed=seed, log=None)
    cleaned, _ = prepare.clean(data)
    inter = cleaned.interactions
    popularity = inter.groupby("item_id").size()
    splits = {"item id (old)": loo_by_item_id(inter), "seeded key (now)": prepare.leave_one_out_split(inter)}
    held = {rule: inter.iloc[idx["test"]].set_index("user_id")["item_id"] for rule, idx in splits.items()}
    changed = int((held["item id (old)"] != held["seeded key (now)"].reindex(held["item id (old)"].index)).sum())
    rows = []
    for rule, idx in splits.items():
        prepared = prepare.prepare_tasks(data, indices=idx, seed=seed, neg_ratio=0.0)
        cand = E.sampled_candidates(prepared, n_negatives=99, seed=seed)
        row = {"tie rule": rule, "users": int(len(idx["test"])), "held-out item changed": changed,
               "mean popularity of held-out items": float(popularity.reindex(held[rule]).mean())}
        t0 = time.perf_counter()
        for name in ("popularity", "bpr"):
            fitted = (published.fit_popularity(prepared) if name == "popularity"
                      else published.fit_bpr(prepared, BPR_SETTING, seed=seed))
            per_user = E.sampled_ranking(prepared, fitted.score_pairs, candidates=cand)
            row[f"{name} hr@10"] = float(per_user["hr@10"].mean())
            row[f"{name} ndcg@10"] = float(per_user["ndcg@10"].mean())
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        print(row, flush=True)
    return rows


def main() -> dict:
    rows = run()
    old, new = rows
    checks = {"the tie rule changes which item is held out for some users":
              check(float(new["held-out item changed"]), new["held-out item changed"] > 0, "{:.0f}")}
    write_result("ties", rows, checks,
                 f"ml-100k, leave-one-out + 99 sampled negatives (seed 0), BPR setting {BPR_SETTING}; "
                 "the same candidates' sampler seed under both rules")
    update_readme("ties", pd.DataFrame(rows), checks)
    return {"rows": rows, "checks": checks}


if __name__ == "__main__":
    main()
