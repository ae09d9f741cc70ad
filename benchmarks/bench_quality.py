"""The cost of quality: each headline model's training wall time beside its test metric.

On fold 0 of the full preset's 5-fold split of ml-100k, every rating/interest model of
``09_headline_results`` (our multi-task and single-task networks, logistic regression, the
Surprise peers with default and tuned settings) is trained once with the setting stored in
``params/tuned.yaml``; on the leave-one-out split, the ranking models (our networks, BPR,
popularity). Times are wall seconds of training alone on this machine, so compare them within
one run; the metrics are the same numbers the notebook computes.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pandas as pd  # noqa: E402

from benchmarks.common import check, tuned_choices, update_readme, write_result  # noqa: E402
from mtrec_study.datasets import load_dataset  # noqa: E402
from mtrec_study.study import peers as P  # noqa: E402
from mtrec_study.study import published as H  # noqa: E402


def main() -> dict:
    p = H.preset_parameters("full")
    data = load_dataset(p["DATASET"], seed=p["SEED"], log=None)
    models = [m for m in H.GRIDS if m not in P.PEERS or m in p["PEERS_TO_RUN"]]
    chosen = tuned_choices(data, p, models)
    splits = H.headline_splits(data, k=p["CV_FOLDS"], seed=p["SEED"], neg_ratio=p["NEG_RATIO"])
    common = dict(epochs=p["EPOCHS"], patience=p["PATIENCE"], seed=p["SEED"])
    fold_models = [m for m in models if "fold-0" in H.plan_splits(m, splits)]
    tidy, cost = H.cv_fold_rows(splits["fold-0"](), 0, {m: chosen[m]["fold-0"] for m in fold_models}, fold_models,
                                **common)
    quality = (tidy[tidy["metric"].isin(["rmse", "auc"])].assign(metric=lambda d: "fold-0 " + d["task"] + " " + d["metric"])
               .pivot_table(index="model", columns="metric", values="value").reset_index())
    rank_models = [m for m in models if "loo" in H.plan_splits(m, splits)]
    per_user, rank_cost = H.ranking_per_user(splits["loo"](), "loo", {m: chosen[m]["loo"] for m in rank_models},
                                             rank_models, **common, n_negatives=p["SAMPLED_NEGATIVES"])
    ranking = pd.DataFrame([{"model": m, "loo HR@10": df["hr@10"].mean(), "loo NDCG@10": df["ndcg@10"].mean()}
                            for m, (df,) in per_user.items()])  # one training seed
    cost_df = pd.DataFrame(cost + rank_cost)
    cost_df["model"] = cost_df["model"] + " (" + cost_df["split"] + ")"
    quality["model"] = quality["model"] + " (fold-0)"
    ranking["model"] = ranking["model"] + " (loo)"
    table = (cost_df[["model", "seconds"]].rename(columns={"seconds": "train_seconds"})
             .merge(pd.concat([quality, ranking]), on="model", how="left").round(4))
    sec = cost_df.set_index("model")["seconds"]
    three = sum(sec[f"single_{t} (fold-0)"] for t in ("interest", "behaviour")) + sec["single_item (loo)"]
    ratio = sec["mtl (fold-0)"] / three
    checks = {"every model trained and scored": check(len(table), table.drop(columns="train_seconds")
                                                      .notna().sum(axis=1).gt(1).all(), "{:.0f} models"),
              "MTL training time / its three single-task trainings (info)": check(ratio, True, "{:.2f}")}
    write_result("quality", table.to_dict("records"), checks,
                 "fold 0 of the full preset's 5-fold split and the LOO split; settings from params/tuned.yaml")
    update_readme("quality", table, checks)
    print(table.to_string())
    return {"checks": checks}


if __name__ == "__main__":
    main()
