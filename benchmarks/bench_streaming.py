"""Training from Parquet shards at 1M, 10M and 50M interactions: examples/s and peak memory.

Each size is a synthetic world of 100k items (1M interactions: 20k users, 10M: 200k, 50M: 1M;
:func:`mtrec_study.study.scaling.world_shape`), written by :func:`mtrec_study.study.scaling.world`
into ``<cache>/bench_shards`` and reused by later runs, with the write's own seconds and peak
memory kept beside it. Each step runs in its own process, which reports its own peak memory:

* **write**: generate the world block by block and shuffle it into shards;
* **train**: :func:`mtrec_study.study.scaling.measure_training` (10_scaling's measurement): the
  multi-task shared-bottom network with uncertainty weighting, batch 4096, epochs of 200 batches, validation on the first
  validation shard (about 100k rows at every size). Examples/s is 200 × 4096 over the median
  seconds of the epochs after the first (which traces the graph), validation included. It trains
  twice: with lazy Adam (10_scaling's optimizer, the one the targets judge) and with Keras's Adam,
  whose every step updates every row of the user table and so slows as the users grow.

If streaming works, examples/s does not fall as the world grows (within 20%), and the training
process's memory grows with users + items, not with rows: under 4 GB at 50M interactions, and
independent of the rows within 25%. The three worlds grow their users with their rows (50
interactions each), so their peaks also grow with the users; the first table shows what grows
with users and items rather than rows (``tables and weights GB``: the weights with Adam's two
moments, and the feature tables), the rest of the peak, and each optimizer's validation loss after
the last epoch. Independence of the rows is measured where only the rows change:

* **rows at a fixed catalogue**: the 50M world's 1M users and 100k items, one full epoch over the
  first 1, 5 and 26 of its training shards (about 2M, 10M and 50M training rows), each in a fresh
  process. Peak memory of the most rows over the fewest: target at most 1.25.

Scoring at that scale: every one of 100k users' top 10 among 100k items by blocked dot products
of 64-d tower outputs (:func:`mtrec_study.evaluation.ranking.top_k_dot`), target under 60 s.

``--write-only`` writes the missing worlds and stops (run it first, then measure on a quiet machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pandas as pd  # noqa: E402

from benchmarks.common import check, update_readme, write_result  # noqa: E402
from mtrec_study.config import cache_dir  # noqa: E402
from mtrec_study.study import scaling  # noqa: E402

SIZES = (1_000_000, 10_000_000, 50_000_000)
FIXED_WORLD, FIXED_FILES = 50_000_000, (1, 5, 26)  # training shards of about 1.9M rows each
BATCH, STEPS, EPOCHS = 4096, 200, 4
RSS_LIMIT_GB = 4.0
FLAT = 0.8  # the slowest size's examples/s over the fastest's
RSS_SPREAD = 1.25
TOPK_USERS, TOPK_ITEMS, TOPK_DIM, TOPK_S = 100_000, 100_000, 64, 60.0


def _root():
    return cache_dir() / "bench_shards"


def child_write(interactions: int) -> dict:
    start = time.perf_counter()
    scaling.world(interactions, root=_root(), seed=0)
    return {"seconds": time.perf_counter() - start, "peak_gb": scaling.peak_memory_gb()}


def child_topk() -> dict:
    import numpy as np

    from mtrec_study.evaluation.metrics import top_k
    from mtrec_study.evaluation.ranking import top_k_dot

    rng = np.random.default_rng(0)
    users = rng.standard_normal((TOPK_USERS, TOPK_DIM), dtype="float32")
    items = rng.standard_normal((TOPK_ITEMS, TOPK_DIM), dtype="float32")
    start = time.perf_counter()
    lists = top_k_dot(users, items, k=10)
    seconds = time.perf_counter() - start
    sample = rng.choice(TOPK_USERS, 200, replace=False)
    same = (top_k(users[sample].astype("float64") @ items.T.astype("float64"), 10) == lists[sample]).all(axis=1)
    return {"seconds": seconds, "same_as_numpy": float(same.mean()), "peak_gb": scaling.peak_memory_gb()}


def _run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_streaming", "--child", *args],
                         capture_output=True, text=True, check=False, timeout=3 * 3600)
    if out.returncode:
        raise RuntimeError(f"child {args} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def written(interactions: int) -> dict | None:
    """The world's write seconds and peak memory: written now if missing, else as recorded when it was."""
    timed = _root() / f"world-{interactions}-seed0.write.json"
    if not scaling.has_world(interactions, root=_root(), seed=0):
        timed.parent.mkdir(parents=True, exist_ok=True)
        timed.write_text(json.dumps(_run_child("write", str(interactions))))
    return json.loads(timed.read_text()) if timed.exists() else None


def main(sizes: tuple[int, ...] = SIZES, write_only: bool = False) -> int:
    rows = []
    for n in sizes:
        write = written(n)
        if write_only:
            print(n, write, flush=True)
            continue
        users, items = scaling.world_shape(n)
        common = dict(shards=scaling.world_folder(n, _root(), 0), epochs=EPOCHS, batch_size=BATCH, seed=0,
                      steps_per_epoch=STEPS, valid_files=1)
        cost = scaling.measure_training(**scaling.NETWORKS[scaling.MULTI], **common)
        dense = scaling.measure_training(**{**scaling.NETWORKS[scaling.MULTI], "optimizer": "adam"}, **common)
        rows.append({"interactions": n, "users": users, "items": items, "training rows": cost["train_rows"],
                     "write s": None if write is None else round(write["seconds"], 1),
                     "write peak GB": None if write is None else round(write["peak_gb"], 2),
                     "examples/s": round(cost["examples_per_s"]), "train peak GB": round(cost["peak_gb"], 2),
                     "examples/s, Adam": round(dense["examples_per_s"]), "train peak GB, Adam": round(dense["peak_gb"], 2),
                     "tables and weights GB": round(cost["held_gb"], 2),
                     "peak less tables and weights GB": round(cost["peak_gb"] - cost["held_gb"], 2),
                     "materialised GB": round(cost["materialised_gb"], 2),
                     "val loss": round(cost["val_loss"][-1], 4), "val loss, Adam": round(dense["val_loss"][-1], 4)})
        print(rows[-1], flush=True)
    if write_only:
        return 0
    fixed = []
    if FIXED_WORLD in sizes:
        for files in FIXED_FILES:
            cost = scaling.measure_training(**scaling.NETWORKS[scaling.MULTI], shards=scaling.world_folder(
                FIXED_WORLD, _root(), 0), epochs=1, batch_size=BATCH, seed=0, train_files=files, valid_files=1)
            fixed.append({"training shards": files, "training rows": cost["train_rows"],
                          "users": scaling.world_shape(FIXED_WORLD)[0], "items": scaling.world_shape(FIXED_WORLD)[1],
                          "epoch s": round(cost["epoch_seconds"][0], 1), "examples/s": round(cost["examples_per_s"]),
                          "train peak GB": round(cost["peak_gb"], 2), "materialised GB": round(cost["materialised_gb"], 2)})
            print(fixed[-1], flush=True)
    topk = _run_child("topk")
    print(topk, flush=True)
    table = pd.DataFrame(rows)
    speed, rss = table["examples/s"], table["train peak GB"]
    checks = {f"examples/s flat, {scaling.OPTIMIZER}: slowest / fastest (target >= {FLAT})":
              check(speed.min() / speed.max(), speed.min() / speed.max() >= FLAT, "{:.2f}"),
              f"training peak memory at {table['interactions'].max():,} interactions, GB (target < {RSS_LIMIT_GB})":
              check(rss.iloc[-1], rss.iloc[-1] < RSS_LIMIT_GB, "{:.2f}"),
              f"top 10 of {TOPK_ITEMS:,} items for each of {TOPK_USERS:,} users, s (target < {TOPK_S:.0f})":
              check(topk["seconds"], topk["seconds"] < TOPK_S, "{:.1f}"),
              "those lists equal a float64 NumPy sort's, share of 200 sampled users":
              check(topk["same_as_numpy"], topk["same_as_numpy"] >= 0.95, "{:.3f}")}
    fixed = pd.DataFrame(fixed)
    if len(fixed):
        spread = fixed["train peak GB"].max() / fixed["train peak GB"].min()
        checks[f"training peak memory at a fixed catalogue, {fixed['training rows'].max():,} rows / "
               f"{fixed['training rows'].min():,} rows (target <= {RSS_SPREAD})"] = check(spread, spread <= RSS_SPREAD,
                                                                                       "{:.2f}")
    write_result("streaming", rows, checks, f"{scaling.MULTI}, uncertainty weighting, {scaling.OPTIMIZER} "
                                            f"(and Keras's Adam for contrast), batch {BATCH}, epochs of {STEPS} batches; "
                                            "examples/s over the median epoch after the first, validation included. "
                                            f"fixed_catalogue: the {FIXED_WORLD:,}-interaction world's users and items, "
                                            "one full epoch over its first training shards. Across the growing "
                                            f"worlds ({table['users'].min():,} to {table['users'].max():,} users) the "
                                            f"peak grows {rss.max() / rss.min():.2f}x, with the users (no target)",
                 extra={"fixed_catalogue": fixed.to_dict("records")})
    update_readme("streaming", table, checks, more=(fixed,) if len(fixed) else ())
    print(table.to_string(index=False), fixed.to_string(index=False), checks, sep="\n")
    return 0 if all(c["pass"] for c in checks.values()) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES), help=f"interactions, of {list(SIZES)}")
    parser.add_argument("--write-only", action="store_true", help="write the missing worlds, then stop")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        print(json.dumps(child_write(int(rest[0])) if kind == "write" else child_topk()))
        raise SystemExit(0)
    raise SystemExit(main(tuple(args.sizes), args.write_only))
