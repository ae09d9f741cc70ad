"""Lazy Adam: Keras's Adam on the rows a batch looked up, and nothing on the others."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from mtrec_study.config import NO_CACHE_ENV
from mtrec_study.datasets.synthetic import make_recsys_world
from mtrec_study.models.layers import lookup
from mtrec_study.prepare import prepare_tasks
from mtrec_study.training import train
from mtrec_study.training.optimizers import OPTIMIZERS, LazyAdam, make_optimizer


def _steps(optimizer, grads: list, rows: int = 4, width: int = 2) -> np.ndarray:
    """Apply each gradient in turn to a table of ones; return the table after every step."""
    table = keras.Variable(np.ones((rows, width), "float32"))
    optimizer.build([table])
    seen = []
    for g in grads:
        optimizer.apply([g], [table])
        seen.append(table.numpy().copy())
    return np.stack(seen)


def _rows(ids, values) -> tf.IndexedSlices:
    return tf.IndexedSlices(tf.constant(values, "float32"), tf.constant(ids, "int32"), tf.constant([4, 2]))


def test_first_step_is_the_hand_worked_adam_step_on_the_rows_looked_up():
    # From zero moments: m = (1-β1)g, v = (1-β2)g², α = lr·√(1-β2)/(1-β1), and ε is added to
    # √v (not to the bias-corrected √v̂): a large ε makes that visible. Rows 0 and 2 stay at 1.
    lr, eps = 0.1, 0.5
    after = _steps(LazyAdam(lr, epsilon=eps), [_rows([1, 3], [[2.0, -4.0], [0.5, 1.0]])])[0]
    g = np.array([[2.0, -4.0], [0.5, 1.0]])
    m, v = 0.1 * g, 0.001 * g**2
    alpha = lr * np.sqrt(1 - 0.999) / (1 - 0.9)
    np.testing.assert_allclose(after[[1, 3]], 1 - alpha * m / (np.sqrt(v) + eps), rtol=1e-5)
    np.testing.assert_array_equal(after[[0, 2]], 1.0)


def test_rows_not_looked_up_keep_still_where_adam_moves_them_on_its_momentum():
    grads = [_rows([0], [[1.0, 1.0]]), _rows([1], [[1.0, 1.0]])]
    lazy = _steps(LazyAdam(0.1), grads)
    dense = _steps(keras.optimizers.Adam(0.1), grads)
    assert np.array_equal(lazy[1][0], lazy[0][0])  # row 0 sat out step 2
    assert not np.allclose(dense[1][0], dense[0][0])  # Adam's momentum moved it anyway
    np.testing.assert_allclose(lazy[:, 1], dense[:, 1], rtol=1e-6)  # the row looked up steps as in Adam


def test_every_row_every_step_equals_keras_adam_and_dense_gradients_take_its_step():
    rng = np.random.default_rng(0)
    values = [rng.standard_normal((4, 2)).astype("float32") for _ in range(5)]
    sparse = _steps(LazyAdam(0.05, epsilon=0.5), [_rows([3, 1, 0, 2], v[[3, 1, 0, 2]]) for v in values])
    dense = _steps(keras.optimizers.Adam(0.05, epsilon=0.5), [tf.constant(v) for v in values])
    np.testing.assert_allclose(sparse, dense, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(_steps(LazyAdam(0.05, epsilon=0.5), [tf.constant(v) for v in values]), dense)


def test_a_row_looked_up_twice_takes_the_summed_gradient():
    twice = _steps(LazyAdam(0.1), [_rows([2, 2], [[1.0, -1.0], [0.5, 3.0]])])
    once = _steps(LazyAdam(0.1), [_rows([2], [[1.5, 2.0]])])
    np.testing.assert_allclose(twice, once, rtol=1e-6)


def test_lazy_adam_round_trips_through_keras_serialization():
    back = keras.optimizers.deserialize(keras.optimizers.serialize(LazyAdam(0.02, beta_1=0.8)))
    assert isinstance(back, LazyAdam)
    assert (float(back.learning_rate), back.beta_1) == pytest.approx((0.02, 0.8))


def test_make_optimizer_names_the_valid_choices_and_refuses_what_would_move_every_row():
    lazy = make_optimizer("lazy_adam", 0.03)
    assert isinstance(lazy, LazyAdam) and float(lazy.learning_rate) == pytest.approx(0.03)
    assert type(make_optimizer("adam", 0.02)) is keras.optimizers.Adam
    with pytest.raises(ValueError, match="'sgd'.*adam, lazy_adam"):
        make_optimizer("sgd", 1e-3)
    assert list(OPTIMIZERS) == ["adam", "lazy_adam"]
    with pytest.raises(ValueError, match="weight_decay=0.01 and use_ema=False change every row"):
        LazyAdam(weight_decay=0.01)
    with pytest.raises(ValueError, match="use_ema=True change every row"):
        LazyAdam(use_ema=True)


def test_lookup_gives_the_embedding_layers_rows_and_a_sparse_gradient():
    emb = keras.layers.Embedding(10, 3)
    emb.build((None,))
    ids = tf.constant([4, 0, 4, 9])
    np.testing.assert_array_equal(lookup(emb, ids).numpy(), emb(ids).numpy())
    np.testing.assert_array_equal(lookup(emb, tf.constant([4.0, 9.0])).numpy(), emb(tf.constant([4, 9])).numpy())
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(lookup(emb, ids))
    grad = tape.gradient(loss, emb.embeddings.value)
    assert isinstance(grad, tf.IndexedSlices)
    assert sorted(grad.indices.numpy().tolist()) == [0, 4, 4, 9]


def _op_types(fn, ids) -> set[str]:
    return {op.type for op in tf.function(fn).get_concrete_function(ids).graph.get_operations()}


def test_lookup_gathers_from_the_variable_without_reading_the_whole_table():
    emb = keras.layers.Embedding(10, 3)
    emb.build((None,))
    ids = tf.TensorSpec([None], tf.int32)
    ours, keras_call = _op_types(lambda i: lookup(emb, i), ids), _op_types(emb, ids)
    assert "ResourceGather" in ours and "ReadVariableOp" not in ours
    assert "ReadVariableOp" in keras_call  # what lookup avoids: Keras's Embedding reads the table first


@pytest.fixture(scope="module")
def small():
    return prepare_tasks(make_recsys_world(n_users=200, n_items=120, n_interactions=3000, seed=1).data, seed=1)


@pytest.mark.parametrize("weighting, sparse", [("uncertainty", True), ("pcgrad", False)])
def test_train_hands_lazy_adam_embedding_rows_as_slices_unless_pcgrad_flattens_them(small, monkeypatch, weighting,
                                                                                     sparse):
    monkeypatch.setenv(NO_CACHE_ENV, "1")
    seen: dict[str, bool] = {}
    original = LazyAdam.update_step

    def spy(self, gradient, variable, learning_rate):
        seen[getattr(variable, "path", variable.name)] = isinstance(gradient, tf.IndexedSlices)
        return original(self, gradient, variable, learning_rate)

    monkeypatch.setattr(LazyAdam, "update_step", spy)
    train("shared_bottom", small, weighting=weighting, epochs=1, batch_size=512, optimizer="lazy_adam", progress=False)
    tables = {k: v for k, v in seen.items() if "/emb_" in k}
    assert len(tables) >= 2 and all(v is sparse for v in tables.values()), tables
    assert not any(v for k, v in seen.items() if k not in tables)  # dense layers get dense gradients


def test_lazy_adam_under_a_one_device_strategy_trains_as_without_one(small, monkeypatch):
    monkeypatch.setenv(NO_CACHE_ENV, "1")
    runs = [train("shared_bottom", small, epochs=2, batch_size=512, optimizer="lazy_adam", progress=False,
                  distribution=d) for d in (None, tf.distribute.MirroredStrategy(["/cpu:0"]))]
    np.testing.assert_allclose(runs[0].history["val_loss"], runs[1].history["val_loss"], rtol=1e-4)
    assert runs[0].history["val_loss"][1] < runs[0].history["val_loss"][0]
