"""Verdicts on the article's claims, generated from measured differences and their intervals.

A claim is judged by *comparisons*, each a difference ``a - b`` with a confidence interval,
oriented so that the claim predicts a positive (or, for lower-is-better metrics, a negative)
difference. One rule, stated once:

* a comparison is ``better`` when its whole interval lies on the side the claim predicts,
  ``worse`` when it lies wholly on the other side, ``no difference`` when it contains 0, and
  ``undefined`` when the interval could not be computed;
* each claim names **one primary comparison**, fixed before the numbers: the claim is
  ``supported`` when it is better, ``refuted`` when it is worse, and ``inconclusive`` otherwise.
  The other comparisons are secondary: reported, never voted;
* training time is measured once per training seed, so its comparison is a ratio of epoch times
  whose excess over 1 gets an interval over the seeds (:func:`ratio_comparison`) and the same rule;
* a claim whose evidence is a measurement without an interval (overfitting) uses a stated
  threshold instead (:func:`overfitting_verdict`), and its row says so in the caveats.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from mtrec_study.evaluation.metrics import LOWER_IS_BETTER

# The claims that notebooks/07_article_claims.ipynb tests. ``quote`` is the article's own words,
# verbatim (tests/unit/test_citations.py checks it against the article); ``claim`` is our English
# paraphrase; ``section`` is where the article says it.
ARTICLE_CLAIMS = {
    "accuracy": {"claim": "MTL improves the accuracy of interest prediction and item recommendation",
                 "quote": "提高用户兴趣预测和物品推荐的准确性", "section": "§3.3 (advantage 1), §9.3"},
    "cold_start": {"claim": "MTL solves the user cold-start problem",
                   "quote": "解决用户冷启动问题", "section": "§3.3 (advantage 2), §9.2, §9.3"},
    "text": {"claim": "BERT-style large-model text features overcome the limits of traditional methods",
             "quote": "有望解决传统方法的局限性", "section": "§1; the BERT step is §3.2 step 2"},
    "diversity": {"claim": "MTL makes recommendations more diverse",
                  "quote": "提高推荐系统的多样性", "section": "§9.3 (advantage 3)"},
    "slow": {"claim": "MTL takes long to train",
             "quote": "模型训练时间较长", "section": "§3.3 (disadvantage 1), §8.3, §9.4"},
    "overfitting": {"claim": "MTL overfits easily",
                    "quote": "容易过拟合", "section": "§3.3 (disadvantage 2), §8.3, §9.4"},
}
OUTCOMES = ("better", "worse", "no difference", "undefined")
VERDICTS = ("supported", "refuted", "inconclusive")
_VERDICT_OF = {"better": "supported", "worse": "refuted", "no difference": "inconclusive", "undefined": "inconclusive"}


def claim_text(key: str) -> str:
    """A claim as the verdict table shows it: our paraphrase, then the article's words in 「」.

    Args:
        key: A key of :data:`ARTICLE_CLAIMS`.

    Raises:
        KeyError: For an unknown key, listing the valid ones.

    Introduced in notebooks/07_article_claims.ipynb.
    """
    if key not in ARTICLE_CLAIMS:
        raise KeyError(f"unknown claim {key!r}; valid: {', '.join(ARTICLE_CLAIMS)}")
    c = ARTICLE_CLAIMS[key]
    return f"{c['claim']} (「{c['quote']}」)"


def outcome(ci_low: float, ci_high: float, metric: str | None = None, higher_is_better: bool | None = None) -> str:
    """Classify one difference ``a - b`` by its interval: ``better``, ``worse`` or ``no difference``.

    Args:
        ci_low, ci_high: The interval of the difference.
        metric: Its metric name; lower-is-better metrics (RMSE, Gini ...) flip the direction.
        higher_is_better: Set the direction explicitly instead of through ``metric``.

    Raises:
        ValueError: If the interval is reversed.

    Used by mtrec_study.study.claims.
    """
    if not (np.isfinite(ci_low) and np.isfinite(ci_high)):
        return "undefined"
    if ci_low > ci_high:
        raise ValueError(f"interval [{ci_low}, {ci_high}] is reversed: ci_low must not exceed ci_high")
    up = (metric not in LOWER_IS_BETTER) if higher_is_better is None else higher_is_better
    if ci_low > 0:
        return "better" if up else "worse"
    if ci_high < 0:
        return "worse" if up else "better"
    return "no difference"


def verdict(primary_outcome: str) -> str:
    """The verdict from the primary comparison's outcome: ``supported``, ``refuted`` or ``inconclusive``.

    Raises:
        ValueError: For an outcome outside :data:`OUTCOMES`.

    Used by mtrec_study.study.claims.
    """
    if primary_outcome not in _VERDICT_OF:
        raise ValueError(f"unknown outcome {primary_outcome!r}; valid: {', '.join(OUTCOMES)}")
    return _VERDICT_OF[primary_outcome]


def comparison(label: str, metric: str, result: dict, higher_is_better: bool | None = None) -> dict:
    """One evidence row: a label, the metric, the estimate with its CI, and its outcome.

    Args:
        label: What was compared (``"MTL - single, cold users, interest"``).
        metric: The metric of the difference.
        result: A dict with ``estimate``, ``ci_low`` and ``ci_high`` (for example from
            :func:`mtrec_study.evaluation.metric_difference_bootstrap`), and ``n_seeds`` and
            ``seed_estimates``, the training seeds its interval pools and each one's estimate
            (one seed, the estimate, when absent).
        higher_is_better: Override the metric's direction.

    Introduced in notebooks/07_article_claims.ipynb.
    """
    return {"comparison": label, "metric": metric, "estimate": float(result["estimate"]),
            "ci_low": float(result["ci_low"]), "ci_high": float(result["ci_high"]),
            "outcome": outcome(result["ci_low"], result["ci_high"], metric, higher_is_better),
            "seeds": int(result.get("n_seeds", 1)),
            "seed_estimates": [float(x) for x in result.get("seed_estimates", [result["estimate"]])]}


# Up to this many secondary comparisons are listed in full in a verdict row; beyond it, those with no
# difference are counted instead (notebook 07 shows each in the claim's own section).
SECONDARY_IN_FULL = 3


def _secondary(fmt: Callable[[dict], str], rows: list[dict]) -> str:
    """The secondary comparisons' cell: each in full, or, when there are more than
    :data:`SECONDARY_IN_FULL`, those with a difference in full and the rest counted."""
    if len(rows) <= SECONDARY_IN_FULL:
        return "; ".join(fmt(e) for e in rows)
    shown = [fmt(e) for e in rows if e["outcome"] != "no difference"]
    n_none = len(rows) - len(shown)
    if n_none:
        shown.append(f"{n_none} {'more' if shown else 'comparisons, all'} with no difference (07 shows each)")
    return "; ".join(shown)


def verdict_table(claims: list[dict]) -> pd.DataFrame:
    """One row per claim: wording, section, experiment, the primary comparison and its training seeds, verdict, the others, caveats.

    Args:
        claims: Dicts with ``claim``, ``section``, ``experiment``, ``evidence`` (rows from
            :func:`comparison`), ``primary`` (the ``comparison`` label of the primary row) and
            ``caveats``. A claim measured without an interval gives ``verdict`` and ``rule``
            instead of ``primary``; the rule is appended to its caveats. Its other rows are the
            secondary comparisons: listed in full up to :data:`SECONDARY_IN_FULL`; beyond that,
            those with no difference are counted, so the row stays readable in the index page.

    Raises:
        ValueError: If a claim has no evidence, names no (or an unknown) primary comparison,
            or gives a verdict outside :data:`VERDICTS` or without its rule.

    Introduced in notebooks/07_article_claims.ipynb.
    """
    rows = []
    for c in claims:
        if not c.get("evidence"):
            raise ValueError(f"claim {c.get('claim')!r} has no evidence rows")
        labels = [e["comparison"] for e in c["evidence"]]
        caveats = c["caveats"]
        if "verdict" in c:
            v = c["verdict"]
            if v not in VERDICTS:
                raise ValueError(f"verdict {v!r} of claim {c['claim']!r} is not one of {', '.join(VERDICTS)}")
            if not c.get("rule"):
                raise ValueError(f"claim {c['claim']!r} sets its verdict without stating the rule it used")
            caveats = f"{caveats}; verdict by its own rule: {c['rule']}"
            primary = None
        else:
            primary = c.get("primary")
            if primary not in labels:
                raise ValueError(f"claim {c['claim']!r}: primary comparison {primary!r} is not among its "
                                 f"evidence rows {labels}")
            v = verdict(c["evidence"][labels.index(primary)]["outcome"])
        def fmt(e: dict) -> str:
            return (f"{e['comparison']}: {e['estimate']:+.4f} [{e['ci_low']:+.4f}, {e['ci_high']:+.4f}] "
                    f"({e.get('outcome_reads', e['outcome'])})")

        others = _secondary(fmt, [e for e in c["evidence"] if e["comparison"] != primary])
        seeds = c["evidence"][labels.index(primary)].get("seeds", 1) if primary else None
        rows.append({"claim": c["claim"], "section": c["section"], "experiment": c["experiment"],
                     "primary comparison (95% CI)": fmt(c["evidence"][labels.index(primary)]) if primary else "—",
                     "training seeds": seeds if seeds is not None else "—", "verdict": v, "other comparisons (95% CI)": others or "—", "caveats": caveats})
    return pd.DataFrame(rows)


# Training time: MTL's epoch time over the single-task models', one training seed at a time.
# "One single-task model" is the mean of the three single-task epochs; "all three" is their sum.
ONE_SINGLE = "MTL epoch / mean single-task epoch"
ALL_SINGLES = "MTL epoch / sum of the three single-task epochs"
EPOCH_EXCESS = "epoch-time ratio - 1"  # the metric of the training-time comparisons
# The claim whose evidence is a measurement without an interval, and its stated rule.
OVERFIT_RISE = 0.01  # a validation loss that rises this share of itself above its best "overfits"


def ratio_comparison(label: str, ratios: Sequence[float], confidence: float = 0.95) -> dict:
    """One evidence row for a ratio ``a / b`` measured once per training seed: its excess ``a / b - 1``.

    Ratios are averaged on the log scale: the estimate is the seeds' geometric mean ratio minus 1,
    and the interval is Student's t interval of the mean log ratio over the seeds
    (``scipy.stats.t``), mapped back, so it can never reach below -1 (a negative time). The row
    reads like every other comparison and takes the same rule: its whole interval above 0 says
    ``a`` takes longer than ``b`` (outcome ``better`` for a claim that predicts it, shown as
    ``longer``), below 0 shorter, and an interval containing 0 no difference. One seed, or seeds
    that all measured the same ratio, give no estimate of the spread and so no interval
    (``undefined``, so the claim is inconclusive).

    Args:
        label: The ratio's name (:data:`ONE_SINGLE` or :data:`ALL_SINGLES`); the row's
            ``comparison`` is this name followed by `` − 1``.
        ratios: One positive ratio per training seed.
        confidence: The interval's coverage.

    Returns:
        A row of :func:`comparison` with metric :data:`EPOCH_EXCESS`, each seed's own excess in
        ``seed_estimates``, and ``outcome_reads`` (``longer``, ``shorter``, ``no difference`` or
        ``undefined``) for the table.

    Raises:
        ValueError: If ``ratios`` is empty or holds a value that is not a positive finite number,
            or if ``confidence`` is not strictly between 0 and 1.

    Introduced in notebooks/07_article_claims.ipynb.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    r = np.asarray(list(ratios), float)
    if r.size == 0 or not np.all(np.isfinite(r) & (r > 0)):
        raise ValueError(f"{label}: need one positive finite ratio per training seed, got {r.tolist()}")
    logs = np.log(r)
    mean = float(logs.mean())
    if r.size == 1 or np.ptp(logs) == 0:  # no spread to estimate: no interval
        low = high = float("nan")
    else:
        low, high = stats.t.interval(confidence, r.size - 1, loc=mean, scale=stats.sem(logs))
    row = comparison(f"{label} − 1", EPOCH_EXCESS, {"estimate": np.expm1(mean), "ci_low": np.expm1(low),
                                           "ci_high": np.expm1(high), "n_seeds": r.size,
                                           "seed_estimates": (r - 1.0).tolist()}, higher_is_better=True)
    row["outcome_reads"] = {"better": "longer", "worse": "shorter"}.get(row["outcome"], row["outcome"])
    return row


def overfitting_verdict(rise_above_best: Iterable[float], valid_loss: Iterable[float]) -> tuple[str, str]:
    """Verdict and rule of "MTL overfits easily" from validation curves trained without early stopping.

    The rule: ``supported`` when any task's validation loss ends more than :data:`OVERFIT_RISE`
    of its value above its best epoch's, ``refuted`` otherwise.

    Raises:
        ValueError: If the two sequences differ in length or are empty.

    Introduced in notebooks/07_article_claims.ipynb.
    """
    rise, loss = np.asarray(list(rise_above_best), float), np.asarray(list(valid_loss), float)
    if rise.shape != loss.shape or rise.size == 0:
        raise ValueError(f"need one rise per validation loss, got {rise.size} rises and {loss.size} losses")
    v = "supported" if bool((rise > OVERFIT_RISE * loss).any()) else "refuted"
    return v, (f"supported when a task's validation loss ends more than {OVERFIT_RISE:.0%} of itself above its "
               "best epoch's, refuted otherwise")
