"""How far one training seed moves 09's item rows: the two-tower networks and BPR over five seeds.

``python -m benchmarks.bench_seeds`` trains ``two_tower``, its item-only twin ``two_tower_item``
and ``bpr`` on 09's leave-one-out split (seed 42, its settings from ``params/tuned.yaml``) with
training seeds 42 (09's) to 46, and scores each against the same 99 sampled candidates per user
(drawn with seed 42, as 09 does). Per model it reports each seed's HR@10 and NDCG@10 and their
spread. Per pair it reports the per-seed paired difference, and the mean over seeds of each user's
difference, with a user-bootstrap 95% CI. That interval is over users for the seed-averaged models:
it narrows the seed noise by averaging, but does not add it. Results go to
``benchmarks/results/seeds.json`` and the ``seeds`` block of ``benchmarks/README.md``.

Five training seeds in the intervals of 09's primary rows are the methodology's next step; this
measures how much they matter.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from benchmarks.common import check, tuned_choices, update_readme, write_result
from mtrec_study.datasets import load_dataset
from mtrec_study.study import published

MODELS = ("two_tower", "two_tower_item", "bpr")
PAIRS = (("two_tower", "bpr"), ("two_tower", "two_tower_item"))
METRICS = ("hr@10", "ndcg@10")


def run(protocol: str = "loo", seeds=range(42, 47), n_boot: int = 1000):
    p = published.preset_parameters("full")
    split_seed = p["SEED"]
    data = load_dataset(p["DATASET"], seed=split_seed, log=None)
    prepared = published.headline_splits(data, k=p["CV_FOLDS"], seed=split_seed, neg_ratio=p["NEG_RATIO"])[protocol]()
    chosen = tuned_choices(data, p, MODELS)
    per_user, rows = {}, []
    for model in MODELS:
        for seed in seeds:
            t0 = time.perf_counter()
            fitted = published.fit_model(model, prepared, chosen[model][protocol], p["EPOCHS"], p["PATIENCE"], seed)
            per_user[(model, seed)] = published.ranking_metrics_on(prepared, fitted, protocol, p["SAMPLED_NEGATIVES"],
                                                                   split_seed)
            rows.append({"model": model, "seed": seed, **{m: float(per_user[(model, seed)][m].mean()) for m in METRICS},
                         "seconds": round(time.perf_counter() - t0, 1)})
            print(rows[-1], flush=True)
    pairs = []
    for a, b in PAIRS:
        for metric in METRICS:
            diffs = [published.ranking_difference_ci({a: per_user[(a, s)], b: per_user[(b, s)]}, a, b, metric,
                                                     n_boot, split_seed) for s in seeds]
            averaged = {name: pd.concat([per_user[(name, s)][metric] for s in seeds], axis=1).mean(axis=1).to_frame(metric)
                        for name in (a, b)}
            pooled = published.ranking_difference_ci(averaged, a, b, metric, n_boot, split_seed)
            pairs.append({"difference": f"{a} − {b}", "metric": metric,
                          "per seed": ", ".join(f"{d['estimate']:+.4f}" for d in diffs),
                          "seeds above 0": sum(d["estimate"] > 0 for d in diffs),
                          "seeds with CI above 0": sum(d["ci_low"] > 0 for d in diffs),
                          "seed-averaged": pooled["estimate"], "ci_low": pooled["ci_low"], "ci_high": pooled["ci_high"]})
    one_seed = published.mean_ci(per_user[("two_tower", seeds[0])]["hr@10"], n_boot, split_seed)
    return rows, pairs, one_seed


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=("loo", "random"), default="loo")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    seeds = list(range(42, 42 + args.seeds))
    rows, pairs, one_seed = run(args.protocol, seeds)
    table = pd.DataFrame(rows)
    spread = table.groupby("model")[list(METRICS)].agg(["mean", "std", "min", "max"])
    spread.columns = [f"{m} {s}" for m, s in spread.columns]
    spread = spread.reset_index()
    tt = spread.set_index("model").loc["two_tower"]
    width = one_seed["ci_high"] - one_seed["ci_low"]
    checks = {
        f"two_tower HR@10 over {len(seeds)} seeds on {args.protocol} (max − min) narrower than the user-bootstrap "
        f"CI of one seed ({width:.4f} wide), which is all 09 shows": check(
            tt["hr@10 max"] - tt["hr@10 min"], tt["hr@10 max"] - tt["hr@10 min"] < width, "{:.4f}"),
        "two_tower − bpr NDCG@10, seed-averaged, CI above 0": check(
            pairs[1]["ci_low"], pairs[1]["ci_low"] > 0, "{:+.4f}"),
    }
    write_result("seeds", rows, checks, extra={"pairs": pairs, "protocol": args.protocol},
                 notes="09's item-ranking networks and BPR over training seeds, the same split and candidates")
    update_readme("seeds", spread, checks, more=(pd.DataFrame(pairs),))
    print(spread.to_string(), "\n", pd.DataFrame(pairs).to_string())
    return {"checks": checks}


if __name__ == "__main__":
    main()
