"""ml-100k with features looked up by id against features materialised per row, and what
reshuffling every epoch changes.

One fold of 09's best multi-task network (``params/tuned.yaml``'s choice for fold 0 of the 5-fold
split, seed 42, uncertainty weighting, up to 20 epochs, patience 3) trains on the same rows three
ways per training seed, each in a fresh process that reports its peak memory:

* **materialised**: ``prepare_tasks(...)``, every row carries all of its features (the default
  for data in memory), fed as :class:`mtrec_study.streaming.ArraySet`: a new seeded order each
  epoch;
* **lookup**: ``prepare_tasks(..., lookup=True)``, every row is two table rows
  (:class:`mtrec_study.features.FeatureView`), each batch's features gathered in the ``tf.data``
  pipeline (:class:`mtrec_study.streaming.PairSet`). Its batches are the materialised ones, so
  the target is the same test metrics for every seed (within 1e-5);
* **one order**: materialised, but every epoch in epoch 0's order, as Keras's own ``fit`` on
  arrays does under a fixed seed (the trainer's behaviour before ``ArraySet``). The difference
  from ``materialised`` is what a new order each epoch is worth; it has no target.

``feature MB`` is what the three parts' features hold (for lookup: the row numbers and the
tables), and ``... with text`` adds 384-d text vectors on both sides, as 02's MiniLM gives.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks.common import check, update_readme, write_result  # noqa: E402
from mtrec_study.tasks import PRIMARY_METRICS  # noqa: E402

PATHS = ("materialised", "lookup", "one order")
SEEDS = (0, 1, 2)
TEXT_DIM = 384


def child(path: str, seed: int) -> dict:
    os.environ["MTREC_NO_CACHE"] = "1"  # every run trains
    from benchmarks.bench_fold import fold0
    from mtrec_study.evaluation.predictions import primary_values
    from mtrec_study.prepare import prepare_tasks
    from mtrec_study.study.scaling import feature_bytes, peak_memory_gb
    from mtrec_study.training import trainer as T

    if path == "one order":  # every epoch in epoch 0's order, as Keras's fit shuffles arrays under a fixed seed
        from mtrec_study.streaming import ArraySet

        original = ArraySet.batches
        ArraySet.batches = lambda self, bs, seed=0, epoch=0, shuffle=True: original(self, bs, seed, 0, shuffle)
    dense, setting = fold0()
    prepared = dense if path != "lookup" else prepare_tasks(dense.data, "kfold", seed=42, neg_ratio=1.0,
                                                                    fold=0, k=5, lookup=True)
    s = dict(setting)
    model, lr, bs = s.pop("model"), s.pop("learning_rate"), s.pop("batch_size")
    weighting = s.pop("weighting", "uncertainty")  # the tuned loss weighting
    start = time.perf_counter()
    res = T.train(model, prepared, weighting=weighting, epochs=20, batch_size=bs, learning_rate=lr, seed=seed,
                  patience=3, progress=False, **s)
    seconds = time.perf_counter() - start
    values = primary_values(T.predict(res.net, prepared.test), prepared.test)
    return {"path": path, "seed": seed, "epochs": len(res.epoch_seconds), "best epoch": res.best_epoch,
            "train s": round(seconds, 1),
            "examples/s": round(len(prepared.train) / float(np.median(res.epoch_seconds[1:] or res.epoch_seconds))),
            "peak GB": round(peak_memory_gb(), 3), "feature MB": round(feature_bytes(prepared) / 1e6, 1),
            "feature MB with text": round(feature_bytes(prepared, TEXT_DIM) / 1e6, 1),
            **{f"{task} {metric}": round(v, 5) for (task, metric), v in values.items()}}


def _run_child(path: str, seed: int) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_lookup", "--child", path, str(seed)],
                         capture_output=True, text=True, check=False, timeout=3600)
    if out.returncode:
        raise RuntimeError(f"child {path} {seed} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(seeds: tuple[int, ...] = SEEDS) -> dict:
    rows = []
    for seed in seeds:
        for path in PATHS:  # in turn, so that a busy spell of the machine hits each
            rows.append(_run_child(path, seed))
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    metrics = [f"{task} {metric}" for task, metric in PRIMARY_METRICS]
    by = table.groupby("path", sort=False)
    summary = by[["train s", "examples/s", "peak GB", "feature MB", "feature MB with text", *metrics]].mean()
    checks, effect = {}, []
    for m in metrics:
        a, b, c = (by.get_group(path).set_index("seed")[m] for path in PATHS)
        gap = float((b - a).abs().max())
        checks[f"{m}: lookup - materialised, largest |difference| over {len(seeds)} seeds (target <= 1e-5)"] = \
            check(gap, gap <= 1e-5, "{:.1e}")
        effect.append({"metric": m, "one order - materialised, mean": round(float((c - a).mean()), 5),
                       "smallest": round(float((c - a).min()), 5), "largest": round(float((c - a).max()), 5)})
    effect = pd.DataFrame(effect)
    same_epochs = bool((by.get_group("lookup")["epochs"].to_numpy() == by.get_group("materialised")["epochs"].to_numpy()).all())
    checks["lookup trains as many epochs as materialised, every seed"] = check(float(same_epochs), same_epochs, "{:.0f}")
    speed = summary.loc["lookup", "examples/s"] / summary.loc["materialised", "examples/s"]
    write_result("lookup", rows, checks, "ml-100k fold 0 of 5 (seed 42), 09's multi-task setting for that fold; "
                 f"training seeds {list(seeds)}; each training in a fresh process; lookup examples/s "
                 f"{speed:.2f}x materialised's (one run on a shared machine, no target)",
                 extra={"means": summary.reset_index().to_dict("records"), "one_order_effect": effect.to_dict("records")})
    update_readme("lookup", table, checks, more=(summary.round(4).reset_index(), effect))
    print(table.to_string(index=False), summary.to_string(), effect.to_string(index=False), checks, sep="\n")
    return {"checks": checks}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=list(SEEDS))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        raise SystemExit(0)
    raise SystemExit(0 if all(c["pass"] for c in main(tuple(args.seeds))["checks"].values()) else 1)
