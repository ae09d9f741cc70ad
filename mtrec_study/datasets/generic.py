"""The reader's own data: a folder of plain tables, parsed into the canonical :class:`RatingsData`.

The folder holds:

* ``interactions.csv`` or ``interactions.parquet`` (required): ``user_id, item_id, timestamp``
  and optionally ``rating``. Without ``rating`` the data is *implicit*: every row is an observed
  interaction, and the tasks whose labels need a rating (interest, behaviour) are masked out.
  ``timestamp`` is an integer Unix time in seconds or an ISO 8601 date-time;
* ``users.csv`` or ``users.parquet`` (optional): ``user_id`` and any categorical columns;
* ``items.csv`` or ``items.parquet`` (optional): ``item_id``, ``title`` or ``text`` (for the text
  encoder), ``genres`` as a ``|``-separated string (becomes 0/1 genre columns) and any other
  categorical columns.

Ids that are all plain non-negative integers are kept; otherwise (strings, leading zeros, huge
numbers) they are mapped to ``1..n`` in sorted order and ``RatingsData.id_maps`` maps them back.
Every error names the file, the column, the first offending row (its line in a CSV file, its
1-based row in a Parquet file) and what is valid.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from mtrec_study.datasets.errors import DataFormatError
from mtrec_study.datasets.movielens import RatingsData, csv_line_of_row

TABLES = ("interactions", "users", "items")
SUFFIXES = (".csv", ".parquet")
# Names the feature builder gives its own features: a side column may not take one of them.
RESERVED_NAMES = ("user_id", "item_id", "user_idx", "item_idx", "age_bucket", "year_bucket", "genres",
                  "user_log_count", "item_log_count", "age_z", "user_text", "item_text", "duplicate_title")
TEXT_COLUMNS = ("title", "text")
_PLAIN_INT = re.compile(r"^(0|[1-9][0-9]{0,8})$")  # below 2**31, no leading zeros


class _Table:
    """One file read as a DataFrame, with the file's own row numbering for messages."""

    def __init__(self, path: Path):
        self.path = path
        self.parquet = path.suffix == ".parquet"
        try:
            if self.parquet:
                self.df = pd.read_parquet(path, engine="pyarrow")
            else:
                self.df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise DataFormatError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
        except (ValueError, OSError, pd.errors.ParserError) as exc:
            raise DataFormatError(f"{path}: cannot be read as {'Parquet' if self.parquet else 'CSV'}: {exc}") from None
        if self.df.empty:
            raise DataFormatError(f"{path}: no data rows")

    def where(self, row: int) -> str:
        """``line N`` (CSV, the header is line 1) or ``row N`` (Parquet, 1-based) of data row ``row``."""
        return f"row {row + 1}" if self.parquet else f"line {csv_line_of_row(self.path, row)}"

    def fail(self, row: int | None, column: str, what: str) -> DataFormatError:
        place = "line 1 (the header)" if row is None and not self.parquet else (
            "the column list" if row is None else self.where(row))
        return DataFormatError(f"{self.path}: {place}: column '{column}' {what}")

    def require(self, columns: tuple[str, ...], valid: str) -> None:
        missing = [c for c in columns if c not in self.df.columns]
        if missing:
            raise self.fail(None, missing[0], f"is missing (found {list(map(str, self.df.columns))}); {valid}")

    def text(self, column: str) -> pd.Series:
        """The column as stripped strings (missing values stay NaN); an empty cell is an error."""
        col = self.df[column]
        missing = col.isna().to_numpy()
        if missing.any():
            raise self.fail(int(np.flatnonzero(missing)[0]), column, "is empty; every row needs a value")
        return col.astype(str).str.strip()


def table_paths(folder: Path) -> dict[str, Path]:
    """The generic layout's files in ``folder``, by table name (only those present).

    Raises:
        DataFormatError: If a table is there both as CSV and as Parquet (which one is meant?).

    Used by mtrec_study.datasets.generic, mtrec_study.datasets.
    """
    found = {}
    for table in TABLES:
        paths = [folder / f"{table}{s}" for s in SUFFIXES if (folder / f"{table}{s}").is_file()]
        if len(paths) > 1:
            raise DataFormatError(f"{folder}: holds both {paths[0].name} and {paths[1].name}; keep one of them")
        if paths:
            found[table] = paths[0]
    return found


def _numbers(table: _Table, column: str, integer: bool, valid: str) -> np.ndarray:
    col = table.df[column]
    if table.parquet and pd.api.types.is_datetime64_any_dtype(col):
        if col.isna().any():
            raise table.fail(int(np.flatnonzero(col.isna().to_numpy())[0]), column, f"is empty; {valid}")
        if getattr(col.dt, "tz", None) is not None:
            col = col.dt.tz_convert("UTC").dt.tz_localize(None)
        return (col.astype("datetime64[ns]").astype("int64") // 10**9).to_numpy("int64")
    text = table.text(column) if not pd.api.types.is_numeric_dtype(col) else col
    if table.parquet and pd.api.types.is_numeric_dtype(col) and col.isna().any():
        raise table.fail(int(np.flatnonzero(col.isna().to_numpy())[0]), column, f"is empty; {valid}")
    values = np.array(pd.to_numeric(text, errors="coerce"), dtype="float64")
    bad = np.isnan(values)
    if integer and bad.any():
        # Not a number: an ISO 8601 date-time is a valid timestamp too.
        dates = pd.to_datetime(pd.Series(text)[bad], format="ISO8601", errors="coerce", utc=True)
        ok = dates.notna().to_numpy()
        idx = np.flatnonzero(bad)[ok]
        values[idx] = (dates[ok].dt.tz_localize(None).astype("datetime64[ns]").astype("int64") // 10**9).to_numpy()
        bad = np.isnan(values)
    if integer:
        bad |= ~np.isnan(values) & (values % 1 != 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise table.fail(i, column, f"holds {table.df[column].iloc[i]!r}; {valid}")
    return values.astype("int64") if integer else values


def _keys(table: _Table, column: str) -> pd.Series:
    col = table.df[column]
    if pd.api.types.is_integer_dtype(col):
        return col.astype("int64").astype(str).reset_index(drop=True)
    return table.text(column).reset_index(drop=True)


def _unique_index(table: _Table, column: str) -> None:
    keys = _keys(table, column)
    dup = keys.duplicated().to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero((keys == keys.iloc[i]).to_numpy())[0])
        raise table.fail(i, column, f"repeats {keys.iloc[i]!r} (first at {table.where(first)}); "
                                    f"each {column} may appear once in {table.path.name}")


def _id_map(all_keys: list[pd.Series], what: str, notes: list[str]) -> tuple[pd.Series, pd.Series | None]:
    """``original key -> int id``, and the reverse Series when the ids had to be mapped."""
    keys = pd.Series(pd.unique(pd.concat(all_keys, ignore_index=True)))
    if keys.str.fullmatch(_PLAIN_INT).all():
        return pd.Series(keys.astype("int64").to_numpy(), index=keys.to_numpy()), None
    ordered = np.sort(keys.to_numpy().astype(str))
    forward = pd.Series(np.arange(1, ordered.size + 1, dtype="int64"), index=ordered)
    notes.append(f"{what} ids are not all plain integers: mapped to 1..{ordered.size} in sorted order; "
                 f"RatingsData.id_maps['{what}_id'] gives the original id of each")
    return forward, pd.Series(ordered, index=pd.Index(forward.to_numpy(), name=f"{what}_id"),
                              name=f"original_{what}_id")


def _side_columns(table: _Table, id_column: str, other: set[str], skip: tuple[str, ...] = ()) -> list[str]:
    cols = [str(c) for c in table.df.columns if c != id_column and c not in skip]
    for c in cols:
        if c in RESERVED_NAMES:
            raise table.fail(None, c, f"has a name the features use themselves; rename it (reserved: "
                                      f"{', '.join(RESERVED_NAMES)})")
        if c in other:
            raise table.fail(None, c, "is also a column of the other side table; rename one of them, since "
                                      "each side column becomes a feature of that name")
    return cols


def _categorical(table: _Table, columns: list[str]) -> pd.DataFrame:
    out = pd.DataFrame(index=range(len(table.df)))
    for c in columns:
        col = table.df[c]
        out[c] = col.where(col.isna(), col.astype(str).str.strip()).to_numpy()
    return out


def _genre_columns(table: _Table, taken: set[str]) -> tuple[pd.DataFrame, tuple[str, ...]]:
    lists = table.df["genres"].fillna("").astype(str).str.split("|")
    lists = lists.apply(lambda gs: sorted({g.strip() for g in gs if g.strip()}))
    names = tuple(sorted({g for gs in lists for g in gs}))
    clash = [g for g in names if g in taken or g in RESERVED_NAMES]
    if clash:
        i = int(next(k for k, gs in enumerate(lists) if clash[0] in gs))
        raise table.fail(i, "genres", f"names the genre {clash[0]!r}, which is also a column name; each genre "
                                      "becomes a 0/1 column of that name, so rename the genre or the column")
    flags = pd.DataFrame(0, index=range(len(lists)), columns=list(names), dtype="int8")
    for k, gs in enumerate(lists):
        for g in gs:
            flags.iat[k, flags.columns.get_loc(g)] = 1
    return flags, names


def parse_generic(folder: Path) -> RatingsData:
    """Parse a folder in the generic layout (see the module's docstring) into :class:`RatingsData`.

    Args:
        folder: The folder holding ``interactions.csv`` or ``interactions.parquet``.

    Returns:
        The canonical tables, named ``"generic"``; ``implicit`` is True when there is no
        ``rating`` column, ``id_maps`` holds the original ids when they had to be mapped.

    Raises:
        DataFormatError: Naming the file, column and first offending row (missing required
            columns, non-numeric ratings, invalid timestamps, duplicate ids in a side table, ids
            in the interactions that a supplied side table lacks).

    Used by mtrec_study.datasets.
    """
    folder = Path(folder)
    paths = table_paths(folder)
    if "interactions" not in paths:
        raise DataFormatError(f"{folder}: holds neither interactions.csv nor interactions.parquet")
    notes: list[str] = []
    inter = _Table(paths["interactions"])
    required = "interactions need user_id, item_id and timestamp, and may have rating (no rating: implicit data)"
    inter.require(("user_id", "item_id", "timestamp"), required)
    implicit = "rating" not in inter.df.columns
    users = _Table(paths["users"]) if "users" in paths else None
    items = _Table(paths["items"]) if "items" in paths else None
    if users is not None:
        users.require(("user_id",), "a users table needs user_id and may add any categorical columns")
        _unique_index(users, "user_id")
    if items is not None:
        items.require(("item_id",), "an items table needs item_id and may add title or text, genres "
                                    "('|'-separated) and any categorical columns")
        _unique_index(items, "item_id")

    ukeys, ikeys = _keys(inter, "user_id"), _keys(inter, "item_id")
    for side, table, keys in (("user", users, ukeys), ("item", items, ikeys)):
        if table is not None:
            absent = ~keys.isin(set(_keys(table, f"{side}_id"))).to_numpy()
            if absent.any():
                i = int(np.flatnonzero(absent)[0])
                raise inter.fail(i, f"{side}_id", f"holds {keys.iloc[i]!r}, which {table.path.name} does not list; "
                                                  f"every {side}_id of the interactions must be in {table.path.name} "
                                                  f"(or leave {table.path.name} out)")
    timestamps = _numbers(inter, "timestamp", True, "a timestamp is an integer Unix time in seconds or an "
                                                    "ISO 8601 date-time (2024-05-01T12:00:00)")
    if implicit:
        ratings = np.full(len(inter.df), np.nan)
        notes.append("no rating column: implicit data. Every interaction is an observed positive; the tasks "
                     "that need a rating (interest, behaviour) are masked out, so only the item task trains")
        rating_range = (1.0, 5.0)
    else:
        ratings = _numbers(inter, "rating", False, "ratings are numbers (for example 1 to 5; like means "
                                                   "rating >= 4); leave the column out for implicit data")
        rating_range = (float(ratings.min()), float(ratings.max()))
        notes.append(f"ratings run from {rating_range[0]:g} to {rating_range[1]:g}; like means rating >= 4 "
                     "and the behaviour head predicts on the 1..5 scale")

    user_side = [_keys(users, "user_id")] if users is not None else []
    item_side = [_keys(items, "item_id")] if items is not None else []
    umap, uback = _id_map([ukeys, *user_side], "user", notes)
    imap, iback = _id_map([ikeys, *item_side], "item", notes)
    interactions = pd.DataFrame({"user_id": umap.reindex(ukeys).to_numpy("int64"),
                                 "item_id": imap.reindex(ikeys).to_numpy("int64"),
                                 "rating": ratings.astype("float64"), "timestamp": timestamps})

    item_skip = (*TEXT_COLUMNS, "genres")
    user_cols = _side_columns(users, "user_id", set(), ()) if users is not None else []
    item_cols = _side_columns(items, "item_id", set(user_cols), item_skip) if items is not None else []
    if users is not None:
        user_table = _categorical(users, user_cols).set_index(pd.Index(umap.reindex(user_side[0]).to_numpy("int64"),
                                                                       name="user_id"))
    else:
        user_table = pd.DataFrame(index=pd.Index(np.sort(interactions["user_id"].unique()), name="user_id"))
        notes.append("no users table: users are known by id only")
    genres: tuple[str, ...] = ()
    if items is not None:
        item_table = _categorical(items, [c for c in TEXT_COLUMNS if c in items.df.columns] + item_cols)
        if "genres" in items.df.columns:
            flags, genres = _genre_columns(items, {*user_cols, *item_cols, *TEXT_COLUMNS})
            item_table = pd.concat([item_table, flags], axis=1)
        item_table.index = pd.Index(imap.reindex(item_side[0]).to_numpy("int64"), name="item_id")
        if not any(c in items.df.columns for c in TEXT_COLUMNS):
            notes.append("items have no title or text column: no text features can be built")
    else:
        item_table = pd.DataFrame(index=pd.Index(np.sort(interactions["item_id"].unique()), name="item_id"))
        notes.append("no items table: items are known by id only (no text, no genres)")
    return RatingsData(
        name="generic", interactions=interactions, users=user_table.sort_index(), items=item_table.sort_index(),
        source=f"folder {folder} (generic layout: {', '.join(p.name for p in paths.values())})", notes=notes,
        implicit=implicit, rating_range=rating_range, genres=genres, user_categorical=tuple(user_cols),
        item_categorical=tuple(item_cols),
        id_maps={k: v for k, v in (("user_id", uback), ("item_id", iback)) if v is not None})
