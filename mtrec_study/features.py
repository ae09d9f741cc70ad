"""Feature spec and feature building: the one place where tables become model inputs.

:class:`FeatureBuilder` is *fitted on the training interactions only* (vocabularies, counts,
normalisation), then turns any (user, item) pairs into a dict of NumPy arrays. Users and items
unseen in training map to index 0, so cold-start rows are scored from side features alone.
:class:`FeatureSpec` describes those arrays; models are built from a spec and never see a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from mtrec_study.config import GENRES

AGE_EDGES = (18, 25, 35, 45, 50, 56)  # ml-1m's buckets; ml-100k's exact ages fall into them
YEAR_EDGES = (1940, 1950, 1960, 1970, 1980, 1990)  # decades; 0 is reserved for "unknown year"


def id_positions(ids: np.ndarray, start: int = 0) -> pd.Series:
    """``id -> position`` (counting from ``start``) for an array of unique ids: a lookup table
    whose ``reindex`` turns ids into row or column positions (unknown ids become NaN).

    Used by mtrec_study.features, mtrec_study.evaluation.ranking, mtrec_study.models.classic.
    """
    ids = np.asarray(ids)
    return pd.Series(np.arange(start, start + ids.size), index=ids)


def lookup_positions(table: pd.Series, ids: np.ndarray, what: str = "ids") -> np.ndarray:
    """Positions of ``ids`` in an :func:`id_positions` table.

    Raises:
        ValueError: Naming up to five ids that the table does not hold.

    Used by mtrec_study.evaluation.ranking, mtrec_study.models.classic.
    """
    ids = np.asarray(ids)
    pos = table.reindex(ids).to_numpy()
    bad = np.isnan(pos)
    if bad.any():
        raise ValueError(f"{what} {ids[bad][:5].tolist()} are not among the {len(table)} known ones")
    return pos.astype("int64")



def _rows_of(table: pd.DataFrame, ids: np.ndarray) -> np.ndarray:
    """``table.reindex(ids).fillna(0.0)`` as float32, by one NumPy gather (pandas' reindex of wide
    tables cost seconds per split): an id the table lacks, and a missing value, give 0."""
    values = table.to_numpy("float32")
    padded = np.vstack([np.where(np.isnan(values), np.float32(0.0), values), np.zeros((1, values.shape[1]), "float32")])
    return padded[table.index.get_indexer(ids)]  # -1 (not in the table) is the zero row


@dataclass
class FeatureSpec:
    """What a model's inputs are: names, sizes and which side (user or item) each belongs to.

    Attributes:
        categorical: Name -> vocabulary size (index 0 is "unknown / unseen").
        multi_hot: Name -> width.
        dense: Names of scalar float features.
        vectors: Name -> width of precomputed vectors (for example text embeddings).
        user_side / item_side: Which names describe the user and which the item.

    Used by mtrec_study.features, mtrec_study.models.layers, mtrec_study.models.retrieval, mtrec_study.models.zoo, mtrec_study.prepare, mtrec_study.streaming.
    """

    categorical: dict[str, int]
    multi_hot: dict[str, int]
    dense: list[str]
    vectors: dict[str, int] = field(default_factory=dict)
    user_side: list[str] = field(default_factory=list)
    item_side: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [*self.categorical, *self.multi_hot, *self.dense, *self.vectors]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FeatureSpec:
        return cls(**d)

    def with_vectors(self, vectors: dict[str, int], side: dict[str, str]) -> FeatureSpec:
        """Return a copy with precomputed vector inputs added (``side``: name -> 'user'|'item')."""
        spec = FeatureSpec.from_dict(self.to_dict())
        for name, dim in vectors.items():
            spec.vectors[name] = int(dim)
            (spec.user_side if side[name] == "user" else spec.item_side).append(name)
        return spec

    def validate(self, features: dict[str, np.ndarray]) -> int:
        """Check that ``features`` matches the spec; return the number of rows.

        Raises:
            ValueError: Naming each missing or extra column, or a wrong width.

        Introduced in notebooks/02_feature_extraction.ipynb.
        """
        missing = [n for n in self.names if n not in features]
        extra = [n for n in features if n not in self.names]
        if missing or extra:
            raise ValueError(f"features do not match the feature spec: missing columns {missing}, "
                             f"extra columns {extra}; the spec expects {self.names}")
        widths = {**self.multi_hot, **self.vectors}
        rows = {len(v) for v in features.values()}
        if len(rows) != 1:
            raise ValueError(f"feature columns have different lengths: { {k: len(v) for k, v in features.items()} }")
        for name, width in widths.items():
            got = features[name].shape[1] if features[name].ndim == 2 else None
            if got != width:
                raise ValueError(f"feature {name!r} should have width {width}, got shape {features[name].shape}")
        return rows.pop()


@dataclass
class FeatureTables:
    """The features of every user and every item, one row per id (from :meth:`FeatureBuilder.tables`).

    Attributes:
        user_ids / item_ids: The sorted ids; row ``r`` of a user table describes ``user_ids[r]``.
        user / item: Feature name -> array with one row per id (the spec's user and item side).

    Used by mtrec_study.features, mtrec_study.prepare, mtrec_study.streaming.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    user: dict[str, np.ndarray]
    item: dict[str, np.ndarray]

    def rows(self, side: str, ids: np.ndarray) -> np.ndarray:
        """Table rows (int32) of user or item ``ids``.

        Raises:
            ValueError: Naming up to five ids without a row.
        """
        known = self.user_ids if side == "user" else self.item_ids
        ids = np.asarray(ids, dtype="int64")
        pos = np.minimum(np.searchsorted(known, ids), known.size - 1)
        bad = known[pos] != ids
        if bad.any():
            raise ValueError(f"{side} ids {np.unique(ids[bad])[:5].tolist()} are not "
                             f"in the {side} table ({known.size:,} ids, {known[0]}..{known[-1]})")
        return pos.astype("int32")

    def lookup(self, user_ids: np.ndarray, item_ids: np.ndarray) -> dict[str, np.ndarray]:
        """The features of (user, item) pairs by two gathers: what :meth:`FeatureBuilder.transform` gives."""
        u, i = self.rows("user", user_ids), self.rows("item", item_ids)
        return {**{n: t[u] for n, t in self.user.items()}, **{n: t[i] for n, t in self.item.items()}}


class FeatureView(Mapping):
    """The features of (user, item) pairs held as two columns of table rows, gathered when read.

    A read-only mapping ``name -> array`` that equals :meth:`FeatureBuilder.transform` of the
    same pairs, but holds only two int32 row numbers per pair: a column is gathered from
    :class:`FeatureTables` when it is read, and dropped when the reader drops it. The trainer
    never reads whole columns of a training view: it gathers batch by batch inside a ``tf.data``
    pipeline (:class:`mtrec_study.streaming.PairSet`).

    Attributes:
        tables: The features of every user and every item.
        user_rows / item_rows: Each pair's row in the user and in the item tables (int32).

    Used by mtrec_study.prepare, mtrec_study.streaming, mtrec_study.study.scaling, mtrec_study.text, mtrec_study.training.trainer.
    """

    def __init__(self, tables: FeatureTables, user_rows: np.ndarray, item_rows: np.ndarray):
        if len(user_rows) != len(item_rows):
            raise ValueError(f"a FeatureView needs one user row per item row, got {len(user_rows):,} and "
                             f"{len(item_rows):,}")
        self.tables, self.user_rows, self.item_rows = tables, np.asarray(user_rows, "int32"), np.asarray(item_rows, "int32")

    @classmethod
    def of_pairs(cls, tables: FeatureTables, user_ids: np.ndarray, item_ids: np.ndarray) -> FeatureView:
        """The view of pairs given by ids (:meth:`FeatureTables.rows` finds their rows)."""
        return cls(tables, tables.rows("user", user_ids), tables.rows("item", item_ids))

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self.tables.user:
            return self.tables.user[name][self.user_rows]
        if name in self.tables.item:
            return self.tables.item[name][self.item_rows]
        raise KeyError(f"no feature {name!r}; the tables hold {', '.join([*self.tables.user, *self.tables.item])}")

    def __iter__(self):
        return iter([*self.tables.user, *self.tables.item])

    def __len__(self) -> int:
        return len(self.tables.user) + len(self.tables.item)

    @property
    def rows(self) -> int:
        """Pairs in the view."""
        return len(self.user_rows)

    def subset(self, rows: np.ndarray) -> FeatureView:
        """The view of pairs ``rows`` (no column is gathered)."""
        return FeatureView(self.tables, self.user_rows[rows], self.item_rows[rows])

    def head(self, n: int = 1) -> dict[str, np.ndarray]:
        """The first ``n`` pairs' features, gathered (for example to check them against a spec)."""
        return dict(self.subset(np.arange(min(n, self.rows))))


class FeatureBuilder:
    """Fit vocabularies and statistics on training interactions, then build feature arrays.

    The features follow the columns the tables have: ids and interaction counts always; age
    (bucket and z-score) when the user table has a numeric ``age``; the year bucket when the item
    table has a numeric ``year``; one categorical feature per column of ``user_categorical`` and
    ``item_categorical``; the ``genres`` multi-hot when ``genres`` names any columns. The defaults
    are MovieLens': gender and occupation (zip is left out), year, age and the 19 genres.

    Args:
        users: The canonical user table (index ``user_id``).
        items: The canonical item table (index ``item_id``).
        user_categorical: User columns that become categorical features of the same name.
        item_categorical: Item columns that become categorical features of the same name.
        genres: The items' 0/1 genre columns (``RatingsData.genres``); empty for none.

    Raises:
        ValueError: If a named column is missing from its table, or two features would share a name.

    Introduced in notebooks/02_feature_extraction.ipynb.
    """

    def __init__(self, users: pd.DataFrame, items: pd.DataFrame,
                 user_categorical: tuple[str, ...] = ("gender", "occupation"),
                 item_categorical: tuple[str, ...] = (), genres: tuple[str, ...] = GENRES):
        self.users = users
        self.items = items
        self.user_categorical, self.item_categorical = tuple(user_categorical), tuple(item_categorical)
        self.genres = tuple(genres)
        for what, table, cols in (("user", users, self.user_categorical), ("item", items, self.item_categorical),
                                  ("item", items, self.genres)):
            missing = [c for c in cols if c not in table.columns]
            if missing:
                raise ValueError(f"the {what} table has no column {missing[0]!r} (it has {list(table.columns)})")
        self.has_age = "age" in users.columns and "age" not in self.user_categorical
        self.has_year = "year" in items.columns and "year" not in self.item_categorical
        own = {"user_idx", "item_idx", "age_bucket", "year_bucket", "genres", "user_log_count", "item_log_count",
               "age_z"}
        names = [*self.user_categorical, *self.item_categorical]
        clash = sorted({n for n in names if n in own or names.count(n) > 1})
        if clash:
            raise ValueError(f"side column {clash[0]!r} would name two features; rename it (the builder's own "
                             f"features are {', '.join(sorted(own))}, and user and item columns must differ)")
        self.fitted = False
        self.vectors: dict[str, tuple[str, pd.DataFrame]] = {}

    def with_vectors(self, vectors: dict[str, tuple[str, pd.DataFrame]]) -> FeatureBuilder:
        """A copy that also emits precomputed vectors (for example text embeddings).

        Args:
            vectors: ``name -> (side, table)``, ``side`` is ``"user"`` or ``"item"`` and
                ``table`` is indexed by user or item id. Ids missing from the table get zeros.

        Introduced in notebooks/02_feature_extraction.ipynb.
        """
        import copy

        for name, (side, table) in vectors.items():
            if side not in ("user", "item"):
                raise ValueError(f"vector feature {name!r}: side must be 'user' or 'item', got {side!r}")
            if table.ndim != 2 or table.shape[1] < 1:
                raise ValueError(f"vector feature {name!r}: need a 2-D table of vectors, got shape {table.shape}")
            if not table.index.is_unique:
                dup = table.index[table.index.duplicated()].unique()[:5].tolist()
                raise ValueError(f"vector feature {name!r}: one row per {side} id, but ids {dup} repeat")
        out = copy.copy(self)
        out.vectors = {**self.vectors, **vectors}
        return out

    def vector_features(self, user_ids: np.ndarray, item_ids: np.ndarray) -> dict[str, np.ndarray]:
        """Only the precomputed vector columns for (user, item) pairs.

        Introduced in notebooks/02_feature_extraction.ipynb.
        """
        ids = {"user": np.asarray(user_ids), "item": np.asarray(item_ids)}
        return {name: _rows_of(table, ids[side]) for name, (side, table) in self.vectors.items()}

    def fit(self, train: pd.DataFrame) -> FeatureBuilder:
        """Learn everything from ``train`` (interactions) and nothing from any other split."""
        return self.fit_counts(train.groupby("user_id").size(), train.groupby("item_id").size())

    def fit_counts(self, user_counts: pd.Series, item_counts: pd.Series) -> FeatureBuilder:
        """:meth:`fit` from the training interactions per user and per item (id -> count), for
        data too large to hold as one table (see :mod:`mtrec_study.streaming`).

        Raises:
            ValueError: If an id repeats or a count is below 1.

        Used by mtrec_study.features, mtrec_study.streaming.
        """
        for what, counts in (("user", user_counts), ("item", item_counts)):
            repeated = counts.index[counts.index.duplicated()]
            low = counts[counts < 1]
            if len(repeated) or len(low):
                raise ValueError(f"{what} counts need one positive count per {what} id: " + (
                    f"id {repeated[0]} repeats" if len(repeated) else f"id {low.index[0]} has count {low.iloc[0]}"))
        user_counts, item_counts = user_counts.sort_index(), item_counts.sort_index()
        seen_users = user_counts.index.to_numpy()
        seen_items = item_counts.index.to_numpy()
        self.user_index = id_positions(seen_users, start=1)  # 0 is "unknown / unseen"
        self.item_index = id_positions(seen_items, start=1)
        train_users = self.users.loc[self.users.index.intersection(seen_users)]
        train_items = self.items.loc[self.items.index.intersection(seen_items)]
        # Code 0 is "unknown": a value first seen outside training, or a missing one.
        self.vocabularies = {
            **{c: {v: i + 1 for i, v in enumerate(sorted(train_users[c].dropna().unique()))}
               for c in self.user_categorical},
            **{c: {v: i + 1 for i, v in enumerate(sorted(train_items[c].dropna().unique()))}
               for c in self.item_categorical}}
        self.user_counts, self.item_counts = user_counts, item_counts
        if self.has_age:
            self.age_mean = float(train_users["age"].mean())
            self.age_std = float(train_users["age"].std(ddof=0) or 1.0)
        self.fitted = True
        return self

    @property
    def occupations(self) -> dict:
        """The occupation vocabulary (MovieLens; empty when the users have no such column)."""
        return self.vocabularies.get("occupation", {})

    @property
    def genders(self) -> dict:
        """The gender vocabulary (MovieLens; empty when the users have no such column)."""
        return self.vocabularies.get("gender", {})

    @property
    def spec(self) -> FeatureSpec:
        """The :class:`FeatureSpec` of what :meth:`transform` returns."""
        self._check()
        age = ["age_z"] if self.has_age else []
        categorical = {"user_idx": len(self.user_index) + 1, "item_idx": len(self.item_index) + 1}
        if self.has_age:
            categorical["age_bucket"] = len(AGE_EDGES) + 1
        categorical.update({c: len(self.vocabularies[c]) + 1 for c in self.user_categorical})
        if self.has_year:
            categorical["year_bucket"] = len(YEAR_EDGES) + 2
        categorical.update({c: len(self.vocabularies[c]) + 1 for c in self.item_categorical})
        spec = FeatureSpec(
            categorical=categorical,
            multi_hot={"genres": len(self.genres)} if self.genres else {},
            dense=["user_log_count", "item_log_count", *age],
            user_side=["user_idx", *(["age_bucket"] if self.has_age else []), *self.user_categorical,
                       "user_log_count", *age],
            item_side=["item_idx", *(["year_bucket"] if self.has_year else []), *self.item_categorical,
                       *(["genres"] if self.genres else []), "item_log_count"],
        )
        if self.vectors:
            spec = spec.with_vectors({n: t.shape[1] for n, (_, t) in self.vectors.items()},
                                     {n: side for n, (side, _) in self.vectors.items()})
        return spec

    def tables(self) -> FeatureTables:
        """Every feature as a table per side: one row per user and per item of the side tables.

        A pair's features are then two lookups (:meth:`FeatureTables.lookup`, or a ``tf.data``
        map in :mod:`mtrec_study.streaming`), so memory grows with users + items, not with
        rows × feature width. The lookups equal :meth:`transform` exactly.

        Used by mtrec_study.streaming.
        """
        self._check()
        spec = self.spec
        user_ids = np.sort(self.users.index.to_numpy("int64"))
        item_ids = np.sort(self.items.index.to_numpy("int64"))
        # Every feature belongs to one side, so the other side's id does not matter here; each side
        # is built without the other side's vectors (users x item-text width would be wasted).
        import copy

        def one_side(side: str) -> FeatureBuilder:
            out = copy.copy(self)
            out.vectors = {n: v for n, v in self.vectors.items() if v[0] == side}
            return out

        by_user = one_side("user").transform(user_ids, np.full(user_ids.size, item_ids[0]))
        by_item = one_side("item").transform(np.full(item_ids.size, user_ids[0]), item_ids)
        return FeatureTables(user_ids, item_ids, {n: by_user[n] for n in spec.user_side},
                             {n: by_item[n] for n in spec.item_side})

    def _check(self) -> None:
        if not self.fitted:
            raise RuntimeError("FeatureBuilder.fit(train) must be called before transform()")

    def transform(self, user_ids: np.ndarray, item_ids: np.ndarray) -> dict[str, np.ndarray]:
        """Build the feature arrays for (user, item) pairs.

        Unseen ids map to 0; their counts are 0. Users or items absent from the side tables
        raise, since their side features are undefined.
        """
        self._check()
        user_ids = np.asarray(user_ids, dtype="int64")
        item_ids = np.asarray(item_ids, dtype="int64")
        missing_u = np.setdiff1d(np.unique(user_ids), self.users.index.to_numpy())
        missing_i = np.setdiff1d(np.unique(item_ids), self.items.index.to_numpy())
        if missing_u.size or missing_i.size:
            raise ValueError(f"ids without side features: users {missing_u[:5].tolist()}, items {missing_i[:5].tolist()}")
        u = self.users.loc[user_ids]
        it = self.items.loc[item_ids]
        ucount = self.user_counts.reindex(user_ids).fillna(0).to_numpy()
        icount = self.item_counts.reindex(item_ids).fillna(0).to_numpy()
        out = {**self.vector_features(user_ids, item_ids),
               "user_idx": self.user_index.reindex(user_ids).fillna(0).to_numpy("int32"),
               "item_idx": self.item_index.reindex(item_ids).fillna(0).to_numpy("int32")}
        if self.has_age:
            age = u["age"].to_numpy(dtype="float64")
            out["age_bucket"] = np.digitize(age, AGE_EDGES).astype("int32")
        for c in self.user_categorical:
            out[c] = u[c].map(self.vocabularies[c]).fillna(0).to_numpy("int32")
        if self.has_year:
            year = it["year"].to_numpy(dtype="float64", na_value=np.nan)
            year_bucket = np.where(np.isnan(year), 0, np.digitize(np.nan_to_num(year), YEAR_EDGES) + 1)
            out["year_bucket"] = year_bucket.astype("int32")
        for c in self.item_categorical:
            out[c] = it[c].map(self.vocabularies[c]).fillna(0).to_numpy("int32")
        if self.genres:
            out["genres"] = it[list(self.genres)].to_numpy("float32")
        out["user_log_count"] = np.log1p(ucount).astype("float32")
        out["item_log_count"] = np.log1p(icount).astype("float32")
        if self.has_age:
            out["age_z"] = ((age - self.age_mean) / self.age_std).astype("float32")
        return out


def fitted_statistics(builder: FeatureBuilder) -> dict[str, object]:
    """Everything :meth:`FeatureBuilder.fit` learnt from data, by name.

    The vocabularies (user, item, and each categorical side column such as occupation and
    gender), the interaction counts and the age normalisation (when users have an age): the
    statistics that must come from training rows alone.

    Args:
        builder: A fitted :class:`FeatureBuilder`.

    Returns:
        ``name -> pandas.Series or float``.

    Introduced in notebooks/02_feature_extraction.ipynb.
    """
    builder._check()
    # MovieLens' order (occupation before gender) first, then any other side columns.
    order = sorted(builder.vocabularies, key=lambda c: {"occupation": 0, "gender": 1}.get(c, 2))
    stats = {"user vocabulary": builder.user_index, "item vocabulary": builder.item_index,
             **{f"{c} vocabulary": pd.Series(builder.vocabularies[c], dtype="int64") for c in order},
             "user counts": builder.user_counts, "item counts": builder.item_counts}
    if builder.has_age:
        stats.update({"age mean": builder.age_mean, "age sd": builder.age_std})
    return stats


def perturb_rows(interactions: pd.DataFrame, rows: np.ndarray, users: pd.DataFrame, items: pd.DataFrame,
                 seed: int = 0) -> pd.DataFrame:
    """A copy of ``interactions`` whose ``rows`` get random users, items, timestamps and ratings.

    Users and items are drawn from the side tables (so every id stays valid), timestamps
    uniformly over the table's whole time range and ratings from 1–5. The other rows are
    untouched. Used to show that nothing fitted on training rows reads the test rows.

    Args:
        interactions: ``user_id, item_id, rating, timestamp`` rows.
        rows: Row positions to change.
        users: The user table (index ``user_id``).
        items: The item table (index ``item_id``).
        seed: Seeds the draws.

    Returns:
        The changed copy.

    Introduced in notebooks/02_feature_extraction.ipynb.
    """
    rows = np.asarray(rows, dtype="int64")
    rng = np.random.default_rng(seed)
    out = interactions.copy()
    ts = out["timestamp"]
    new = {"user_id": rng.choice(users.index.to_numpy(), rows.size),
           "item_id": rng.choice(items.index.to_numpy(), rows.size),
           "rating": rng.integers(1, 6, rows.size),
           "timestamp": rng.integers(int(ts.min()), int(ts.max()) + 1, rows.size)}
    for col, values in new.items():
        out.iloc[rows, out.columns.get_loc(col)] = values.astype(out[col].dtype)
    return out


def compare_statistics(before: dict[str, object], after: dict[str, object]) -> pd.DataFrame:
    """Which fitted statistics moved between two fits, and how much.

    Args:
        before, after: ``name -> pandas.Series or float`` (for example from
            :func:`fitted_statistics`), with the same names.

    Returns:
        One row per statistic: ``unchanged`` (exact equality) and ``entries changed`` (for a
        Series, the entries added, removed or with another value; for a number, 0 or 1).

    Raises:
        ValueError: If the two dicts name different statistics.

    Introduced in notebooks/02_feature_extraction.ipynb.
    """
    if set(before) != set(after):
        raise ValueError(f"statistics differ in name: {sorted(set(before) ^ set(after))}")
    rows = []
    for name, a in before.items():
        b = after[name]
        if isinstance(a, pd.Series):
            keys = a.index.union(b.index)
            changed = int((~a.reindex(keys).eq(b.reindex(keys))).sum())
        else:
            changed = int(a != b)
        rows.append({"statistic": name, "unchanged": changed == 0, "entries changed": changed})
    return pd.DataFrame(rows).set_index("statistic")
