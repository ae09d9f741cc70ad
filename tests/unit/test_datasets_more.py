"""The reader's own data: ml-10m, the ml-20m/25m/32m CSV layout and the generic layout.

Every fixture folder is written here, in ``tmp_path``; none is committed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtrec_study import datasets
from mtrec_study.config import GENRES
from mtrec_study.datasets.errors import DataFolderError, DataFormatError
from tests.conftest import write_ml100k

ML10M_RATINGS = "1::10::5::838985046\n1::20::3.5::838983525\n2::10::0.5::868245777\n2::30::4.5::868244562\n"
ML10M_MOVIES = ("10::Toy Story (1995)::Adventure|Animation|Children|Comedy|Fantasy\n"
                "20::Jumanji (1995)::Adventure|Children|IMAX\n"
                "30::Pull My Daisy (1958)::(no genres listed)\n")


def write_ml10m(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.dat").write_text(ML10M_RATINGS)
    (folder / "movies.dat").write_text(ML10M_MOVIES)
    return folder


def write_ml20m(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,10,4.0,1112486027\n1,20,3.5,1112484676\n"
                                        "3,20,0.5,1094785740\n3,30,5.0,1094785734\n")
    (folder / "movies.csv").write_text(
        'movieId,title,genres\n10,"American President, The (1995)",Comedy|Drama|Romance\n'
        '20,Jumanji (1995),Adventure|Children|Fantasy|IMAX\n30,"Babylon 5",(no genres listed)\n')
    return folder


def write_generic(folder: Path, ratings: bool = True, users: bool = True, items: bool = True) -> Path:
    """String ids, three users and three items; ``u-b`` has no interactions with ``i-c``."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [("u-b", "i-a", 5, 1700000300), ("u-a", "i-b", 2, 1700000100), ("u-a", "i-a", 4, 1700000000),
            ("u-c", "i-c", 3.5, 1700000200)]
    head = "user_id,item_id,rating,timestamp" if ratings else "user_id,item_id,timestamp"
    lines = [f"{u},{i},{r},{t}" if ratings else f"{u},{i},{t}" for u, i, r, t in rows]
    (folder / "interactions.csv").write_text("\n".join([head, *lines]) + "\n")
    if users:
        (folder / "users.csv").write_text("user_id,country,plan\nu-a,FR,free\nu-b,DE,\nu-c,FR,paid\n")
    if items:
        (folder / "items.csv").write_text(
            'item_id,title,category,genres\ni-a,"Shoes, red",clothing,Sport|Fashion\n'
            "i-b,Book,media,\ni-c,Ball,toys,Sport\ni-d,Never bought,toys,Kids\n")
    return folder


# --------------------------------------------------------------------------- GroupLens layouts
def test_ml10m_parses_half_stars_without_users(cache, tmp_path):
    data = datasets.load_dataset("ml-10m", data_dir=write_ml10m(tmp_path / "ml-10M100K"), log=None)
    assert data.name == "ml-10m" and "ml-10m layout" in data.source
    assert data.interactions.to_dict("list") == {
        "user_id": [1, 1, 2, 2], "item_id": [10, 20, 10, 30], "rating": [5.0, 3.5, 0.5, 4.5],
        "timestamp": [838985046, 838983525, 868245777, 868244562]}
    assert data.users.index.tolist() == [1, 2] and data.users.columns.tolist() == []
    assert data.user_categorical == () and data.rating_range == (0.5, 5.0)
    assert data.items["title"].tolist() == ["Toy Story", "Jumanji", "Pull My Daisy"]
    assert data.items["year"].tolist() == [1995, 1995, 1958]
    assert [g for g in GENRES if data.items.loc[10, g]] == ["Adventure", "Animation", "Children's", "Comedy", "Fantasy"]
    assert [g for g in GENRES if data.items.loc[20, g]] == ["Adventure", "Children's"]  # IMAX dropped
    assert [g for g in GENRES if data.items.loc[30, g]] == ["unknown"]
    notes = " ".join(data.notes)
    for said in ("2 movies list 'Children'", "1 movies have '(no genres listed)'", "1 movies list 'IMAX'",
                 "half stars", "by id only"):
        assert said in notes


def test_csv_layout_reads_quoted_titles_for_each_size(cache, tmp_path):
    folder = write_ml20m(tmp_path / "ml-25m")
    data = datasets.load_dataset("ml-25m", data_dir=folder, log=None)
    assert data.name == "ml-25m"
    assert data.interactions.to_dict("list") == {
        "user_id": [1, 1, 3, 3], "item_id": [10, 20, 20, 30], "rating": [4.0, 3.5, 0.5, 5.0],
        "timestamp": [1112486027, 1112484676, 1094785740, 1094785734]}
    assert data.items["title"].tolist() == ["American President, The", "Jumanji", "Babylon 5"]
    assert data.items["year"].isna().tolist() == [False, False, True]
    assert [g for g in GENRES if data.items.loc[10, g]] == ["Comedy", "Drama", "Romance"]
    assert [g for g in GENRES if data.items.loc[20, g]] == ["Adventure", "Children's", "Fantasy"]
    assert data.items.loc[30, "unknown"] == 1
    assert data.users.index.tolist() == [1, 3]
    assert datasets.load_dataset("ml-20m", data_dir=folder, log=None).name == "ml-20m"
    with pytest.raises(DataFolderError, match="holds ml-20m or ml-25m or ml-32m .grouplens-csv layout., but ml-10m"):
        datasets.load_dataset("ml-10m", data_dir=folder, log=None)
    with pytest.raises(DataFolderError, match="which ml-20m, ml-25m and ml-32m share; say which"):
        datasets.dataset_in_folder(folder)


def test_half_star_ratings_survive_cleaning(tmp_path):
    from mtrec_study.prepare import clean

    cleaned, log = clean(datasets.load_dataset("ml-20m", data_dir=write_ml20m(tmp_path / "m"), log=None))
    assert len(cleaned.interactions) == 4
    assert log.set_index("step").loc["out-of-range ratings", "reason"] == "rating outside [0.5, 5]"


def test_grouplens_csv_errors_name_file_line_and_column(tmp_path):
    folder = write_ml20m(tmp_path / "m")
    text = (folder / "ratings.csv").read_text().replace("3,20,0.5,", "3,20,half,")
    (folder / "ratings.csv").write_text(text)
    with pytest.raises(DataFormatError, match=r"ratings\.csv: line 4: column 'rating' is not a number: 'half'"):
        datasets.load_dataset("ml-20m", data_dir=folder, log=None)
    write_ml20m(folder)
    (folder / "ratings.csv").write_text("userId,movieId,rating\n1,10,4.0\n")
    with pytest.raises(DataFormatError, match=r"ratings\.csv: line 1 \(the header\): missing column\(s\) 'timestamp'"):
        datasets.load_dataset("ml-20m", data_dir=folder, log=None)
    write_ml20m(folder)
    with open(folder / "movies.csv", "a") as fh:
        fh.write("40,Odd (2000),Comedy|Western-ish\n")
    with pytest.raises(DataFormatError, match=r"movies\.csv: line 5: column 'genres' holds unknown genre 'Western-ish'"):
        datasets.load_dataset("ml-20m", data_dir=folder, log=None)
    (folder / "movies.dat").write_text(ML10M_MOVIES.replace("Fantasy", "Fantasie"))
    (folder / "ratings.dat").write_text(ML10M_RATINGS)
    with pytest.raises(DataFormatError, match=r"movies\.dat: line 1: column 'genres' holds unknown genre 'Fantasie'"):
        datasets.load_dataset("ml-10m", data_dir=folder, log=None)


@pytest.mark.parametrize("name, hint", [("ml-10m", "ml-10m.zip"), ("ml-32m", "ml-32m.zip"),
                                        ("generic", "interactions.csv")])
def test_folder_only_data_sets_say_where_the_files_go(name, hint, cache, tmp_path):
    with pytest.raises(DataFolderError, match=rf"{name} is read from a folder only.*{hint}.*--data-dir"):
        datasets.load_dataset(name, log=None)
    with pytest.raises(DataFolderError, match=r"does not exist.*generic \(interactions\.csv or interactions\.parquet"):
        datasets.load_dataset(name, data_dir=tmp_path / "nowhere", log=None)


# --------------------------------------------------------------------------- the generic layout
def test_generic_string_ids_are_mapped_and_traceable(cache, tmp_path):
    data = datasets.load_dataset("generic", data_dir=write_generic(tmp_path / "g"), log=None)
    assert data.name == "generic" and not data.implicit
    assert data.interactions.to_dict("list") == {
        "user_id": [2, 1, 1, 3], "item_id": [1, 2, 1, 3], "rating": [5.0, 2.0, 4.0, 3.5],
        "timestamp": [1700000300, 1700000100, 1700000000, 1700000200]}
    assert data.id_maps["user_id"].to_dict() == {1: "u-a", 2: "u-b", 3: "u-c"}
    assert data.id_maps["item_id"].to_dict() == {1: "i-a", 2: "i-b", 3: "i-c", 4: "i-d"}
    assert data.users.to_dict("list") == {"country": ["FR", "DE", "FR"], "plan": ["free", np.nan, "paid"]}
    assert data.user_categorical == ("country", "plan") and data.item_categorical == ("category",)
    assert data.genres == ("Fashion", "Kids", "Sport")
    assert data.items.index.tolist() == [1, 2, 3, 4]
    assert data.items["title"].tolist() == ["Shoes, red", "Book", "Ball", "Never bought"]
    assert data.items[list(data.genres)].to_numpy().tolist() == [[1, 0, 1], [0, 0, 0], [0, 0, 1], [0, 1, 0]]
    assert data.rating_range == (2.0, 5.0)
    assert any("mapped to 1..3 in sorted order" in n for n in data.notes)
    assert datasets.dataset_in_folder(tmp_path / "g") == "generic"


def test_generic_integer_ids_iso_times_and_no_side_tables(cache, tmp_path):
    folder = tmp_path / "g"
    folder.mkdir()
    (folder / "interactions.csv").write_text("user_id,item_id,timestamp\n7,30,2024-05-01T00:00:01Z\n"
                                             "5,30,1700000000\n5,12,2024-05-01\n")
    data = datasets.load_dataset("generic", data_dir=folder, log=None)
    assert data.implicit and data.id_maps == {}
    assert data.interactions["user_id"].tolist() == [7, 5, 5] and data.interactions["item_id"].tolist() == [30, 30, 12]
    assert data.interactions["timestamp"].tolist() == [1714521601, 1700000000, 1714521600]
    assert data.interactions["rating"].isna().all()
    assert data.users.index.tolist() == [5, 7] and data.users.columns.tolist() == []
    assert data.items.index.tolist() == [12, 30] and data.items.columns.tolist() == []
    assert data.genres == () and data.user_categorical == () and data.item_categorical == ()


def test_generic_parquet_gives_the_csv_tables(cache, tmp_path):
    csv_data = datasets.load_dataset("generic", data_dir=write_generic(tmp_path / "c"), log=None)
    folder = tmp_path / "p"
    folder.mkdir()
    for table in ("interactions", "users", "items"):
        frame = pd.read_csv(tmp_path / "c" / f"{table}.csv", dtype=str, keep_default_na=False, na_values=[""])
        if table == "interactions":
            frame = frame.astype({"rating": "float64", "timestamp": "int64"})
        frame.to_parquet(folder / f"{table}.parquet")
    data = datasets.load_dataset("generic", data_dir=folder, log=None)
    for a, b in ((data.interactions, csv_data.interactions), (data.users, csv_data.users), (data.items, csv_data.items)):
        pd.testing.assert_frame_equal(a, b)
    assert "interactions.parquet" in data.source
    (tmp_path / "c" / "interactions.csv").rename(folder / "interactions.csv")
    with pytest.raises(DataFormatError, match="holds both interactions.csv and interactions.parquet"):
        datasets.load_dataset("generic", data_dir=folder, log=None)


def _rewrite(folder: Path, name: str, old: str, new: str) -> None:
    path = folder / name
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("file, old, new, expected", [
    ("interactions.csv", "user_id,item_id,rating,timestamp", "user,item_id,rating,timestamp",
     r"interactions\.csv: line 1 \(the header\): column 'user_id' is missing .*need user_id, item_id and timestamp"),
    ("interactions.csv", "u-a,i-b,2,", "u-a,i-b,two,",
     r"interactions\.csv: line 3: column 'rating' holds 'two'; ratings are numbers"),
    ("interactions.csv", "u-a,i-a,4,1700000000", "u-a,i-a,4,",
     r"interactions\.csv: line 4: column 'timestamp' is empty"),
    ("interactions.csv", "1700000200", "1700000200.5",
     r"interactions\.csv: line 5: column 'timestamp' holds '1700000200\.5'; a timestamp is an integer Unix time"),
    ("interactions.csv", "1700000100", "yesterday",
     r"interactions\.csv: line 3: column 'timestamp' holds 'yesterday'; .*ISO 8601"),
    ("users.csv", "u-c,FR,paid", "u-a,FR,paid",
     r"users\.csv: line 4: column 'user_id' repeats 'u-a' \(first at line 2\)"),
    ("items.csv", "i-d,Never bought", "i-b,Never bought",
     r"items\.csv: line 5: column 'item_id' repeats 'i-b' \(first at line 3\)"),
    ("users.csv", "u-c,FR,paid", "u-z,FR,paid",
     r"interactions\.csv: line 5: column 'user_id' holds 'u-c', which users\.csv does not list"),
    ("items.csv", "i-c,Ball", "i-z,Ball",
     r"interactions\.csv: line 5: column 'item_id' holds 'i-c', which items\.csv does not list"),
    ("items.csv", "item_id,title,category,genres", "item_id,title,country,genres",
     r"items\.csv: line 1 \(the header\): column 'country' is also a column of the other side table"),
])
def test_generic_bad_input_names_file_column_and_row(file, old, new, expected, cache, tmp_path):
    folder = write_generic(tmp_path / "g")
    datasets.load_dataset("generic", data_dir=folder, log=None)  # the untouched folder loads
    _rewrite(folder, file, old, new)
    with pytest.raises(DataFormatError, match=expected):
        datasets.load_dataset("generic", data_dir=folder, log=None)


def test_generic_line_numbers_follow_quoted_newlines(cache, tmp_path):
    folder = write_generic(tmp_path / "g")
    _rewrite(folder, "items.csv", '"Shoes, red"', '"Shoes,\nred"')
    _rewrite(folder, "items.csv", "i-d,Never bought", "i-b,Never bought")
    with pytest.raises(DataFormatError, match=r"items\.csv: line 6: column 'item_id' repeats 'i-b' \(first at line 4\)"):
        datasets.load_dataset("generic", data_dir=folder, log=None)


def test_generic_parquet_errors_name_the_row(cache, tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    pd.DataFrame({"user_id": [1, 2, 3], "item_id": [1, 1, 2], "rating": ["4", "5", "lots"],
                  "timestamp": [10, 11, 12]}).to_parquet(folder / "interactions.parquet")
    with pytest.raises(DataFormatError, match=r"interactions\.parquet: row 3: column 'rating' holds 'lots'"):
        datasets.load_dataset("generic", data_dir=folder, log=None)


# --------------------------------------------------------------------------- downstream
def test_label_rows_masks_rating_tasks_on_implicit_data():
    from mtrec_study.tasks import label_rows

    labels, masks = label_rows(np.array([np.nan, np.nan, np.nan]), observed=np.array([True, True, False]),
                               has_ratings=False)
    assert labels["item"].tolist() == [1, 1, 0] and masks["item"].tolist() == [1, 1, 1]
    for task in ("interest", "behaviour", "ctcvr"):
        assert masks[task].tolist() == [0, 0, 0], task
    explicit = label_rows(np.array([5.0, 3.0, np.nan]))
    assert explicit[1]["interest"].tolist() == [1, 1, 0] and explicit[1]["ctcvr"].tolist() == [1, 1, 1]


def _implicit_world(folder: Path, n_users: int = 24, n_items: int = 30, per_user: int = 8) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["user_id,item_id,timestamp"]
    for u in range(n_users):
        for k, i in enumerate(rng.choice(n_items, per_user, replace=False)):
            rows.append(f"user{u},sku{i},{1_700_000_000 + 1000 * u + k}")
    (folder / "interactions.csv").write_text("\n".join(rows) + "\n")
    (folder / "users.csv").write_text("user_id,region\n" + "".join(f"user{u},r{u % 3}\n" for u in range(n_users)))
    (folder / "items.csv").write_text("item_id,title,brand\n" + "".join(f"sku{i},Thing {i},b{i % 4}\n"
                                                                       for i in range(n_items)))
    return folder


def test_implicit_folder_trains_on_the_item_task_only(cache, tmp_path):
    from mtrec_study.prepare import prepare_tasks
    from mtrec_study.training import train

    data = datasets.load_dataset("generic", data_dir=_implicit_world(tmp_path / "g"), log=None)
    prepared = prepare_tasks(data, "per_user_recent", seed=0)
    assert prepared.cleaning_log["dropped"].sum() == 0
    spec = prepared.spec
    assert spec.user_side == ["user_idx", "region", "user_log_count"]
    assert spec.item_side == ["item_idx", "brand", "item_log_count"]
    assert spec.multi_hot == {} and spec.dense == ["user_log_count", "item_log_count"]
    for part in (prepared.train, prepared.valid, prepared.test):
        assert part.masks["interest"].sum() == part.masks["behaviour"].sum() == 0
        assert part.masks["item"].sum() == len(part)
        assert part.labels["item"].sum() == part.pairs["observed"].sum() > 0
    result = train("shared_bottom", prepared, epochs=1, batch_size=64, progress=False)
    h = result.history
    assert h["interest_loss"] == [0.0] and h["behaviour_loss"] == [0.0] and h["val_behaviour_loss"] == [0.0]
    assert np.isfinite(h["val_loss"][0]) and h["val_loss"][0] == pytest.approx(h["val_item_loss"][0])
    assert result.best_epoch == 1 and result.stopped is None


def test_generic_side_columns_become_features(cache, tmp_path):
    from mtrec_study.features import FeatureBuilder

    data = datasets.load_dataset("generic", data_dir=write_generic(tmp_path / "g"), log=None)
    b = FeatureBuilder(data.users, data.items, data.user_categorical, data.item_categorical, data.genres)
    b.fit(data.interactions)
    assert b.vocabularies == {"country": {"DE": 1, "FR": 2}, "plan": {"free": 1, "paid": 2},
                              "category": {"clothing": 1, "media": 2, "toys": 3}}
    f = b.transform(np.array([1, 2]), np.array([4, 1]))
    assert f["plan"].tolist() == [1, 0]  # u-b has no plan: code 0
    assert f["category"].tolist() == [3, 1] and f["genres"].tolist() == [[0, 1, 0], [1, 0, 1]]
    assert "age_z" not in f and "year_bucket" not in f
    b.spec.validate(f)


def test_movielens_spec_is_unchanged(tmp_path):
    """The MovieLens features keep their names and order, so its results stay bit-identical."""
    from mtrec_study.datasets.movielens import parse_folder
    from mtrec_study.features import FeatureBuilder

    data = parse_folder(write_ml100k(tmp_path / "m"))
    spec = FeatureBuilder(data.users, data.items).fit(data.interactions).spec
    assert list(spec.categorical) == ["user_idx", "item_idx", "age_bucket", "gender", "occupation", "year_bucket"]
    assert spec.multi_hot == {"genres": 19} and spec.dense == ["user_log_count", "item_log_count", "age_z"]
    assert spec.user_side == ["user_idx", "age_bucket", "gender", "occupation", "user_log_count", "age_z"]
    assert spec.item_side == ["item_idx", "year_bucket", "genres", "item_log_count"]


def test_item_texts_of_generic_items(cache, tmp_path):
    from mtrec_study.text import item_texts

    data = datasets.load_dataset("generic", data_dir=write_generic(tmp_path / "g"), log=None)
    assert item_texts(data.items, data.genres).tolist() == [
        "Shoes, red | Fashion, Sport", "Book | ", "Ball | Sport", "Never bought | Kids"]
    bare = datasets.load_dataset("generic", data_dir=write_generic(tmp_path / "b", items=False), log=None)
    with pytest.raises(ValueError, match="no 'title' or 'text' column"):
        item_texts(bare.items, bare.genres)


# --------------------------------------------------------------------------- the command line
def test_cli_trains_and_describes_a_generic_folder(cache, tmp_path, capsys):
    from mtrec_study.cli import main

    folder = _implicit_world(tmp_path / "mine")
    assert main(["data", "--data-dir", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "generic: 192 interactions, 24 users, 30 items from folder" in out and "implicit data" in out
    hist = tmp_path / "hist"
    assert main(["train", "--model", "shared_bottom", "--dataset", "generic", "--data-dir", str(folder),
                 "--epochs", "1", "--batch-size", "64", "--output-dir", str(hist)]) == 0
    logged = json.loads((hist / "history_shared_bottom_fixed.json").read_text())
    assert logged["history"]["interest_loss"] == [0.0] and logged["history"]["item_loss"][0] > 0
    assert main(["data", "--dataset", "ml-100k", "--data-dir", str(folder)]) == 2
    assert "holds generic (generic layout), but ml-100k was asked for" in capsys.readouterr().err
