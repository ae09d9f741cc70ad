"""Hyperparameter search on validation data only, sealed off from the test split.

Every model of the headline comparison (our networks, logistic regression, BPR, the Surprise
peers) is searched within one cap, :data:`TUNE_BUDGET` settings, each trained on a split's
training part and scored on its validation part; :func:`grid_edges` finds the choices that sit at
the edge of their grid, where the search may have stopped short. The search is incremental and
resumable (:func:`run_search`): a setting already scored under the same key is read back, so
widening a grid trains only the new settings, and an interrupted search goes on where it stopped.
The score function never receives the test part: it gets a :func:`validation_view` of the split,
whose interactions table holds only training and validation rows and whose ``test`` raises
:class:`TestSplitSealed` when touched. Splits are tuned
one at a time (every fold of a cross-validation has its own choice), because one fold's
validation rows are another fold's test rows.

``python -m mtrec_study tune`` runs the search and writes ``params/tuned.yaml``, which the full
preset's ``09_headline_results`` reads; the file records the split, seed and grid it belongs to,
and :func:`load_tuned` refuses a file that does not match.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from tqdm.auto import tqdm

from mtrec_study.config import show_progress
from mtrec_study.datasets import RatingsData
from mtrec_study.evaluation.stats import delta_m
from mtrec_study.prepare import PreparedData
from mtrec_study.results import atomic_write_text

TUNE_BUDGET = 12


@dataclasses.dataclass(frozen=True)
class Scored:
    """What a score function may return instead of its bare score: the score and facts about the training behind it.

    The validation table keeps ``trained`` in its ``trained`` column (JSON), so a stored search
    says how each setting trained: for the networks ``{"best_epoch": ..., "epochs_run": ...}``,
    the epoch early stopping kept and how many epochs ran (the cap, if it cut the run short).

    Attributes:
        value: The score as :func:`grid_search` takes it (a number, lower is better, or criteria).
        trained: JSON-ready facts about the training.

    Used by mtrec_study.study.tuning, mtrec_study.study.published.
    """

    value: float | Mapping[tuple[str, str], float]
    trained: dict


class TestSplitSealed(RuntimeError):
    """Raised when tuning code reads the test part of a split.

    Used by mtrec_study.study.tuning.
    """


class _Sealed:
    """Stands in for the test task set; any use raises :class:`TestSplitSealed`."""

    def __getattr__(self, name: str):
        raise TestSplitSealed(f"tuning read test.{name}: only the train and valid parts may be used for selection")

    def __len__(self) -> int:
        raise TestSplitSealed("tuning read len(test): only the train and valid parts may be used for selection")


class _SealedIndices(dict):
    def __getitem__(self, key: str):
        if key == "test":
            raise TestSplitSealed("tuning read indices['test']: only the train and valid parts may be used")
        return super().__getitem__(key)


def validation_view(prepared: PreparedData) -> PreparedData:
    """The split without its test part: what a tuner may see.

    The interactions table keeps only training and validation rows (re-indexed), so even the
    raw ratings of test rows are out of reach; ``test`` and ``indices['test']`` raise
    :class:`TestSplitSealed`.

    Used by mtrec_study.study.tuning.
    """
    keep = np.sort(np.concatenate([prepared.indices["train"], prepared.indices["valid"]]))
    inter = prepared.data.interactions.iloc[keep].reset_index(drop=True)
    data = dataclasses.replace(prepared.data, interactions=inter)
    idx = _SealedIndices({p: np.searchsorted(keep, prepared.indices[p]) for p in ("train", "valid")})
    return dataclasses.replace(prepared, data=data, test=_Sealed(), indices=idx)


def check_budget(grids: dict[str, Sequence[dict]], budget: int = TUNE_BUDGET) -> None:
    """Every model's grid must be non-empty and within the shared budget.

    Raises:
        ValueError: Naming the model whose grid is empty or too large.

    Used by mtrec_study.study.tuning.
    """
    for name, grid in grids.items():
        if not 1 <= len(grid) <= budget:
            raise ValueError(f"grid of {name!r} has {len(grid)} settings; the budget is 1..{budget} per model")


def grid_search(prepared: PreparedData | Callable[[], PreparedData] | None, grid: Sequence[dict],
                score: Callable[[PreparedData, dict], float | Mapping[tuple[str, str], float] | Scored],
                known: Mapping[str, float | Mapping[tuple[str, str], float] | Scored] | None = None) -> pd.DataFrame:
    """Score every setting on the split's validation part (lower is better).

    A score function returns either one number, lower is better (an RMSE, minus an AUC), or, for
    a multi-task model judged on several tasks, ``{(task, metric): value}``. Several criteria are
    combined into one score by the study's multi-task measure: minus Δm%
    (:func:`mtrec_study.evaluation.stats.delta_m`) of each setting over the grid's first setting,
    so every task's criterion counts by its relative change, whatever its scale. Either may come
    wrapped in :class:`Scored` with facts about the training (the networks' epochs), which the
    table keeps.

    Args:
        prepared: One split, or a function that builds it (called only if a setting must be
            trained); ``score`` only ever receives its :func:`validation_view` (may be ``None``
            for a grid of one setting).
        grid: The settings to try.
        score: ``(view, setting) -> validation score`` or ``-> {(task, metric): value}``.
        known: What ``score`` returned before for some settings, by ``json.dumps(setting,
            sort_keys=True)`` (:func:`stored_scores`): those are read back, not trained again, so a
            grid widened by a few settings trains only the new ones.

    Returns:
        One row per setting: ``setting`` (JSON), ``valid_score`` and ``chosen`` (the lowest;
        the first on ties); with criteria, also ``criteria`` (JSON ``{"task metric": value}``);
        where scores came as :class:`Scored`, also ``trained`` (JSON, or None for the others).
        A grid of one setting is chosen without training (score NaN).

    Raises:
        ValueError: If a score is not finite, or the settings return different kinds of score.

    Used by mtrec_study.study.tuning.
    """
    if len(grid) == 1:  # nothing to choose: do not train just to score the only setting
        return pd.DataFrame({"setting": [json.dumps(dict(grid[0]), sort_keys=True)], "valid_score": [np.nan],
                             "chosen": [True]})
    known = known or {}
    names = [json.dumps(dict(s), sort_keys=True) for s in grid]
    view = None
    raw = []
    for name, setting in zip(names, grid, strict=True):
        if name in known:
            raw.append(known[name])
            continue
        if view is None:
            view = validation_view(prepared() if callable(prepared) else prepared)
        raw.append(score(view, dict(setting)))
    trained = [r.trained if isinstance(r, Scored) else None for r in raw]
    raw = [r.value if isinstance(r, Scored) else r for r in raw]
    several = [isinstance(r, Mapping) for r in raw]
    read_back = " (some were read back from an earlier search: run it again with --fresh)" if \
        any(n in known for n in names) else ""
    if any(several) and not all(several):
        raise ValueError("the score function returned a number for some settings and criteria for others" + read_back)
    if several[0]:
        criteria = [{k: float(v) for k, v in r.items()} for r in raw]
        if any(set(c) != set(criteria[0]) for c in criteria):
            raise ValueError(f"the settings were scored on different criteria, {sorted(set().union(*criteria))}"
                             + read_back)
        if not all(np.isfinite(list(c.values())).all() for c in criteria):
            raise ValueError(f"a setting scored {criteria}: validation criteria must be finite")
        zero = [k for k, v in criteria[0].items() if v == 0]
        if zero:
            raise ValueError(f"the grid's first setting {dict(grid[0])} scored 0 on {zero[0]}: Δm% over it is "
                             "undefined; put a setting that scores above 0 first")
        scores = [-delta_m(c, criteria[0]) for c in criteria]
    else:
        scores = [float(r) for r in raw]
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"a setting scored {scores}: validation scores must be finite")
    best = int(np.argmin(scores))
    table = pd.DataFrame({"setting": [json.dumps(s, sort_keys=True) for s in grid], "valid_score": scores,
                          "chosen": [i == best for i in range(len(grid))]})
    if several[0]:
        table["criteria"] = [json.dumps({f"{t} {m}": v for (t, m), v in c.items()}) for c in criteria]
    if any(t is not None for t in trained):
        table["trained"] = [None if t is None else json.dumps(t, sort_keys=True) for t in trained]
    return table


def tune_splits(splits: dict[str, Callable[[], PreparedData]], grids: dict[str, Sequence[dict]],
                scores: dict[str, dict[str, Callable[[PreparedData, dict], float | Mapping]]],
                progress: bool = True, stored: pd.DataFrame | None = None,
                checkpoint: Callable[[pd.DataFrame], None] | None = None) -> pd.DataFrame:
    """Grid-search every model on the validation part of each split it runs on.

    Args:
        splits: ``{split name: () -> PreparedData}`` (built lazily, one at a time).
        grids: ``{model: settings}``; see :func:`check_budget`.
        scores: ``{model: {split: (view, setting) -> validation score}}`` (see
            :func:`grid_search`); a model is tuned on the splits it has a score function for.
        progress: Show a tqdm bar over (split, model).
        stored: Validation rows of an earlier search of the same key (:func:`stored_scores`
            reads them): a setting scored there on a split is not trained again there.
        checkpoint: Called with the rows so far after each (split, model), so that an
            interrupted search keeps what it finished (:func:`run_search` writes them).

    Returns:
        ``split, model, setting, valid_score, chosen`` rows, and ``criteria`` when a model is
        scored on several (NaN in the other rows).

    Raises:
        ValueError: If a model has no grid, or a score names an unknown split.

    Used by mtrec_study.study.tuning.
    """
    check_budget(grids)
    for model, by_split in scores.items():
        if model not in grids:
            raise ValueError(f"model {model!r} has a score function but no grid; grids: {', '.join(grids)}")
        stray = sorted(set(by_split) - set(splits))
        if stray:
            raise ValueError(f"model {model!r}: unknown split {stray[0]!r}; valid: {', '.join(splits)}")
    frames = []
    bar = tqdm(total=sum(len(v) for v in scores.values()), desc="tuning", disable=not show_progress(progress))
    for split, build in splits.items():
        todo = [m for m in scores if split in scores[m]]
        if not todo:
            continue
        # The split is built once, and only if some setting must be trained: grids of one setting and
        # settings read back from `stored` need no data.
        built: list[PreparedData] = []

        def prepared(build=build, built=built) -> PreparedData:
            if not built:
                built.append(build())
            return built[0]

        for model in todo:
            known = stored_scores(stored, split, model)
            frames.append(grid_search(prepared, grids[model], scores[model][split], known).assign(split=split,
                                                                                                   model=model))
            bar.update()
            if checkpoint is not None:
                checkpoint(_columns(pd.concat(frames, ignore_index=True)))
    bar.close()
    return _columns(pd.concat(frames, ignore_index=True))


def _columns(table: pd.DataFrame) -> pd.DataFrame:
    return table[["split", "model", "setting", "valid_score", "chosen", *(c for c in ("criteria", "trained") if c in table)]]


def stored_scores(stored: pd.DataFrame | None, split: str, model: str,
                  ) -> dict[str, float | dict[tuple[str, str], float] | Scored]:
    """What an earlier search's score function returned for ``model`` on ``split``, by setting.

    Args:
        stored: Validation rows as :func:`tune_splits` returns them (or ``None``).

    Returns:
        ``{json.dumps(setting, sort_keys=True): score}``, the score as :func:`grid_search`'s
        score function gave it: the criteria ``{(task, metric): value}`` where the row has them
        (its ``valid_score`` is relative to its grid's first setting, so it is recomputed), else
        ``valid_score``; wrapped in :class:`Scored` where the row records how it trained. A row
        without a score (a grid of one setting, never trained) is left out.

    Used by mtrec_study.study.tuning.
    """
    if stored is None or stored.empty:
        return {}
    rows = stored[(stored["split"] == split) & (stored["model"] == model)]
    out: dict[str, float | dict[tuple[str, str], float] | Scored] = {}
    for r in rows.to_dict("records"):
        name = json.dumps(json.loads(r["setting"]), sort_keys=True)
        criteria = r.get("criteria")
        if isinstance(criteria, str):
            value = {tuple(k.split(" ", 1)): float(v) for k, v in json.loads(criteria).items()}
        elif r.get("valid_score") is not None and np.isfinite(r["valid_score"]):
            value = float(r["valid_score"])
        else:
            continue
        trained = r.get("trained")
        out[name] = Scored(value, json.loads(trained)) if isinstance(trained, str) else value
    return out


def chosen_settings(table: pd.DataFrame) -> dict[str, dict[str, dict]]:
    """``{model: {split: setting}}`` of the chosen rows of a :func:`tune_splits` table.

    Used by mtrec_study.study.tuning.
    """
    out: dict[str, dict[str, dict]] = {}
    for row in table[table["chosen"]].itertuples():
        out.setdefault(row.model, {})[row.split] = json.loads(row.setting)
    return out


def chosen_records(table: pd.DataFrame) -> dict[tuple[str, str], dict]:
    """``{(model, split): how the chosen setting trained}``, from a search's ``trained`` column.

    Only the chosen rows that recorded their training (:class:`Scored`) appear: not the models
    that do not train by epochs, a grid of one setting (never trained), or a search stored before
    the record existed.

    Used by mtrec_study.study.misses, mtrec_study.study.published.
    """
    if not len(table) or "trained" not in table:
        return {}
    return {(r["model"], r["split"]): json.loads(r["trained"])
            for r in table[table["chosen"].astype(bool)].to_dict("records") if isinstance(r.get("trained"), str)}


# A setting at its lower limit cannot be searched lower (a weight of 0 is no regularisation at all),
# so a choice there is not an open edge of the search.
LOWER_LIMITS: dict[str, float] = {"l2": 0.0, "emb_l2": 0.0, "dropout": 0.0, "reg_all": 0.0, "reg_i": 0.0,
                                  "reg_u": 0.0}


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def grid_edges(grids: dict[str, Sequence[dict]], chosen: dict[str, dict[str, dict]],
               defaults: dict[str, Any] | None = None,
               lower_limits: dict[str, float] | None = None) -> pd.DataFrame:
    """Every chosen numeric setting that sits at the smallest or largest value its grid tries.

    A choice at the edge of its grid says the search stopped where the validation score was
    still improving, or may have been: the best setting may lie outside the grid. Per model,
    split and numeric setting (booleans and names are not ordered, so they have no edge), the
    grid's values are compared with the chosen one. A setting tried at one value only is fixed,
    not searched, and a value at its lower limit (:data:`LOWER_LIMITS`) cannot go lower: neither
    is an edge.

    Args:
        grids: ``{model: settings}``, as searched.
        chosen: ``{model: {split: setting}}`` (:func:`load_tuned`).
        defaults: Values a setting takes when a grid entry leaves it out (``{"id_dim": 32}``).
        lower_limits: Overrides :data:`LOWER_LIMITS`.

    Returns:
        ``model, split, setting, value, edge ("lowest" or "highest"), tried`` rows (``tried``:
        the grid's values, ascending), ordered as ``grids`` and ``chosen``.

    Raises:
        ValueError: If a chosen setting is not one of its model's grid entries, or a setting that
            some of a grid's entries leave out has no default (its value there is unknown).

    Used by mtrec_study.study.published.
    """
    defaults = defaults or {}
    limits = LOWER_LIMITS if lower_limits is None else lower_limits
    rows = []
    for model, grid in grids.items():
        full = [{**defaults, **g} for g in grid]
        partial = sorted(k for k in set().union(*full) if any(k not in g for g in full))
        if partial:
            raise ValueError(f"grid of {model!r}: {partial[0]!r} is left out of some settings and has no default; "
                             f"pass it in defaults")
        entries = {json.dumps(g, sort_keys=True) for g in full}
        # Every entry has every key now: the numeric values each setting was tried at, ascending.
        tried = {k: sorted({g[k] for g in full if _numeric(g[k])}) for k in full[0]}
        for split, setting in chosen.get(model, {}).items():
            pick = {**defaults, **setting}
            if json.dumps(pick, sort_keys=True) not in entries:
                raise ValueError(f"the choice of {model!r} on {split!r}, {setting}, is not in its grid")
            for key, value in pick.items():
                values = tried[key]
                if not _numeric(value) or len(values) < 2:
                    continue
                edge = "lowest" if value == values[0] else "highest" if value == values[-1] else None
                if edge == "lowest" and key in limits and value <= limits[key]:
                    edge = None
                if edge:
                    rows.append({"model": model, "split": split, "setting": key, "value": value, "edge": edge,
                                 "tried": values})
    return pd.DataFrame(rows, columns=["model", "split", "setting", "value", "edge", "tried"], dtype=object)


# Columns of the validation table held as JSON strings (mappings in params/tuned.yaml).
_JSON_COLUMNS = ("setting", "criteria", "trained")


def save_tuned(path: str | Path, table: pd.DataFrame, key: dict[str, Any], grids: dict[str, Sequence[dict]],
               complete: bool = True) -> Path:
    """Write the choices, the validation scores and what they belong to (atomically).

    ``complete=False`` marks a search still running (a checkpoint, :func:`run_search`):
    :func:`load_tuned` refuses it.

    Used by mtrec_study.study.tuning.
    """
    doc = {"key": key, "budget": TUNE_BUDGET, "complete": bool(complete),
           "grids": {m: [dict(s) for s in g] for m, g in grids.items()},
           "chosen": chosen_settings(table),
           "validation": [{k: (json.loads(v) if k in _JSON_COLUMNS else v) for k, v in r.items()
                           if k not in _JSON_COLUMNS or isinstance(v, str)}  # no criteria: no entry
                          for r in table.to_dict("records")]}
    header = ("# Generated by `python -m mtrec_study tune` (validation data only; see mtrec_study/study/tuning.py).\n"
              "# Do not edit by hand: rerun the command; 09_headline_results checks `key` and `grids`.\n")
    if not complete:
        header += ("# A checkpoint of an unfinished search (complete: false): rerun the same command to finish it;\n"
                   "# the settings scored below are read back, not trained again.\n")
    path = Path(path)
    atomic_write_text(path, header + yaml.safe_dump(json.loads(json.dumps(doc)), sort_keys=False))
    return path


def _stored(path: Path, key: dict[str, Any], if_missing: str, if_other: str) -> dict:
    """The stored tuning document at ``path``, after checking that its key is ``key``.

    Raises:
        FileNotFoundError: If ``path`` does not exist (``if_missing`` says what to do).
        ValueError: For the first key entry that differs, naming it (``if_other`` says what to do).
    """
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; {if_missing}")
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    stored = doc.get("key", {})
    for k, v in key.items():
        if stored.get(k) != json.loads(json.dumps(v)):
            raise ValueError(f"{path}: key {k!r} is {stored.get(k)!r}, this run has {v!r}; {if_other}")
    return doc


def stored_search(path: Path, key: dict[str, Any]) -> dict | None:
    """The search document stored at ``path`` when it belongs to ``key``, else ``None``.

    A file that is missing or holds a search of another key (other data, seed, epochs ...) has
    nothing a search of ``key`` may read back or keep.

    Used by mtrec_study.study.tuning.
    """
    if not Path(path).exists():
        return None
    try:
        return _stored(Path(path), key, "", "")
    except ValueError:
        return None


def check_stored(path: Path, key: dict[str, Any]) -> dict:
    """The stored tuning at ``path`` that a partial search (``tune --only``) merges into.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If its key differs from ``key`` (naming the entry).

    Used by mtrec_study.study.tuning.
    """
    return _stored(path, key, "run the whole search first (without --only)",
                   "the tuning belongs to another run, so rerun the whole search (without --only)")


def write_search(path: str | Path, table: pd.DataFrame, key: dict[str, Any], grids: dict[str, Sequence[dict]],
                 stored: dict | None, merge: bool) -> Path:
    """Write a finished search's rows to ``path``, keeping what ``merge`` keeps of ``stored``.

    Args:
        table: The search's rows.
        stored: The document at ``path`` when its key is ``key`` (else ``None``).
        merge: ``tune --only``: the stored rows and grids of models outside ``grids`` are kept (for a
            model added to the comparison, or one model's changed grid, without the whole search);
            otherwise the file holds this search alone.

    Used by mtrec_study.study.tuning.
    """
    kept = validation_rows(stored or {}) if merge else pd.DataFrame()
    if len(kept):
        kept = kept[~kept["model"].isin(list(grids))]
    all_grids = {**((stored or {}).get("grids", {}) if merge else {}), **{m: [dict(x) for x in g] for m, g in grids.items()}}
    return save_tuned(path, pd.concat([kept, table], ignore_index=True) if len(kept) else table, key, all_grids)


def partial_path(path: str | Path) -> Path:
    """Where a search writes its checkpoints: ``<path>.partial`` beside the file it will replace.

    Used by mtrec_study.study.tuning.
    """
    path = Path(path)
    return path.with_name(path.name + ".partial")


def cut_by_cap(trained: Mapping[str, Any], cap: int, patience: int | None) -> bool:
    """Whether the cap ended a network run before early stopping did.

    Keras's early stopping ends a run ``max(patience, 1)`` epochs after its best epoch, so the cap
    cut the run exactly when its best epoch came later than ``cap - max(patience, 1)``; a run that
    stopped at the cap that many epochs after its best was ended by early stopping (the cap changed
    nothing). The best epoch alone decides, so the rule also reads a refit's chosen epoch count
    (the best epoch of its validation run). A run that did not reach the cap was not cut (one that
    the NaN guard stopped, whatever its best epoch). Without ``patience`` a run that reached the cap
    counts as cut.

    Args:
        trained: ``{"best_epoch": ...}``, with ``"epochs_run"`` where known (:class:`Scored`).

    Used by mtrec_study.study.tuning, mtrec_study.study.misses, mtrec_study.study.published.
    """
    run = trained.get("epochs_run")
    if run is not None and int(run) < cap:
        return False
    if patience is None:
        return run is not None
    return int(trained["best_epoch"]) > cap - max(int(patience), 1)


def rows_under_new_cap(doc: dict, key: dict[str, Any], epoch_free: Collection[str] = ()) -> pd.DataFrame | None:
    """The rows of a search stored under another epoch cap that are the same runs under ``key``'s cap.

    Training is deterministic and early stopping decides at each epoch from the epochs so far, so a
    run that early stopping ended (:func:`cut_by_cap` is false under the old cap, with the key's
    ``patience``) is the same run under any cap it did not reach beyond; so is the score of a model
    that does not train by epochs at all (``epoch_free``: the peers, BPR's own ``epochs`` setting
    aside). A network row kept must say how it trained (its ``trained`` column, :class:`Scored`);
    rows stored before that was recorded are trained again.

    Returns:
        Those rows (possibly none), or ``None`` when the stored key differs from ``key`` in anything
        but ``epochs``, or not at all (then the ordinary read-back applies).

    Used by mtrec_study.study.tuning.
    """
    old, new = doc.get("key", {}), json.loads(json.dumps(key))
    if set(old) != set(new) or old.get("epochs") == new.get("epochs") or \
            any(old[k] != new[k] for k in new if k != "epochs"):
        return None

    def same_run(row: dict) -> bool:
        if row["model"] in epoch_free:
            return True
        trained = row.get("trained")
        if not isinstance(trained, str):
            return False
        trained = json.loads(trained)
        return not cut_by_cap(trained, old["epochs"], new.get("patience")) and trained["epochs_run"] <= new["epochs"]

    rows = validation_rows(doc)
    return rows[[same_run(r) for r in rows.to_dict("records")]] if len(rows) else rows


def run_search(path: str | Path, key: dict[str, Any], splits: dict[str, Callable[[], PreparedData]],
               grids: dict[str, Sequence[dict]], scores: dict[str, dict[str, Callable[[PreparedData, dict], Any]]],
               merge: bool = False, fresh: bool = False, progress: bool = True,
               epoch_free: Collection[str] = ()) -> Path:
    """Run a search and store it at ``path``: incremental, resumable, and never leaving ``path`` half-written.

    * **Incremental.** A setting that ``path`` already scored on a split, under the same ``key``,
      is read back instead of trained (:func:`stored_scores`), so a widened grid trains only its
      new settings. The key covers the data and the notebook parameters, not the code: after a
      change to how models train or are scored, pass ``fresh=True``.
    * **Across epoch caps.** When ``path`` holds a search whose key differs only in ``epochs``,
      the rows that are the same runs under the new cap are read back
      (:func:`rows_under_new_cap`): a raised cap retrains only the runs the old one cut short.
    * **Resumable.** After each (split, model) the rows so far go to :func:`partial_path`, marked
      unfinished (:func:`load_tuned` refuses such a file). ``path`` itself is replaced only when the
      search ends, and the checkpoint is then removed. Running the same search again (``fresh``
      included) reads the checkpoint's scores back and goes on where it stopped.

    Args:
        merge: ``tune --only``: ``path`` must exist with this ``key``; the other models' choices,
            grids and scores are kept (:func:`write_search`).
        fresh: Train every setting, reading back only an interrupted run's checkpoint.
        epoch_free: Models whose score does not depend on the epoch cap (see
            :func:`rows_under_new_cap`).

    Raises:
        FileNotFoundError: With ``merge``, if ``path`` does not exist.
        ValueError: With ``merge``, if its key differs from ``key`` (naming the entry).

    Used by mtrec_study.study.published.
    """
    path = Path(path)
    # The file to merge into must exist and belong to this run before hours of tuning.
    stored = check_stored(path, key) if merge else stored_search(path, key)
    carried = None
    if stored is None and path.exists():
        carried = None if fresh else rows_under_new_cap(yaml.safe_load(path.read_text(encoding="utf-8")) or {}, key,
                                                        epoch_free)
        print(f"{path} holds a search of another key: " + (
            "nothing in it is read back" if carried is None else
            f"{len(carried)} of its scored settings are the same runs under epochs={key.get('epochs')} and are read "
            f"back") + ", and this search replaces it")
    checkpoint = stored_search(partial_path(path), key)
    reuse = [validation_rows(doc) for doc in (checkpoint, None if fresh else stored) if doc is not None]
    if checkpoint is not None:
        print(f"resuming from {partial_path(path)} ({len(reuse[0])} scored settings)")
    if carried is not None and len(carried):
        reuse.append(carried)
    reuse = pd.concat(reuse, ignore_index=True).drop_duplicates(["split", "model", "setting"]) if reuse else None

    def save_checkpoint(rows: pd.DataFrame) -> None:
        save_tuned(partial_path(path), rows, key, grids, complete=False)

    table = tune_splits(splits, grids, scores, progress, stored=reuse, checkpoint=save_checkpoint)
    out = write_search(path, table, key, grids, stored, merge)
    partial_path(path).unlink(missing_ok=True)
    return out


def validation_rows(doc: dict) -> pd.DataFrame:
    """A stored document's validation rows as :func:`tune_splits` returns them (JSON columns as strings).

    Used by mtrec_study.study.tuning.
    """
    return pd.DataFrame([{k: (json.dumps(v) if k in _JSON_COLUMNS else v) for k, v in r.items()}
                         for r in doc.get("validation", [])])


def load_tuned(path: str | Path, key: dict[str, Any], grids: dict[str, Sequence[dict]]) -> dict[str, dict[str, dict]]:
    """The stored ``{model: {split: setting}}``, after checking it belongs to this run.

    Raises:
        FileNotFoundError: If ``path`` does not exist (the message says how to create it).
        ValueError: If the stored key (data set, seed, folds ...) or a model's grid differs from
            this run's, or a model or split is missing: the message names it.

    Used by mtrec_study.study.tuning.
    """
    path = Path(path)
    doc = _stored(path, key, f"create it with `python -m mtrec_study tune --out {path}`",
                  f"rerun `python -m mtrec_study tune --out {path}` or set TUNED_PARAMS = ''")
    if doc.get("complete", True) is False:
        raise ValueError(f"{path}: a search's checkpoint, not a finished search; rerun the `python -m mtrec_study "
                         f"tune` that wrote it to finish it (settings already scored are read back)")
    chosen = doc.get("chosen", {})
    for model, grid in grids.items():
        if doc.get("grids", {}).get(model) != json.loads(json.dumps([dict(s) for s in grid])):
            raise ValueError(f"{path}: the stored grid of {model!r} differs from this run's; rerun the tuner")
        if model not in chosen:
            raise ValueError(f"{path}: no choice for model {model!r}; stored: {', '.join(sorted(chosen))}")
    return chosen


def tuned_or_tune(path: str | Path | None, key: dict[str, Any], splits: dict[str, Callable[[], PreparedData]],
                  grids: dict[str, Sequence[dict]],
                  scores: dict[str, dict[str, Callable[[PreparedData, dict], float | Mapping]]], progress: bool = True,
                  ) -> tuple[dict[str, dict[str, dict]], pd.DataFrame]:
    """Stored choices from ``path`` if given, else run :func:`tune_splits` now.

    Returns:
        ``({model: {split: setting}}, the validation table)``: the stored one when read from the
        file (the scores of the search that wrote it), else this run's.

    Introduced in notebooks/09_headline_results.ipynb.
    """
    if path:
        chosen = load_tuned(path, key, grids)
        for model in scores:
            missing = sorted(set(scores[model]) - set(chosen[model]))
            if missing:
                raise ValueError(f"{path}: model {model!r} has no choice for split {missing[0]!r}; rerun the tuner")
        return chosen, validation_rows(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
    table = tune_splits(splits, grids, scores, progress)
    return chosen_settings(table), table


def data_key(data: RatingsData, **settings: Any) -> dict[str, Any]:
    """What a stored tuning belongs to: the data's size plus the split settings.

    Used by mtrec_study.study.published.
    """
    inter = data.interactions
    return {"interactions": int(len(inter)), "users": int(inter["user_id"].nunique()),
            "items": int(inter["item_id"].nunique()), **settings}
