"""Cleaning, splitting and the article's three tasks, each with its own label mask.

The article (§3.2 step 1, 数据预处理) cleans user-behaviour data, then (step 3) trains on three
tasks. We define them on MovieLens as:

* **interest** — ``like = rating >= 4``; binary; labelled only on observed ratings;
* **item** — did the user interact with the item? binary, implicit: observed ratings are the
  positives, plus seeded negative samples (``neg_ratio`` per positive); labelled on every row;
* **behaviour** — the rating 1..5 as regression; labelled only on observed ratings.

So one row is a (user, item) pair; the negatives carry an item label but no interest or
behaviour label, and the per-task masks say which labels exist. Every fitted statistic comes
from the training part only (see :class:`mtrec_study.features.FeatureBuilder`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold

from mtrec_study.datasets.movielens import RatingsData
from mtrec_study.features import FeatureBuilder, FeatureSpec, FeatureTables, FeatureView
from mtrec_study.tasks import TASKS, label_rows

SPLITS = ("per_user_recent", "global_time", "random", "kfold", "loo", "cold_user", "cold_item", "cold_both")
# Former split keys, and their names now ("temporal" promised a cut in time that the split never made).
RENAMED_SPLITS = {"temporal": "per_user_recent"}


# --------------------------------------------------------------------------- time order
TIE_SEED = 0


def tie_break(users: np.ndarray, items: np.ndarray, seed: int = TIE_SEED) -> np.ndarray:
    """A seeded pseudo-random key per (user, item) pair, to order ratings that share a timestamp.

    44% of ml-100k's users rated two or more films in their last second, and item ids correlate
    with popularity, so breaking ties by item id would pick the less popular film as "the last one"
    (it skews leave-one-out and per-user recent splits). The key is SplitMix64 of the pair and the
    seed: the same pair gets the same key wherever it appears, whatever the row order.

    Used by mtrec_study.prepare.
    """
    with np.errstate(over="ignore"):
        z = (np.asarray(users, "uint64") << np.uint64(32)) ^ np.asarray(items, "uint64")
        z = z + np.uint64(0x9E3779B97F4A7C15) * np.uint64(seed + 1)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def time_order(inter: pd.DataFrame, seed: int = TIE_SEED) -> pd.DataFrame:
    """``inter`` sorted by user, then time; ratings with the same timestamp in :func:`tie_break` order.

    The one time order of the study: cleaning, the per-user splits and the behaviour text use it.

    Used by mtrec_study.prepare, mtrec_study.models.retrieval, mtrec_study.streaming, mtrec_study.text.
    """
    key = tie_break(inter["user_id"].to_numpy(), inter["item_id"].to_numpy(), seed)
    return (inter.assign(_tie=key).sort_values(["user_id", "timestamp", "_tie"], kind="stable")
            .drop(columns="_tie"))


# --------------------------------------------------------------------------- cleaning
def clean(data: RatingsData, rating_range: tuple[float, float] | None = None) -> tuple[RatingsData, pd.DataFrame]:
    """Drop what cannot be used and report each drop with its reason.

    Steps: rows with missing values; ratings outside ``rating_range``; ids missing from the user
    or item table; repeated (user, item) pairs (the latest rating is kept). Implicit data
    (``data.implicit``) has no ratings, so its empty rating column is neither missing nor out of
    range.

    Args:
        data: The canonical tables.
        rating_range: The valid ratings; default ``data.rating_range`` (1 to 5 for ml-100k and
            ml-1m, 0.5 to 5 for the half-star MovieLens sets).

    Returns:
        The cleaned data and a log table with columns ``step, dropped, reason``.

    Introduced in notebooks/02_feature_extraction.ipynb.
    """
    inter = data.interactions
    rows = []

    def drop(mask: np.ndarray, step: str, reason: str) -> None:
        nonlocal inter
        n = int(mask.sum())
        rows.append({"step": step, "dropped": n, "reason": reason})
        inter = inter.loc[~mask]

    checked = inter.drop(columns="rating") if data.implicit else inter
    drop(checked.isna().any(axis=1).to_numpy(), "missing values", "a column of the row is empty")
    lo, hi = rating_range if rating_range is not None else data.rating_range
    if data.implicit:
        drop(np.zeros(len(inter), bool), "out-of-range ratings", "implicit data: no ratings to check")
    else:
        drop(~inter["rating"].between(lo, hi).to_numpy(), "out-of-range ratings", f"rating outside [{lo:g}, {hi:g}]")
    drop(~inter["user_id"].isin(data.users.index).to_numpy(), "unknown users", "user_id not in the user table")
    drop(~inter["item_id"].isin(data.items.index).to_numpy(), "unknown items", "item_id not in the item table")
    inter = inter.sort_values(["user_id", "item_id", "timestamp"], kind="stable")
    drop(inter.duplicated(["user_id", "item_id"], keep="last").to_numpy(), "duplicates",
         "the same (user, item) rated again; the latest is kept")
    inter = time_order(inter).reset_index(drop=True)
    log = pd.DataFrame(rows, columns=["step", "dropped", "reason"])
    cleaned = dataclasses.replace(data, interactions=inter, notes=list(data.notes))
    return cleaned, log


# --------------------------------------------------------------------------- splits
def _user_order(inter: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per row: its position in its user's time order, and its user's count."""
    order = time_order(inter)
    pos = order.groupby("user_id").cumcount().reindex(inter.index).to_numpy()
    n = inter.groupby("user_id")["user_id"].transform("size").to_numpy()
    return pos, n


def per_user_recent_split(inter: pd.DataFrame, valid_frac: float = 0.1, test_frac: float = 0.1) -> dict[str, np.ndarray]:
    """Per-user recent holdout (split key ``"per_user_recent"``): each user's last ``test_frac`` goes to
    test, the part before that (``valid_frac``) to validation, the rest to training. Users with
    fewer than 3 ratings stay entirely in training. Ties in time break by :func:`tie_break`, not
    by item id. It is not a cut in calendar time: other users' training ratings can be later than
    a test rating (:func:`global_time_split` is).

    Returns:
        Row positions (into ``inter``) for ``train``, ``valid`` and ``test``.

    Used by mtrec_study.prepare.
    """
    _check_fracs(valid_frac, test_frac)
    pos, n = _user_order(inter)
    n_test = np.where(n >= 3, np.maximum(1, np.floor(n * test_frac)), 0)
    n_valid = np.where(n >= 3, np.maximum(1 if valid_frac > 0 else 0, np.floor(n * valid_frac)), 0)
    from_end = n - 1 - pos
    test = from_end < n_test
    valid = ~test & (from_end < n_test + n_valid)
    return _as_split(test, valid)


def global_time_split(inter: pd.DataFrame, valid_frac: float = 0.1, test_frac: float = 0.1) -> dict[str, np.ndarray]:
    """Global time cutoffs: training before ``t1``, validation from ``t1`` to ``t2``, test from ``t2`` on.

    ``t2`` is the timestamp at which the last ``test_frac`` of all ratings begins and ``t1`` the one
    where the ``valid_frac`` before them begins, so every training rating is older than every
    validation rating, which is older than every test rating: the model predicts the future, as
    a deployed recommender does. The ``per_user_recent`` split holds out each user's own recent
    ratings, so for most test rows some training rows of *other* users are later in time.
    Ratings in the cutoff's own second go to the later part.

    Used by mtrec_study.prepare.
    """
    _check_fracs(valid_frac, test_frac)
    ts = inter["timestamp"].to_numpy()
    order = np.sort(ts, kind="stable")
    n = ts.size
    t2 = order[min(n - 1, int(np.floor(n * (1 - test_frac))))]
    t1 = order[min(n - 1, int(np.floor(n * (1 - test_frac - valid_frac))))]
    test = ts >= t2
    valid = ~test & (ts >= t1)
    return _as_split(test, valid)


def ratio_counts(n: np.ndarray, valid_frac: float, test_frac: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-user validation and test counts of a ratio split, exactly as RecBole 1.2.1 computes them.

    RecBole's ``split_by_ratio`` truncates (``int(n * frac)``), then, from the last part backwards,
    gives a part one row when its share is below one row but above zero, as long as training keeps
    more than one row. So a user with 5 ratings at 80/10/10 gets 3/1/1, one with 2 ratings 1/0/1.

    Used by mtrec_study.prepare.
    """
    n = np.asarray(n, dtype="int64")
    fracs = np.array([1.0 - valid_frac - test_frac, valid_frac, test_frac])
    fracs = fracs / fracs.sum()
    counts = np.floor(np.outer(n, fracs)).astype("int64")
    counts[:, 0] = n - counts[:, 1:].sum(axis=1)
    for part in (2, 1):  # test first, then validation, as RecBole walks them (cnt[-1], cnt[-2])
        share = fracs[part] * n
        can = counts[:, 0] > 1
        bump = can & (share > 0) & (share < 1)
        counts[bump, part] += 1
        counts[bump, 0] -= 1
        if not can.any():
            break
    return counts[:, 1], counts[:, 2]


def random_split(inter: pd.DataFrame, valid_frac: float = 0.1, test_frac: float = 0.1, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-user random split by ratio (RecBole's ``RS`` with ``group_by: user``).

    Each user's ratings are shuffled (seeded) and cut into test, validation and training by
    :func:`ratio_counts`, which truncates as RecBole does.

    Used by mtrec_study.prepare.
    """
    _check_fracs(valid_frac, test_frac)
    rng = np.random.default_rng(seed)
    shuffled = pd.Series(rng.random(len(inter)), index=inter.index)
    rank = shuffled.groupby(inter["user_id"]).rank(method="first").to_numpy() - 1
    n = inter.groupby("user_id")["user_id"].transform("size").to_numpy()
    n_valid, n_test = ratio_counts(n, valid_frac, test_frac)
    test = rank < n_test
    valid = ~test & (rank < n_test + n_valid)
    return _as_split(test, valid)


def kfold_split(inter: pd.DataFrame, k: int = 5, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Seeded random k-fold over interactions (scikit-learn ``KFold``, shuffled).

    Each fold's training part holds out a further 10% at random as validation, so early
    stopping and tuning never see the fold's test part.

    Raises:
        ValueError: If ``k`` < 2 or larger than the number of rows.

    Used by mtrec_study.prepare.
    """
    if not isinstance(k, (int, np.integer)) or k < 2:
        raise ValueError(f"k-fold needs k >= 2, got k={k!r}")
    if k > len(inter):
        raise ValueError(f"k={k} is larger than the number of interactions ({len(inter)})")
    folds = []
    rng = np.random.default_rng(seed + 1)
    for train_val, test in KFold(n_splits=k, shuffle=True, random_state=seed).split(np.arange(len(inter))):
        is_valid = rng.random(train_val.size) < 0.1
        folds.append({"train": np.sort(train_val[~is_valid]), "valid": np.sort(train_val[is_valid]),
                      "test": np.sort(test)})
    return folds


def leave_one_out_split(inter: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each user's last interaction is test, the one before it validation (NCF protocol).

    Used by mtrec_study.prepare.
    """
    pos, n = _user_order(inter)
    from_end = n - 1 - pos
    test = (from_end == 0) & (n >= 3)
    valid = (from_end == 1) & (n >= 3)
    return _as_split(test, valid)


def cold_start_split(inter: pd.DataFrame, by: str, frac: float = 0.1, seed: int = 0,
                     valid_frac: float = 0.1, cold_valid_frac: float | None = None) -> dict[str, np.ndarray]:
    """Withhold a share of users (``by='user'``), items (``by='item'``) or both (``by='both'``).

    Every interaction of a withheld user or item goes to test, so test rows have ids that training
    never saw. A second, disjoint group of ``cold_valid_frac`` of the ids (default ``frac / 2``)
    is withheld for *validation*: early stopping and thresholds then see new users and items too,
    not only warm rows. Of the remaining rows, ``valid_frac`` go to validation at random and the
    rest to training. With ``both``, users and items are withheld alike, so one trained model can
    be judged on new users, on new items and on rows where both are new
    (:func:`mtrec_study.evaluation.segment_masks` separates them).

    Raises:
        ValueError: For an unknown ``by``, or shares outside (0, 1) or summing to 1 or more.

    Used by mtrec_study.prepare.
    """
    cols = {"user": ["user_id"], "item": ["item_id"], "both": ["user_id", "item_id"]}.get(by)
    if cols is None:
        raise ValueError(f"cold-start split by {by!r}; valid: 'user', 'item', 'both'")
    cold_valid_frac = frac / 2 if cold_valid_frac is None else cold_valid_frac
    if not 0 < frac < 1 or not 0 <= cold_valid_frac < 1 or frac + cold_valid_frac >= 1:
        raise ValueError(f"cold-start frac must lie in (0, 1) and cold_valid_frac in [0, 1) with a sum below 1, "
                         f"got frac={frac}, cold_valid_frac={cold_valid_frac}")
    rng = np.random.default_rng(seed)
    test = np.zeros(len(inter), bool)
    cold_valid = np.zeros(len(inter), bool)
    for col in cols:
        ids = rng.permutation(np.sort(inter[col].unique()))
        n_test = max(1, int(round(frac * ids.size)))
        n_valid = int(round(cold_valid_frac * ids.size))
        test |= inter[col].isin(ids[:n_test]).to_numpy()
        cold_valid |= inter[col].isin(ids[n_test:n_test + n_valid]).to_numpy()
    valid = ~test & (cold_valid | (rng.random(len(inter)) < valid_frac))
    return _as_split(test, valid)


def _check_fracs(valid_frac: float, test_frac: float) -> None:
    if not (0 <= valid_frac < 1 and 0 < test_frac < 1 and valid_frac + test_frac < 1):
        raise ValueError(f"valid_frac={valid_frac} and test_frac={test_frac} must be in [0, 1) and sum below 1")


def _as_split(test: np.ndarray, valid: np.ndarray) -> dict[str, np.ndarray]:
    train = ~test & ~valid
    return {"train": np.flatnonzero(train), "valid": np.flatnonzero(valid), "test": np.flatnonzero(test)}


# --------------------------------------------------------------------------- negatives
def positive_keys(inter: pd.DataFrame, n_items_key: int) -> np.ndarray:
    """Sorted keys ``user_id * n_items_key + item_id`` of every observed pair.

    Used by mtrec_study.prepare.
    """
    return np.unique(inter["user_id"].to_numpy("int64") * n_items_key + inter["item_id"].to_numpy("int64"))


def sample_negatives(users: np.ndarray, candidates: np.ndarray, pos_keys: np.ndarray, n_items_key: int,
                     rng: np.random.Generator, max_rounds: int = 1000) -> np.ndarray:
    """Draw one non-interacted item per entry of ``users`` (with replacement across entries).

    A drawn item that is a positive of that user (per ``pos_keys``) is redrawn, so a positive
    is never used as a negative.

    Raises:
        ValueError: If some user has interacted with every candidate.

    Used by mtrec_study.prepare, mtrec_study.models.classic, mtrec_study.streaming.
    """
    users = np.asarray(users, dtype="int64")
    items = rng.choice(candidates, size=users.size)
    todo = np.arange(users.size)
    for _ in range(max_rounds):
        keys = users[todo] * n_items_key + items[todo]
        hit = np.isin(keys, pos_keys, assume_unique=False)
        todo = todo[hit]
        if todo.size == 0:
            return items
        items[todo] = rng.choice(candidates, size=todo.size)
    raise ValueError(f"could not sample negatives for users {np.unique(users[todo])[:5].tolist()}: "
                     "they have interacted with (nearly) every candidate item")


def sample_eval_negatives(users: np.ndarray, user_positives: dict[int, np.ndarray], all_items: np.ndarray,
                          n: int, rng: np.random.Generator) -> np.ndarray:
    """For each user, ``n`` distinct items it never interacted with (sampled protocol, NCF: 99).

    Returns:
        Array of shape ``(len(users), n)``.

    Used by mtrec_study.evaluation.ranking.
    """
    out = np.empty((len(users), n), dtype="int64")
    for r, u in enumerate(users):
        pool = np.setdiff1d(all_items, user_positives.get(int(u), ()), assume_unique=True)
        if pool.size < n:
            raise ValueError(f"user {u} has only {pool.size} non-interacted items, fewer than n={n}")
        out[r] = rng.choice(pool, size=n, replace=False)
    return out


# --------------------------------------------------------------------------- task sets
@dataclass
class TaskSet:
    """One split's rows: (user, item) pairs, their features, labels and per-task masks.

    Used by mtrec_study.prepare, mtrec_study.evaluation.predictions, mtrec_study.study.published, mtrec_study.training.trainer.
    """

    pairs: pd.DataFrame  # user_id, item_id, rating (NaN on negatives), observed
    features: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.pairs)

    def targets(self) -> dict[str, np.ndarray]:
        """Labels and masks in one dict, the ``y`` that the trainer's ``fit`` expects."""
        return {**self.labels, **{f"{t}_mask": m for t, m in self.masks.items()}}

    def subset(self, rows: np.ndarray) -> TaskSet:
        """Rows ``rows`` of this set (for example one segment)."""
        rows = np.asarray(rows)
        return TaskSet(self.pairs.iloc[rows].reset_index(drop=True),
                       self.features.subset(rows) if isinstance(self.features, FeatureView)
                       else {k: v[rows] for k, v in self.features.items()},
                       {k: v[rows] for k, v in self.labels.items()},
                       {k: v[rows] for k, v in self.masks.items()})


def make_taskset(positives: pd.DataFrame, builder: FeatureBuilder, neg_ratio: float, pos_keys: np.ndarray,
                 n_items_key: int, candidates: np.ndarray, rng: np.random.Generator,
                 has_ratings: bool = True, tables: FeatureTables | None = None) -> TaskSet:
    """Observed rows plus ``neg_ratio`` sampled negatives per observed row, with features.

    ``has_ratings=False`` (implicit data) masks out every task whose label needs a rating
    (see :func:`mtrec_study.tasks.label_rows`). With ``tables`` (the builder's
    :meth:`~mtrec_study.features.FeatureBuilder.tables`) the features are a
    :class:`~mtrec_study.features.FeatureView` of those tables, not materialised per row.

    Used by mtrec_study.prepare.
    """
    pos = positives[["user_id", "item_id", "rating"]].reset_index(drop=True)
    pos["observed"] = True
    n_neg = int(round(neg_ratio * len(pos)))
    if n_neg:
        neg_users = rng.choice(pos["user_id"].to_numpy(), size=n_neg)
        neg_items = sample_negatives(neg_users, candidates, pos_keys, n_items_key, rng)
        neg = pd.DataFrame({"user_id": neg_users, "item_id": neg_items, "rating": np.nan, "observed": False})
        # Shuffle once so every batch mixes observed rows and negatives.
        pairs = pd.concat([pos, neg], ignore_index=True).iloc[rng.permutation(len(pos) + n_neg)].reset_index(drop=True)
    else:
        pairs = pos
    # Observed is set by construction, not read off the rating: implicit positives have none.
    labels, masks = label_rows(pairs["rating"].to_numpy("float64"), observed=pairs["observed"].to_numpy(bool),
                               has_ratings=has_ratings)
    users, items = pairs["user_id"].to_numpy(), pairs["item_id"].to_numpy()
    feats = builder.transform(users, items) if tables is None else FeatureView.of_pairs(tables, users, items)
    return TaskSet(pairs=pairs, features=feats, labels=labels, masks=masks)


@dataclass
class PreparedData:
    """The three task sets of one split, the feature spec, and what was fitted on training.

    Used by mtrec_study.prepare, mtrec_study.evaluation.predictions, mtrec_study.evaluation.ranking, mtrec_study.models.retrieval, mtrec_study.study.experiment, mtrec_study.study.peers, mtrec_study.study.published, mtrec_study.study.tuning, mtrec_study.training.trainer.
    """

    data: RatingsData
    split: str
    train: TaskSet
    valid: TaskSet
    test: TaskSet
    builder: FeatureBuilder
    cleaning_log: pd.DataFrame
    indices: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def spec(self) -> FeatureSpec:
        return self.builder.spec

    def interactions(self, part: str) -> pd.DataFrame:
        """The observed interactions of ``train``, ``valid`` or ``test``."""
        return self.data.interactions.iloc[self.indices[part]]


def split_indices(inter: pd.DataFrame, split: str, seed: int = 0, valid_frac: float = 0.1,
                  test_frac: float = 0.1, fold: int = 0, k: int = 5, cold_frac: float = 0.1) -> dict[str, np.ndarray]:
    """Dispatch to one of the split functions by name (see :data:`SPLITS`).

    Introduced in notebooks/01_data_preprocessing.ipynb.
    """
    if split == "per_user_recent":
        return per_user_recent_split(inter, valid_frac, test_frac)
    if split == "global_time":
        return global_time_split(inter, valid_frac, test_frac)
    if split == "random":
        return random_split(inter, valid_frac, test_frac, seed)
    if split == "kfold":
        folds = kfold_split(inter, k, seed)
        if not 0 <= fold < k:
            raise ValueError(f"fold must lie in 0..{k - 1}, got {fold}")
        return folds[fold]
    if split == "loo":
        return leave_one_out_split(inter)
    if split in ("cold_user", "cold_item", "cold_both"):
        return cold_start_split(inter, split.split("_")[1], cold_frac, seed, valid_frac)
    raise unknown_split(split, SPLITS)


def unknown_split(split: str, valid) -> ValueError:
    """The error for a split name that is not one of ``valid``; a renamed one names its new name.

    Used by mtrec_study.prepare, mtrec_study.study.published.
    """
    if split in RENAMED_SPLITS:
        return ValueError(f"split {split!r} is now called {RENAMED_SPLITS[split]!r}: it holds out each user's own "
                          f"recent ratings, which is not a cut in time ('global_time' is one); valid: {', '.join(valid)}")
    return ValueError(f"unknown split {split!r}; valid: {', '.join(valid)}")


def split_profile(inter: pd.DataFrame, idx: dict[str, np.ndarray]) -> dict[str, float]:
    """Three facts that say what a split's test measures: how much future training sees, how many test users and items are new.

    * ``later training share``: for each test rating, the share of training ratings whose
      timestamp is later than its own, averaged over the test ratings (0 for a global time
      cutoff; about half for a random split).
    * ``new-user test share``, ``new-item test share``: the share of test ratings whose user,
      or item, has no training rating (those rows test cold start, whatever the split is called).

    Args:
        inter: The interactions the split indexes (``user_id``, ``item_id``, ``timestamp``).
        idx: :func:`split_indices`' positions per part (``train`` and ``test`` are read).

    Raises:
        ValueError: If ``idx`` lacks a ``train`` or ``test`` part, or either is empty.

    Introduced in notebooks/01_data_preprocessing.ipynb.
    """
    missing = [p for p in ("train", "test") if p not in idx or len(idx[p]) == 0]
    if missing:
        raise ValueError(f"split_profile needs non-empty train and test parts; empty or missing: {missing}")
    train, test = inter.iloc[idx["train"]], inter.iloc[idx["test"]]
    train_t = np.sort(train["timestamp"].to_numpy())
    later = 1.0 - np.searchsorted(train_t, test["timestamp"].to_numpy(), side="right") / train_t.size
    new = {col: ~np.isin(test[col].to_numpy(), train[col].to_numpy()) for col in ("user_id", "item_id")}
    return {"later training share": float(later.mean()), "new-user test share": float(new["user_id"].mean()),
            "new-item test share": float(new["item_id"].mean())}


def prepare_tasks(data: RatingsData, split: str = "per_user_recent", seed: int = 0, neg_ratio: float = 1.0,
                  indices: dict[str, np.ndarray] | None = None, lookup: bool = False, **split_kwargs) -> PreparedData:
    """Clean, split and build the three tasks' train/valid/test sets.

    Negatives are sampled for every part with ``neg_ratio`` per observed row. Training negatives
    come only from items with a training interaction and avoid only the user's *training* items,
    so training learns nothing from what validation and test hold back (a cold item is never a
    training negative). Validation and test negatives come from the whole catalogue and avoid
    every observed pair of the user, in any part.

    Args:
        data: Canonical tables (from :func:`mtrec_study.datasets.load_dataset`).
        split: One of :data:`SPLITS`, or ignored when ``indices`` is given.
        seed: Seeds the split (where random) and the negative sampling.
        neg_ratio: Sampled negatives per observed row (>= 0).
        indices: Precomputed row positions (into the cleaned interactions) for the three parts.
        lookup: Keep each row as two table rows (:class:`~mtrec_study.features.FeatureView`)
            instead of materialising its features: memory then grows with users + items, not
            with rows × feature width, and :func:`mtrec_study.training.train` gathers each
            batch's features in a ``tf.data`` pipeline. The rows, labels and negatives are the
            same as without it.
        **split_kwargs: Passed to :func:`split_indices`.

    Introduced in notebooks/01_data_preprocessing.ipynb.
    """
    if neg_ratio < 0:
        raise ValueError(f"neg_ratio must be >= 0, got {neg_ratio}")
    cleaned, log = clean(data)
    inter = cleaned.interactions
    idx = indices if indices is not None else split_indices(inter, split, seed=seed, **split_kwargs)
    train = inter.iloc[idx["train"]]
    builder = FeatureBuilder(cleaned.users, cleaned.items, user_categorical=cleaned.user_categorical,
                             item_categorical=cleaned.item_categorical, genres=cleaned.genres).fit(train)
    has_ratings = not cleaned.implicit
    n_items_key = int(cleaned.items.index.max()) + 1
    rng = np.random.default_rng(seed + 7)
    tables = builder.tables() if lookup else None
    # Training negatives: only items with a training interaction, never one of the user's training
    # items. What validation or test hold back stays unknown to training: a test positive can be
    # drawn as a training negative, as in any real log, and a withheld (cold) item never is.
    train_keys = positive_keys(train, n_items_key)
    train_items = np.unique(train["item_id"].to_numpy("int64"))
    sets = {"train": make_taskset(train, builder, neg_ratio, train_keys, n_items_key, train_items, rng, has_ratings,
                                  tables)}
    # Evaluation negatives: any catalogue item that is none of the user's observed pairs in any part.
    keys = positive_keys(inter, n_items_key)
    candidates = cleaned.items.index.to_numpy("int64")
    sets.update({part: make_taskset(inter.iloc[idx[part]], builder, neg_ratio, keys, n_items_key, candidates, rng,
                                    has_ratings, tables) for part in ("valid", "test")})
    return PreparedData(data=cleaned, split=split if indices is None else "custom", builder=builder,
                        cleaning_log=log, indices=idx, **sets)


def refit_split(prepared: PreparedData, seed: int = 0, neg_ratio: float = 1.0) -> PreparedData:
    """The same split with its validation part moved into training: the data of the final fit.

    After model selection on validation, the chosen model is fitted again on training +
    validation for the epoch count chosen there (``train(..., patience=None)``), as the
    Surprise peers and NCF's protocol train on everything but the test rows. Everything fitted on
    training is fitted again on the larger part: the feature statistics, the id vocabulary and the
    two-tower network's history, which therefore holds each user's validation items too. The test
    positives are the same rows; the sampled negatives of every part are drawn again (``seed``,
    ``neg_ratio``: as the split was made). The validation part is empty.

    Raises:
        ValueError: If the split has no validation rows to move (nothing would change).

    Used by mtrec_study.study.published.
    """
    valid = prepared.indices.get("valid")
    if valid is None or len(valid) == 0:
        raise ValueError(f"split {prepared.split!r} has no validation rows: a refit on training + validation "
                         f"would be the same fit")
    idx = {"train": np.sort(np.concatenate([prepared.indices["train"], valid])),
           "valid": np.array([], dtype=np.asarray(valid).dtype), "test": prepared.indices["test"]}
    refit = prepare_tasks(prepared.data, seed=seed, neg_ratio=neg_ratio, indices=idx,
                          lookup=isinstance(prepared.train.features, FeatureView))
    return dataclasses.replace(refit, split=f"{prepared.split} (refit on train + valid)")


def task_summary(prepared: PreparedData) -> pd.DataFrame:
    """Per part and task: labelled rows and the positive rate (binary) or mean (regression).

    Introduced in notebooks/01_data_preprocessing.ipynb.
    """
    rows = []
    for part in ("train", "valid", "test"):
        ts: TaskSet = getattr(prepared, part)
        for task in TASKS:
            m = ts.masks[task] > 0
            rows.append({"part": part, "task": task, "labelled": int(m.sum()),
                         "mean_label": float(ts.labels[task][m].mean()) if m.any() else float("nan")})
    return pd.DataFrame(rows)
