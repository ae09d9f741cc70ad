"""RecBole 1.2.1 beside our code on ml-100k: the same split, the same metrics, and where they differ.

``python -m benchmarks.bench_recbole`` (or ``make bench-recbole``):

1. makes ``.venv-recbole`` from ``benchmarks/recbole/requirements.txt`` if it is missing (RecBole
   needs NumPy < 2 and torch, so it never shares the study's environment, and ``make test`` never
   runs it);
2. writes our ml-100k as RecBole's atomic file, the rows in the order our loader reads them (the
   order of ``u.data``, which RecBole's own copy keeps: its Pop and BPR numbers come out as on that copy);
3. runs RecBole's Pop and BPR with RecBole's defaults (per-user random 80/10/10 split, full
   ranking, BPR stopped on validation MRR@10 with patience 10, at most 300 epochs) through
   ``benchmarks/recbole/run.py``, which also exports the split it made;
4. scores our popularity and our BPR (the random split's setting in ``params/tuned.yaml``) with
   our own metrics (``mtrec_study.evaluation.full_catalogue_ranking``) on RecBole's split, and on
   our own random 80/10/10 split with the same seed as 09.

The rows on RecBole's split compare implementations with the data held fixed; the rows on our
split show what the split itself changes. RecBole's Pop is also re-scored by our metrics from the
counts it holds (:func:`with_recbole_counts`), which locates the gap between the two popularity
numbers. Each of our numbers carries a user-bootstrap 95% CI,
and the checks ask whether RecBole's number lies inside it. Results go to
``benchmarks/results/recbole.json`` and the ``recbole`` block of ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import check, tuned_choices, update_readme, write_result
from mtrec_study import evaluation as E
from mtrec_study import prepare
from mtrec_study.config import PROJECT_ROOT as ROOT
from mtrec_study.datasets import load_dataset
from mtrec_study.models.classic import Popularity
from mtrec_study.study import published

VENV = ROOT / ".venv-recbole"
HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "recbole" / "requirements.txt"
RUNNER = HERE / "recbole" / "run.py"
METRICS = ("ndcg@10", "hr@10", "recall@10", "precision@10")
RECBOLE_NAMES = {"ndcg@10": "ndcg@10", "hr@10": "hit@10", "recall@10": "recall@10", "precision@10": "precision@10"}


def recbole_python() -> Path:
    """``.venv-recbole``'s Python, making the environment first when it is missing."""
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"making {VENV} from {REQUIREMENTS} (torch and RecBole: a few minutes)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)], check=True)
    return python


def write_atomic(data, folder: Path) -> Path:
    """``folder/ml-100k/ml-100k.inter``: the ratings in the order loaded, RecBole's atomic format."""
    path = folder / "ml-100k" / "ml-100k.inter"
    path.parent.mkdir(parents=True)
    inter = data.interactions
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    lines += [f"{u}\t{i}\t{r:g}\t{t}" for u, i, r, t in zip(inter["user_id"], inter["item_id"], inter["rating"],
                                                          inter["timestamp"], strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_recbole(data, models: list[str], out: Path) -> dict[str, dict]:
    """RecBole's results per model (``run.py``'s JSON), and its split in ``out/split.csv``."""
    python = recbole_python()
    with tempfile.TemporaryDirectory() as tmp:
        write_atomic(data, Path(tmp))
        env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}  # RecBole reloads its own checkpoint
        subprocess.run([str(python), str(RUNNER), tmp, str(out), *models], check=True, env=env, cwd=tmp)
    return {m: json.loads((out / f"{m}.json").read_text()) for m in models}


def recbole_indices(split_csv: Path, interactions: pd.DataFrame) -> dict[str, np.ndarray]:
    """RecBole's parts as row positions of our cleaned interactions (matched on user and item).

    Raises:
        ValueError: If a pair of RecBole's split is not one of our rows, or a row is in no part.
    """
    split = pd.read_csv(split_csv)
    ours = pd.Series(np.arange(len(interactions)),
                     index=pd.MultiIndex.from_arrays([interactions["user_id"].to_numpy(),
                                                      interactions["item_id"].to_numpy()]))
    pos = ours.reindex(pd.MultiIndex.from_arrays([split["user_id"].to_numpy(), split["item_id"].to_numpy()]))
    if pos.isna().any() or len(split) != len(interactions):
        raise ValueError(f"{split_csv}: {int(pos.isna().sum())} pairs are not among our {len(interactions):,} "
                         f"interactions, or the split holds {len(split):,} rows")
    pos = pos.to_numpy("int64")
    return {part: np.sort(pos[(split["part"] == part).to_numpy()]) for part in ("train", "valid", "test")}


def ours(prepared, bpr_setting: dict, seed: int, n_boot: int) -> list[dict]:
    """Our popularity and BPR on one split: each metric's mean over test users with its CI."""
    rows = []
    for name in ("popularity", "bpr"):
        t0 = time.perf_counter()
        fitted = (published.fit_popularity(prepared) if name == "popularity"
                  else published.fit_bpr(prepared, bpr_setting, seed=seed))
        per_user = E.full_catalogue_ranking(prepared, fitted.score_catalogue, ks=(10,))[0]
        row = {"model": name, "seconds": round(time.perf_counter() - t0, 1), "users": len(per_user)}
        for metric in METRICS:
            ci = published.mean_ci(per_user[metric], n_boot=n_boot, seed=seed)
            row[metric] = ci["estimate"]
            row[f"{metric} ci"] = [ci["ci_low"], ci["ci_high"]]
        rows.append(row)
    return rows


def with_recbole_counts(prepared, counts_csv: Path) -> list[dict]:
    """Our metrics on a popularity list that uses RecBole Pop's own counts, under each tie rule.

    RecBole 1.2.1's Pop adds 1 to ``item_cnt[item]`` with an indexed assignment, which counts an
    item once per training batch however often it occurs in it, and its training batches hold the
    sampled negatives too. Its counts therefore saturate at the number of batches, and the most
    popular items tie. Scored with our metrics, those counts give an interval over the tie rules
    (pessimistic to optimistic) that must hold RecBole's own number if the evaluation agrees.
    """
    counts = pd.read_csv(counts_csv)
    pop = Popularity().fit(pd.DataFrame({"item_id": np.repeat(counts["item_id"].to_numpy(), counts["count"].to_numpy())}),
                           prepared.data.items.index.to_numpy())
    rows = []
    for ties in ("pessimistic", "stable", "optimistic"):
        per_user = E.full_catalogue_ranking(prepared, pop.score_catalogue, ks=(10,), ties=ties)[0]
        rows.append({"model": f"popularity, RecBole Pop's counts, ties {ties}", "users": len(per_user),
                     **{metric: float(per_user[metric].mean()) for metric in METRICS}})
    return rows


def run(seed: int = 42, n_boot: int = 1000, models=("Pop", "BPR")) -> tuple[list[dict], dict]:
    data = load_dataset("ml-100k", seed=seed, log=None)
    inter = prepare.clean(data)[0].interactions
    if len(inter) != len(data.interactions):  # RecBole gets the raw rows in file order; we score the cleaned ones
        raise ValueError(f"cleaning dropped {len(data.interactions) - len(inter):,} of {len(data.interactions):,} "
                         f"ml-100k rows; RecBole's split could not be matched back row for row")
    bpr_setting = tuned_choices(data, published.preset_parameters("full"), ["bpr"])["bpr"]["random"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        theirs = run_recbole(data, list(models), out)
        idx = recbole_indices(out / "split.csv", inter)
        on_theirs = prepare.prepare_tasks(data, indices=idx, seed=seed, neg_ratio=0.0)
        counted = with_recbole_counts(on_theirs, out / "Pop_counts.csv") if "Pop" in theirs else []
    sizes = {part: len(v) for part, v in idx.items()}
    for m, res in theirs.items():
        rows.append({"split": "RecBole's (seed 2020)", "code": "RecBole 1.2.1", "model": m,
                     **{metric: res["test"][RECBOLE_NAMES[metric]] for metric in METRICS},
                     "epochs": res["epochs_trained"], "seconds": round(res["seconds"], 1), **sizes})
    rows += [{"split": "RecBole's (seed 2020)", "code": "mtrec_study", **r, **sizes} for r in counted]
    for split_name, prepared in (("RecBole's (seed 2020)", on_theirs),
                                 (f"ours (random, seed {seed})", prepare.prepare_tasks(data, "random", seed=seed,
                                                                                        neg_ratio=0.0))):
        own_sizes = {part: int(len(prepared.interactions(part))) for part in ("train", "valid", "test")}
        for r in ours(prepared, bpr_setting, seed, n_boot):
            rows.append({"split": split_name, "code": "mtrec_study", **r, "epochs": bpr_setting["epochs"]
                         if r["model"] == "bpr" else None, **own_sizes})
    return rows, {"bpr_setting": bpr_setting}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args(argv)
    rows, extra = run(args.seed, args.n_boot)
    table = pd.DataFrame(rows)

    def pick(split, code, model):
        return table[(table["split"].str.startswith(split)) & (table["code"] == code) & (table["model"] == model)].iloc[0]

    checks = {}
    for theirs, mine in (("Pop", "popularity"), ("BPR", "bpr")):
        t, o = pick("RecBole", "RecBole 1.2.1", theirs), pick("RecBole", "mtrec_study", mine)
        low, high = o["ndcg@10 ci"]
        checks[f"RecBole's {theirs} NDCG@10 ({t['ndcg@10']:.4f}) inside the 95% CI of ours on its split "
               f"[{low:.4f}, {high:.4f}]"] = check(o["ndcg@10"] - t["ndcg@10"], low <= t["ndcg@10"] <= high, "{:+.4f}")
    bounds = table[table["model"].str.startswith("popularity, RecBole Pop's counts")].set_index("model")["ndcg@10"]
    if len(bounds):
        pop = pick("RecBole", "RecBole 1.2.1", "Pop")["ndcg@10"]
        low, high = bounds.filter(like="pessimistic").iloc[0], bounds.filter(like="optimistic").iloc[0]
        checks[f"RecBole's Pop NDCG@10 ({pop:.4f}) inside our metrics on its own counts, pessimistic to optimistic "
               f"ties [{low:.4f}, {high:.4f}]: the gap to our popularity is its counting"] = check(
            pop, low <= pop <= high, "{:.4f}")
    write_result("recbole", rows, checks, extra=extra,
                 notes="RecBole 1.2.1 with its defaults, and our code, on ml-100k; the same split for both, then ours")
    shown = table.drop(columns=[c for c in table.columns if c.endswith(" ci")])
    update_readme("recbole", shown, checks)
    print(shown.to_string(), "\n", json.dumps(checks, indent=1))


if __name__ == "__main__":
    main()
