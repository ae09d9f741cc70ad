"""Shared fixtures: tiny MovieLens folders in every layout, written by code (never committed)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# Tests train afresh unless a test turns the training cache on itself (a report build uses its own).
os.environ.pop("MTREC_TRAIN_CACHE", None)
os.environ.pop("MTREC_NO_CACHE", None)

from mtrec_study.config import GENRES  # noqa: E402
from mtrec_study.datasets.movielens import ML1M_OCCUPATIONS  # noqa: E402

# (user, age code, gender, occupation, zip)
USERS = [(1, 25, "M", "programmer", "85711"), (2, 18, "F", "writer", "94043"),
         (3, 56, "M", "retired", "32067"), (4, 35, "F", "artist", "43537")]
# (item, title, year, genres)
ITEMS = [(1, "Toy Story", 1995, ["Animation", "Children's", "Comedy"]),
         (2, "Usual Suspects, The", 1995, ["Crime", "Thriller"]),
         (3, "Star Wars", 1977, ["Action", "Sci-Fi"]),
         (4, "Chasing Amy", 1997, ["Drama", "Romance"]),
         (5, "Chasing Amy", 1997, ["Drama", "Romance"])]
RATINGS = [(1, 1, 5, 881250949), (1, 2, 4, 881250950), (1, 3, 3, 881250951), (2, 1, 2, 891717742),
           (2, 4, 5, 891717743), (3, 3, 1, 878887116), (3, 5, 4, 878887117), (4, 2, 3, 880606923),
           (4, 3, 5, 880606924), (4, 4, 2, 880606925)]


def write_ml100k(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in RATINGS))
    (folder / "u.user").write_text("".join(f"{u}|{a}|{g}|{o}|{z}\n" for u, a, g, o, z in USERS))
    lines = []
    for i, title, year, genres in ITEMS:
        flags = "|".join("1" if g in genres else "0" for g in GENRES)
        lines.append(f"{i}|{title} ({year})|01-Jan-{year}||http://x/{i}|{flags}\n")
    (folder / "u.item").write_bytes("".join(lines).encode("latin-1"))
    return folder


def write_ml1m(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.dat").write_text("".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in RATINGS))
    (folder / "users.dat").write_text("".join(
        f"{u}::{g}::{a}::{ML1M_OCCUPATIONS.index(o)}::{z}\n" for u, a, g, o, z in USERS))
    (folder / "movies.dat").write_bytes("".join(
        f"{i}::{title} ({year})::{'|'.join(genres)}\n" for i, title, year, genres in ITEMS).encode("latin-1"))
    return folder


def recbole_texts() -> dict[str, str]:
    return {
        "ml-100k.inter": "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        + "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in RATINGS),
        "ml-100k.user": "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
        + "".join(f"{u}\t{a}\t{g}\t{o}\t{z}\n" for u, a, g, o, z in USERS),
        "ml-100k.item": "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        + "".join(f"{i}\t{t}\t{y}\t{' '.join(g)}\n" for i, t, y, g in ITEMS),
    }


def write_recbole(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in recbole_texts().items():
        (folder / name).write_text(text)
    return folder


def write_recbole_wheel(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in recbole_texts().items():
            zf.writestr(f"recbole/dataset_example/ml-100k/{name}", text)
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty, private cache and no GroupLens download attempts."""
    monkeypatch.setenv("MTREC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MTREC_OFFLINE", "1")
    monkeypatch.delenv("MTREC_DATA_DIR", raising=False)
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def small_world():
    """A small synthetic world shared by tests that only read it."""
    from mtrec_study.datasets.synthetic import make_recsys_world

    return make_recsys_world(n_users=120, n_items=200, n_interactions=3000, seed=3)


@pytest.fixture(scope="session")
def fast_report(tmp_path_factory):
    """Build the whole fast-preset report once; notebook and report tests read it."""
    from mtrec_study.report.build import build_report

    out_root = tmp_path_factory.mktemp("reports")
    index = build_report("fast", out_root=out_root, progress=False)
    return index.parent
