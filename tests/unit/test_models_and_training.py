"""Models build, overfit a tiny batch, round-trip through .keras, and train deterministically."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from mtrec_study.models import MODELS, build_model
from mtrec_study.models.zoo import model_data
from mtrec_study.prepare import prepare_tasks
from mtrec_study.tasks import TASKS
from mtrec_study.training.diagnostics import gate_weights, task_gradient_cosines
from mtrec_study.training.trainer import MultiTaskTrainer, predict, train
from mtrec_study.training.weighting import WEIGHTINGS, make_weighting


@pytest.fixture(scope="module")
def prepared(small_world):
    return prepare_tasks(small_world.data, "per_user_recent", seed=0, neg_ratio=1.0)


def _tiny(prepared, n=32):
    return prepared.train.subset(np.arange(n))


def _tiny_distinct(prepared, n=32):
    """Rows whose users and items are all different, so even the article's model (user-only
    and item-only heads) can fit them."""
    pairs = prepared.train.pairs
    rng = np.random.default_rng(0)
    seen_u, seen_i, rows = set(), set(), []
    for r in rng.permutation(len(pairs)):
        u, i = pairs.at[r, "user_id"], pairs.at[r, "item_id"]
        if u not in seen_u and i not in seen_i:
            seen_u.add(u), seen_i.add(i), rows.append(r)
        if len(rows) == n:
            break
    return prepared.train.subset(np.array(rows))


@pytest.mark.parametrize("name", [m for m in MODELS if m != "single_task"] + ["single_task"])
def test_every_model_overfits_a_tiny_batch(prepared, name):
    keras.utils.set_random_seed(0)
    tiny = _tiny_distinct(prepared)
    hp = {"task": "interest"} if name == "single_task" else {}
    net = build_model(name, prepared.spec, **hp, **model_data(name, prepared))
    trainer = MultiTaskTrainer(net, make_weighting("fixed"))
    trainer.compile(optimizer=keras.optimizers.Adam(0.01))
    first = trainer.evaluate(tiny.features, tiny.targets(), batch_size=32, verbose=0, return_dict=True)["loss"]
    # 150 steps on the one batch of 32 rows, as one epoch of the batch repeated (an epoch each costs ~0.1 s of Keras).
    steps = {k: np.concatenate([v] * 150) for k, v in tiny.features.items()}
    trainer.fit(steps, {k: np.concatenate([v] * 150) for k, v in tiny.targets().items()}, batch_size=32, epochs=1,
                shuffle=False, verbose=0)
    last = trainer.evaluate(tiny.features, tiny.targets(), batch_size=32, verbose=0, return_dict=True)["loss"]
    assert last < 0.25 * first, (name, first, last)


@pytest.mark.parametrize("name", ["article", "shared_bottom", "mmoe", "ple", "esmm", "mf"])
def test_keras_round_trip_gives_identical_predictions(prepared, name, tmp_path):
    net = build_model(name, prepared.spec)
    x = _tiny(prepared, 64).features
    before = predict(net, x)
    path = tmp_path / f"{name}.keras"
    net.save(path)
    loaded = keras.saving.load_model(path)  # default safe_mode: no lambdas anywhere
    after = predict(loaded, x)
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])


@pytest.mark.parametrize("strategy", WEIGHTINGS)
def test_each_weighting_trains_and_logs_its_weights(prepared, strategy):
    r = train("mmoe", prepared, weighting=strategy, epochs=2, batch_size=256, seed=1)
    for t in TASKS:
        assert len(r.history[f"weight_{t}"]) == len(r.history["loss"])
        assert np.isfinite(r.history[f"{t}_loss"]).all()
    if strategy in ("uncertainty", "gradnorm"):
        assert any(abs(r.history[f"weight_{t}"][-1] - 1.0) > 1e-3 for t in TASKS)
    if strategy == "dwa":
        assert r.history["weight_interest"][0] == pytest.approx(1.0)


def test_same_seed_gives_identical_weights(prepared, tmp_path):
    a = train("ple", prepared, weighting="pcgrad", epochs=2, batch_size=256, seed=5, output_dir=tmp_path)
    b = train("ple", prepared, weighting="pcgrad", epochs=2, batch_size=256, seed=5)
    for wa, wb in zip(a.net.get_weights(), b.net.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert (tmp_path / "history_ple_pcgrad.json").exists()
    c = train("ple", prepared, weighting="pcgrad", epochs=2, batch_size=256, seed=6)
    assert any(not np.array_equal(x, y) for x, y in zip(a.net.get_weights(), c.net.get_weights(), strict=True))


def test_esmm_ctcvr_is_the_product(prepared):
    net = build_model("esmm", prepared.spec)
    out = predict(net, _tiny(prepared).features)
    np.testing.assert_allclose(out["ctcvr"], out["item"] * out["interest"], rtol=1e-6)


def test_article_item_head_cannot_personalise(prepared):
    net = build_model("article", prepared.spec)
    f = {k: v.copy() for k, v in _tiny(prepared, 8).features.items()}
    base = predict(net, f)["item"]
    for k in prepared.spec.user_side:
        f[k] = np.roll(f[k], 3)  # other users, same items
    np.testing.assert_array_equal(base, predict(net, f)["item"])


def test_gates_and_gradient_cosines_are_readable(prepared):
    r = train("mmoe", prepared, epochs=1, batch_size=256, seed=0, n_experts=3)
    gates = gate_weights(r.net, prepared.valid.features)
    assert len(gates) == 3 and all(g.shape == (3,) and abs(g.sum() - 1) < 1e-5 for g in gates.values())
    tiny = _tiny(prepared, 256)
    cos = task_gradient_cosines(r.trainer, tiny.features, tiny.targets())
    assert set(cos) == {"interest~item", "interest~behaviour", "item~behaviour"}
    assert all(-1 <= v <= 1 for v in cos.values())


def test_bad_inputs_are_named(prepared):
    with pytest.raises(ValueError, match="valid: article, shared_bottom"):
        build_model("deepfm", prepared.spec)
    with pytest.raises(ValueError, match="all λ are zero"):
        train("shared_bottom", prepared, lambdas=[0, 0, 0], epochs=1)
    bad = prepared.train.features.pop("gender")
    try:
        with pytest.raises(ValueError, match=r"missing columns \['gender'\]"):
            train("shared_bottom", prepared, epochs=1)
    finally:
        prepared.train.features["gender"] = bad


def test_nan_loss_stops_and_names_the_task(prepared):
    broken = prepare_tasks(prepared.data, indices=prepared.indices, seed=0)
    broken.train.labels["behaviour"][:] = np.nan
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        r = train("shared_bottom", broken, epochs=3, batch_size=256, seed=0)
    assert r.stopped is not None and "task 'behaviour'" in r.stopped and "epoch 1" in r.stopped
    assert all(np.isfinite(w).all() for w in r.net.get_weights())


def test_logged_validation_loss_is_the_exact_masked_average(prepared):
    r = train("shared_bottom", prepared, epochs=1, batch_size=256, seed=0)
    logs = r.trainer.evaluate(prepared.valid.features, prepared.valid.targets(), batch_size=64,
                              return_dict=True, verbose=0)
    pred = predict(r.net, prepared.valid)
    m = prepared.valid.masks["behaviour"] > 0
    mse = np.mean((pred["behaviour"][m] - prepared.valid.labels["behaviour"][m]) ** 2)
    assert logs["behaviour_loss"] == pytest.approx(mse, rel=1e-4)
    assert logs["loss"] == pytest.approx(sum(logs[f"{t}_loss"] for t in TASKS), rel=1e-5)


def test_expert_group_equals_separate_dense_experts():
    from mtrec_study.models import ExpertGroup

    group = ExpertGroup(3, [5, 4])
    x = np.random.default_rng(0).normal(size=(7, 6)).astype("float32")
    out = np.asarray(group(x))
    k0, b0, k1, b1 = (w.numpy() for w in group.weights)
    for i in range(3):
        h = np.maximum(x @ k0[i] + b0[i], 0)
        np.testing.assert_allclose(out[:, i], np.maximum(h @ k1[i] + b1[i], 0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="n >= 1"):
        ExpertGroup(0, [4])
