"""Features looked up by id for data in memory: prepare_tasks(lookup=True), FeatureView and PairSet."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtrec_study.datasets.synthetic import make_recsys_world
from mtrec_study.features import FeatureView
from mtrec_study.prepare import prepare_tasks, refit_split
from mtrec_study.streaming import PairSet, _batched
from mtrec_study.text import TextFeatures, with_text_features
from mtrec_study.training import predict, train

WORLD = {"n_users": 400, "n_items": 300, "n_interactions": 8000, "seed": 1}


@pytest.fixture(scope="module")
def pair():
    data = make_recsys_world(**WORLD).data
    return prepare_tasks(data, "random", seed=3), prepare_tasks(data, "random", seed=3, lookup=True)


def test_a_view_holds_two_row_numbers_per_pair_and_reads_as_the_materialised_features(pair):
    dense, view = pair
    for part in ("train", "valid", "test"):
        a, b = getattr(dense, part), getattr(view, part)
        assert isinstance(b.features, FeatureView) and not isinstance(a.features, FeatureView)
        pd.testing.assert_frame_equal(a.pairs, b.pairs)  # the same rows, negatives and labels
        for name in a.features:
            np.testing.assert_array_equal(b.features[name], a.features[name], err_msg=f"{part} {name}")
            assert b.features[name].dtype == a.features[name].dtype
        for k, v in a.targets().items():
            np.testing.assert_array_equal(b.targets()[k], v)
    train_view = view.train.features
    assert train_view.user_rows.dtype == np.int32 and train_view.user_rows.nbytes == 4 * len(view.train)
    rows = np.array([5, 0, 17])
    sub = view.train.subset(rows)
    assert isinstance(sub.features, FeatureView)
    np.testing.assert_array_equal(sub.features["item_idx"], dense.train.features["item_idx"][rows])
    with pytest.raises(KeyError, match="no feature 'nope'"):
        train_view["nope"]


def test_text_vectors_join_the_view_tables(pair):
    dense, view = pair
    rng = np.random.default_rng(0)
    text = TextFeatures(pd.DataFrame(rng.standard_normal((len(dense.data.items), 4)), index=dense.data.items.index),
                        pd.DataFrame(rng.standard_normal((50, 4)), index=dense.data.users.index[:50]), "test", 0.0)
    a, b = with_text_features(dense, text), with_text_features(view, text)
    assert isinstance(b.valid.features, FeatureView)
    for name in ("item_text", "user_text"):
        np.testing.assert_array_equal(b.valid.features[name], a.valid.features[name])


def test_pair_batches_cover_every_row_once_in_a_seeded_order(pair):
    _, view = pair
    pairs = PairSet.of(view.train)
    first = list(pairs.batches(256, seed=1, epoch=0))
    again = list(pairs.batches(256, seed=1, epoch=0))
    other = list(pairs.batches(256, seed=1, epoch=1))
    rows = np.concatenate([b["user_row"] * 10**6 + b["item_row"] for b in first])
    assert len(rows) == len(view.train) and [len(b["user_row"]) for b in first[:-1]] == [256] * (len(first) - 1)
    np.testing.assert_array_equal(np.sort(rows), np.sort(pairs.user_rows.astype("int64") * 10**6 + pairs.item_rows))
    assert all(np.array_equal(x["item_row"], y["item_row"]) for x, y in zip(first, again, strict=True))
    assert not np.array_equal(first[0]["item_row"], other[0]["item_row"])
    in_order = np.concatenate([b["item_row"] for b in pairs.batches(256, shuffle=False)])
    np.testing.assert_array_equal(in_order, pairs.item_rows)
    with pytest.raises(TypeError, match="lookup=True"):
        PairSet.of(pair[0].train)


def test_batched_joins_window_rests_and_ends_with_a_short_batch():
    windows = [{"user_row": np.arange(5)}, {"user_row": np.arange(5, 12)}]
    got = [b["user_row"].tolist() for b in _batched(iter(windows), 4, None)]
    assert got == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    got = [b["user_row"].tolist() for b in _batched(iter([{"user_row": np.arange(6)}]), 4, None)]
    assert got == [[0, 1, 2, 3], [4, 5]]


def test_lookup_training_is_the_materialised_training(pair):
    dense, view = pair
    settings = dict(weighting="uncertainty", epochs=3, batch_size=256, seed=0, progress=False)
    a = train("shared_bottom", dense, **settings)
    b = train("shared_bottom", view, **settings)
    assert b.config["features"] == "lookup" and "features" not in a.config
    # The same rows, the same seeded batches, the same features: the same training.
    assert b.history.keys() == a.history.keys()
    for k in a.history:
        np.testing.assert_allclose(b.history[k], a.history[k], rtol=1e-6, err_msg=k)
    for w, v in zip(a.trainer.get_weights(), b.trainer.get_weights(), strict=True):
        np.testing.assert_allclose(v, w, rtol=1e-5, atol=1e-6)
    assert b.history["val_loss"][-1] < b.history["val_loss"][0]
    got, want = predict(b.net, view.test), predict(b.net, dense.test)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-6)


def test_a_refit_looks_features_up_as_the_materialised_refit_reads_them(pair):
    """A refit keeps the lookup and trains without validation either way: the same training."""
    dense, view = (refit_split(p, seed=3) for p in pair)
    assert isinstance(view.train.features, FeatureView) and len(view.valid) == len(dense.valid) == 0
    settings = dict(epochs=2, patience=None, batch_size=256, seed=0, progress=False)
    a, b = train("shared_bottom", dense, **settings), train("shared_bottom", view, **settings)
    assert b.history.keys() == a.history.keys() and not any(k.startswith("val_") for k in b.history)
    for w, v in zip(a.trainer.get_weights(), b.trainer.get_weights(), strict=True):
        np.testing.assert_allclose(v, w, rtol=1e-5, atol=1e-6)


def test_validation_runs_in_training_sized_batches(pair, monkeypatch):
    from mtrec_study.training.trainer import MultiTaskTrainer

    dense, _ = pair
    seen = {}
    original = MultiTaskTrainer.fit

    def spy(self, *args, **kwargs):
        seen.update(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MultiTaskTrainer, "fit", spy)
    train("shared_bottom", dense, epochs=1, batch_size=512, seed=0, progress=False)
    assert seen["validation_batch_size"] == 512 and seen["shuffle"] is False  # Keras's default would be 32


def test_lookup_sets_refuse_a_strategy_and_allow_steps_per_epoch(pair):
    import tensorflow as tf

    _, view = pair
    with pytest.raises(ValueError, match="looked up by id .* tf.distribute cannot split"):
        train("shared_bottom", view, epochs=1, distribution=tf.distribute.MirroredStrategy(["/cpu:0"]),
              progress=False)
    result = train("single_task", view, tasks=["interest"], epochs=2, batch_size=128, steps_per_epoch=5,
                   progress=False)
    assert len(result.history["loss"]) == 2 and result.config["steps_per_epoch"] == 5


def test_the_command_line_trains_with_features_looked_up(tmp_path, capsys):
    import json

    from mtrec_study import cli

    out = tmp_path / "train"
    assert cli.main(["train", "--dataset", "synthetic", "--seed", "2", "--model", "shared_bottom", "--epochs", "1",
                     "--lookup", "--steps-per-epoch", "3", "--output-dir", str(out)]) == 0
    config = json.loads((out / "history_shared_bottom_fixed.json").read_text())["config"]
    assert config["features"] == "lookup" and config["steps_per_epoch"] == 3
    assert cli.main(["train", "--shards", str(tmp_path), "--lookup", "--model", "shared_bottom"]) == 2
    assert "--lookup is for --dataset" in capsys.readouterr().err


def test_feature_bytes_count_arrays_or_row_numbers_and_tables(pair, tmp_path):
    import json

    from mtrec_study.study import scaling

    dense, view = pair
    parts = (dense.train, dense.valid, dense.test)
    examples = sum(len(p) for p in parts)
    arrays = sum(v.nbytes for p in parts for v in p.features.values())
    assert scaling.feature_bytes(dense) == arrays
    assert scaling.feature_bytes(dense, text_dim=3) == arrays + 2 * 4 * 3 * examples
    tables = view.train.features.tables
    n_ids = len(tables.user_ids) + len(tables.item_ids)
    table_bytes = sum(a.nbytes for a in (*tables.user.values(), *tables.item.values()))
    assert scaling.feature_bytes(view) == 8 * examples + table_bytes
    assert scaling.feature_bytes(view, text_dim=3) == 8 * examples + table_bytes + 4 * 3 * n_ids
    assert scaling.lookup_benchmark(tmp_path / "none.json").empty
    path = tmp_path / "lookup.json"
    path.write_text(json.dumps({"machine": {"date": "2026-12-04"}, "means": [{"path": "lookup", "peak GB": 1.0}]}))
    assert scaling.lookup_benchmark(path).to_dict("records") == [{"path": "lookup", "peak GB": 1.0,
                                                                  "measured": "2026-12-04"}]


def test_the_two_tower_network_trains_on_features_looked_up(pair):
    dense, view = pair
    settings = dict(epochs=2, batch_size=256, seed=0, progress=False)
    a, b = train("two_tower", dense, **settings), train("two_tower", view, **settings)
    assert b.config["features"] == "lookup"
    for k in a.history:
        np.testing.assert_allclose(b.history[k], a.history[k], rtol=1e-5, err_msg=k)


def test_epochs_of_steps_run_on_into_the_next_pass(pair, monkeypatch):
    _, view = pair
    per_pass = -(-len(view.train) // 1024)
    steps = per_pass - 1  # the second epoch crosses the end of the first pass, the third ends in the second
    epochs = []
    original = PairSet.batches

    def spy(self, batch_size, seed=0, epoch=0, shuffle=True):
        if shuffle:
            epochs.append(epoch)
        return original(self, batch_size, seed, epoch, shuffle)

    monkeypatch.setattr(PairSet, "batches", spy)
    result = train("single_task", view, tasks=["interest"], epochs=3, batch_size=1024, steps_per_epoch=steps,
                   progress=False)
    assert int(result.trainer.optimizer.iterations.numpy()) == 3 * steps
    assert len(result.history["loss"]) == 3
    assert epochs[:3] == [0, 1, 2]  # the second and third passes are the next epochs' orders


def test_keras_shuffles_arrays_alike_every_epoch_and_array_sets_do_not():
    import tensorflow as tf
    from keras.src.trainers.data_adapters import (
        array_data_adapter as adapter,  # fails loudly if Keras moves it
    )

    from mtrec_study.reproducibility import set_seed
    from mtrec_study.streaming import ArraySet

    set_seed(0)
    ds = adapter.ArrayDataAdapter(np.arange(50), batch_size=50, shuffle=True).get_tf_dataset()
    keras_orders = [next(iter(ds)).numpy().tolist() for _ in range(3)]
    # Why the trainer does not use Keras's shuffle: under a fixed seed, each epoch's order is the same.
    assert keras_orders[0] == keras_orders[1] == keras_orders[2] != list(range(50))
    rows = ArraySet({"x": np.arange(50) * 10}, {"y": np.arange(50)})
    orders = [np.concatenate([b["row"] for b in rows.batches(16, seed=0, epoch=e)]) for e in range(3)]
    assert all(sorted(o.tolist()) == list(range(50)) for o in orders)
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    np.testing.assert_array_equal(orders[0], np.concatenate([b["row"] for b in rows.batches(16, seed=0, epoch=0)]))
    # Through tf.data: each pass is the next epoch's order, the features gathered by row.
    ds = rows.dataset(16, seed=0)
    passes = [np.concatenate([x["x"].numpy() for x, _ in ds]) for _ in range(2)]
    np.testing.assert_array_equal(passes[0], orders[0] * 10)
    np.testing.assert_array_equal(passes[1], orders[1] * 10)
    first = next(iter(ds))
    np.testing.assert_array_equal(first[1]["y"].numpy() * 10, first[0]["x"].numpy())
    assert first[1]["y"].dtype == tf.float32


def test_training_on_arrays_reads_each_epoch_in_a_new_order(pair, monkeypatch):
    from mtrec_study.streaming import ArraySet

    dense, _ = pair
    seen = []
    original = ArraySet.batches

    def spy(self, batch_size, seed=0, epoch=0, shuffle=True):
        seen.append((seed, epoch, shuffle))
        return original(self, batch_size, seed, epoch, shuffle)

    monkeypatch.setattr(ArraySet, "batches", spy)
    train("shared_bottom", dense, epochs=3, batch_size=512, seed=4, patience=3, progress=False)
    assert [c for c in seen if c[2]] == [(4, 0, True), (4, 1, True), (4, 2, True)]  # validation: shuffle=False
