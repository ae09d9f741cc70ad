"""How training cost grows with the data: synthetic worlds from thousands to millions of
interactions, trained from Parquet shards, each training in a fresh process that reports its own
peak memory.

The article warns that multi-task models train slowly (§3.3, §8.3, §9.4); 10_scaling measures how
epoch time and memory grow with the data for one multi-task network and the three single-task
networks it replaces. ``benchmarks/bench_streaming.py`` uses the same functions up to 50M
interactions.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mtrec_study.config import PROJECT_ROOT, cache_dir
from mtrec_study.streaming import FORMAT_VERSION

# One multi-task network and the three single-task networks it replaces: the same shared-bottom
# backbone (models.zoo.build_single_task is the shared-bottom network with one tower). Each is
# trained with lazy Adam, which moves only the embedding rows a batch looked up: Keras's Adam
# updates every row of the user table at every step, a cost that grows with the users rather than
# with the batch (benchmarks/bench_streaming.py measures both).
MULTI = "multi-task shared-bottom"
OPTIMIZER = "lazy_adam"
NETWORKS: dict[str, dict] = {name: {**net, "optimizer": OPTIMIZER} for name, net in {
    MULTI: {"model": "shared_bottom", "weighting": "uncertainty"},
    "single-task interest": {"model": "single_task", "tasks": ["interest"]},
    "single-task item": {"model": "single_task", "tasks": ["item"]},
    "single-task behaviour": {"model": "single_task", "tasks": ["behaviour"]},
}.items()}
MAX_ITEMS = 100_000


def world_shape(interactions: int) -> tuple[int, int]:
    """Users and items of the synthetic world with ``interactions`` interactions.

    50 interactions per user on average, and one item per 10 interactions up to 100k items:
    1M interactions are 20k users × 100k items, 50M are 1M users × 100k items.

    Used by mtrec_study.study.scaling.
    """
    if interactions < 1000:
        raise ValueError(f"a scaling world needs at least 1,000 interactions, got {interactions:,}")
    return max(100, interactions // 50), min(MAX_ITEMS, max(500, interactions // 10))


def world_folder(interactions: int, root: str | Path | None = None, seed: int = 0) -> Path:
    """Where the world of ``interactions`` interactions is kept (default root: ``<cache>/scaling``).

    Used by mtrec_study.study.scaling.
    """
    return Path(root or cache_dir() / "scaling") / f"world-{interactions}-seed{seed}"


def has_world(interactions: int, root: str | Path | None = None, seed: int = 0) -> bool:
    """Whether an earlier run left that world (its ``meta.json`` names the same sizes and seed).

    Used by mtrec_study.study.scaling.
    """
    meta = world_folder(interactions, root, seed) / "meta.json"
    if not meta.exists():
        return False
    m = json.loads(meta.read_text())
    users, items = world_shape(interactions)
    return (m.get("format"), m.get("n_users"), m.get("n_items"), m.get("requested_interactions"), m.get("seed")) == (
        FORMAT_VERSION, users, items, interactions, seed)


def world(interactions: int, root: str | Path | None = None, seed: int = 0) -> Path:
    """The shard folder of the world of ``interactions`` interactions (:func:`world_shape`),
    written unless an earlier run left it (:func:`has_world`).

    Args:
        interactions: Observed interactions.
        root: Where worlds are kept (default: ``<cache>/scaling``).
        seed: The world's seed.

    Introduced in notebooks/10_scaling.ipynb.
    """
    from mtrec_study.streaming import write_synthetic_shards

    folder = world_folder(interactions, root, seed)
    if has_world(interactions, root, seed):
        return folder
    users, items = world_shape(interactions)
    return write_synthetic_shards(folder, n_users=users, n_items=items, n_interactions=interactions, seed=seed,
                                  progress=False)


def peak_memory_gb() -> float:
    """This process's peak resident memory so far, in GB (10^9 bytes).

    On Linux it is ``VmHWM`` of ``/proc/self/status``, the high-water mark of this process's own
    memory since it started its program. ``getrusage``'s ``ru_maxrss`` is not: it survives
    ``exec``, so a child started from a notebook kernel holding 1.7 GB reports at least 1.7 GB
    whatever it used itself. Elsewhere ``ru_maxrss`` is the fallback.

    Used by mtrec_study.study.scaling.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e9  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak * (1 if sys.platform == "darwin" else 1024) / 1e9  # macOS reports bytes, Linux KiB


def _train_here(spec: dict) -> dict:
    """Run in the child process: train as ``spec`` says and report times and peak memory."""
    from mtrec_study.training import train

    if "shards" in spec:
        import pyarrow.parquet as pq

        from mtrec_study.streaming import load_shards

        data = load_shards(spec["shards"])
        for part in ("train", "valid"):  # the first files only: fewer rows of the same world
            if spec.get(f"{part}_files"):
                shards = getattr(data, part)
                shards.files = shards.files[:spec[f"{part}_files"]]
                shards.rows = sum(pq.ParquetFile(f).metadata.num_rows for f in shards.files)
        train_rows, valid_rows = len(data.train), len(data.valid)
    else:
        from mtrec_study.datasets import load_dataset
        from mtrec_study.prepare import prepare_tasks

        data = prepare_tasks(load_dataset(spec["dataset"], data_dir=spec.get("data_dir"), seed=spec["seed"], log=None),
                             "per_user_recent", seed=spec["seed"])
        train_rows, valid_rows = len(data.train), len(data.valid)
    start = time.perf_counter()
    result = train(spec["model"], data, weighting=spec.get("weighting", "fixed"), tasks=spec.get("tasks"),
                   epochs=spec["epochs"], batch_size=spec["batch_size"], seed=spec["seed"], patience=spec["epochs"],
                   steps_per_epoch=spec.get("steps_per_epoch"), optimizer=spec.get("optimizer", "adam"), progress=False)
    rows_per_epoch = min(train_rows, spec["steps_per_epoch"] * spec["batch_size"]) if spec.get("steps_per_epoch") \
        else train_rows
    # What must be held whatever the rows: the weights with Adam's two moments (float32), and for
    # shards the feature tables, one row per user and per item.
    params = result.net.count_params()
    held = 3 * 4 * params
    if "shards" in spec:
        t = data.tables
        held += sum(a.nbytes for a in (t.user_ids, t.item_ids, *t.user.values(), *t.item.values()))
    later = result.epoch_seconds[1:] or result.epoch_seconds
    return {"train_rows": train_rows, "valid_rows": valid_rows, "rows_per_epoch": rows_per_epoch,
            "epoch_seconds": result.epoch_seconds, "seconds": time.perf_counter() - start,
            "examples_per_s": rows_per_epoch / float(np.median(later)), "peak_gb": peak_memory_gb(),
            "materialised_gb": train_rows * row_bytes(data.spec) / 1e9, "held_gb": held / 1e9, "params": params,
            "val_loss": result.history["val_loss"]}


def row_bytes(spec) -> int:
    """Bytes one training row's features take when materialised, as in memory (4-byte values).

    Introduced in notebooks/10_scaling.ipynb.
    """
    return 4 * (len(spec.categorical) + sum(spec.multi_hot.values()) + len(spec.dense) + sum(spec.vectors.values()))


def measure_training(model: str, epochs: int = 2, batch_size: int = 4096, seed: int = 0, shards: str | Path | None = None,
                     dataset: str | None = None, data_dir: str | None = None, weighting: str = "fixed",
                     tasks: list[str] | None = None, steps_per_epoch: int | None = None, train_files: int | None = None,
                     valid_files: int | None = None, optimizer: str = "adam", timeout: float = 3600.0) -> dict:
    """Train one network in a fresh process and return what it cost.

    A fresh process per training makes each peak-memory figure that training's own (the
    TensorFlow runtime included). The first epoch traces the graph, so ``examples_per_s`` divides
    the rows of an epoch by the median of the later epochs (validation included).

    Args:
        model, weighting, tasks, epochs, batch_size, seed, steps_per_epoch, optimizer: As in
            :func:`mtrec_study.training.train` (patience is ``epochs``: every epoch runs).
        shards: A shard folder (:func:`world`), or else
        dataset, data_dir: A data set in memory (:func:`mtrec_study.datasets.load_dataset`),
            split per-user recent.
        train_files, valid_files: Train, or validate, on the first this many shards only: fewer
            rows of the same users and items (the rows change, the catalogue does not).
        timeout: Seconds before the child is stopped.

    Returns:
        ``train_rows``, ``rows_per_epoch``, ``epoch_seconds`` (list), ``seconds``,
        ``examples_per_s``, ``peak_gb``, ``materialised_gb`` (what the training rows' features
        would take in memory, :func:`row_bytes`), ``params`` (the network's), ``held_gb``
        (those parameters with Adam's two moments at 4 bytes each, plus a shard folder's feature
        tables: what grows with users and items, not rows) and ``val_loss`` (list).

    Raises:
        ValueError: Unless exactly one of ``shards`` and ``dataset`` is given.
        RuntimeError: If the child fails (with the end of its output) or runs past ``timeout``.

    Introduced in notebooks/10_scaling.ipynb.
    """
    if (shards is None) == (dataset is None):
        raise ValueError("measure_training needs exactly one of shards= (a shard folder) and dataset= (a data set name)")
    spec = {"model": model, "weighting": weighting, "tasks": tasks, "epochs": epochs, "batch_size": batch_size,
            "seed": seed, "steps_per_epoch": steps_per_epoch, "train_files": train_files, "valid_files": valid_files, "optimizer": optimizer,
            **({"shards": str(shards)} if shards is not None else {"dataset": dataset, "data_dir": data_dir})}
    try:
        out = subprocess.run([sys.executable, "-m", "mtrec_study.study.scaling", json.dumps(spec)], cwd=PROJECT_ROOT,
                             capture_output=True, text=True, timeout=timeout, check=False,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TQDM_DISABLE": "1"})
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"training {model} ({spec}) ran past {timeout:.0f} s and was stopped") from None
    lines = out.stdout.strip().splitlines()
    if out.returncode or not lines:
        raise RuntimeError(f"training {model} ({spec}) failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def scaling_slopes(table: pd.DataFrame, x: str, ys: list[str], by: str) -> pd.DataFrame:
    """Log-log least-squares slopes of each ``y`` against ``x`` within each group of ``by``.

    A slope of 1 means cost proportional to the data, 0 means independent of it.

    Introduced in notebooks/10_scaling.ipynb.
    """
    rows = []
    for group, part in table.groupby(by, sort=False):
        row = {by: group, "sizes": len(part)}
        for y in ys:
            ok = (part[x] > 0) & (part[y] > 0)
            row[f"slope of {y}"] = (float(np.polyfit(np.log(part.loc[ok, x]), np.log(part.loc[ok, y]), 1)[0])
                                    if ok.sum() >= 2 else float("nan"))
        rows.append(row)
    return pd.DataFrame(rows)


BENCHMARK_RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "streaming.json"
POINT_COLUMNS = ["interactions", "network", "training rows", "epoch s", "examples/s", "peak GB", "materialised GB",
                 "source"]


def benchmark_points(path: str | Path = BENCHMARK_RESULTS) -> pd.DataFrame:
    """The streaming benchmark's multi-task points (1M to 50M interactions), if it has run.

    Their epoch time is the training rows over the measured examples/s (the benchmark trains
    epochs of 200 batches); ``source`` names the benchmark and its date. Empty (same columns)
    when the results file does not exist.

    Introduced in notebooks/10_scaling.ipynb.
    """
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=POINT_COLUMNS)
    result = json.loads(path.read_text())
    source = f"streaming benchmark, {result['machine']['date']}"
    return pd.DataFrame([{"interactions": r["interactions"], "network": MULTI,
                          "training rows": r["training rows"], "epoch s": r["training rows"] / r["examples/s"],
                          "examples/s": r["examples/s"], "peak GB": r["train peak GB"],
                          "materialised GB": r.get("materialised GB"), "source": source}
                         for r in result["rows"]], columns=POINT_COLUMNS)


def feature_bytes(prepared, text_dim: int = 0) -> int:
    """Bytes the features of a prepared split's three parts hold in memory.

    Materialised features count every array; features looked up by id
    (``prepare_tasks(..., lookup=True)``) count the two row numbers per example and, once, the
    tables they index. ``text_dim`` adds that many float32 values on each side (a text vector per
    user and per item), per example when materialised and per table row when looked up.

    Introduced in notebooks/10_scaling.ipynb.
    """
    from mtrec_study.features import FeatureView

    total, tables = 0, None
    for part in (prepared.train, prepared.valid, prepared.test):
        if isinstance(part.features, FeatureView):
            total += part.features.user_rows.nbytes + part.features.item_rows.nbytes
            tables = part.features.tables
        else:
            total += sum(v.nbytes for v in part.features.values()) + 2 * 4 * text_dim * len(part)
    if tables is not None:
        total += sum(a.nbytes for a in (*tables.user.values(), *tables.item.values()))
        total += 4 * text_dim * (len(tables.user_ids) + len(tables.item_ids))
    return total


LOOKUP_RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "lookup.json"


def lookup_benchmark(path: str | Path = LOOKUP_RESULTS) -> pd.DataFrame:
    """``benchmarks/bench_lookup.py``'s means per way of holding features (materialised, lookup),
    with its date; empty if it has not run.

    Introduced in notebooks/10_scaling.ipynb.
    """
    path = Path(path)
    if not path.exists():
        return pd.DataFrame()
    result = json.loads(path.read_text())
    return pd.DataFrame(result["means"]).assign(measured=result["machine"]["date"])


def fixed_catalogue_points(path: str | Path = BENCHMARK_RESULTS) -> pd.DataFrame:
    """The streaming benchmark's runs where only the rows change: one world's users and items,
    one full epoch over more and more of its training shards (empty if it has not run).

    Introduced in notebooks/10_scaling.ipynb.
    """
    path = Path(path)
    rows = json.loads(path.read_text()).get("fixed_catalogue", []) if path.exists() else []
    return pd.DataFrame(rows, columns=["training shards", "training rows", "users", "items", "epoch s", "examples/s",
                                       "train peak GB", "materialised GB"])


def slow_verdict(relative: pd.DataFrame, slopes: pd.DataFrame, multi: str = MULTI) -> str:
    """The article's "training takes long", judged at the largest size by one stated rule.

    Slower per network when one multi-task epoch costs more than the mean single-task epoch;
    slower per task served when it costs more than the three single-task epochs together; its
    cost grows faster with the data when its epoch-time slope exceeds the single-task networks'
    mean slope by more than 0.1.

    Introduced in notebooks/10_scaling.ipynb.
    """
    last = relative.iloc[-1]
    one, three = float(last["multi-task / one single-task"]), float(last["multi-task / all three"])
    by = slopes.set_index("network")["slope of epoch s"]
    own, others = float(by[multi]), float(by.drop(multi).mean())
    return (f"per network, {'slower' if one > 1 else 'not slower'} than a single-task network ({one:.2f}×); "
            f"per task served, {'slower' if three > 1 else 'cheaper'} than the three single-task networks "
            f"({three:.2f}×); its cost grows {'faster' if own > others + 0.1 else 'no faster'} with the data "
            f"(slope {own:.2f} against {others:.2f})")


if __name__ == "__main__":
    print(json.dumps(_train_here(json.loads(sys.argv[1]))))
