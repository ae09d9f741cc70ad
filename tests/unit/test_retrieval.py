"""The two-tower network (retrieval softmax, history, tower scoring), EASE, and the ranking cross-check."""

from __future__ import annotations

import json
import logging
import math
import zipfile

import keras
import numpy as np
import pandas as pd
import pytest

from mtrec_study import evaluation as E
from mtrec_study.evaluation import metrics as M
from mtrec_study.features import id_positions
from mtrec_study.models import retrieval as R
from mtrec_study.models.classic import EASE
from mtrec_study.models.zoo import build_model, model_data
from mtrec_study.prepare import prepare_tasks
from mtrec_study.tasks import CTCVR, INTEREST, ITEM_TASK, RETRIEVAL, trained_tasks
from mtrec_study.training.trainer import MultiTaskTrainer, labelled, predict, train
from mtrec_study.training.weighting import make_weighting


@pytest.fixture(scope="module")
def prepared(small_world):
    return prepare_tasks(small_world.data, "per_user_recent", seed=0, neg_ratio=1.0)


@pytest.fixture(scope="module")
def trained(prepared):
    return train("two_tower", prepared, epochs=2, batch_size=256, learning_rate=3e-3, seed=0, progress=False)


def _warm_test_rows(prepared, n=40):
    """Observed test rows whose item was seen in training (so the catalogue holds it)."""
    ts = prepared.test
    rows = np.flatnonzero((ts.masks["interest"] > 0) & (ts.features["item_idx"] > 0))[:n]
    return ts.subset(rows)


# --------------------------------------------------------------------------- the softmax, by hand
def test_logp_is_the_softmax_over_unseen_catalogue_items(prepared, trained):
    net, rows = trained.net, _warm_test_rows(prepared)
    out = predict(net, rows)
    cat = R.catalogue_features(prepared)
    users = {n: rows.features[n] for n in prepared.spec.user_side}
    U, V, b = R.tower_vectors(net, users, cat)
    s = U @ V.T + b[None, :]
    history = R.user_history(prepared)
    for r in range(len(rows)):
        u, i = rows.features["user_idx"][r], rows.features["item_idx"][r]
        others = np.ones(len(V), bool)
        others[[0, i, *history[u][history[u] > 0]]] = False
        expected = s[r, i] - np.logaddexp(s[r, i], np.logaddexp.reduce(s[r, others]))
        assert out[RETRIEVAL][r] == pytest.approx(expected, abs=2e-4), r
    # The item head is Bayes' posterior against uniform negatives at the training ratio.
    n_items = len(V) - 1
    ratio = R.tower_data(prepared)["neg_ratio"]
    np.testing.assert_allclose(out[ITEM_TASK], 1 / (1 + np.exp(-(out[RETRIEVAL] + np.log(n_items) - np.log(ratio)))),
                               rtol=1e-4)


def test_tower_scores_rank_a_users_items_like_the_item_head(prepared, trained):
    rows = _warm_test_rows(prepared, 400)
    user = pd.Series(rows.pairs["user_id"]).value_counts().index[0]
    one = rows.subset(np.flatnonzero(rows.pairs["user_id"].to_numpy() == user))
    assert len(one) >= 3
    towers = E.pair_scorer(trained.net, prepared.builder)(one.pairs["user_id"].to_numpy(), one.pairs["item_id"].to_numpy())
    logp = predict(trained.net, one)[RETRIEVAL]
    # log p = s - (one normaliser per user): the difference is the same for all of the user's items.
    assert np.ptp(towers - logp) < 1e-3
    catalogue = E.catalogue_scorer(trained.net, prepared.builder, prepared.data.items.index.to_numpy())
    row = catalogue(np.array([user]))[0]
    pos = id_positions(prepared.data.items.index.to_numpy()).reindex(one.pairs["item_id"].to_numpy()).to_numpy()
    np.testing.assert_allclose(row[pos], towers, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- history
def test_history_and_catalogue_use_the_training_part_only(small_world):
    """Every test interaction changed (its item, rating and time): nothing the model trains on or is
    scored with moves."""
    from mtrec_study import text

    base = prepare_tasks(small_world.data, "per_user_recent", seed=0)
    inter = base.data.interactions.copy()
    test = base.indices["test"]
    rng = np.random.default_rng(1)
    had = inter.groupby("user_id")["item_id"].agg(set).to_dict()
    catalogue = base.data.items.index.to_numpy()
    for row, user in zip(test, inter["user_id"].to_numpy()[test], strict=True):  # another item the user never had
        item = rng.choice([i for i in catalogue if i not in had[user]])
        had[user].add(item)
        inter.loc[inter.index[row], "item_id"] = item
    inter.loc[inter.index[test], "rating"] = rng.integers(1, 6, size=test.size)
    inter.loc[inter.index[test], "timestamp"] = inter["timestamp"].max() + rng.integers(1, 100, size=test.size)
    changed = prepare_tasks(type(base.data)(**{**base.data.__dict__, "interactions": inter}), indices=base.indices,
                            seed=0)
    assert not np.array_equal(base.test.features["item_idx"], changed.test.features["item_idx"])
    # The training rows, their sampled negatives and every feature of them.
    pd.testing.assert_frame_equal(base.train.pairs, changed.train.pairs)
    for name, arr in base.train.features.items():
        np.testing.assert_array_equal(arr, changed.train.features[name], err_msg=name)
    # The history, the catalogue and the behaviour-text vectors (TF-IDF here: no model to fetch).
    np.testing.assert_array_equal(R.user_history(base), R.user_history(changed))
    for name, table in R.catalogue_features(base).items():
        np.testing.assert_array_equal(table, R.catalogue_features(changed)[name], err_msg=name)
    pd.testing.assert_frame_equal(text.build_text_features(base, "tfidf").users,
                                  text.build_text_features(changed, "tfidf").users)
    # Evaluation features: the same (user, item) pairs get the same features, validation's observed rows
    # included. (Validation and test negatives avoid every observed pair, test ones too, as NCF's do.)
    pairs = base.test.pairs
    for name, arr in changed.builder.transform(pairs["user_id"], pairs["item_id"]).items():
        np.testing.assert_array_equal(arr, base.test.features[name], err_msg=name)
    def observed(ts):  # the observed validation rows, in (user, item) order
        rows = ts.pairs.reset_index(drop=True)
        rows = rows[rows["observed"]].sort_values(["user_id", "item_id"]).index.to_numpy()
        return {name: arr[rows] for name, arr in ts.features.items()}

    before, after = observed(base.valid), observed(changed.valid)
    for name, arr in before.items():
        np.testing.assert_array_equal(arr, after[name], err_msg=name)
    # Every (user, item) in the history is a training pair, and the catalogue's counts are training counts.
    hist, b = R.user_history(base), base.builder
    train = base.interactions("train")
    train_pairs = set(zip(b.user_index.reindex(train["user_id"]).to_numpy(), b.item_index.reindex(train["item_id"]).to_numpy(),
                          strict=True))
    users, cols = np.nonzero(hist)
    assert {(int(u), int(hist[u, c])) for u, c in zip(users, cols, strict=True)} <= {(int(u), int(i)) for u, i in train_pairs}
    counts = train.groupby("item_id").size().reindex(b.item_index.index).to_numpy()
    np.testing.assert_allclose(R.catalogue_features(base)["item_log_count"][1:], np.log1p(counts), rtol=1e-6)
    with pytest.raises(R.RetrievalInputError, match="'test'"):
        R.user_history(base, part="test")


def test_history_is_recent_training_items_and_leaves_out_the_row_item():
    layer = R.UserHistory(n_users=3, width=3, n_items=5, dim=2)
    layer.set_history(np.array([[0, 0, 0], [1, 2, 3], [4, 0, 0]]))
    layer.embedding.set_weights([np.arange(10, dtype="float32").reshape(5, 2)])
    full = np.asarray(layer(np.array([1, 2, 0])))
    np.testing.assert_allclose(full, [[4.0, 5.0], [8.0, 9.0], [0.0, 0.0]])  # mean of rows 1-3; row 4; empty
    np.testing.assert_allclose(np.asarray(layer(np.array([1]), np.array([3]))), [[3.0, 4.0]])  # mean of rows 1, 2
    with pytest.raises(R.RetrievalInputError, match="shape"):
        layer.set_history(np.zeros((2, 3)))


def test_history_gradient_reaches_each_kept_item_once_per_user_divided_by_its_count():
    import tensorflow as tf

    layer = R.UserHistory(n_users=3, width=3, n_items=5, dim=2)
    layer.set_history(np.array([[0, 0, 0], [1, 2, 3], [4, 2, 0]]))
    table = layer.embedding.embeddings
    with tf.GradientTape() as tape:
        out = layer(np.array([1, 2, 2, 0]), np.array([3, 0, 4, 1]))  # user 1 drops item 3, user 2 once item 4
        total = tf.reduce_sum(out[:, 0])
    grad = tf.convert_to_tensor(tape.gradient(total, table.value))[:, 0].numpy()
    # user 1 keeps {1, 2}: 1/2 each; user 2 keeps {4, 2}: 1/2 each, then {2}: 1; user 0: nothing.
    np.testing.assert_allclose(grad, [0.0, 0.5, 0.5 + 0.5 + 1.0, 0.0, 0.5])


def test_user_history_keeps_the_most_recent_items(prepared):
    hist = R.user_history(prepared, max_history=2)
    train = prepared.interactions("train")
    from mtrec_study.prepare import time_order

    u = int(train["user_id"].iloc[0])
    last_two = time_order(train[train["user_id"] == u])["item_id"].to_numpy()[-2:]
    codes = prepared.builder.item_index.reindex(last_two).to_numpy()
    np.testing.assert_array_equal(hist[prepared.builder.user_index[u]], codes)
    with pytest.raises(R.RetrievalInputError, match="max_history"):
        R.user_history(prepared, max_history=0)


# --------------------------------------------------------------------------- training and scale
def test_two_tower_trains_on_observed_rows_only(prepared, trained):
    assert trained.trainer.tasks == ["interest", "behaviour", RETRIEVAL]
    kept = labelled(prepared.train, trained.trainer.tasks)
    assert len(kept) == int(prepared.train.pairs["observed"].sum()) < len(prepared.train)
    assert labelled(prepared.train, ["interest", ITEM_TASK, "behaviour"]) is prepared.train
    first, last = trained.history["val_retrieval_loss"][0], trained.history["val_retrieval_loss"][-1]
    assert np.isfinite([first, last]).all() and last < np.log(prepared.spec.categorical["item_idx"])


def test_gradnorm_balances_at_the_user_tower(prepared):
    from mtrec_study.training.sharing import last_shared_layer

    res = train("two_tower", prepared, weighting="gradnorm", epochs=1, batch_size=512, seed=0, progress=False)
    assert last_shared_layer(res.net, res.trainer.tasks).name == "shared_user_tower"
    weights = [res.history[f"weight_{t}"][0] for t in res.trainer.tasks]
    assert np.isfinite(weights).all() and len(set(np.round(weights, 6))) > 1  # the weights moved apart


def test_single_task_twin_has_the_same_towers(prepared):
    net = build_model("two_tower", prepared.spec, tasks=(ITEM_TASK,), **model_data("two_tower", prepared))
    assert set(net.output) == {ITEM_TASK, RETRIEVAL} and R.is_two_tower(net)


def test_large_catalogue_switches_to_the_in_batch_softmax(prepared, caplog):
    with caplog.at_level(logging.INFO, logger=R.log.name):
        net = build_model("two_tower", prepared.spec, full_softmax_max_items=10, **model_data("two_tower", prepared))
    assert "in-batch sampled softmax" in caplog.text and "full_softmax_max_items=10" in caplog.text
    assert "catalogue" not in {layer.name for layer in net.layers}
    trainer = MultiTaskTrainer(net, make_weighting("fixed"))
    trainer.compile(optimizer=keras.optimizers.Adam(1e-2))
    part = labelled(prepared.train, trainer.tasks).subset(np.arange(64))
    batch = (part.features, {k: keras.ops.convert_to_tensor(v) for k, v in part.targets().items()})
    losses = [float(trainer.train_step(batch)["retrieval_loss"]) for _ in range(5)]
    # The sampled softmax learns: a loss that did not move (a layer that dropped the logits) fails here.
    assert all(np.isfinite(losses)) and losses[0] > 0 and losses[-1] < losses[0] - 0.1, losses
    # The item head is σ(s) there: a row's value does not depend on which rows share its batch.
    rows = prepared.test.subset(np.arange(40))
    together = predict(net, rows)[ITEM_TASK]
    apart = np.concatenate([predict(net, rows.subset(np.arange(k, k + 8)))[ITEM_TASK] for k in range(0, 40, 8)])
    np.testing.assert_allclose(together, apart, rtol=1e-5)


def _with_layer_config(path, out, class_name, change) -> None:
    """Copy the .keras file ``path`` to ``out`` with the config of its ``class_name`` layer changed by ``change``."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                layer = next(x for x in config["config"]["layers"] if x["class_name"] == class_name)
                change(layer["config"])
                data = json.dumps(config).encode()
            dst.writestr(item, data)


def test_a_file_of_another_tower_format_names_the_version(prepared, tmp_path):
    with pytest.raises(R.RetrievalInputError, match="format 0.*reads format 1"):
        R.Catalogue(prepared.spec.to_dict(), 5, format_version=0)
    message = "tower format 0; this version of mtrec_study reads format 1"
    # Real files: the current one loads; one whose catalogue has an older format, or none, fails naming
    # the format it has and the one it needs.
    net = build_model("two_tower", prepared.spec, **model_data("two_tower", prepared))
    net.save(tmp_path / "now.keras")
    assert keras.saving.load_model(tmp_path / "now.keras").count_params() == net.count_params()
    for name, change in (("older", lambda c: c.update(format_version=0)),
                         ("unversioned", lambda c: c.pop("format_version"))):
        _with_layer_config(tmp_path / "now.keras", tmp_path / f"{name}.keras", "Catalogue", change)
        with pytest.raises(Exception, match=message):
            keras.saving.load_model(tmp_path / f"{name}.keras")
    # A model without a catalogue (the in-batch softmax) carries its format on the history, which every
    # two-tower model has; a history saved before it recorded one was format 1 and still loads.
    in_batch = build_model("two_tower", prepared.spec, full_softmax_max_items=10, **model_data("two_tower", prepared))
    in_batch.save(tmp_path / "in_batch.keras")
    _with_layer_config(tmp_path / "in_batch.keras", tmp_path / "old.keras", "UserHistory",
                       lambda c: c.update(format_version=0))
    with pytest.raises(Exception, match=message):
        keras.saving.load_model(tmp_path / "old.keras")
    _with_layer_config(tmp_path / "in_batch.keras", tmp_path / "before.keras", "UserHistory",
                       lambda c: c.pop("format_version"))
    assert keras.saving.load_model(tmp_path / "before.keras").count_params() == in_batch.count_params()


def test_two_tower_needs_its_data():
    from mtrec_study.features import FeatureSpec

    spec = FeatureSpec(categorical={"user_idx": 3, "item_idx": 3}, multi_hot={}, dense=["item_log_count"],
                       user_side=["user_idx"], item_side=["item_idx", "item_log_count"])
    with pytest.raises(ValueError, match="catalogue_features"):
        build_model("two_tower", spec)
    with pytest.raises(ValueError, match="user_history"):
        build_model("two_tower", spec, n_catalogue=3)


# --------------------------------------------------------------------------- EASE
def test_ease_matches_its_definition_column_by_column():
    """B's column j is the ridge regression of item j on the other items (B_jj = 0): solved
    independently, one column at a time, with numpy's least squares."""
    rng = np.random.default_rng(0)
    X = (rng.random((30, 8)) < 0.35).astype(float)
    users, items = np.arange(30), np.arange(100, 108)
    train = pd.DataFrame([{"user_id": u, "item_id": items[j]} for u, j in zip(*np.nonzero(X), strict=True)])
    lam = 3.0
    model = EASE(l2=lam).fit(train, users, items)
    for j in range(8):
        others = [k for k in range(8) if k != j]
        A = np.vstack([X[:, others], np.sqrt(lam) * np.eye(7)])
        y = np.concatenate([X[:, j], np.zeros(7)])
        col = np.linalg.lstsq(A, y, rcond=None)[0]
        np.testing.assert_allclose(model.B[others, j], col, atol=1e-10)
        assert model.B[j, j] == 0.0
    np.testing.assert_allclose(model.score_catalogue(users[:4]), X[:4] @ model.B)
    np.testing.assert_allclose(model.score_pairs(np.array([3, 0, 3]), np.array([101, 107, 100])),
                               [(X @ model.B)[3, 1], (X @ model.B)[0, 7], (X @ model.B)[3, 0]])
    for bad in (-1, 0):
        with pytest.raises(ValueError, match="l2 > 0"):
            EASE(l2=bad)


# --------------------------------------------------------------------------- cross-check of ranking metrics
def test_ndcg_and_recall_agree_with_keras_rs():
    import keras_rs

    rng = np.random.default_rng(0)
    scores = rng.normal(size=(50, 30))
    relevant = rng.random((50, 30)) < 0.1
    relevant[np.arange(50), rng.integers(0, 30, 50)] = True  # every user has a relevant item
    ours = M.ranking_metrics(scores, relevant, ks=(10,))
    for metric, theirs in (("ndcg@10", keras_rs.metrics.NDCG(k=10)), ("recall@10", keras_rs.metrics.RecallAtK(k=10))):
        theirs.update_state(relevant.astype("float32"), scores.astype("float32"))
        assert float(theirs.result()) == pytest.approx(ours[metric].mean(), abs=1e-6), metric


def test_full_catalogue_ranking_of_a_split_agrees_with_keras_rs(prepared, trained):
    """The whole pipeline on a real split: 09's full-catalogue NDCG@10 and Recall@10 of a trained two-tower
    network against keras-rs's metrics on a score matrix masked here with plain loops."""
    import keras_rs

    items = prepared.data.items.index.to_numpy("int64")
    scorer = E.catalogue_scorer(trained.net, prepared.builder, items)
    per_user, _, users = E.full_catalogue_ranking(prepared, scorer, ks=(10,))
    scores = np.asarray(scorer(users), "float64")
    relevant = np.zeros(scores.shape, "float32")
    position, ranked = {item: j for j, item in enumerate(items)}, set(users)
    for part, into in (("train", "seen"), ("valid", "seen"), ("test", "relevant")):
        for user, item in prepared.interactions(part)[["user_id", "item_id"]].itertuples(index=False):
            if user in ranked:
                row, col = int(np.searchsorted(users, user)), position[item]
                if into == "seen":
                    scores[row, col] = -1e9  # a training or validation item is never a candidate
                else:
                    relevant[row, col] = 1.0
    assert len(users) > 50 and relevant.sum(axis=1).min() >= 1
    for metric, theirs in (("ndcg@10", keras_rs.metrics.NDCG(k=10)), ("recall@10", keras_rs.metrics.RecallAtK(k=10))):
        theirs.update_state(relevant, scores.astype("float32"))
        assert float(theirs.result()) == pytest.approx(per_user[metric].mean(), abs=1e-6), metric


def test_same_seed_gives_the_same_two_tower_network(prepared, trained):
    again = train("two_tower", prepared, epochs=2, batch_size=256, learning_rate=3e-3, seed=0, progress=False)
    for a, b in zip(trained.net.get_weights(), again.net.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert again.history == trained.history


def test_top_k_by_blocked_dot_products_matches_a_full_sort():
    from mtrec_study.evaluation import metrics as M
    from mtrec_study.evaluation.ranking import top_k_dot

    rng = np.random.default_rng(0)
    users = rng.integers(-2, 3, size=(300, 4)).astype("float32")  # small integers: exact scores, many ties
    items = rng.integers(-2, 3, size=(90, 4)).astype("float32")
    want = M.top_k(users @ items.T, 10, ties="stable")
    np.testing.assert_array_equal(top_k_dot(users, items, k=10, block_size=64), want)
    seen = [rng.choice(90, size=5, replace=False) for _ in range(300)]
    got = top_k_dot(users, items, k=10, block_size=37, exclude=lambda rows: [seen[r] for r in rows])
    masked = users @ items.T
    for r, cols in enumerate(seen):
        masked[r, cols] = -np.inf
    np.testing.assert_array_equal(got, M.top_k(masked, 10, ties="stable"))
    assert not any(set(got[r]) & set(seen[r]) for r in range(300))
    nearly_all = top_k_dot(users[:3], items, k=10, exclude=lambda rows: [np.arange(85)] * len(rows))
    np.testing.assert_array_equal(nearly_all[:, 5:], -1)  # five items left: the rest is padding
    np.testing.assert_array_equal(np.sort(nearly_all[:, :5], axis=1), np.tile(np.arange(85, 90), (3, 1)))
    with pytest.raises(ValueError, match="need the same width"):
        top_k_dot(users, items[:, :3])
    with pytest.raises(ValueError, match=r"k must lie in 1\.\.90"):
        top_k_dot(users, items, k=91)


def test_in_batch_log_prob_by_hand():
    """The sampled softmax on a hand-worked batch: log-Q correction, then another row's copy of the same item removed."""
    scores = np.array([[2.0, 0.5, 1.0], [0.3, 1.5, -0.2], [1.2, 0.1, 0.7]], "float32")
    items = np.array([5, 7, 5], "int32")  # rows 0 and 2 hold the same item: an accidental hit for each other
    counts = np.array([3.0, 1.0, 3.0])  # the items' training counts; the layer reads log1p of them
    got = np.asarray(R.InBatchLogProb()(scores, items, np.log1p(counts).astype("float32")))
    q = counts / counts.sum()  # the items' counts normalised over the batch: 3/7, 1/7, 3/7
    expected = []
    for i in range(3):
        kept = [j for j in range(3) if j == i or items[j] != items[i]]
        logits = {j: scores[i, j] - math.log(q[j]) for j in kept}
        expected.append(logits[i] - math.log(sum(math.exp(v) for v in logits.values())))
    # Row 1 by hand: logits 0.3 - log(3/7), 1.5 - log(1/7), -0.2 - log(3/7); nothing removed.
    assert expected[1] == pytest.approx(1.5 + math.log(7) - math.log(
        math.exp(0.3 + math.log(7 / 3)) + math.exp(1.5 + math.log(7)) + math.exp(-0.2 + math.log(7 / 3))))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Rare items in a large batch: normalised counts far below keras-rs's default floor of 1e-6 are corrected in full.
    big = np.array([1.0, 1e8, 1.0])
    rare = np.asarray(R.InBatchLogProb()(scores, np.array([1, 2, 3], "int32"), np.log1p(big).astype("float32")))
    qb = big / big.sum()
    for i in range(3):
        logits = [scores[i, j] - math.log(qb[j]) for j in range(3)]
        assert rare[i] == pytest.approx(logits[i] - math.log(sum(math.exp(v) for v in logits)), rel=1e-4, abs=1e-4)
    # Without the removal, row 0 would also normalise over its copy of item 5 in row 2 (a lower log p).
    assert got[0] > scores[0, 0] - math.log(q[0]) - math.log(sum(math.exp(scores[0, j] - math.log(q[j]))
                                                               for j in range(3)))


@pytest.mark.parametrize("arch", R.TOWER_ARCHS)
def test_every_sharing_mechanism_runs_on_the_towers(prepared, arch, tmp_path):
    """Shared-bottom, MMoE, PLE and ESMM each sit on the towers, train a step and survive a .keras round trip."""
    keras.utils.set_random_seed(0)
    net = build_model("two_tower", prepared.spec, arch=arch, **model_data("two_tower", prepared))
    outputs = set(net.output)
    assert {ITEM_TASK, RETRIEVAL, INTEREST} <= outputs and (CTCVR in outputs) == (arch == "esmm")
    # ESMM trains p(interact ∧ like) over every row in place of interest; the others train interest.
    assert (CTCVR in trained_tasks(list(net.output)), INTEREST in trained_tasks(list(net.output))) == \
        ((True, False) if arch == "esmm" else (False, True))
    trainer = MultiTaskTrainer(net, make_weighting("fixed"))
    trainer.compile(optimizer=keras.optimizers.Adam(1e-2))
    part = labelled(prepared.train, trainer.tasks).subset(np.arange(128))
    logs = trainer.train_step((part.features, {k: keras.ops.convert_to_tensor(v) for k, v in part.targets().items()}))
    assert all(np.isfinite(float(v)) for v in logs.values())
    x = prepared.test.subset(np.arange(50)).features
    out = {k: np.asarray(v) for k, v in net(x, training=False).items()}
    if arch == "esmm":  # the entire-space product, exactly
        np.testing.assert_allclose(out[CTCVR], out[ITEM_TASK] * out[INTEREST], rtol=1e-6)
    net.save(tmp_path / f"{arch}.keras")
    again = keras.saving.load_model(tmp_path / f"{arch}.keras")
    for k, v in again(x, training=False).items():
        np.testing.assert_array_equal(np.asarray(v), out[k], err_msg=k)


def test_an_unknown_tower_arch_names_the_valid_ones(prepared):
    with pytest.raises(ValueError, match="unknown arch 'moe'; valid: shared_bottom, mmoe, ple, esmm"):
        build_model("two_tower", prepared.spec, arch="moe", **model_data("two_tower", prepared))
    with pytest.raises(ValueError, match="'esmm' multiplies the item and interest heads, so it needs both tasks"):
        build_model("two_tower", prepared.spec, arch="esmm", tasks=("interest", "behaviour"),
                    **model_data("two_tower", prepared))
