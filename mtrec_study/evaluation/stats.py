"""Uncertainty over results: summaries with CIs over folds, paired tests, the user bootstrap and Δm%.

Everything works on tidy frames (:data:`mtrec_study.results.TIDY_COLUMNS`) or plain arrays.
Nothing here trains or imports Keras.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from mtrec_study.evaluation import metrics as M
from mtrec_study.tasks import PRIMARY_METRICS


def summarise(tidy: pd.DataFrame, confidence: float = 0.95,
              by=("model", "task", "metric", "protocol", "segment")) -> pd.DataFrame:
    """Mean, std and a t-based CI over folds; undefined (NaN) folds are counted, not averaged.

    Columns: ``n`` (folds), ``n_undefined``, ``mean``, ``std`` (ddof=1), ``ci_low``, ``ci_high``.
    With one defined fold, std and the CI are NaN.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    def agg(v: pd.Series) -> pd.Series:
        x = v.dropna().to_numpy(dtype="float64")
        n = x.size
        mean = x.mean() if n else np.nan
        std = x.std(ddof=1) if n > 1 else np.nan
        half = stats.t.ppf((1 + confidence) / 2, n - 1) * std / np.sqrt(n) if n > 1 else np.nan
        return pd.Series({"n": len(v), "n_undefined": len(v) - n, "mean": mean, "std": std,
                          "ci_low": mean - half, "ci_high": mean + half})

    return tidy.groupby(list(by), sort=False)["value"].apply(agg).unstack().reset_index()


def wilcoxon_floor(n: int) -> float:
    """The smallest two-sided p-value an exact Wilcoxon signed-rank test can give on ``n`` pairs.

    Under the null hypothesis each of the ``2**n`` sign patterns of the ranked differences is
    equally likely; the most extreme outcome (every difference on one side) has probability
    ``1 / 2**n`` per side, so the two-sided floor is ``2 / 2**n``: 0.5 for 2 folds, 0.25 for 3,
    0.0625 for 5. Below 6 folds it can never reach 0.05. Computed with SciPy's exact test, so the
    number is SciPy's, not ours.

    Args:
        n: Number of paired differences (folds), at least 1.

    Raises:
        ValueError: If ``n`` < 1.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    if n < 1:
        raise ValueError(f"need at least one pair, got n={n}")
    return float(stats.wilcoxon(np.arange(1.0, n + 1), method="exact").pvalue)


def corrected_ttest(differences: np.ndarray, test_train_ratio: float) -> tuple[float, float]:
    r"""Nadeau & Bengio's (2003) corrected resampled t-test of ``mean(differences) = 0``.

    Resampled training sets overlap, so the per-fold differences are correlated and the plain
    paired t-test is too confident. The correction inflates the variance:

    .. math:: t = \frac{\bar d}{\sqrt{(\frac1k + \frac{n_\text{test}}{n_\text{train}})\, s_d^2}},
              \qquad p = 2\,P(T_{k-1} > |t|)

    ``test_train_ratio = 0`` gives the plain paired t-test (for independent replicates, such as
    models trained on separate synthetic worlds). For k-fold CV that trains on all the other folds
    the ratio is ``1 / (k - 1)``; holding a validation part out of them raises it
    (:func:`mtrec_study.study.experiment.cross_validate` records the folds' mean).

    Args:
        differences: The k paired differences ``a - b``.
        test_train_ratio: ``n_test / n_train`` of one resample (>= 0).

    Returns:
        ``(t, p)``; NaN for fewer than 2 differences or when all are equal.

    Raises:
        ValueError: If ``test_train_ratio`` is negative.

    Used by mtrec_study.evaluation.stats, mtrec_study.study.published.
    """
    if test_train_ratio < 0:
        raise ValueError(f"test_train_ratio must be >= 0, got {test_train_ratio}")
    d = np.asarray(differences, dtype="float64")
    k = d.size
    if k < 2 or np.ptp(d) == 0:  # all differences equal: no spread to test against
        return float("nan"), float("nan")
    var = float(d.var(ddof=1))
    t = float(d.mean() / np.sqrt((1.0 / k + test_train_ratio) * var))
    return t, float(2 * stats.t.sf(abs(t), df=k - 1))


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN stays NaN and does not count).

    The i-th smallest of m p-values is multiplied by ``m - i + 1``; the adjusted values are made
    non-decreasing in that order and capped at 1. It controls the family-wise error rate.

    Introduced in notebooks/08_sharing_mechanisms.ipynb.
    """
    p = np.asarray(pvalues, dtype="float64")
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = order.size
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out[order] = adjusted
    return out


def paired_test(tidy: pd.DataFrame, model_a: str, model_b: str, task: str, metric: str,
                protocol: str | None = None, segment: str = "all",
                test_train_ratio: float | str = "kfold") -> dict[str, float]:
    """Paired tests of ``a - b`` over matching folds: t-test, corrected t-test and Wilcoxon.

    The plain t-test assumes independent folds; folds share most of their training rows, so it
    is optimistic. ``p_corrected`` is Nadeau & Bengio's corrected resampled t-test
    (:func:`corrected_ttest`), the one to read. With k folds the smallest two-sided Wilcoxon
    p-value is ``2 / 2**k`` (:func:`wilcoxon_floor`: 0.0625 at k = 5).

    Args:
        tidy, model_a, model_b, task, metric, protocol, segment: Which rows to pair, by fold.
        test_train_ratio: ``n_test / n_train`` of a fold; ``"kfold"`` (default) is ``1 / (k - 1)``
            for the k folds paired, right when each fold trains on all the others (pass
            :func:`mtrec_study.study.experiment.cross_validate`'s ``test_train_ratio`` when a
            validation part is held out of them); 0 for independent replicates.

    Returns:
        ``n, mean_a, mean_b, mean_diff, t, p_t, t_corrected, p_corrected, w, p_wilcoxon``
        (NaN where undefined).

    Raises:
        ValueError: If the two models share no fold for that task and metric, or the ratio is
            neither ``"kfold"`` nor a number >= 0.

    Introduced in notebooks/08_sharing_mechanisms.ipynb.
    """
    sel = tidy[(tidy["task"] == task) & (tidy["metric"] == metric) & (tidy["segment"] == segment)]
    if protocol is not None:
        sel = sel[sel["protocol"] == protocol]
    wide = sel.pivot_table(index="fold", columns="model", values="value")
    missing = [m for m in (model_a, model_b) if m not in wide]
    if missing:
        raise ValueError(f"no {task}/{metric} rows for model(s) {missing}; models present: {list(wide.columns)}")
    pair = wide[[model_a, model_b]].dropna()
    if pair.empty:
        raise ValueError(f"models {model_a!r} and {model_b!r} share no fold with a defined {task}/{metric}")
    a, b = pair[model_a].to_numpy(), pair[model_b].to_numpy()
    d = a - b
    if isinstance(test_train_ratio, str):
        if test_train_ratio != "kfold":
            raise ValueError(f"test_train_ratio {test_train_ratio!r}: use 'kfold' or a number >= 0")
        ratio = 1.0 / (d.size - 1) if d.size > 1 else 0.0
    else:
        ratio = float(test_train_ratio)
    out = {"n": float(d.size), "mean_a": float(a.mean()), "mean_b": float(b.mean()), "mean_diff": float(d.mean()),
           "t": np.nan, "p_t": np.nan, "t_corrected": np.nan, "p_corrected": np.nan, "w": np.nan,
           "p_wilcoxon": np.nan}
    if d.size > 1 and np.std(d) > 0:
        t = stats.ttest_rel(a, b)
        out.update(t=float(t.statistic), p_t=float(t.pvalue))
        out["t_corrected"], out["p_corrected"] = corrected_ttest(d, ratio)
    if d.size > 0 and np.any(d != 0):
        w = stats.wilcoxon(a, b)
        out.update(w=float(w.statistic), p_wilcoxon=float(w.pvalue))
    return out


# The columns of paired_tests' table that are test statistics and p-values (the rest are sizes and
# means): what a table leaves out when it reports no test (06 below 5 folds).
TEST_STATISTICS = ("t", "p_t", "t_corrected", "p_corrected", "p_holm", "w", "p_wilcoxon")


def paired_tests(tidy: pd.DataFrame, models: Iterable[str], reference: str, keys, segment: str = "all",
                 protocol: str | None = None, test_train_ratio: float | str = "kfold") -> pd.DataFrame:
    """:func:`paired_test` of each model against ``reference`` on each ``(task, metric)``.

    The comparisons of one call are one family: ``p_holm`` is the corrected t-test's p-value
    after Holm's adjustment over them (:func:`holm`). Keys that a model does not report (a
    single-task model's other tasks, MF's binary tasks) are skipped, not failed.

    Returns:
        One row per (model, task, metric): :func:`paired_test`'s values, ``p_holm`` and
        ``better``, whether the mean difference favours the model (for lower-is-better metrics
        a negative difference).

    Introduced in notebooks/05_evaluation.ipynb.
    """
    rows = []
    have = tidy[tidy["segment"] == segment].groupby(["model", "task", "metric"]).size()
    for model in models:
        for task, metric in keys:
            if (model, task, metric) not in have.index or (reference, task, metric) not in have.index:
                continue
            t = paired_test(tidy, model, reference, task, metric, protocol, segment, test_train_ratio)
            sign = -1 if metric in M.LOWER_IS_BETTER else 1
            rows.append({"model": model, "task": task, "metric": metric, **t, "better": bool(sign * t["mean_diff"] > 0)})
    cols = ["model", "task", "metric", "n", "mean_a", "mean_b", "mean_diff", *TEST_STATISTICS, "better"]
    out = pd.DataFrame(rows, columns=[c for c in cols if c != "p_holm"])
    out.insert(out.columns.get_loc("p_corrected") + 1, "p_holm", holm(out["p_corrected"]))
    return out[cols]


def user_bootstrap(users: np.ndarray, statistic: Callable[[np.ndarray], float] | Sequence[Callable[[np.ndarray], float]],
                   n_boot: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict[str, float]:
    """Percentile CI of ``statistic`` when *users* (not rows) are resampled with replacement.

    Rows of one user are correlated, so resampling rows would understate the uncertainty.

    With several training seeds, ``statistic`` is one function per seed (each scoring the models
    trained with that seed). Every resample of users is scored by each of them, and the CI is
    taken from all ``n_seeds × n_boot`` values pooled, so it spans both the users' noise and the
    spread between seeds; the estimate is the mean of the seeds' estimates. The pooled interval
    is that of one training run drawn at random, so it is wider than needed for the mean of the
    seeds: a conservative choice.

    Args:
        users: The user of each row.
        statistic: ``rows -> value`` (rows may repeat); for example a difference of two models'
            RMSE on those rows. Or a sequence of them, one per training seed.
        n_boot: Resamples.
        seed: Seeds the resampling (the same users are drawn for every training seed).

    Returns:
        ``estimate`` (on all rows, averaged over seeds), ``ci_low``, ``ci_high``, ``n_boot``,
        ``n_users``, ``n_undefined`` values where the statistic was NaN (left out of the CI),
        ``n_seeds``, ``seed_sd`` (the standard deviation of the seeds' estimates; None for one)
        and ``seed_estimates`` (each seed's estimate on all rows).

    Raises:
        ValueError: If ``statistic`` is an empty sequence, or ``users`` is empty.

    Introduced in notebooks/07_article_claims.ipynb.
    """
    fns = list(statistic) if isinstance(statistic, Sequence) else [statistic]
    if not fns:
        raise ValueError("statistic: need one function, or one per training seed; got an empty sequence")
    users = np.asarray(users)
    if users.size == 0:
        raise ValueError("users is empty: there are no rows to resample (an empty segment has no interval)")
    order = np.argsort(users, kind="stable")
    uniq, starts = np.unique(users[order], return_index=True)
    groups = np.split(order, starts[1:])
    rng = np.random.default_rng(seed)
    vals = np.empty((len(fns), n_boot))
    for b in range(n_boot):
        pick = rng.integers(0, uniq.size, uniq.size)
        rows = np.concatenate([groups[i] for i in pick])
        for s, fn in enumerate(fns):
            vals[s, b] = fn(rows)
    ok = vals[~np.isnan(vals)]
    alpha = (1 - confidence) / 2
    low, high = (np.quantile(ok, [alpha, 1 - alpha]) if ok.size else (np.nan, np.nan))
    estimates = np.array([fn(np.arange(users.size)) for fn in fns], dtype="float64")
    return {"estimate": float(estimates.mean()), "ci_low": float(low), "ci_high": float(high),
            "n_boot": n_boot, "n_users": int(uniq.size), "n_undefined": int(vals.size - ok.size),
            "n_seeds": len(fns), "seed_sd": float(estimates.std(ddof=1)) if len(fns) > 1 else None,
            "seed_estimates": [float(e) for e in estimates]}


def per_seed(*sides) -> list[tuple]:
    """Pair the per-seed results of several models: ``[(a_0, b_0, ...), (a_1, b_1, ...), ...]``.

    Each side is one model's results, one per training seed (a list), or one bare result shared
    by every seed. A model whose fit reads no seed (logistic regression, EASE) comes as a list
    holding the same fitted result once per seed, so it pairs with any seed count.

    Raises:
        ValueError: If two lists differ in length (different seed counts: a model trained with
            one seed cannot stand in for five), or a list is empty.

    Used by mtrec_study.evaluation.predictions, mtrec_study.study.published.
    """
    lists = [x for x in sides if isinstance(x, list)]
    if any(len(x) == 0 for x in lists):
        raise ValueError("a model has an empty list of per-seed results")
    n = {len(x) for x in lists}
    if len(n) > 1:
        raise ValueError(f"the models were trained with different numbers of seeds: {sorted(n)}; pair equal seeds")
    k = n.pop() if n else 1
    return [tuple(x[s] if isinstance(x, list) else x for x in sides) for s in range(k)]


def delta_m(mtl: dict[tuple[str, str], float], single: dict[tuple[str, str], float]) -> float:
    r"""The multi-task gain Δm% (Maninis et al., 2019; Vandenhende et al., 2021), higher is better.

    $\Delta_m = \frac{100}{T} \sum_{t=1}^{T} (-1)^{l_t}\, \frac{M_{m,t} - M_{s,t}}{M_{s,t}}$, where
    $l_t = 1$ when lower is better for metric $t$ (RMSE, log loss) and 0 otherwise.

    Args:
        mtl: ``{(task, metric): value}`` of the multi-task model.
        single: The same keys for the single-task models.

    Raises:
        ValueError: If the keys differ or a single-task value is zero or NaN.

    Used by mtrec_study.evaluation.stats, mtrec_study.evaluation.predictions, mtrec_study.study.tuning.
    """
    if set(mtl) != set(single):
        raise ValueError(f"Δm needs the same (task, metric) keys: multi-task {sorted(mtl)}, single {sorted(single)}")
    terms = []
    for key, base in single.items():
        if not np.isfinite(base) or base == 0:
            raise ValueError(f"single-task value for {key} is {base}; Δm% needs a finite, non-zero baseline")
        sign = -1.0 if key[1] in M.LOWER_IS_BETTER else 1.0
        terms.append(sign * (mtl[key] - base) / base)
    return 100.0 * float(np.mean(terms))


def merge_single_task(tidy: pd.DataFrame, prefix: str = "single_", name: str = "single_task") -> pd.DataFrame:
    """Rows of the per-task models ``single_<task>`` joined into one model ``single_task``.

    Each single-task model contributes only its own task's rows.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    own = tidy["model"] == prefix + tidy["task"]
    merged = tidy[own].assign(model=name)
    return pd.concat([tidy[~tidy["model"].str.startswith(prefix)], merged], ignore_index=True)


def delta_m_by_fold(tidy: pd.DataFrame, model: str, baseline: str = "single_task", keys=PRIMARY_METRICS,
                    segment: str = "all") -> pd.Series:
    """Δm% of ``model`` over ``baseline`` in each (protocol, fold) where both have every key.

    Run :func:`merge_single_task` first to get the ``single_task`` baseline.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    sel = tidy[(tidy["segment"] == segment) & tidy["model"].isin([model, baseline])]
    out = {}
    for (protocol, fold), g in sel.groupby(["protocol", "fold"]):
        vals = g.set_index(["model", "task", "metric"])["value"]
        try:
            mtl = {k: vals[(model, *k)] for k in keys}
            single = {k: vals[(baseline, *k)] for k in keys}
        except KeyError:
            continue
        out[(protocol, fold)] = delta_m(mtl, single)
    return pd.Series(out, name="delta_m_pct", dtype="float64")
