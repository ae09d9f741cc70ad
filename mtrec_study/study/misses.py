"""What was tried where a headline target is missed: 09's evidence beside each "no".

A target that is not met is an honest result only when the reader can see what was tried to meet
it. For each row of 09's results table whose "met?" is not a yes, :func:`miss_evidence` gathers two
kinds of evidence, both generated:

* **this build's search**: for the row's network, how many settings the validation search tried on
  the row's split(s), which settings it varied, and how the chosen runs trained (the epochs early
  stopping kept, and how many runs the epoch cap cut short);
* **the benchmarks beside the study**: the results files of ``benchmarks/`` that tried other
  designs for the same row (for example ``bench_retrieval --variants``: the two-tower network with
  one change at a time), each with the date it was measured. They are read, never recomputed, so
  ``python -m benchmarks.bench_retrieval ...`` reproduces them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mtrec_study.config import PROJECT_ROOT
from mtrec_study.study.tuning import chosen_records, cut_by_cap
from mtrec_study.tasks import BEHAVIOUR, INTEREST, ITEM_TASK

BENCHMARK_RESULTS = PROJECT_ROOT / "benchmarks" / "results"
# Each row of 09's table (task, protocol; "k-fold CV" for any k): the split(s) of its number, as a
# prefix of the split names, the network behind "our best multi-task", and the benchmark results
# that tried other designs for it.
ROW_SOURCES: dict[tuple[str, str], tuple[str, str, tuple[str, ...]]] = {
    (BEHAVIOUR, "k-fold CV"): ("fold-", "mtl", ("retrieval_rmse",)),
    (INTEREST, "k-fold CV"): ("fold-", "mtl", ()),
    (INTEREST, "per-user recent holdout"): ("per_user_recent", "mtl", ()),
    ("all three", "per-user recent holdout"): ("per_user_recent", "mtl", ()),
    (ITEM_TASK, "LOO + 99 sampled"): ("loo", "two_tower", ("retrieval", "retrieval_variants")),
    (ITEM_TASK, "random 80/10/10, full ranking"): ("random", "two_tower", ("retrieval", "retrieval_variants")),
}
COLUMNS = ["target", "source", "what was tried", "test", "difference to BPR", "validation ndcg@10"]


def _row_key(task: str, protocol: str) -> tuple[str, str]:
    return task, "k-fold CV" if protocol.endswith("-fold CV") else protocol


def search_evidence(tuning: pd.DataFrame, model: str, split_prefix: str, epochs: int | None = None,
                    patience: int | None = None) -> str:
    """One sentence on what the validation search tried for ``model`` on the splits ``split_prefix*``.

    It counts the settings tried per split, names the settings that varied between them and, where
    the search recorded how its chosen runs trained, gives their best epochs and how many of them
    the cap ``epochs`` cut short (:func:`mtrec_study.study.tuning.cut_by_cap`).

    Args:
        tuning: The search's table (:func:`mtrec_study.study.tuning.tuned_or_tune`).

    Used by mtrec_study.study.misses.
    """
    rows = tuning[(tuning["model"] == model) & tuning["split"].astype(str).str.startswith(split_prefix)] \
        if len(tuning) else tuning
    if not len(rows):
        return f"{model}: not searched on {split_prefix}*"
    settings = [json.loads(s) for s in rows["setting"]]
    keys = dict.fromkeys(k for s in settings for k in s)
    varied = [k for k in keys if len({json.dumps(s.get(k)) for s in settings}) > 1]
    per_split = rows.groupby("split").size()
    n = f"{per_split.max()}" if per_split.min() == per_split.max() else f"{per_split.min()}–{per_split.max()}"
    text = (f"{model}: {n} setting(s) on each of {len(per_split)} split(s)"
            + (f", varying {', '.join(varied)}" if varied else ", nothing varied (one setting)"))
    records = list(chosen_records(rows).values())
    if records:
        best = [int(r["best_epoch"]) for r in records]
        text += f"; the chosen runs kept epoch {min(best)}" + (f"–{max(best)}" if max(best) > min(best) else "")
        if epochs:
            cut = sum(cut_by_cap(r, epochs, patience) for r in records)
            text += f", {cut} of {len(records)} cut short by the cap of {epochs} epochs"
    return text


def _ci(estimate: float, low: float, high: float) -> str:
    """``+e [+l, +h]``; a bound stored rounded to -0.0 reads +0.0000 (-0.0 + 0.0 is +0.0)."""
    return f"{estimate + 0.0:+.4f} [{low + 0.0:+.4f}, {high + 0.0:+.4f}]"


def benchmark_evidence(name: str, protocol: str, metrics: list[str], results_dir: Path = BENCHMARK_RESULTS) -> list[dict]:
    """The rows of benchmark ``name`` that measured ``metrics`` under ``protocol``, as evidence rows.

    One row per model and training data (``trained on``, where the benchmark gives it): its test
    values with their intervals, its paired difference to BPR where the benchmark measured one under
    the same name, and the validation NDCG@10 a search would have seen. A model measured on several
    folds gives the mean over its folds. A difference to BPR without a model row of its name gets a
    row of its own. A missing results file gives no rows.

    Args:
        name: The results file's stem in ``benchmarks/results`` (``retrieval_variants`` ...).
        protocol: The protocol label the benchmark wrote (``"LOO + 99 sampled"``; any ``k-fold CV``
            matches the benchmark's folds).
        metrics: The metrics of the missed rows (``["hr@10", "ndcg@10"]``).

    Used by mtrec_study.study.misses.
    """
    path = Path(results_dir) / f"{name}.json"
    if not path.exists():
        return []
    doc = json.loads(path.read_text(encoding="utf-8"))
    kfold = protocol.endswith("-fold CV")
    rows = [r for r in doc["rows"]
            if (str(r.get("protocol", "")).endswith("-fold CV") if kfold else r.get("protocol") == protocol)]
    models: dict[tuple[str, str], list[dict]] = {}
    differences: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        part = r.get("trained on", "")
        if "difference" in r:
            model, _, other = r["difference"].rpartition(" − ")
            if other == "bpr" and r.get("metric") in metrics:
                differences.setdefault((model, part), []).append(
                    f"{r['metric']} {_ci(r['estimate'], r['ci_low'], r['ci_high'])}")
        elif any(m in r for m in metrics):
            models.setdefault((r["model"], part), []).append(r)
    out = []
    for (model, part), found in models.items():
        test = []
        for m in (m for m in metrics if m in found[0]):
            values = [float(r[m]) for r in found]
            ci = found[0].get(f"{m} 95% CI") if len(found) == 1 else None
            test.append(f"{m} {np.mean(values):.4f}" + (f" {ci}" if ci else "")
                        + (f" (mean of {len(found)} folds)" if len(found) > 1 else ""))
        valid = found[0].get("valid ndcg@10")
        out.append({"source": f"{name}.json", "what was tried": model + (f" (trained on {part})" if part else ""),
                    "test": "; ".join(test), "difference to BPR": "; ".join(differences.pop((model, part), [])),
                    "validation ndcg@10": f"{valid:.4f}" if isinstance(valid, float) and np.isfinite(valid) else ""})
    for (model, part), diff in differences.items():
        out.append({"source": f"{name}.json", "what was tried": model + (f" (trained on {part})" if part else ""),
                    "test": "", "difference to BPR": "; ".join(diff), "validation ndcg@10": ""})
    return out


def benchmark_sources(evidence: pd.DataFrame, results_dir: Path = BENCHMARK_RESULTS) -> dict[str, str]:
    """What each benchmark named in ``evidence``'s sources measured: its date and setting notes.

    Introduced in notebooks/09_headline_results.ipynb.
    """
    out = {}
    for source in dict.fromkeys(evidence["source"]) if len(evidence) else ():
        path = Path(results_dir) / source
        if source.endswith(".json") and path.exists():
            doc = json.loads(path.read_text(encoding="utf-8"))
            out[source] = f"benchmarks/results/{source}, measured {doc['machine']['date']}: {doc.get('notes', '')}"
    return out


def miss_evidence(results: pd.DataFrame, tuning: pd.DataFrame, epochs: int | None = None,
                  patience: int | None = None, results_dir: Path = BENCHMARK_RESULTS) -> pd.DataFrame:
    """For each target of 09's results table that is not met: what was tried, from the search and the benchmarks.

    Rows of one task and protocol (leave-one-out's HR@10 and NDCG@10) share their evidence, so it is
    listed once for all their missed metrics.

    Args:
        results: 09's results table (:func:`mtrec_study.study.published.headline_table`).
        tuning: The search's table that chose this build's settings.
        epochs, patience: The run's cap and early-stopping patience (for the runs cut by the cap).
        results_dir: Where the benchmarks' results files are.

    Returns:
        One row per piece of evidence, columns :data:`COLUMNS`: first this build's search (its test
        values and "met?"), then each benchmark row. Empty when every target is met.

    Raises:
        ValueError: For a results row this module does not know (a new target needs its sources
            in :data:`ROW_SOURCES`).

    Introduced in notebooks/09_headline_results.ipynb.
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in results.to_dict("records"):
        if str(r["met?"]).startswith("yes"):
            continue
        key = _row_key(r["task"], r["protocol"])
        if key not in ROW_SOURCES:
            raise ValueError(f"miss_evidence: no sources for the row {key}; known rows: "
                             + ", ".join(" / ".join(k) for k in ROW_SOURCES))
        groups.setdefault(key, []).append(r)
    out = []
    for key, rows in groups.items():
        prefix, model, benchmarks = ROW_SOURCES[key]
        metrics = [r["metric"] for r in rows]
        label = f"{rows[0]['task']}, {rows[0]['protocol']}: {', '.join(metrics)}"
        out.append({"target": label, "source": "this build's validation search",
                    "what was tried": search_evidence(tuning, model, prefix, epochs, patience),
                    "test": "; ".join(f"{r['metric']} {r['our best multi-task']} (met? {r['met?']})" for r in rows),
                    "difference to BPR": "", "validation ndcg@10": ""})
        for name in benchmarks:
            out += [{"target": label, **e} for e in benchmark_evidence(name, rows[0]["protocol"], metrics, results_dir)]
    return pd.DataFrame(out, columns=COLUMNS)
