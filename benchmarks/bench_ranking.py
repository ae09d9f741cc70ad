"""Full-catalogue ranking at MovieLens-1M size (6,040 users × 3,706 items) in user blocks.

The scores come from a NumPy dot product (a trained MF's factors would cost the same), so the
time measured is the ranking and metric code of :func:`mtrec_study.evaluation.metrics.rank_in_blocks`.
Peak memory is bounded by one block's score matrix; the table shows how it scales.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pandas as pd

from benchmarks.common import check, update_readme, write_result
from mtrec_study.evaluation import metrics as M

USERS, ITEMS = 6040, 3706


def run(block_size: int, repeats: int = 3) -> dict:
    rng = np.random.default_rng(0)
    p = rng.normal(size=(USERS, 32)).astype("float32")
    q = rng.normal(size=(ITEMS, 32)).astype("float32")
    train = rng.random((USERS, ITEMS)) < 0.04  # about 0.9M training interactions, as in ml-1m
    test = (rng.random((USERS, ITEMS)) < 0.005) & ~train
    args = (lambda u: p[u] @ q.T, np.arange(USERS), lambda u: test[u], lambda u: train[u])
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        M.rank_in_blocks(*args, block_size=block_size)
        times.append(time.perf_counter() - t)
    tracemalloc.start()
    M.rank_in_blocks(*args, block_size=block_size)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"users": USERS, "items": ITEMS, "block_size": block_size, "seconds_best": min(times),
            "seconds_median": float(np.median(times)), "peak_traced_mb": peak / 2**20}


def main() -> dict:
    rows = [run(b) for b in (256, 1024, 4096)]
    for r in rows:
        print(r, flush=True)
    default = next(r for r in rows if r["block_size"] == 1024)
    checks = {"full-catalogue ranking, all ml-1m-sized users, block 1024, median s (target < 2)":
              check(default["seconds_median"], default["seconds_median"] < 2)}
    write_result("ranking", rows, checks, "ks = 5, 10, 20; pessimistic ties; top-20 lists kept for beyond-accuracy metrics")
    update_readme("ranking", pd.DataFrame(rows), checks)
    return {"rows": rows, "checks": checks}


if __name__ == "__main__":
    main()
