"""Shard folders: a synthetic world written block by block, read batch by batch, features looked up by id."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mtrec_study import cli, streaming
from mtrec_study.datasets.errors import DataFormatError
from mtrec_study.datasets.synthetic import make_recsys_world
from mtrec_study.features import FeatureBuilder
from mtrec_study.prepare import prepare_tasks
from mtrec_study.streaming import load_shards, write_synthetic_shards
from mtrec_study.tasks import label_rows

WORLD = {"n_users": 1500, "n_items": 300, "n_interactions": 30_000, "seed": 4, "block_users": 400,
         "rows_per_shard": 15_000, "progress": False}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_synthetic_shards(tmp_path_factory.mktemp("shards") / "world", **WORLD)


def _part(folder, part) -> pd.DataFrame:
    return pd.concat([pq.read_table(f).to_pandas() for f in sorted((folder / part).glob("part-*.parquet"))],
                     ignore_index=True)


def test_lookup_tables_give_exactly_the_transformed_features():
    prepared = prepare_tasks(make_recsys_world(n_users=200, n_items=150, n_interactions=4000, seed=1).data, seed=1)
    rng = np.random.default_rng(0)
    text = pd.DataFrame(rng.standard_normal((150, 3)), index=prepared.data.items.index[::-1])  # any order
    builder = prepared.builder.with_vectors({"item_text": ("item", text.iloc[5:])})  # 5 items without a vector
    users = rng.choice(prepared.data.users.index.to_numpy(), 500)
    items = rng.choice(prepared.data.items.index.to_numpy(), 500)
    want = builder.transform(users, items)
    got = builder.tables().lookup(users, items)
    assert sorted(got) == sorted(want) == sorted(builder.spec.names)
    for name in want:
        assert got[name].dtype == want[name].dtype, name
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    with pytest.raises(ValueError, match=r"user ids \[99999\] are not in the user table"):
        builder.tables().lookup([99999], [items[0]])


def test_fit_counts_refuses_a_repeated_id():
    world = make_recsys_world(n_users=50, n_items=40, n_interactions=600, seed=1).data
    builder = FeatureBuilder(world.users, world.items)
    with pytest.raises(ValueError, match="one positive count per user id: id 1 repeats"):
        builder.fit_counts(pd.Series([3, 2], index=[1, 1]), pd.Series([1], index=[1]))
    with pytest.raises(ValueError, match="one positive count per item id: id 1 has count 0"):
        builder.fit_counts(pd.Series([3], index=[1]), pd.Series([0], index=[1]))


def test_examples_carry_the_task_registry_labels_and_honest_negatives(shards):
    meta = json.loads((shards / "meta.json").read_text())
    train, valid = _part(shards, "train"), _part(shards, "valid")
    assert (len(train), len(valid)) == (meta["rows"]["train"], meta["rows"]["valid"])
    assert train["observed"].sum() + valid["observed"].sum() == meta["n_interactions"] == WORLD["n_interactions"]
    for df in (train, valid):
        labels, masks = label_rows(df["rating"].to_numpy("float64"), observed=df["observed"].to_numpy())
        for task in labels:
            np.testing.assert_array_equal(df[task].to_numpy(), labels[task], err_msg=task)
            np.testing.assert_array_equal(df[f"{task}_mask"].to_numpy(), masks[task], err_msg=task)
    assert valid["observed"].mean() == 0.5  # one negative per observed row
    # ... and in training, less the negatives on items without a training interaction
    assert (~train["observed"]).sum() == train["observed"].sum() - meta["cold_training_negatives_dropped"]
    key = lambda df: set(zip(df["user_id"], df["item_id"], strict=True))  # noqa: E731
    train_pos, valid_pos = key(train[train["observed"]]), key(valid[valid["observed"]])
    assert not train_pos & valid_pos
    assert not key(train[~train["observed"]]) & train_pos  # training negatives avoid training items
    assert not key(valid[~valid["observed"]]) & (train_pos | valid_pos)  # validation negatives avoid all
    assert key(train[~train["observed"]]) & valid_pos  # training knows nothing of what validation holds back
    counts = pd.read_parquet(shards / "counts.parquet")
    users = counts[counts["side"] == "user"].set_index("id")["count"]
    pd.testing.assert_series_equal(users, train[train["observed"]].groupby("user_id").size().astype("int64"),
                                   check_names=False, check_index_type=False)


def test_no_training_negative_is_an_item_without_a_training_interaction(tmp_path):
    folder = write_synthetic_shards(tmp_path / "sparse", n_users=300, n_items=3000, n_interactions=3000, seed=2,
                                    progress=False)
    meta = json.loads((folder / "meta.json").read_text())
    train = _part(folder, "train")
    trained_items = set(train.loc[train["observed"], "item_id"])
    assert meta["cold_training_negatives_dropped"] > 0  # this world has such items, and they were dropped
    assert set(train.loc[~train["observed"], "item_id"]) <= trained_items
    valid = _part(folder, "valid")
    assert not set(valid.loc[~valid["observed"], "item_id"]) <= trained_items  # validation draws from them all


def test_only_an_empty_or_shard_folder_is_replaced(tmp_path):
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="mine exists and is not a shard folder"):
        write_synthetic_shards(precious, **{**WORLD, "n_users": 200, "n_interactions": 2000})
    assert (precious / "notes.txt").read_text() == "keep me" and not (tmp_path / "mine.tmp").exists()
    world = write_synthetic_shards(tmp_path / "w", **{**WORLD, "n_users": 200, "n_interactions": 2000})
    again = write_synthetic_shards(world, **{**WORLD, "n_users": 200, "n_interactions": 2000, "seed": 9})
    assert json.loads((again / "meta.json").read_text())["seed"] == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "w"]
    with pytest.raises(ValueError, match=r"valid_frac must lie in \(0, 1\)"):
        write_synthetic_shards(tmp_path / "x", **{**WORLD, "valid_frac": 0.0})


def test_the_external_shuffle_mixes_every_block_into_every_shard(shards):
    files = sorted((shards / "train").glob("part-*.parquet"))
    assert len(files) >= 2
    blocks = -(-WORLD["n_users"] // WORLD["block_users"])
    for f in files:
        head = pq.read_table(f).to_pandas().head(500)
        assert ((head["user_id"] - 1) // WORLD["block_users"]).nunique() == blocks, f


def test_the_same_seed_writes_the_same_examples_and_a_failed_run_keeps_the_old_folder(shards, tmp_path, monkeypatch):
    again = write_synthetic_shards(tmp_path / "again", **WORLD)
    for part in ("train", "valid"):
        pd.testing.assert_frame_equal(_part(shards, part), _part(again, part))
    for table in ("users", "items", "counts"):
        pd.testing.assert_frame_equal(pd.read_parquet(shards / f"{table}.parquet"),
                                      pd.read_parquet(again / f"{table}.parquet"))

    def broken(*args, **kwargs):
        raise OSError("disk full")

    before = _part(again, "train")
    monkeypatch.setattr(streaming, "_examples", broken)
    with pytest.raises(OSError, match="disk full"):
        write_synthetic_shards(tmp_path / "again", **{**WORLD, "seed": 5})
    pd.testing.assert_frame_equal(_part(again, "train"), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again"]  # no temporary folder left


def test_an_epoch_reads_every_row_once_in_a_seeded_order(shards):
    data = load_shards(shards)
    def epoch(seed, number):
        return list(data.train.batches(1000, seed=seed, epoch=number))

    first = epoch(0, 0)
    sizes = [len(b["user_row"]) for b in first]
    assert sizes[:-1] == [1000] * (len(sizes) - 1) and sum(sizes) == len(data.train)
    rows = np.concatenate([b["user_row"].astype("int64") * 1000 + b["item_row"] for b in first])
    stored = _part(shards, "train")
    want = data.tables.rows("user", stored["user_id"]).astype("int64") * 1000 + data.tables.rows("item", stored["item_id"])
    np.testing.assert_array_equal(np.sort(rows), np.sort(want))
    assert all(np.array_equal(a["user_row"], b["user_row"]) for a, b in zip(first, epoch(0, 0), strict=True))
    assert not np.array_equal(first[0]["user_row"], epoch(0, 1)[0]["user_row"])  # each epoch its own order


def test_the_pipeline_gathers_each_batchs_features_as_transform_builds_them(shards):
    data = load_shards(shards)
    features, targets = next(iter(data.valid.dataset(256, shuffle=False)))
    batch = next(data.valid.batches(256, shuffle=False))
    users, items = data.tables.user_ids[batch["user_row"]], data.tables.item_ids[batch["item_row"]]
    want = data.builder.transform(users, items)
    assert sorted(features) == sorted(want)
    for name, value in want.items():
        np.testing.assert_array_equal(features[name].numpy(), value, err_msg=name)
    np.testing.assert_array_equal(targets["behaviour"].numpy(), batch["behaviour"])
    assert data.spec.validate({k: v.numpy() for k, v in features.items()}) == 256


def test_an_epoch_of_n_batches_runs_n_batches(shards):
    from mtrec_study.training import train

    data = load_shards(shards)
    r = train("shared_bottom", data, epochs=3, batch_size=512, steps_per_epoch=10, seed=0, progress=False)
    assert int(r.trainer.optimizer.iterations.numpy()) == 30 and len(r.history["val_loss"]) == 3
    assert r.config["steps_per_epoch"] == 10
    r = train("shared_bottom", data, epochs=1, batch_size=64, steps_per_epoch=600, seed=0, progress=False)
    assert int(r.trainer.optimizer.iterations.numpy()) == 600  # several batches per graph call, still 600
    with pytest.raises(ValueError, match="steps_per_epoch=10: give a positive number of batches, and only with a "
                                         "shard folder"):
        train("shared_bottom", prepare_tasks(make_recsys_world(n_users=100, n_items=80, n_interactions=1500,
                                                               seed=1).data, seed=1), steps_per_epoch=10)


def test_training_on_shards_is_deterministic(shards):
    import tensorflow as tf

    from mtrec_study.training import train

    data = load_shards(shards)
    runs = [train("mmoe", data, weighting="uncertainty", epochs=2, batch_size=2048, seed=3, progress=False)
            for _ in range(2)]
    assert len(runs[0].history["val_loss"]) == 2 and np.isfinite(runs[0].history["val_loss"]).all()
    assert runs[0].history["val_loss"][1] < runs[0].history["val_loss"][0]
    for a, b in zip(runs[0].trainer.get_weights(), runs[1].trainer.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not runs[0].from_cache
    with pytest.raises(ValueError, match="tf.distribute cannot split"):
        train("shared_bottom", data, epochs=1, distribution=tf.distribute.MirroredStrategy(["/cpu:0"]))


def test_lazy_adam_trains_on_shards_deterministically(shards):
    from mtrec_study.training import train

    data = load_shards(shards)
    runs = [train("shared_bottom", data, epochs=2, batch_size=256, steps_per_epoch=4, seed=5, optimizer="lazy_adam",
                  progress=False) for _ in range(2)]
    assert runs[0].history["val_loss"][1] < runs[0].history["val_loss"][0]
    assert runs[0].config["optimizer"] == "lazy_adam"
    for a, b in zip(runs[0].trainer.get_weights(), runs[1].trainer.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="optimizer 'sgd' is not known; use one of adam, lazy_adam"):
        train("shared_bottom", data, epochs=1, optimizer="sgd")


def test_a_shard_folder_that_cannot_be_read_is_named(shards, tmp_path):
    with pytest.raises(DataFormatError, match="no such folder of shards"):
        load_shards(tmp_path / "missing")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "meta.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(DataFormatError, match=rf"format 99, but this code reads format {streaming.FORMAT_VERSION}"):
        load_shards(broken)
    meta = json.loads((shards / "meta.json").read_text())
    (broken / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "targets"}))
    with pytest.raises(DataFormatError, match=r"meta.json: has no 'targets'"):
        load_shards(broken)
    (broken / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataFormatError, match="has no users.parquet"):
        load_shards(broken)
    for name in ("users", "items"):
        (broken / f"{name}.parquet").write_bytes((shards / f"{name}.parquet").read_bytes())
    pd.DataFrame({"side": ["user", "user"], "id": [1, 1], "count": [2, 3]}).to_parquet(broken / "counts.parquet")
    with pytest.raises(DataFormatError, match=r"counts.parquet: user counts need one positive count per user id: "
                                              r"id 1 repeats"):
        load_shards(broken)
    data = load_shards(shards)
    stranger = tmp_path / "part-00000.parquet"
    table = pq.read_table(data.valid.files[0]).to_pandas()
    table.loc[3, "item_id"] = 100_000
    table.to_parquet(stranger)
    data.valid.files = [stranger]
    with pytest.raises(DataFormatError, match=r"part-00000.parquet: item ids \[100000\] are not in the item table"):
        list(data.valid.batches(512))


def test_the_command_line_writes_shards_and_trains_on_them(tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli.main(["shards", "--out", str(out), "--users", "600", "--items", "200", "--interactions",
                     "8000", "--seed", "1"]) == 0
    assert cli.main(["train", "--shards", str(out), "--model", "shared_bottom", "--epochs", "2",
                     "--optimizer", "lazy_adam", "--steps-per-epoch", "3", "--output-dir", str(tmp_path / "train")]) == 0
    history = json.loads((tmp_path / "train" / "history_shared_bottom_fixed.json").read_text())
    assert history["config"]["optimizer"] == "lazy_adam" and history["config"]["steps_per_epoch"] == 3
    assert cli.main(["train", "--dataset", "synthetic", "--model", "shared_bottom", "--steps-per-epoch", "3"]) == 2
    assert "--steps-per-epoch 3: only with --shards" in capsys.readouterr().err
    assert cli.main(["shards", "--out", str(out), "--users", "10", "--items", "10", "--interactions", "80"]) == 2
    assert "must be at most half of n_users*n_items" in capsys.readouterr().err


def test_a_prepared_split_written_as_shards_looks_up_the_prepared_features(tmp_path):
    world = make_recsys_world(n_users=300, n_items=200, n_interactions=6000, seed=1).data
    prepared = prepare_tasks(world, "random", seed=1)
    folder = streaming.write_shards(prepared, tmp_path / "own", rows_per_shard=2500)
    data = load_shards(folder)
    assert data.meta["made_by"] == "write_shards" and data.meta["split"] == "random"
    assert len(data.train.files) == -(-len(prepared.train) // 2500)
    for part in ("train", "valid"):
        ts, shards = getattr(prepared, part), getattr(data, part)
        assert len(shards) == len(ts)
        batches = list(shards.batches(10**6, shuffle=False))  # the file order is the prepared order
        assert len(batches) == 1
        got = data.tables.lookup(data.tables.user_ids[batches[0]["user_row"]],
                                 data.tables.item_ids[batches[0]["item_row"]])
        for name, want in ts.features.items():
            np.testing.assert_array_equal(got[name], want, err_msg=f"{part} {name}")
        for name, want in ts.targets().items():
            np.testing.assert_array_equal(batches[0][name], want.astype("float32"), err_msg=f"{part} {name}")
    assert data.spec == prepared.spec


def test_writing_a_split_refuses_text_vectors_and_keeps_other_folders(tmp_path):
    world = make_recsys_world(n_users=200, n_items=150, n_interactions=4000, seed=1).data
    prepared = prepare_tasks(world, seed=1)
    texted = type(prepared)(**{**prepared.__dict__, "builder": prepared.builder.with_vectors(
        {"item_text": ("item", pd.DataFrame(np.ones((150, 2)), index=world.items.index))})})
    with pytest.raises(ValueError, match=r"vector features \(item_text\), which a shard folder does not hold"):
        streaming.write_shards(texted, tmp_path / "t")
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="mine exists and is not a shard folder"):
        streaming.write_shards(prepared, precious)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_the_command_line_writes_a_data_set_as_shards(tmp_path, capsys):
    out = tmp_path / "own"
    assert cli.main(["shards", "--dataset", "synthetic", "--seed", "2", "--split", "random", "--out", str(out)]) == 0
    assert "shards written" in capsys.readouterr().out
    meta = json.loads((out / "meta.json").read_text())
    assert (meta["dataset"], meta["split"], meta["made_by"]) == ("synthetic", "random", "write_shards")
    assert cli.main(["train", "--shards", str(out), "--model", "shared_bottom", "--epochs", "1",
                     "--output-dir", str(tmp_path / "train")]) == 0


def test_the_two_tower_network_trains_on_shards_from_their_history(shards, tmp_path):
    from mtrec_study.models.retrieval import tower_data, user_history
    from mtrec_study.training import train

    data = load_shards(shards)
    parts = list(data.history_parts())
    users = np.concatenate([u for _, u, _ in parts])
    items = np.concatenate([i for _, _, i in parts])
    assert len(users) == int(data.builder.user_counts.sum())  # every training interaction, once
    train_pairs = _part(shards, "train").query("observed")
    assert sorted(zip(users.tolist(), items.tolist(), strict=True)) == sorted(
        zip(train_pairs["user_id"].tolist(), train_pairs["item_id"].tolist(), strict=True))
    built = tower_data(data, max_history=7)
    assert built["history"].shape == (len(data.builder.user_index) + 1, 7)
    # The last 7 of a user's pairs in file order, as item codes.
    path, u, i = parts[0]
    first = u[0]
    want = data.builder.item_index.reindex(i[u == first][-7:]).to_numpy()
    np.testing.assert_array_equal(built["history"][data.builder.user_index[first]][:len(want)], want)
    assert built["neg_ratio"] == pytest.approx((len(data.train) - len(users)) / len(users))
    rows = data.tables.rows("item", data.builder.item_index.index.to_numpy())
    np.testing.assert_array_equal(built["catalogue"]["item_idx"][1:], data.tables.item["item_idx"][rows])
    assert (built["catalogue"]["item_idx"][0] == 0).all()
    # Only rows with a label for a trained task are read, as in memory.
    kept = data.train.labelled(["retrieval", "interest"])
    assert len(kept) == len(users) == sum(len(b["user_row"]) for b in kept.batches(4096))
    # A prepared split written as shards builds the same tower data as in memory.
    prepared = prepare_tasks(make_recsys_world(n_users=300, n_items=200, n_interactions=6000, seed=1).data,
                             "random", seed=1)
    written = tower_data(load_shards(streaming.write_shards(prepared, tmp_path / "own")))
    np.testing.assert_array_equal(written["history"], user_history(prepared))
    in_memory = tower_data(prepared)
    assert written["neg_ratio"] == in_memory["neg_ratio"]
    for k, want in in_memory["catalogue"].items():
        np.testing.assert_array_equal(written["catalogue"][k], want, err_msg=k)
    # It trains, deterministically; above the full softmax's limit with the in-batch softmax.
    runs = [train("two_tower", data, epochs=2, batch_size=1024, seed=3, progress=False, **hp)
            for hp in ({}, {}, {"full_softmax_max_items": 50})]
    assert runs[0].history == runs[1].history
    assert runs[0].history["val_retrieval_loss"][1] < runs[0].history["val_retrieval_loss"][0]
    assert np.isfinite(runs[2].history["val_loss"]).all()
    assert runs[2].history["val_retrieval_loss"][1] < runs[2].history["val_retrieval_loss"][0]  # it learns too


def test_a_shard_history_that_does_not_fit_its_counts_names_the_file(shards, tmp_path):
    import shutil

    from mtrec_study.models.retrieval import tower_data
    from mtrec_study.training import train

    def copy(name):
        out = tmp_path / name
        shutil.copytree(shards, out)
        return out, sorted((out / "history").glob("part-*.parquet"))

    old, files = copy("old")
    shutil.rmtree(old / "history")
    with pytest.raises(DataFormatError, match="has no history/part-\\*.parquet, which the two-tower network"):
        train("two_tower", load_shards(old), epochs=1)
    train("shared_bottom", load_shards(old), epochs=1, progress=False)  # the pointwise models need none
    short, files = copy("short")
    table = pq.read_table(files[0]).to_pandas()
    table.iloc[1:].to_parquet(files[0])
    with pytest.raises(DataFormatError, match=r"history: .* training pairs, but counts.parquet counts"):
        tower_data(load_shards(short))
    stranger, files = copy("stranger")
    table = pq.read_table(files[0]).to_pandas()
    table.loc[0, "item_id"] = 10**6
    table.to_parquet(files[0])
    with pytest.raises(DataFormatError, match=r"part-000000.parquet: item ids \[1000000\] have no training"):
        tower_data(load_shards(stranger))
    split, files = copy("split")
    table = pq.read_table(files[0]).to_pandas()
    first = np.flatnonzero(table["user_id"].to_numpy() == table["user_id"].iloc[0])
    moved = np.zeros(len(table), bool)
    moved[first[len(first) // 2:]] = True  # the later half of one user's pairs into another file
    table[~moved].to_parquet(files[0])
    table[moved].to_parquet(files[0].with_name("part-999999.parquet"))
    with pytest.raises(DataFormatError, match="part-999999.parquet: user codes .* in two chunks"):
        tower_data(load_shards(split))
