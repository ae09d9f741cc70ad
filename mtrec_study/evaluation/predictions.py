"""Per-task metrics of predictions on a labelled set: segments, thresholds and paired bootstraps.

Functions take ``{task: predictions}`` aligned with a :class:`~mtrec_study.prepare.TaskSet` and
return rows of the one result format (:data:`mtrec_study.results.TIDY_COLUMNS`). Nothing here
trains or imports Keras.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mtrec_study.evaluation import metrics as M
from mtrec_study.evaluation.stats import delta_m, per_seed, user_bootstrap
from mtrec_study.prepare import PreparedData, TaskSet
from mtrec_study.results import as_tidy, tidy_rows
from mtrec_study.tasks import INTEREST, ITEM_TASK, PRIMARY_METRICS, TASK_TYPES, TASKS

_FAST_METRICS = {"auc": M.rank_auc, "rmse": lambda y, p, task: M.regression_metrics(y, p, task)["rmse"],
                 "mae": lambda y, p, task: M.regression_metrics(y, p, task)["mae"]}
# The same metrics with scikit-learn's AUC, for tables (the rank form above is for bootstraps).
_EXACT_METRICS = {**_FAST_METRICS, "auc": M.roc_auc}
Preds = dict[str, np.ndarray]  # {task: predictions aligned with a TaskSet}


def task_metrics(task: str, y_true: np.ndarray, y_pred: np.ndarray, users: np.ndarray | None = None,
                 threshold: float | None = None) -> dict[str, float]:
    """Every metric that fits ``task``'s type.

    Binary tasks get the article's four metrics at 0.5 and, if ``threshold`` (chosen on
    validation) is given, again at that threshold with the suffix ``_tuned``.

    Used by mtrec_study.evaluation.predictions.
    """
    if TASK_TYPES.get(task) == "regression":
        return M.regression_metrics(y_true, y_pred, task)
    M.check_metric("auc", task)
    out = M.binary_metrics(y_true, y_pred, 0.5, users, task)
    if threshold is not None:
        tuned = M.binary_metrics(y_true, y_pred, threshold, None, task)
        out.update({f"{k}_tuned": tuned[k] for k in ("accuracy", "precision", "recall", "f1")})
        out["threshold"] = threshold
    return out


def segment_masks(prepared: PreparedData, taskset: TaskSet) -> dict[str, np.ndarray]:
    """Rows of ``taskset`` whose user and/or item training never saw.

    ``cold_user``: the user has no training interaction; ``cold_item``: the item has none;
    ``warm``: both were seen; ``all``: every row.

    Introduced in notebooks/02_feature_extraction.ipynb.
    """
    b = prepared.builder
    seen_u = np.isin(taskset.pairs["user_id"].to_numpy(), b.user_index.index.to_numpy())
    seen_i = np.isin(taskset.pairs["item_id"].to_numpy(), b.item_index.index.to_numpy())
    return {"all": np.ones(len(taskset), bool), "warm": seen_u & seen_i, "cold_user": ~seen_u, "cold_item": ~seen_i}


def segment_metric(preds: dict[str, np.ndarray], taskset: TaskSet, rows: np.ndarray, tasks=(INTEREST, ITEM_TASK),
                   metric: str = "auc") -> pd.DataFrame:
    """One metric per task on the labelled rows inside a segment (``rows``: a boolean mask).

    The quick look of 02's text switch: each task's ``metric`` on its labelled rows of the
    segment, with how many rows that was. :func:`evaluate_predictions` gives every metric.

    Returns:
        One row per task: ``task``, ``rows`` and the metric.

    Introduced in notebooks/02_feature_extraction.ipynb.
    """
    fn = _EXACT_METRICS.get(metric)
    if fn is None:
        raise ValueError(f"metric {metric!r} has no segment form; valid: {', '.join(sorted(_EXACT_METRICS))}")
    out = []
    for task in tasks:
        m = (taskset.masks[task] > 0) & np.asarray(rows, bool)
        out.append({"task": task, "rows": int(m.sum()), metric: float(fn(taskset.labels[task][m], preds[task][m], task))})
    return pd.DataFrame(out)


def evaluate_predictions(preds: dict[str, np.ndarray], taskset: TaskSet, model: str, protocol: str,
                         fold: int = 0, thresholds: dict[str, float] | None = None,
                         segments: dict[str, np.ndarray] | None = None, tasks=TASKS,
                         min_rows: int = 20) -> pd.DataFrame:
    """Per-task metrics of ``preds`` on ``taskset``, per segment, as tidy rows.

    Each task is scored only on its labelled rows (its mask). A segment with fewer than
    ``min_rows`` labelled rows for a task is skipped rather than reported as noise.

    Args:
        preds: ``{task: scores}`` aligned with ``taskset`` rows (from :func:`mtrec_study.training.predict`).
        taskset: Labels and masks.
        model, protocol, fold: Written into the rows.
        thresholds: Per binary task, the threshold chosen on validation.
        segments: ``{name: bool rows}``; default: only ``all``.
        tasks: Tasks to score (those absent from ``preds`` are skipped).
        min_rows: Smallest segment that is scored.

    Used by mtrec_study.study.experiment.
    """
    segments = segments or {"all": np.ones(len(taskset), bool)}
    users = taskset.pairs["user_id"].to_numpy()
    rows = []
    for task in tasks:
        if task not in preds:
            continue
        M.check_scores(preds[task], task)  # NaN anywhere means a broken model, labelled row or not
        labelled = taskset.masks[task] > 0
        for seg, in_seg in segments.items():
            m = labelled & in_seg
            if m.sum() < min_rows:
                continue
            vals = task_metrics(task, taskset.labels[task][m], preds[task][m], users[m],
                                (thresholds or {}).get(task))
            rows += tidy_rows(vals, model, task, protocol, fold, seg)
    return as_tidy(rows)


def tuned_thresholds(preds: dict[str, np.ndarray], taskset: TaskSet, tasks=TASKS) -> dict[str, float]:
    """Per binary task, the F1-maximising threshold on ``taskset`` (validation, never test).

    Used by mtrec_study.study.experiment.
    """
    out = {}
    for task in tasks:
        if task in preds and TASK_TYPES.get(task) == "binary":
            m = taskset.masks[task] > 0
            out[task] = M.choose_threshold(taskset.labels[task][m], preds[task][m], task)
    return out


def primary_values(preds: dict[str, np.ndarray], taskset: TaskSet, rows: np.ndarray | None = None,
                    keys=PRIMARY_METRICS, metrics=None) -> dict[tuple[str, str], float]:
    """``{(task, metric): value}`` on ``rows`` of ``taskset`` (rows may repeat, as in a bootstrap).

    ``metrics`` maps metric names to functions; the default is the fast, rank-based AUC.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    rows = np.arange(len(taskset)) if rows is None else np.asarray(rows)
    out = {}
    for task, metric in keys:
        m = taskset.masks[task][rows] > 0
        fn = (metrics or _FAST_METRICS)[metric]
        out[(task, metric)] = float(fn(taskset.labels[task][rows][m], preds[task][rows][m], task))
    return out


def primary_rows(preds: dict[str, np.ndarray], taskset: TaskSet, model: str, protocol: str, fold: int = 0,
                 keys=PRIMARY_METRICS) -> pd.DataFrame:
    """Each task's primary metric (AUC, or RMSE for ratings) on its labelled rows, as tidy rows.

    Tasks absent from ``preds`` are skipped, so one call fits single-task models too. AUC is
    scikit-learn's (:func:`~mtrec_study.evaluation.metrics.roc_auc`); :func:`primary_values` is
    the faster, rank-based form for bootstraps.

    Introduced in notebooks/04_training.ipynb.
    """
    values = primary_values(preds, taskset, keys=[k for k in keys if k[0] in preds], metrics=_EXACT_METRICS)
    return as_tidy([row for (task, metric), value in values.items()
                    for row in tidy_rows({metric: value}, model, task, protocol, fold)])


def metric_difference_bootstrap(taskset: TaskSet, preds_a: Preds | list[Preds], preds_b: Preds | list[Preds],
                                task: str, metric: str, rows: np.ndarray | None = None, n_boot: int = 1000,
                                seed: int = 0) -> dict[str, float]:
    """User-bootstrap CI of ``metric(a) - metric(b)`` for one task on ``rows`` (a boolean mask or positions).

    Both models are scored on the same resampled rows, so the interval is for the paired
    difference. For RMSE a negative difference means model ``a`` is better.

    Args:
        taskset: The scored set.
        preds_a, preds_b: ``{task: predictions}`` of the two models (aligned with ``taskset``), or
            a list of them, one per training seed (:func:`~mtrec_study.evaluation.stats.per_seed`
            pairs seed s of ``a`` with seed s of ``b``; a single dict is shared by every seed).
        task, metric: One of the fast metrics (``auc``, ``rmse``, ``mae``).
        rows: Restrict to a segment (default: every row).
        n_boot, seed: See :func:`user_bootstrap`, which also pools the seeds.

    Returns:
        :func:`user_bootstrap`'s dictionary plus ``rows`` (labelled rows used).

    Raises:
        ValueError: For a metric without a bootstrap form, or a segment with no row labelled for
            ``task`` (naming the task and how many rows were selected).

    Introduced in notebooks/05_evaluation.ipynb.
    """
    if metric not in _FAST_METRICS:
        raise ValueError(f"metric {metric!r} has no bootstrap form; valid: {sorted(_FAST_METRICS)}")
    sel = np.arange(len(taskset)) if rows is None else np.asarray(rows)
    if sel.dtype == bool:
        sel = np.flatnonzero(sel)
    chosen = sel.size
    sel = sel[taskset.masks[task][sel] > 0]
    if sel.size == 0:
        raise ValueError(f"no row labelled for task {task!r} among the {chosen:,} rows selected"
                         f"{'' if rows is None else ' by rows'}: a difference in {metric} needs at least one")
    y = taskset.labels[task][sel]
    fn = _FAST_METRICS[metric]

    def difference(pa: Preds, pb: Preds):
        a, b = pa[task][sel], pb[task][sel]

        def stat(r: np.ndarray) -> float:
            return float(fn(y[r], a[r], task) - fn(y[r], b[r], task))

        return stat

    stats = [difference(pa, pb) for pa, pb in per_seed(preds_a, preds_b)]
    users = taskset.pairs["user_id"].to_numpy()[sel]
    return {**user_bootstrap(users, stats, n_boot, seed), "rows": int(sel.size)}


def delta_m_bootstrap(taskset: TaskSet, mtl_preds: Preds | list[Preds], single_preds: Preds | list[Preds],
                      n_boot: int = 1000, seed: int = 0, keys=PRIMARY_METRICS,
                      per_user: dict[tuple[str, str], tuple] | None = None) -> dict[str, float]:
    """User-bootstrap CI of Δm% on one test set (``single_preds[task]`` from each task's own model).

    Args:
        taskset: The test set; its users are what the bootstrap resamples.
        mtl_preds, single_preds: ``{task: predictions}`` aligned with ``taskset``, or a list of
            them, one per training seed (seed s of the multi-task model is paired with seed s of
            the single-task models, and the seeds are pooled by :func:`user_bootstrap`).
        n_boot, seed: See :func:`mtrec_study.evaluation.stats.user_bootstrap`.
        keys: The row-level ``(task, metric)`` pairs (:data:`PRIMARY_METRICS`).
        per_user: Further terms measured per user, such as a ranking metric: ``{(task, metric):
            (multi-task, single-task)}``, two Series indexed by user id (or two lists of them,
            one per seed). Each term is the mean over the users that have a value, and a user
            drawn twice by the bootstrap counts twice, so these terms move with the same
            resampled users as the row-level ones.

    Raises:
        ValueError: If a per-user Series holds a user that ``taskset`` does not, the two
            Series of a term hold different users, or the sides have different seed counts.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    users = taskset.pairs["user_id"].to_numpy()
    uniq, codes = np.unique(users, return_inverse=True)
    rows_per_user = np.bincount(codes, minlength=uniq.size)
    per_user = per_user or {}
    for key in per_user:
        if key in keys:
            raise ValueError(f"per-user term {key} is also a row-level key; name each (task, metric) once")
    term_keys = list(per_user)
    # One tuple per seed: (mtl predictions, single-task predictions, then each term's two sides).
    seeds = per_seed(mtl_preds, single_preds, *[side for key in term_keys for side in per_user[key]])

    def seed_statistic(mtl: Preds, single: Preds, *sides: pd.Series):
        terms = {}
        for j, key in enumerate(term_keys):
            a, b = sides[2 * j], sides[2 * j + 1]
            if not a.index.sort_values().equals(b.index.sort_values()):
                raise ValueError(f"per-user term {key}: the two models were scored on different users")
            stray = np.setdiff1d(a.index.to_numpy(), uniq)
            if stray.size:
                raise ValueError(f"per-user term {key}: users {stray[:5].tolist()} have no row in the test set")
            terms[key] = tuple(s.reindex(uniq).to_numpy("float64") for s in (a, b))

        def per_user_means(rows: np.ndarray) -> tuple[dict, dict]:
            times = np.bincount(codes[rows], minlength=uniq.size) / rows_per_user  # how often each user was drawn
            out = ({}, {})
            for key, (a, b) in terms.items():
                has = ~np.isnan(a) & ~np.isnan(b) & (times > 0)  # the same users on both sides: paired
                for side, values in zip(out, (a, b), strict=True):
                    side[key] = float(np.sum(times[has] * values[has]) / np.sum(times[has])) if has.any() else np.nan
            return out

        def stat(rows: np.ndarray) -> float:
            extra_m, extra_s = per_user_means(rows)
            if any(np.isnan(v) for v in (*extra_m.values(), *extra_s.values())) or 0.0 in extra_s.values():
                # No drawn user has the term, or the single-task mean is 0 (Δm% divides by it): the
                # resample is undefined, and user_bootstrap counts it as such.
                return np.nan
            return delta_m({**primary_values(mtl, taskset, rows, keys), **extra_m},
                           {**primary_values(single, taskset, rows, keys), **extra_s})

        return stat

    stats = [seed_statistic(*parts) for parts in seeds]
    return user_bootstrap(users, stats, n_boot, seed)
