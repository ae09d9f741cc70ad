"""The two-tower multi-task network against BPR, EASE and the pointwise multi-task network.

``python -m benchmarks.bench_retrieval`` runs the item-ranking protocols of
``09_headline_results`` on the whole of ml-100k (seed 42, as the full preset):

* leave-one-out, each user's last item against 99 sampled negatives (HR@10, NDCG@10);
* per-user random 80/10/10, the full catalogue without seen items (NDCG@10, HR@10).

Models: the two-tower multi-task network (``two_tower``, its default settings, fixed before any
test number was seen) with 09's uncertainty weighting and with the article's fixed λ = 1 (added
after the first run showed uncertainty weighting giving the retrieval loss a weight of 0.23), its
single-task twin (retrieval only, same towers and history), the
pointwise shared-bottom network the study used so far (the first setting of 09's grid), BPR
with the setting 09's tuner chose for the split (``params/tuned.yaml``), EASE with λ chosen on
the split's validation items from RecBole-like values, and popularity. Networks stop early on
validation. Every number has a user-bootstrap interval, and the two-tower network's difference
to BPR and EASE is paired by user. Results: ``benchmarks/results/retrieval.json`` and the
``retrieval`` block of ``benchmarks/README.md``. ``--folds K`` measures instead the two-tower
network's rating RMSE on 09's k folds (``retrieval_rmse.json``, block ``retrieval-rmse``).
``--variants`` records what else was tried for the two-tower network on both ranking protocols
(``retrieval_variants.json``, block ``retrieval-variants``), each change alone against 09's chosen
setting: the length of the user's history, its mask in the softmax, the tower width, and (leave-one-out)
the refit on training + validation, with BPR and EASE under the same protocol and paired differences to BPR.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
import yaml

from benchmarks.common import RESULTS, check, update_readme, write_result
from mtrec_study import evaluation as E
from mtrec_study.config import PROJECT_ROOT
from mtrec_study.datasets import load_dataset
from mtrec_study.prepare import prepare_tasks
from mtrec_study.study import published
from mtrec_study.tasks import BEHAVIOUR, ITEM_TASK

SEED = 42
TOWER = {"model": "two_tower", "learning_rate": 3e-3, "batch_size": 1024}
POINTWISE = {k: v for k, v in published.GRIDS["mtl"][0].items() if k != "weighting"}  # fit() sets the weighting
EASE_GRID = (100.0, 250.0, 500.0, 1000.0)
PROTOCOLS = {"loo": "LOO + 99 sampled", "random": "random 80/10/10, full ranking"}


def tuned_choice(model: str, split: str) -> dict:
    """The setting 09's tuner chose for ``model`` on ``split`` (params/tuned.yaml)."""
    doc = yaml.safe_load((PROJECT_ROOT / "params" / "tuned.yaml").read_text(encoding="utf-8"))
    return doc["chosen"][model][split]


def fit(name: str, prepared, setting: dict, epochs: int):
    if name == "ease":
        return published.fit_ease(prepared, setting)
    if name == "popularity":
        return published.fit_popularity(prepared)
    if name == "bpr":
        return published.fit_bpr(prepared, setting, seed=SEED)
    tasks = [ITEM_TASK] if name == "two_tower (item only)" else None
    weighting = "fixed" if "fixed" in name else "uncertainty"  # the fixed λ against uncertainty weighting
    return published.fit_network(prepared, setting, tasks, epochs=epochs, patience=3, seed=SEED, weighting=weighting)


def run(epochs: int = 20) -> tuple[list[dict], list[dict]]:
    data = load_dataset("ml-100k", seed=SEED, log=None)
    rows, diffs = [], []
    for protocol, label in PROTOCOLS.items():
        prepared = prepare_tasks(data, protocol, seed=SEED)
        view = published.validation_as_test(prepared)
        ease_l2 = max(EASE_GRID, key=lambda l2: float(published.ranking_metrics_on(
            view, published.fit_ease(prepared, {"l2": l2}), protocol, seed=SEED)["ndcg@10"].mean()))
        models = {"two_tower (multi-task)": TOWER, "two_tower (multi-task, fixed λ = 1)": TOWER,
                  "two_tower (item only)": TOWER,
                  "shared_bottom (multi-task, pointwise)": POINTWISE, "bpr": tuned_choice("bpr", protocol),
                  "ease": {"l2": ease_l2}, "popularity": {}}
        per_user = {}
        for name, setting in models.items():
            fitted = fit(name.split(" ")[0] if name in ("bpr", "ease", "popularity") else name, prepared,
                         setting, epochs)
            t0 = time.perf_counter()
            per_user[name] = published.ranking_metrics_on(prepared, fitted, protocol, seed=SEED)
            row = {"protocol": label, "model": name, "setting": str(setting), "train seconds": round(fitted.seconds, 1),
                   "score seconds": round(time.perf_counter() - t0, 2)}
            for metric in ("hr@10", "ndcg@10"):
                ci = published.mean_ci(per_user[name][metric], n_boot=1000, seed=SEED)
                row[metric] = round(ci["estimate"], 4)
                row[f"{metric} 95% CI"] = f"[{ci['ci_low']:.4f}, {ci['ci_high']:.4f}]"
            rows.append(row)
            print(row, flush=True)
        for ours, short in (("two_tower (multi-task)", "two_tower"), ("two_tower (multi-task, fixed λ = 1)", "two_tower, fixed λ")):
            for other in ("bpr", "ease"):
                for metric in ("hr@10", "ndcg@10"):
                    ci = published.ranking_difference_ci(per_user, ours, other, metric, n_boot=1000, seed=SEED)
                    diffs.append({"protocol": label, "difference": f"{short} − {other}", "metric": metric,
                                  "estimate": round(ci["estimate"], 4), "ci_low": round(ci["ci_low"], 4),
                                  "ci_high": round(ci["ci_high"], 4)})
    return rows, diffs


def rmse_folds(k: int, epochs: int = 20) -> list[dict]:
    """The two-tower multi-task network's test RMSE on each of 09's k folds (uncertainty weighting, as 09)."""
    data = load_dataset("ml-100k", seed=SEED, log=None)
    rows = []
    for f in range(k):
        prepared = prepare_tasks(data, "kfold", seed=SEED, fold=f, k=k)
        fitted = fit("two_tower (multi-task)", prepared, TOWER, epochs)
        rmse = E.primary_values(fitted.predict(prepared.test), prepared.test, keys=[(BEHAVIOUR, "rmse")])
        rows.append({"protocol": f"{k}-fold CV", "fold": f, "model": "two_tower (multi-task)", "setting": str(TOWER),
                     "train seconds": round(fitted.seconds, 1), "best epoch": fitted.extra["best_epoch"],
                     "rmse": round(float(rmse[(BEHAVIOUR, "rmse")]), 4)})
        print(rows[-1], flush=True)
    return rows


# What else was tried, one change at a time against the setting 09's search chose (see variants()).
AS_CHOSEN = "as chosen (history of the last 100 items)"  # the unchanged setting: its best epoch sets the refit's
VARIANTS = {
    AS_CHOSEN: {},
    "history of the last 10 items": {"max_history": 10},
    "history of every training item": {"max_history": 1000},
    "history not masked in the softmax": {"mask_history": False},
    "towers 128 wide (64 chosen)": {"dim": 128},
}


def variants(epochs: int = 60, patience: int = 3) -> tuple[list[dict], list[dict]]:
    """The two-tower multi-task network with one change at a time, against BPR and EASE.

    On each ranking protocol, the setting 09's search chose for ``two_tower`` (``params/tuned.yaml``)
    trains with each change of :data:`VARIANTS`, stopping early on validation (at most ``epochs``);
    each row gives the validation NDCG@10 (what a search could have seen) beside the test numbers.
    On leave-one-out, the chosen setting, BPR and EASE are also refit on training + validation
    (the chosen setting for its validation run's best epoch), as 09 tests them. Differences to
    BPR are paired by user, within the same training data.
    """
    from mtrec_study.prepare import refit_split

    data = load_dataset("ml-100k", seed=SEED, log=None)
    rows, diffs = [], []
    for protocol, label in PROTOCOLS.items():
        prepared = prepare_tasks(data, protocol, seed=SEED)
        view = published.validation_as_test(prepared)
        chosen = {m: tuned_choice(m, protocol) for m in ("two_tower", "bpr", "ease")}
        runs = [(f"two_tower, {name}", "train", "two_tower", {**chosen["two_tower"], **change})
                for name, change in VARIANTS.items()]
        runs += [(m, "train", m, chosen[m]) for m in ("bpr", "ease")]
        if protocol == "loo":
            runs += [(m, "train + validation", m, chosen[m]) for m in ("two_tower", "bpr", "ease")]
        per_user: dict[tuple[str, str], pd.DataFrame] = {}
        refit, best_epoch = None, None
        for name, part, model, setting in runs:
            if part == "train":
                fitted = published.fit_model(model, prepared, setting, epochs, patience, SEED)
                valid = float(published.ranking_metrics_on(view, fitted, protocol, seed=SEED)["ndcg@10"].mean())
                on = prepared
            else:
                refit = refit if refit is not None else refit_split(prepared, seed=SEED)
                fitted = published.fit_model(model, refit, setting, best_epoch, None, SEED)
                valid, on = float("nan"), refit
            if name == f"two_tower, {AS_CHOSEN}":
                best_epoch = fitted.extra["best_epoch"]
            per_user[name, part] = published.ranking_metrics_on(on, fitted, protocol, seed=SEED)
            row = {"protocol": label, "model": name, "trained on": part,
                   "best epoch": fitted.extra.get("best_epoch", "—"), "epochs run": fitted.extra.get("epochs_run", "—"),
                   "train seconds": round(fitted.seconds, 1), "valid ndcg@10": round(valid, 4)}
            for metric in ("hr@10", "ndcg@10"):
                ci = published.mean_ci(per_user[name, part][metric], n_boot=1000, seed=SEED)
                row[metric] = round(ci["estimate"], 4)
                row[f"{metric} 95% CI"] = f"[{ci['ci_low']:.4f}, {ci['ci_high']:.4f}]"
            rows.append(row)
            print(row, flush=True)
        for (name, part), frame in per_user.items():
            if not name.startswith("two_tower") or ("bpr", part) not in per_user:
                continue
            pair = {"a": frame, "b": per_user["bpr", part]}
            for metric in ("hr@10", "ndcg@10"):
                ci = published.ranking_difference_ci(pair, "a", "b", metric, n_boot=1000, seed=SEED)
                diffs.append({"protocol": label, "trained on": part, "difference": f"{name} − bpr", "metric": metric,
                              "estimate": round(ci["estimate"], 4), "ci_low": round(ci["ci_low"], 4),
                              "ci_high": round(ci["ci_high"], 4)})
    return rows, diffs


def readme(rows: list[dict], diffs: list[dict], checks: dict, stamp: dict | None = None,
           block: str = "retrieval") -> None:
    """A block of benchmarks/README.md (``retrieval``, ``retrieval-variants``): the models, then the
    paired differences."""
    update_readme(block, pd.DataFrame(rows), checks, more=(pd.DataFrame(diffs),), stamp=stamp)


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--folds", type=int, default=0,
                        help="instead: the two-tower network's k-fold rating RMSE (block retrieval-rmse)")
    parser.add_argument("--variants", action="store_true",
                        help="instead: what else was tried for the two-tower network (block retrieval-variants)")
    parser.add_argument("--readme-only", action="store_true", help="rewrite the README block from the stored JSON")
    args = parser.parse_args()
    if args.readme_only:
        name = "retrieval_variants" if args.variants else "retrieval"
        stored = json.loads((RESULTS / f"{name}.json").read_text())
        rows = [r for r in stored["rows"] if "difference" not in r]
        readme(rows, [r for r in stored["rows"] if "difference" in r], stored["checks"], stored["machine"],
               block=name.replace("_", "-"))
        return stored
    if args.folds:
        rows = rmse_folds(args.folds, args.epochs)
        mean = float(np.mean([r["rmse"] for r in rows]))
        checks = {"two-tower multi-task mean k-fold RMSE ≤ 0.900": check(mean, mean <= 0.900, "{:.4f}")}
        write_result("retrieval_rmse", rows, checks, f"ml-100k, seed {SEED}, {args.folds} folds of 09; setting {TOWER}")
        update_readme("retrieval-rmse", pd.DataFrame(rows), checks)
        return {"rows": rows, "checks": checks}
    if args.variants:
        rows, diffs = variants(args.epochs)
        best = {}
        for d in diffs:
            if d["metric"] == "ndcg@10":
                best[d["protocol"]] = max(best.get(d["protocol"], -1.0), d["ci_low"])
        checks = {f"{label}: some variant above BPR, paired CI of NDCG@10 excludes 0":
                  check(best[label], best[label] > 0, "{:.4f}") for label in PROTOCOLS.values()}
        write_result("retrieval_variants", [*rows, *diffs], checks,
                     f"ml-100k, seed {SEED}, up to {args.epochs} epochs with patience 3 on validation; each variant "
                     "changes one thing in the two-tower setting chosen in params/tuned.yaml: "
                     + "; ".join(f"{label} {tuned_choice('two_tower', p)}" for p, label in PROTOCOLS.items()))
        readme(rows, diffs, checks, block="retrieval-variants")
        return {"rows": rows, "differences": diffs, "checks": checks}
    rows, diffs = run(args.epochs)
    loo = {d["metric"]: d for d in diffs if d["protocol"] == PROTOCOLS["loo"] and d["difference"] == "two_tower − bpr"}
    rnd = {d["metric"]: d for d in diffs if d["protocol"] == PROTOCOLS["random"] and d["difference"] == "two_tower − bpr"}
    checks = {
        "LOO: two-tower multi-task above BPR, paired CI of HR@10 excludes 0":
            check(loo["hr@10"]["ci_low"], loo["hr@10"]["ci_low"] > 0, "{:.4f}"),
        "LOO: two-tower multi-task above BPR, paired CI of NDCG@10 excludes 0":
            check(loo["ndcg@10"]["ci_low"], loo["ndcg@10"]["ci_low"] > 0, "{:.4f}"),
        "random: two-tower multi-task above BPR, paired CI of NDCG@10 excludes 0":
            check(rnd["ndcg@10"]["ci_low"], rnd["ndcg@10"]["ci_low"] > 0, "{:.4f}"),
    }
    write_result("retrieval", [*rows, *diffs], checks,
                 f"ml-100k, seed {SEED}, up to {args.epochs} epochs with patience 3 on validation; two-tower "
                 f"setting {TOWER} fixed in advance; BPR as tuned in params/tuned.yaml; EASE λ from {EASE_GRID} "
                 "on validation NDCG@10")
    readme(rows, diffs, checks)
    return {"rows": rows, "differences": diffs, "checks": checks}


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
