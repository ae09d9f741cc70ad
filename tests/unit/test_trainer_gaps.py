"""The trainer's side of the mutation run's gaps: learnt log-variances move, and each task's loss is
computed on that task's own labelled rows. (Kept apart from test_mutation_gaps.py because they
train: the mutation run of the pure functions does not need them.)"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import log_loss

from mtrec_study import prepare
from mtrec_study.tasks import BEHAVIOUR, INTEREST, ITEM_TASK, TASKS
from mtrec_study.training import weighting


@pytest.fixture(scope="module")
def prepared(small_world):
    return prepare.prepare_tasks(small_world.data, "per_user_recent", seed=0, neg_ratio=1.0)


def _sgd_trainer(spec, strategy, lr):
    from mtrec_study.models import build_model
    from mtrec_study.training.trainer import MultiTaskTrainer

    keras.utils.set_random_seed(0)
    net = build_model("shared_bottom", spec, dropout=0.0)
    trainer = MultiTaskTrainer(net, strategy)
    trainer.compile(optimizer=keras.optimizers.SGD(lr))
    return trainer


def test_training_moves_the_log_variances_by_their_own_gradient(prepared):
    """Kills frozen log_vars (trainable=False, or left out of the optimiser's variables).

    One plain SGD step from s = 0 moves each s_k by -lr · (1/2 - c_k L_k), with L_k the task's
    masked loss on that batch before the step (no dropout, so training and inference agree).
    """
    strategy = weighting.make_weighting("uncertainty")
    lr = 0.5
    trainer = _sgd_trainer(prepared.spec, strategy, lr)
    batch = prepared.train.subset(np.arange(256))
    y = {k: tf.constant(v) for k, v in batch.targets().items()}
    before = np.array([float(v) for v in trainer.task_losses(y, trainer.net(batch.features, training=True))])
    assert any(v is strategy.log_vars for v in trainer.trainable_variables)
    np.testing.assert_array_equal(np.asarray(strategy.log_vars), 0.0)
    trainer.fit(batch.features, batch.targets(), batch_size=256, epochs=1, shuffle=False, verbose=0)
    c = 1.0 - 0.5 * np.array([t == BEHAVIOUR for t in trainer.tasks], float)
    expected = -lr * (0.5 - c * before)
    np.testing.assert_allclose(np.asarray(strategy.log_vars), expected, rtol=1e-3, atol=1e-6)
    assert np.abs(expected).min() > 1e-3  # every task's s really had to move


# --------------------------------------------------------------------------- the trainer's masks
def test_each_task_loss_in_the_trainer_is_its_own_masked_metric(prepared):
    """Kills a trainer that gives a task another task's mask (for example the interest loss the
    item mask, so that sampled negatives count as dislikes), in training and in evaluation.

    With a learning rate of 0 the epoch's per-task loss is the batch losses weighted by each
    batch's labelled rows: exactly the loss over all of that task's labelled rows.
    """
    trainer = _sgd_trainer(prepared.spec, weighting.make_weighting("fixed"), 0.0)
    part = prepared.train
    hist = trainer.fit(part.features, part.targets(), batch_size=512, epochs=1, shuffle=False, verbose=0).history
    logs = trainer.evaluate(prepared.valid.features, prepared.valid.targets(), batch_size=300,
                            return_dict=True, verbose=0)
    for ts, got in ((part, {t: hist[f"{t}_loss"][0] for t in TASKS}), (prepared.valid, {t: logs[f"{t}_loss"] for t in TASKS})):
        pred = {k: v.ravel().astype("float64") for k, v in trainer.net.predict(ts.features, verbose=0).items()}
        for task in (INTEREST, ITEM_TASK):
            m = ts.masks[task] > 0
            want = log_loss(ts.labels[task][m], np.clip(pred[task][m], 1e-7, 1 - 1e-7), labels=[0, 1])
            assert got[task] == pytest.approx(want, rel=2e-4), task
        m = ts.masks[BEHAVIOUR] > 0
        mse = np.mean((ts.labels[BEHAVIOUR][m] - pred[BEHAVIOUR][m]) ** 2)
        assert got[BEHAVIOUR] == pytest.approx(mse, rel=2e-4)
    # The masks differ, so a swapped mask could not give the same numbers by accident.
    assert (prepared.valid.masks[INTEREST] == 0).any() and (prepared.valid.masks[ITEM_TASK] == 1).all()


# --------------------------------------------------------------------------- early stopping
def test_early_stopping_watches_only_the_trained_tasks(prepared):
    """A head with λ = 0 is logged but never trained, so it must not choose the epoch: ``loss`` and
    ``val_loss`` sum only the tasks with λ > 0."""
    from mtrec_study.training import train

    res = train("shared_bottom", prepared, lambdas=[1.0, 0.0, 1.0], epochs=2, batch_size=1024, seed=0,
                progress=False)
    assert res.trainer.trained == [INTEREST, BEHAVIOUR]
    for prefix in ("", "val_"):
        total = np.array(res.history[f"{prefix}loss"])
        trained = np.array(res.history[f"{prefix}{INTEREST}_loss"]) + np.array(res.history[f"{prefix}{BEHAVIOUR}_loss"])
        np.testing.assert_allclose(total, trained, rtol=1e-5)
        assert not np.allclose(total, trained + np.array(res.history[f"{prefix}{ITEM_TASK}_loss"]), rtol=1e-3)
    assert res.best_epoch == int(np.argmin(res.history["val_loss"])) + 1


def test_steps_per_execution_is_chosen_by_length():
    from mtrec_study.training import trainer as T

    assert T.steps_per_execution(rows=1000, batch_size=1000, epochs=T.MIN_STEPS_FOR_LOOP - 1) == 1
    assert T.steps_per_execution(rows=1000, batch_size=1000, epochs=T.MIN_STEPS_FOR_LOOP) == T.STEPS_PER_EXECUTION
    assert T.steps_per_execution(rows=1001, batch_size=1000, epochs=T.MIN_STEPS_FOR_LOOP // 2) == T.STEPS_PER_EXECUTION


@pytest.mark.parametrize("strategy", ["uncertainty", "gradnorm", "dwa"])
def test_several_batches_per_call_train_the_same_weights(prepared, monkeypatch, strategy):
    """The speed lever changes nothing: per-batch weighting (GradNorm), per-epoch weighting (DWA), the
    logged losses and early stopping come out the same with 7 batches per graph call as with one."""
    from mtrec_study.training import trainer as T

    runs = []
    for spe in (1, 7):
        monkeypatch.setattr(T, "STEPS_PER_EXECUTION", spe)
        monkeypatch.setattr(T, "MIN_STEPS_FOR_LOOP", 0)
        runs.append(T.train("shared_bottom", prepared, weighting=strategy, epochs=3, batch_size=256, seed=4,
                            progress=False))
        assert runs[-1].trainer.steps_per_execution == spe
    one, seven = runs
    assert one.history == seven.history
    for a, b in zip(one.trainer.get_weights(), seven.trainer.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_extra_callbacks_see_every_batch(prepared, monkeypatch):
    """A callback may watch single batches (as the NaN guard does), so runs that pass one keep one batch per call."""
    from mtrec_study.training import trainer as T

    monkeypatch.setattr(T, "MIN_STEPS_FOR_LOOP", 0)
    seen = []

    class Batches(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(batch)

    r = T.train("shared_bottom", prepared, epochs=1, batch_size=256, seed=0, progress=False, callbacks=[Batches()])
    n = -(-len(T.labelled(prepared.train, r.trainer.tasks)) // 256)
    assert r.trainer.steps_per_execution == 1 and seen == list(range(n))


@pytest.mark.parametrize("strategy", ["fixed", "gradnorm"])
def test_one_training_traces_its_step_once(prepared, monkeypatch, strategy):
    """Kills the second trace: Adam's slots made inside the first traced step make TensorFlow trace
    the step again (about 2 s of every short training). A last partial batch must not retrace either."""
    from mtrec_study.training import trainer as T

    traced = []
    step = T.MultiTaskTrainer.train_step
    monkeypatch.setattr(T.MultiTaskTrainer, "train_step", lambda self, data: traced.append(1) or step(self, data))
    assert len(T.labelled(prepared.train, list(TASKS))) % 256  # the last batch is partial
    T.train("shared_bottom", prepared, weighting=strategy, epochs=2, batch_size=256, seed=0, progress=False)
    assert len(traced) == 1
