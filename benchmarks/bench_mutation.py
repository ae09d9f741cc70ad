"""Mutation testing of the core modules with mutmut: do the unit tests fail when the code is wrong?

``make mutation`` (or ``python -m benchmarks.bench_mutation [--only losses ...]``) copies the
package and the relevant unit tests into a temporary folder, runs ``mutmut run`` there once per
core module (only that module mutated, only its own unit-test files run), and records per module
how many mutants the tests killed. Results go to ``benchmarks/results/mutation.json`` and the
``mutation`` block of ``benchmarks/README.md``; every surviving mutant is listed with its diff and,
where it cannot change behaviour, the reason (:data:`EQUIVALENT`).

It is deliberately not part of ``make test``: it runs the unit tests once per mutant. mutmut runs
niced, one mutant at a time (``--max-children``, default 1), so it shares 2 cores politely.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import RESULTS, check, update_readme, write_result
from mtrec_study.config import PROJECT_ROOT

TARGET = 0.85
PURE_MATH = ["tests/unit/test_weighting_and_losses.py", "tests/unit/test_mutation_gaps.py"]
# label -> (source file, mutant-name globs (None: every function), unit-test files that cover it)
MODULES = {
    "losses": ("mtrec_study/training/losses.py", None, PURE_MATH),
    "weighting": ("mtrec_study/training/weighting.py", None, [*PURE_MATH, "tests/unit/test_weighting_classes.py"]),
    "metrics": ("mtrec_study/evaluation/metrics.py", None,
                ["tests/unit/test_metrics.py", "tests/unit/test_metrics_details.py", "tests/unit/test_metrics_mutants.py"]),
    "prepare": ("mtrec_study/prepare.py", None,
                ["tests/unit/test_prepare.py", "tests/unit/test_prepare_details.py", "tests/unit/test_mutation_gaps.py"]),
    "evaluation (sampler)": ("mtrec_study/evaluation/ranking.py",
                             ["mtrec_study.evaluation.ranking.x_sampled_candidates__mutmut_*",
                              "mtrec_study.evaluation.ranking.x_sampled_ranking__mutmut_*"],
                             ["tests/unit/test_mutation_gaps.py"]),
}
# Surviving mutants that cannot change what the function computes, keyed by (function, the
# mutated line as mutmut writes it). Each was read and argued by hand.
EQUIVALENT = {
    ("task_loss", 'y = ops.reshape(ops.cast(y, None), (-1,))'):
        "keras casts to dtype None as to floatx(), which is float32: the same cast",
    ("task_loss", 'pred = ops.reshape(ops.cast(pred, None), (-1,))'):
        "keras casts to dtype None as to floatx(), which is float32: the same cast",
    ("task_loss", 'mask = ops.reshape(ops.cast(mask, None), (-1,))'):
        "keras casts to dtype None as to floatx(), which is float32: the same cast",
    ("masked_mean", 'mask = ops.cast(mask, None)'):
        "keras casts to dtype None as to floatx() (float32); every caller passes float32 values",
}
ZIP_WHY = "the error message's zip: the shape check above guarantees one λ per task, so strict never fires"
for _msg in ('raise ValueError(f"λ must be non-negative, got {dict(zip(tasks, lam.tolist(), %s))}")',
             'raise ValueError(f"all λ are zero: nothing would be trained ({dict(zip(tasks, lam.tolist(), %s))})")'):
    for _strict in ("strict=None", "strict=False", ""):
        EQUIVALENT[("check_lambdas", _msg % _strict)] = ZIP_WHY
EQUIVALENT.update({
    ("dwa_weights", 'hist = np.asarray(history, dtype=None)'):
        "per-epoch losses are floats: numpy infers float64, the same dtype",
    ("dwa_weights", 'hist = np.asarray(history, )'):
        "per-epoch losses are floats: numpy infers float64, the same dtype",
    ("dwa_weights", 'k = hist.shape[1] if hist.ndim == 2 else 1'):
        "differs only for a history that is not a list of per-epoch loss lists (not a valid input)",
    ("dwa_weights", 'return np.ones(k and len(history[0]) if len(history) else 0)'):
        "for a valid history k equals len(history[0]), so `k or n` and `k and n` are the same number",
    ("pcgrad", 'coef = ops.where(dot <= 0, dot / ops.maximum(ops.sum(gj * gj), 1e-20), 0.0)'):
        "at dot = 0 the projection coefficient is 0 either way",
    ("gradnorm_step", 'k = ops.cast(ops.shape(weights)[0], None)'):
        "keras casts to dtype None as to floatx(), which is float32: the same cast",
    ("setup", 'lam = self.lambdas if self.lambdas is not None else np.ones(len(tasks), None)'):
        "the ones go through check_lambdas and .astype('float32') on the next line",
    ("setup", 'lam = self.lambdas if self.lambdas is not None else np.ones(len(tasks), )'):
        "the ones go through check_lambdas and .astype('float32') on the next line",
    ("setup", 'super().setup(None, tasks, regression)'):
        "Weighting.setup never uses the trainer (only the subclasses add weights to it)",
    ("setup", 'self.log_vars = trainer.add_weight(shape=(len(tasks),), initializer="zeros", name="log_vars", )'):
        "add_weight's trainable defaults to True",
    ("on_epoch_end", 'self.history.append(np.asarray(task_losses, dtype=None))'):
        "epoch losses are floats: numpy infers float64, the same dtype",
    ("on_epoch_end", 'self.history.append(np.asarray(task_losses, ))'):
        "epoch losses are floats: numpy infers float64, the same dtype",
})
NONE_TRAINABLE = "keras's add_weight stores trainable=None as False (checked: not in trainable_weights)"
EQUIVALENT.update({
    ("on_epoch_end", 'self.w.assign(dwa_weights(self.history, self.temperature).astype(None))'):
        "assigning float64 to the float32 variable casts it to float32: the same values",
    ("setup", 'self.w = trainer.add_weight(shape=(len(tasks),), initializer="ones", name="dwa_weights", trainable=None)'):
        NONE_TRAINABLE,
    ("setup", 'self.w = trainer.add_weight(shape=(len(tasks),), initializer="ones", name="gradnorm_weights", trainable=None)'):
        NONE_TRAINABLE,
    ("setup", 'self.initial = trainer.add_weight(shape=(len(tasks),), initializer="zeros", name="gradnorm_l0", trainable=None)'):
        NONE_TRAINABLE,
})
INT64_WHY = "the id columns and the item index are already int64: to_numpy() keeps the dtype"
EQUIVALENT.update({
    ("sampled_candidates", 'positives = {int(u): g.to_numpy(None) for u, g in inter.groupby("user_id")["item_id"]}'): INT64_WHY,
    ("sampled_candidates", 'users = test["user_id"].to_numpy(None)'): INT64_WHY,
    ("sampled_candidates", 'negs = sample_eval_negatives(users, positives, prepared.data.items.index.to_numpy(None), n_negatives,'):
        INT64_WHY,
    ("sampled_candidates", 'return users, np.concatenate([test["item_id"].to_numpy(None)[:, None], negs], axis=1)'): INT64_WHY,
    ("sampled_ranking", 'scores = np.asarray(scorer(np.repeat(users, cand.shape[1]), cand.ravel()), dtype=None).reshape(cand.shape)'):
        "ranking_metrics turns the scores into float64 itself (check_scores)",
    ("sampled_ranking", 'scores = np.asarray(scorer(np.repeat(users, cand.shape[1]), cand.ravel()), ).reshape(cand.shape)'):
        "ranking_metrics turns the scores into float64 itself (check_scores)",
    ("sampled_ranking", 'relevant = np.zeros(cand.shape, None)'):
        "ranking_metrics reads relevance as bool; 0.0/1.0 floats give the same mask",
    ("sampled_ranking", 'relevant = np.zeros(cand.shape, )'):
        "ranking_metrics reads relevance as bool; 0.0/1.0 floats give the same mask",
})
SORT_WHY = "pandas ignores kind= when sorting by several columns (a stable lexicographic sort)"
FRAC_WHY = "a fraction of 1 or more already fails valid_frac + test_frac < 1 (the other one is >= 0)"
PROB0_WHY = "rng.random() equals the threshold exactly with probability 0"
FALSY_WHY = "None is falsy: the same as False"
for _kind in ("kind=None", "", 'kind="XXstableXX"', 'kind="STABLE"'):
    EQUIVALENT[("_user_order", f'order = inter.sort_values(["user_id", "timestamp", "item_id"], {_kind})')] = SORT_WHY
for _cond in ("0 <= valid_frac <= 1 and 0 < test_frac < 1", "0 <= valid_frac < 2 and 0 < test_frac < 1",
              "0 <= valid_frac < 1 and 0 < test_frac <= 1", "0 <= valid_frac < 1 and 0 < test_frac < 2"):
    EQUIVALENT[("_check_fracs", f"if not ({_cond} and valid_frac + test_frac < 1):")] = FRAC_WHY
for _au in ("assume_unique=None", "", "assume_unique=False"):
    EQUIVALENT[("sample_eval_negatives", f"pool = np.setdiff1d(all_items, user_positives.get(int(u), ()), {_au})")] = \
        "the catalogue index is sorted and unique (every loader builds it so): setdiff1d gives the same sorted pool"
for _ii in ("ignore_index=None", "", "ignore_index=False"):
    EQUIVALENT[("make_taskset", f"pairs = pd.concat([pos, neg], {_ii}).iloc[rng.permutation(len(pos) + n_neg)]"
                                ".reset_index(drop=True)")] = \
        "the concatenated index is dropped by reset_index(drop=True) after the permutation"
EQUIVALENT.update({
    ("kfold_split", "is_valid = rng.random(train_val.size) <= 0.1"): PROB0_WHY,
    ("cold_start_split", "valid = ~test & (rng.random(len(inter)) <= valid_frac)"): PROB0_WHY,
    ("cold_start_split", "cold = rng.choice(ids, size=max(1, int(round(frac * ids.size))), replace=None)"): FALSY_WHY,
    ("sample_eval_negatives", "out[r] = rng.choice(pool, size=n, replace=None)"): FALSY_WHY,
    ("sample_negatives", 'users = np.asarray(users, dtype=None)'): "callers pass int64 ids (drawn from the id column)",
    ("sample_negatives", 'users = np.asarray(users, )'): "callers pass int64 ids (drawn from the id column)",
    ("prepare_tasks", "n_items_key = int(cleaned.items.index.max()) + 2"):
        "any base above the largest item id keeps the keys unique: the same membership tests",
    ("prepare_tasks", 'candidates = cleaned.items.index.to_numpy(None)'): INT64_WHY,
    ("task_summary", '"mean_label": float(ts.labels[task][m].mean()) if (m.any()) or True else float("nan")})'):
        "the mean of no rows is NaN as well (numpy warns)",
    ("task_summary", '"mean_label": float(ts.labels[task][m].mean()) if m.any() else float("NAN")})'):
        'float("NAN") is NaN',
})
BAR_WHY = "cosmetic: only the progress bar's label or visibility changes, never a returned value"
_BAR = 'for start in tqdm(starts, desc="ranking", unit="block", disable=not show_progress(progress)):'
for _old, _new in (('desc="ranking"', "desc=None"), ('unit="block"', "unit=None"),
                   ("disable=not show_progress(progress)", "disable=None"), ('desc="ranking", ', ""),
                   ('unit="block", ', ""), (", disable=not show_progress(progress)", ", "),
                   ('"ranking"', '"XXrankingXX"'), ('"ranking"', '"RANKING"'), ('"block"', '"XXblockXX"'),
                   ('"block"', '"BLOCK"'), ("not show_progress(progress)", "show_progress(progress)"),
                   ("show_progress(progress)", "show_progress(None)")):
    EQUIVALENT[("rank_in_blocks", _BAR.replace(_old, _new))] = BAR_WHY
EQUIVALENT.update({
    ("rank_in_blocks", 'list_k: int | None = None, progress: bool = True) -> tuple[pd.DataFrame, np.ndarray]:'): BAR_WHY,
    ("rank_in_blocks", 'ks: Iterable[int] = DEFAULT_KS, ties: str = "pessimistic", block_size: int = 1025,'):
        "the results do not depend on the block size (test_rank_in_blocks_equals_one_big_matrix)",
    ("rank_in_blocks", 's = np.asarray(score_block(u), dtype=None)'):
        "np.where with -inf and ranking_metrics make the scores float64 anyway",
    ("rank_in_blocks", 's = np.asarray(score_block(u), )'):
        "np.where with -inf and ranking_metrics make the scores float64 anyway",
    ("_order_keys", 'tie = relevant.astype(None)  # non-relevant (0) first'): "0.0/1.0 sort like 0/1 in lexsort",
    ("_order_keys", 'tie = (~relevant).astype(None)'): "0.0/1.0 sort like 0/1 in lexsort",
    ("_order_keys", 'tie = np.zeros(relevant.shape, None)'): "all-zero keys sort alike whatever their dtype",
    ("rank_auc", 'return float("NAN")'): 'float("NAN") is NaN',
    ("regression_metrics", 'y = np.asarray(y_true, dtype=None)'): "scikit-learn's errors give the same numbers for int labels",
    ("regression_metrics", 'y = np.asarray(y_true, )'): "scikit-learn's errors give the same numbers for int labels",
})
# metrics.py, second pass: the survivors left after tests/unit/test_metrics_mutants.py.
NAN_WHY = 'float("NAN") is NaN'
INNER_TASK_WHY = "binary_metrics has already checked y and p under its own task: the inner check never fires"
FAST_PATH_WHY = ("only top_k's fast path is lost: a wrong partition gives n_ge != kk, and the exact fallback "
                 "loop ranks that row")
AXIS_WHY = "the default axis is -1, which is axis 1 for these 2-D arrays"
GROUP_SORT_WHY = ("the per-user Series share one index whatever its order; sorting the users changes only the "
                  "order of the final sum (last-bit rounding)")
for _fn in ("roc_auc", "gauc", "gini_index", "novelty", "expected_calibration_error"):
    EQUIVALENT[(_fn, 'return float("NAN")')] = NAN_WHY
for _line in ('"auc": roc_auc(y, p, None),', '"auc": roc_auc(y, p, ),',
              '"ece": expected_calibration_error(y, p, n_bins, None),', '"ece": expected_calibration_error(y, p, n_bins, ),',
              'out["gauc"] = gauc(users, y, p, None)', 'out["gauc"] = gauc(users, y, p, )'):
    EQUIVALENT[("binary_metrics", _line)] = INNER_TASK_WHY
for _sort in ("sort=None", "", "sort=True"):
    EQUIVALENT[("gauc", f'rank = frame.groupby("u", {_sort})["s"].rank(method="average")')] = \
        "groupby().rank() is aligned to the original rows whatever the group order"
    EQUIVALENT[("gauc", f'by_user = frame.assign(rank_pos=rank * frame["y"]).groupby("u", {_sort})')] = GROUP_SORT_WHY
for _line in ('part = np.argpartition(+scores, kk - 1, axis=1)[:, :kk]', 'part = np.argpartition(-scores, kk - 2, axis=1)[:, :kk]',
              'n_ge = (scores > kth[:, None]).sum(axis=1)'):
    EQUIVALENT[("top_k", _line)] = FAST_PATH_WHY
for _line in ('part = np.argpartition(-scores, kk - 1, )[:, :kk]', 'out[simple, :kk] = np.take_along_axis(p, order, )',
              'order = np.lexsort(_order_keys(scores[r, p], rel[r, p], p, ties), )'):
    EQUIVALENT[("top_k", _line)] = AXIS_WHY
EQUIVALENT.update({
    ("intra_list_diversity", 'return float(np.mean(ok)) if ok.size else float("NAN")'): NAN_WHY,
    ("_binary_labels", 'return y.astype(None)'):
        "astype(None) is float64: every caller uses the labels in arithmetic or scikit-learn, where 0.0/1.0 act as 0/1",
    ("_order_keys", 'tie = np.zeros(relevant.shape, )'): "all-zero keys sort alike whatever their dtype",
    ("binary_metrics", 'pred = (p >= threshold).astype(None)'):
        "astype(None) is float64: scikit-learn scores 0.0/1.0 predictions exactly like 0/1",
    ("choose_threshold", 'f1 = np.divide(3 * precision * recall, precision + recall, out=np.zeros_like(precision),'):
        "3PR/(P+R) is 1.5 x F1: the argmax, hence the threshold, is the same",
    ("gini_index", 'counts = np.sort(np.bincount(_valid_items(lists), minlength=n_items)).astype(None)'):
        "astype(None) is float64: the same cast",
    ("novelty", 'p = (np.asarray(item_user_counts, dtype=None)[items] + 1.0) / (n_users + 1.0)'):
        "adding 1.0 makes integer counts float64 anyway (exactly, below 2**53)",
    ("novelty", 'p = (np.asarray(item_user_counts, )[items] + 1.0) / (n_users + 1.0)'):
        "adding 1.0 makes integer counts float64 anyway (exactly, below 2**53)",
    ("rank_in_blocks", 'lists.append(top_k(s, list_k, ))  # relevance-blind: what the user would see'):
        'top_k\'s default tie rule is "stable"',
    ("ranking_metrics", 'out[f"hr@{k}"] = (n_hit > 0).astype(None)'): "astype(None) is float64: the same cast",
    ("ranking_metrics", 'hits = np.zeros(lists.shape, None)'):
        "0.0/1.0 hits give the same any, argmax and (exact) sums as booleans",
    ("ranking_metrics", 'hits = np.zeros(lists.shape, )'):
        "0.0/1.0 hits give the same any, argmax and (exact) sums as booleans",
    ("ranking_metrics", 'discount = 2.0 / np.log2(pos + 1)'):
        "the discount only feeds NDCG's numerator and its ideal alike: doubling both (exact) keeps the ratio",
    ("ranking_metrics", 'ideal = np.concatenate([[1.0], np.cumsum(discount)])'):
        "ideal[0] is never read: rows without a relevant item are dropped, so min(|R|, K) >= 1",
    ("reliability_curve", 'with np.errstate(invalid="ignore", divide=None):'):
        "an empty bin divides 0 by 0, which numpy reports as 'invalid', never 'divide'",
    ("reliability_curve", 'with np.errstate(invalid="ignore", ):'):
        "an empty bin divides 0 by 0, which numpy reports as 'invalid', never 'divide'",
    ("top_k", 'out = np.full((n, k), -1, dtype=None)'): "np.full infers int64 from the fill value -1",
    ("top_k", 'out = np.full((n, k), -1, )'): "np.full infers int64 from the fill value -1",
    ("top_k", 'order = np.lexsort(_order_keys(scores[r, p], rel[r, p], p, ties), axis=+1)'):
        "axis 1 is the last axis of these 2-D keys: the same as axis=-1",
})
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
          36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout", None: "not checked"}


def _mutmut() -> str:
    exe = Path(sys.executable).with_name("mutmut")
    if not exe.exists():
        raise SystemExit("mutmut is not installed: pip install -e '.[mutation]' (make mutation does it)")
    return str(exe)


def _workdir(source: str, tests: list[str]) -> Path:
    """A private copy holding the package, the conftest and ``tests``, with a mutmut config."""
    work = Path(tempfile.mkdtemp(prefix="mtrec-mutation-"))
    shutil.copytree(PROJECT_ROOT / "mtrec_study", work / "mtrec_study",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (work / "tests" / "unit").mkdir(parents=True)
    for f in ("tests/__init__.py", "tests/conftest.py", "tests/unit/__init__.py", *tests):
        shutil.copy(PROJECT_ROOT / f, work / f)
    config = f"""
[tool.mutmut]
source_paths = ["mtrec_study"]
only_mutate = [{json.dumps(source)}]
pytest_add_cli_args_test_selection = {json.dumps(tests)}
pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x"]
use_git_change_detection = false
"""
    base = (PROJECT_ROOT / "pyproject.toml").read_text()
    base = re.sub(r"\n\[tool\.mutmut\]\n(?:[^\[].*\n|\n)*", "\n", base)  # the run's own section replaces it
    (work / "pyproject.toml").write_text(base + config)
    return work


def _show(work: Path, name: str) -> tuple[str, str]:
    """The mutated line (as written by mutmut) and the original, from ``mutmut show``."""
    out = subprocess.run([_mutmut(), "show", name], cwd=work, capture_output=True, text=True).stdout
    minus = [ln[1:].strip() for ln in out.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    plus = [ln[1:].strip() for ln in out.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    return " / ".join(plus), " / ".join(minus)


def run_module(label: str, max_children: int = 1, keep: bool = False) -> dict:
    source, globs, tests = MODULES[label]
    work = _workdir(source, tests)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0", "TF_ENABLE_ONEDNN_OPTS": "0",
           "MTREC_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.run(["nice", "-n", "19", _mutmut(), "run", "--max-children", str(max_children), *(globs or [])],
                          cwd=work, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if not (work / "mutants" / f"{source}.meta").exists():
        raise RuntimeError(f"mutmut produced no results for {label} (exit {proc.returncode}):\n{proc.stdout[-3000:]}"
                           f"\n{proc.stderr[-3000:]}")
    row = collect(label, work, seconds)
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        row["workdir"] = str(work)
    return row


def collect(label: str, work: Path, seconds: float) -> dict:
    """Read one module's finished mutmut run in ``work`` into a result row."""
    source, globs, tests = MODULES[label]
    codes = json.loads((work / "mutants" / f"{source}.meta").read_text())["exit_code_by_key"]
    if globs:
        codes = {k: v for k, v in codes.items() if any(re.fullmatch(g.replace("*", ".*"), k) for g in globs)}
    status = {k: STATUS.get(v, "suspicious") for k, v in codes.items()}
    counts = pd.Series(status, dtype=object).value_counts().to_dict()
    survivors = []
    for name, st in sorted(status.items()):
        if st in ("killed", "timeout"):
            continue
        mutated, original = _show(work, name)
        function = re.sub(r"__mutmut_\d+$", "", name.rsplit(".", 1)[-1]).removeprefix("x_").split("ǁ")[-1]
        reason = EQUIVALENT.get((function, mutated))
        survivors.append({"mutant": name, "status": st, "function": function, "original": original,
                          "mutated": mutated, "equivalent": reason is not None, "why": reason or ""})
    total = len(status)
    detected = counts.get("killed", 0) + counts.get("timeout", 0)
    equivalent = sum(s["equivalent"] for s in survivors)
    return {"module": label, "source": source, "tests": ", ".join(Path(t).name for t in tests),
            "mutants": total, "killed": counts.get("killed", 0), "timeout": counts.get("timeout", 0),
            "survived": counts.get("survived", 0), "no tests": counts.get("no tests", 0),
            "not checked": counts.get("not checked", 0), "equivalent": equivalent,
            "kill rate": detected / total if total else float("nan"),
            "kill rate (non-equivalent)": detected / (total - equivalent) if total > equivalent else float("nan"),
            "seconds": round(seconds, 1), "survivors": survivors}


def record(rows: dict) -> dict:
    """Write results/mutation.json and the README block from the rows so far."""
    ordered = [rows[m] for m in MODULES if m in rows]
    checks = {f"{r['module']}: at least {TARGET:.0%} of mutants killed":
              check(r["kill rate"], r["kill rate"] >= TARGET, "{:.1%}") for r in ordered}
    write_result("mutation", ordered, checks,
                 notes="kill rate = (killed + timed out) / mutants; 'equivalent' survivors are explained in "
                       "'survivors[].why'. Each module runs only its own unit-test files.")
    table = pd.DataFrame([{k: r[k] for k in ("module", "mutants", "killed", "timeout", "survived", "equivalent",
                                             "kill rate", "kill rate (non-equivalent)", "seconds", "tests")}
                          for r in ordered])
    for col in ("kill rate", "kill rate (non-equivalent)"):
        table[col] = table[col].map("{:.1%}".format)
    update_readme("mutation", table, checks)
    return {"rows": ordered, "checks": checks}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=list(MODULES), default=list(MODULES))
    ap.add_argument("--max-children", type=int, default=1, help="mutants tested at once (default 1)")
    ap.add_argument("--keep", action="store_true", help="keep each module's work folder (for mutmut show)")
    ap.add_argument("--collect", nargs=2, metavar=("MODULE", "WORKDIR"), default=None,
                    help="only read a finished run kept with --keep")
    ap.add_argument("--seconds", type=float, default=None, help="with --collect: that run's wall time, if known")
    args = ap.parse_args(argv)
    rows = {}
    if (RESULTS / "mutation.json").exists():  # a partial run (--only) keeps the other modules' rows
        rows = {r["module"]: r for r in json.loads((RESULTS / "mutation.json").read_text())["rows"]}
    todo = [] if args.collect else args.only
    if args.collect:
        old = args.seconds if args.seconds is not None else rows.get(args.collect[0], {}).get("seconds", float("nan"))
        rows[args.collect[0]] = {**collect(args.collect[0], Path(args.collect[1]), old), "workdir": args.collect[1]}
    for label in todo:
        print(f"== mutmut on {label}", flush=True)
        rows[label] = run_module(label, args.max_children, args.keep)
        r = rows[label]
        print(f"   {r['killed'] + r['timeout']}/{r['mutants']} killed ({r['kill rate']:.1%}) in {r['seconds']:.0f} s; "
              f"{len(r['survivors'])} left, {r['equivalent']} of them equivalent", flush=True)
        record(rows)  # after every module, so an interrupted run keeps what it finished
    out = record(rows)
    for r in out["rows"]:
        for s in r["survivors"]:
            tag = f"equivalent: {s['why']}" if s["equivalent"] else s["status"].upper()
            print(f"  [{r['module']}] {s['mutant']}: {s['original']!r} -> {s['mutated']!r} ({tag})")
    return out


if __name__ == "__main__":
    main()
