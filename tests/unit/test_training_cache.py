"""The training cache: a hit gives the fresh training's network exactly; a damaged entry is never used."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from mtrec_study.prepare import prepare_tasks
from mtrec_study.training import cache
from mtrec_study.training.trainer import predict, train

SETTINGS = {"epochs": 2, "batch_size": 256, "learning_rate": 3e-3, "progress": False}


@pytest.fixture(scope="module")
def prepared(small_world):
    return prepare_tasks(small_world.data, "per_user_recent", seed=0, neg_ratio=1.0)


@pytest.fixture
def cache_on(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.TRAIN_CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(cache.NO_CACHE_ENV, raising=False)
    return tmp_path / "cache"


def _entries(folder):
    return sorted(p for p in folder.glob("*/*") if p.is_dir()) if folder.exists() else []


def _same(a, b, test):
    pa, pb = predict(a.net, test), predict(b.net, test)
    assert pa.keys() == pb.keys()
    for k in pa:
        assert np.array_equal(pa[k], pb[k]), k
    assert a.history == b.history and a.best_epoch == b.best_epoch and a.config == b.config


def test_off_unless_a_folder_is_named(monkeypatch, tmp_path):
    monkeypatch.delenv(cache.TRAIN_CACHE_ENV, raising=False)
    monkeypatch.delenv(cache.NO_CACHE_ENV, raising=False)
    assert cache.cache_dir() is None
    monkeypatch.setenv(cache.TRAIN_CACHE_ENV, str(tmp_path))
    assert cache.cache_dir() == tmp_path
    monkeypatch.setenv(cache.NO_CACHE_ENV, "1")
    assert cache.cache_dir() is None


@pytest.mark.parametrize("model,weighting", [("shared_bottom", "uncertainty"), ("two_tower", "fixed")])
def test_a_hit_equals_a_fresh_training(prepared, cache_on, monkeypatch, model, weighting):
    """Cache off, cache cold, cache warm: the same predictions, log and strategy state, byte for byte."""
    monkeypatch.setenv(cache.NO_CACHE_ENV, "1")
    fresh = train(model, prepared, weighting=weighting, seed=1, **SETTINGS)
    monkeypatch.delenv(cache.NO_CACHE_ENV)
    cold = train(model, prepared, weighting=weighting, seed=1, **SETTINGS)
    warm = train(model, prepared, weighting=weighting, seed=1, **SETTINGS)
    assert not fresh.from_cache and not cold.from_cache and warm.from_cache
    assert len(_entries(cache_on)) == 1
    _same(fresh, warm, prepared.test)
    _same(cold, warm, prepared.test)
    assert warm.seconds == cold.seconds and warm.epoch_seconds == cold.epoch_seconds  # the original run's times
    # The weighting strategy's own variables (uncertainty's log-variances) come back too.
    assert np.array_equal(np.asarray(warm.trainer.weighting.weights()), np.asarray(fresh.trainer.weighting.weights()))


def test_any_change_to_arguments_or_rows_is_a_miss(prepared, cache_on):
    base = train("shared_bottom", prepared, seed=0, **SETTINGS)
    assert train("shared_bottom", prepared, seed=1, **SETTINGS).from_cache is False
    assert train("shared_bottom", prepared, seed=0, lambdas=[1.0, 0.5, 1.0], **SETTINGS).from_cache is False
    assert train("shared_bottom", prepared, seed=0, dropout=0.2, **SETTINGS).from_cache is False
    # One label of one training row changed: another key.
    labels = dict(prepared.train.labels)
    name = sorted(labels)[0]
    labels[name] = labels[name].copy()
    labels[name][0] = labels[name][0] + 1
    changed = type(prepared)(**{**prepared.__dict__, "train": type(prepared.train)(
        prepared.train.pairs, prepared.train.features, labels, prepared.train.masks)})
    assert train("shared_bottom", changed, seed=0, **SETTINGS).from_cache is False
    assert len(_entries(cache_on)) == 5
    assert train("shared_bottom", prepared, seed=0, **SETTINGS).from_cache is True
    assert base.history == train("shared_bottom", prepared, seed=0, **SETTINGS).history


def test_a_damaged_entry_is_removed_and_trained_again(prepared, cache_on, caplog):
    first = train("shared_bottom", prepared, seed=2, **SETTINGS)
    (entry,) = _entries(cache_on)
    weights = entry / "weights.npz"
    weights.write_bytes(weights.read_bytes()[:-40])  # a truncated write
    with caplog.at_level(logging.WARNING, logger=cache.__name__):
        again = train("shared_bottom", prepared, seed=2, **SETTINGS)
    assert not again.from_cache
    assert any("damaged" in r.getMessage() and "weights.npz" in r.getMessage() for r in caplog.records)
    _same(first, again, prepared.test)
    assert train("shared_bottom", prepared, seed=2, **SETTINGS).from_cache  # stored afresh, whole
    # No temporary folder is left beside the entries.
    assert not [p for p in cache_on.rglob(".*")]


def test_runs_with_callbacks_always_train(prepared, cache_on):
    import keras

    train("shared_bottom", prepared, seed=3, callbacks=[keras.callbacks.Callback()], **SETTINGS)
    assert _entries(cache_on) == []


def test_content_hash_is_by_content_type_and_order():
    a = {"x": np.arange(3), "y": [1, "1"]}
    assert cache.content_hash(a) == cache.content_hash({"x": np.arange(3), "y": [1, "1"]})
    # Key order counts: a spec's feature order decides the layers' build order and so the initial weights.
    assert cache.content_hash(a) != cache.content_hash({"y": [1, "1"], "x": np.arange(3)})
    assert cache.content_hash(a) != cache.content_hash({"x": np.arange(3).astype("int32"), "y": [1, "1"]})
    assert cache.content_hash([1]) != cache.content_hash(["1"]) != cache.content_hash((1.0,))
    assert cache.content_hash(np.zeros((2, 3))) != cache.content_hash(np.zeros((3, 2)))
    with pytest.raises(cache.Unhashable, match="object"):
        cache.content_hash({"callback": object()})


@pytest.mark.parametrize("key,other", [("TF_ENABLE_ONEDNN_OPTS", "1"), ("TF_NUM_INTRAOP_THREADS", "1"),
                                       ("OPENBLAS_NUM_THREADS", "4")])
def test_the_key_follows_the_numerics_settings(monkeypatch, key, other):
    """oneDNN on or off, and the thread counts, change floating-point results, so they change the key."""
    from mtrec_study.config import NUMERIC_ENV

    for k, v in NUMERIC_ENV.items():
        monkeypatch.setenv(k, v)
    pinned = cache.training_key({"model": "mmoe"}, {"train": np.zeros(3)})
    assert cache.training_key({"model": "mmoe"}, {"train": np.zeros(3)}) == pinned
    monkeypatch.setenv(key, other)
    assert cache.training_key({"model": "mmoe"}, {"train": np.zeros(3)}) != pinned


def test_a_concurrent_store_of_the_same_key_is_silent(tmp_path, monkeypatch, caplog):
    """Two kernels that trained the same network: the second rename finds the entry there and says nothing."""
    key = "ab" + "0" * 62
    weights, record = [np.arange(4.0)], {"history": {}}
    real_replace = cache.os.replace

    def other_kernel_first(src, dst):
        real_replace(src, dst)  # the other kernel's entry lands first ...
        raise OSError(39, "Directory not empty")  # ... so this rename fails

    monkeypatch.setattr(cache.os, "replace", other_kernel_first)
    with caplog.at_level(logging.WARNING, logger=cache.__name__):
        entry = cache.store(key, weights, record, tmp_path)
    assert entry == tmp_path / "ab" / key and not caplog.records
    monkeypatch.setattr(cache.os, "replace", real_replace)
    assert cache.store(key, weights, record, tmp_path) == entry  # already there: kept
    loaded, rec = cache.load(key, tmp_path)
    assert np.array_equal(loaded[0], weights[0]) and rec == record
    # A log JSON cannot hold costs the reuse only, with a warning.
    with caplog.at_level(logging.WARNING, logger=cache.__name__):
        assert cache.store("cd" + "0" * 62, weights, {"bad": object()}, tmp_path) is None
    assert any("could not store" in r.getMessage() for r in caplog.records)


def test_the_cost_table_says_which_networks_were_timed_in_this_build(prepared, cache_on):
    """A hit keeps the original training's seconds, so 09's cost table flags a model with any cached run."""
    from mtrec_study.study import published

    setting = {"model": "shared_bottom", "learning_rate": 3e-3, "batch_size": 256}
    first = published.fit_network(prepared, setting, epochs=1, patience=1, seed=5)
    again = published.fit_network(prepared, setting, epochs=1, patience=1, seed=5)
    assert first.timed_here and not again.timed_here and again.seconds == first.seconds
    cost = [published._cost("mtl", "fold-0", first), published._cost("mtl", "fold-1", again),
            published._cost("bpr", "fold-0", published.Fitted("bpr", 1.0))]
    table = published.cost_table(cost).set_index("model")
    assert table.loc["mtl", "runs"] == 2 and table.loc["mtl", "train_seconds"] == first.seconds
    assert not table.loc["mtl", "timed in this build"] and table.loc["bpr", "timed in this build"]
    # The epochs early stopping kept, and the runs the cap cut short (here 1 epoch: both were best in it).
    assert first.extra["best_epoch"] == 1 and "runs cut by the cap" not in table
    table = published.cost_table(cost, epochs=1, patience=1).set_index("model")
    assert table.loc["mtl", "best epochs"] == "1" and table.loc["mtl", "runs cut by the cap"] == 2
    assert table.loc["bpr", "best epochs"] == "—" and np.isnan(table.loc["bpr", "runs cut by the cap"])
    # By hand, cap 20 and patience 3: early stopping ends a run 3 epochs after its best, so a run best
    # at epoch 17 stops at 20 by itself, and only runs best at 18-20 were cut short by the cap.
    by_hand = [{"model": "m", "split": s, "seconds": 1.0, "timed in this build": True, "best epoch": b}
               for s, b in (("a", 4), ("b", 20), ("c", 11), ("d", 17), ("e", 18))]
    row = published.cost_table(by_hand, epochs=20, patience=3).iloc[0]
    assert row["best epochs"] == "4–20" and row["runs cut by the cap"] == 2
    assert published.cost_table(by_hand, epochs=20, patience=1).iloc[0]["runs cut by the cap"] == 1  # best at 20
    assert published.cost_table(by_hand, epochs=20, patience=0).iloc[0]["runs cut by the cap"] == 1  # waits 1 epoch too
    with pytest.raises(ValueError, match="needs the early-stopping patience as well as epochs=20"):
        published.cost_table(by_hand, epochs=20)
