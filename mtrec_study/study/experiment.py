"""Protocols that train: holdout and k-fold cross-validation of a set of model runs.

A *run* is a name and the keyword arguments of :func:`mtrec_study.training.train` (``model``,
``weighting``, ``tasks`` ...). Every run of a fold sees the same prepared data, so the fold
metrics of two runs are paired and :func:`mtrec_study.evaluation.paired_test` applies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mtrec_study.config import show_progress
from mtrec_study.datasets import RatingsData
from mtrec_study.evaluation.predictions import evaluate_predictions, segment_masks, tuned_thresholds
from mtrec_study.evaluation.ranking import (
    catalogue_scorer,
    full_catalogue_ranking,
    ranking_rows,
    sample_test_users,
)
from mtrec_study.prepare import PreparedData, prepare_tasks
from mtrec_study.results import as_tidy
from mtrec_study.training.trainer import TrainResult, predict, train


@dataclass
class RunOutcome:
    """What one run on one fold left behind, for the analyses that need more than metrics.

    Used by mtrec_study.study.experiment.
    """

    result: TrainResult
    test_preds: dict[str, np.ndarray]
    thresholds: dict[str, float]


@dataclass
class ProtocolResult:
    """Tidy metrics of every run and fold, plus the per-fold outcomes.

    ``test_train_ratio`` is set by :func:`cross_validate`: the folds' mean ratio of test to
    training interactions, the ``n_test / n_train`` of Nadeau and Bengio's corrected t-test
    (:func:`mtrec_study.evaluation.paired_tests`). Each fold's training part holds out 10% for
    validation, so it is above the ``1 / (k - 1)`` of folds that train on everything else.

    Used by mtrec_study.study.experiment.
    """

    tidy: pd.DataFrame
    outcomes: dict[tuple[str, int], RunOutcome] = field(default_factory=dict)
    prepared: dict[int, PreparedData] = field(default_factory=dict)
    test_train_ratio: float | None = None


def evaluate_runs(prepared: PreparedData, runs: dict[str, dict], protocol: str, fold: int = 0,
                  common: dict | None = None, segments: bool = True, progress: bool = True,
                  keep: bool = True, views: dict[str, Callable[[PreparedData], PreparedData]] | None = None,
                  ranked: Iterable[str] = (), ks=(10,), rank_users: int = 0, seed: int = 0) -> ProtocolResult:
    """Train each run on ``prepared.train`` (early stopping on ``valid``), score ``test``.

    Thresholds for the article's metrics are chosen on ``valid`` predictions and applied to test.

    Args:
        prepared: One split's task sets.
        runs: ``{name: train kwargs}``. A run may also name a ``view``: a key of ``views``.
        protocol, fold: Written into the tidy rows.
        common: Keyword arguments shared by all runs (epochs, batch size, seed ...).
        segments: Also score the warm / cold-user / cold-item segments.
        progress: A tqdm bar over runs.
        keep: Keep networks and predictions in ``outcomes`` (set False to free memory).
        views: ``{name: prepared -> prepared}``, for example adding text features built from this
            split's training part. Each view is built once per split, when a run first asks for
            it; its test rows are the same pairs, so its runs stay paired with the others.
        ranked: Run names whose item head also gets a full-catalogue ranking (rows of task
            ``item``, metrics such as ``ndcg@10``, same protocol and fold).
        ks: Cut-offs of those ranking metrics.
        rank_users: Rank a seeded sample of this many test users (0 = all); see
            :func:`mtrec_study.evaluation.sample_test_users`.
        seed: Seeds that sample.

    Raises:
        ValueError: If a run names a view that ``views`` does not have.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    views = views or {}
    built: dict[str | None, PreparedData] = {None: prepared}
    seg_by_view: dict[str | None, dict | None] = {}
    ranked = set(ranked)
    sample = sample_test_users(prepared, rank_users, seed) if ranked else None
    frames, outcomes = [], {}
    for name, cfg in tqdm(runs.items(), desc=f"{protocol} fold {fold}", unit="model", disable=not show_progress(progress),
                          leave=False):
        cfg = dict(cfg)
        view = cfg.pop("view", None)
        if view not in built:
            if view not in views:
                raise ValueError(f"run {name!r} asks for view {view!r}; valid: {sorted(views) or 'none given'}")
            built[view] = views[view](prepared)
        data = built[view]
        if view not in seg_by_view:
            seg_by_view[view] = segment_masks(data, data.test) if segments else None
        seg = seg_by_view[view]
        result = train(prepared=data, **{**(common or {}), **cfg})
        thresholds = tuned_thresholds(predict(result.net, data.valid), data.valid)
        preds = predict(result.net, data.test)
        frames.append(evaluate_predictions(preds, data.test, name, protocol, fold, thresholds, seg))
        if name in ranked:
            items = data.data.items.index.to_numpy()
            per_user, _, _ = full_catalogue_ranking(data, catalogue_scorer(result.net, data.builder, items), ks=ks,
                                                    users=sample)
            frames.append(ranking_rows(per_user, name, protocol, fold))
        if keep:
            outcomes[(name, fold)] = RunOutcome(result, preds, thresholds)
    return ProtocolResult(pd.concat(frames, ignore_index=True) if frames else as_tidy([]), outcomes,
                          {fold: prepared})


def cross_validate(data: RatingsData, runs: dict[str, dict], k: int = 5, seed: int = 0, neg_ratio: float = 1.0,
                   common: dict | None = None, segments: bool = False, keep: bool = False,
                   progress: bool = True, views: dict[str, Callable[[PreparedData], PreparedData]] | None = None,
                   ranked: Iterable[str] = (), ks=(10,), rank_users: int = 0,
                   per_fold: Callable[..., pd.DataFrame] | None = None) -> ProtocolResult:
    """k-fold cross-validation: random folds over interactions, every run on every fold.

    Each fold holds out 10% of its training part as validation for early stopping and
    thresholds, so the fold's test part is never used for any choice.

    Args:
        data: The data set.
        runs, common, segments, keep, progress, views, ranked, ks, rank_users: See :func:`evaluate_runs`.
        k, seed, neg_ratio: The folds and their sampled negatives.
        per_fold: ``(prepared, protocol, fold, users=...) -> tidy rows`` added for every fold, for
            references that do not train (:func:`mtrec_study.evaluation.popularity_rows`);
            ``users`` is the fold's ranked sample of users (``None``: all).

    Returns:
        Tidy rows with ``protocol = "{k}-fold CV"`` and ``fold`` = 0..k-1, and the folds' ratio
        of test to training interactions (``test_train_ratio``, for the corrected t-test).

    Introduced in notebooks/05_evaluation.ipynb.
    """
    protocol = f"{k}-fold CV"
    frames, outcomes, prepared_by_fold, ratios = [], {}, {}, []
    for fold in tqdm(range(k), desc=protocol, unit="fold", disable=not show_progress(progress)):
        prepared = prepare_tasks(data, "kfold", seed=seed, neg_ratio=neg_ratio, fold=fold, k=k)
        ratios.append(prepared.indices["test"].size / prepared.indices["train"].size)
        res = evaluate_runs(prepared, runs, protocol, fold, common, segments, progress, keep, views, ranked, ks,
                            rank_users, seed + fold)
        frames.append(res.tidy)
        if per_fold is not None:
            frames.append(per_fold(prepared, protocol, fold, users=sample_test_users(prepared, rank_users, seed + fold)))
        outcomes.update(res.outcomes)
        if keep:
            prepared_by_fold[fold] = prepared
    return ProtocolResult(pd.concat(frames, ignore_index=True), outcomes, prepared_by_fold, float(np.mean(ratios)))
