"""Evaluation: metrics, the protocols that score predictions, ranking and the statistics over results.

Nothing here trains. The modules, from the bottom up:

- :mod:`~mtrec_study.evaluation.metrics`: the metric functions on arrays (NumPy and scikit-learn,
  no Keras): binary, regression, ranking over a catalogue and beyond-accuracy.
- :mod:`~mtrec_study.evaluation.stats`: summaries over folds, paired tests, the user bootstrap, Δm%.
- :mod:`~mtrec_study.evaluation.predictions`: per-task metrics of predictions on a task set, by
  segment, with tuned thresholds and paired bootstrap CIs.
- :mod:`~mtrec_study.evaluation.ranking`: scorers, the full-catalogue and sampled (NCF) ranking
  protocols, the popularity reference and list diversity.

Every function returns rows of the one result format (:data:`mtrec_study.results.TIDY_COLUMNS`),
so ``from mtrec_study import evaluation as E`` gives a notebook the whole public surface.
:mod:`mtrec_study.study.experiment` runs the protocols that train (holdout and k-fold CV).
"""

from mtrec_study.evaluation import metrics
from mtrec_study.evaluation.predictions import (
    delta_m_bootstrap,
    evaluate_predictions,
    metric_difference_bootstrap,
    primary_rows,
    primary_values,
    segment_masks,
    segment_metric,
    task_metrics,
    tuned_thresholds,
)
from mtrec_study.evaluation.ranking import (
    cached_scorers,
    catalogue_scorer,
    full_catalogue_ranking,
    genre_vectors,
    item_positions,
    list_diversity,
    pair_features,
    pair_scorer,
    popularity_rows,
    popularity_scorers,
    ranking_rows,
    sample_test_users,
    sampled_candidates,
    sampled_ranking,
)
from mtrec_study.evaluation.stats import (
    TEST_STATISTICS,
    corrected_ttest,
    delta_m,
    delta_m_by_fold,
    holm,
    merge_single_task,
    paired_test,
    paired_tests,
    per_seed,
    summarise,
    user_bootstrap,
    wilcoxon_floor,
)
from mtrec_study.results import as_tidy, tidy_rows
from mtrec_study.tasks import PRIMARY_METRICS

__all__ = [
    "PRIMARY_METRICS", "TEST_STATISTICS", "as_tidy", "cached_scorers", "catalogue_scorer", "corrected_ttest", "delta_m", "delta_m_bootstrap",
    "delta_m_by_fold", "evaluate_predictions", "holm", "full_catalogue_ranking", "genre_vectors", "item_positions",
    "list_diversity", "merge_single_task", "metric_difference_bootstrap", "metrics", "paired_test", "paired_tests",
    "pair_features", "per_seed", "pair_scorer", "popularity_rows", "popularity_scorers", "primary_rows", "primary_values", "ranking_rows",
    "sample_test_users", "sampled_candidates", "sampled_ranking", "segment_masks", "segment_metric", "summarise",
    "task_metrics", "tidy_rows", "tuned_thresholds", "user_bootstrap", "wilcoxon_floor",
]
