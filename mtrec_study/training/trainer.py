"""Training: one trainer for every model and weighting strategy, driven by ``model.fit``.

:class:`MultiTaskTrainer` wraps a functional network. Its ``train_step`` computes the masked
per-task losses, combines them with the weighting strategy (for GradNorm and PCGrad it takes
per-task gradients on the shared layers), and applies the update — so callbacks, early stopping
and the progress bar keep working. Only the wrapped network is saved (``.keras``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from mtrec_study.config import show_progress
from mtrec_study.features import FeatureView
from mtrec_study.models.retrieval import MAX_HISTORY
from mtrec_study.models.zoo import TOWER_MODELS, build_model, loss_tasks, model_data
from mtrec_study.prepare import PreparedData, TaskSet
from mtrec_study.reproducibility import set_seed
from mtrec_study.results import atomic_write_text
from mtrec_study.streaming import ArraySet, PairSet, ShardSet, StreamedData, labelled_rows
from mtrec_study.tasks import RETRIEVAL, task_kind
from mtrec_study.training import cache
from mtrec_study.training.distribute import is_multi_worker
from mtrec_study.training.losses import task_loss
from mtrec_study.training.optimizers import make_optimizer, optimizer_class
from mtrec_study.training.sharing import _gradients, last_shared_layer, shared_variables
from mtrec_study.training.weighting import (
    WEIGHTINGS,
    Weighting,
    gradnorm_step,
    make_weighting,
    pcgrad,
)

# How fit runs the graph (benchmarks/bench_fold.py measures the choices on one ml-100k fold). Running
# STEPS_PER_EXECUTION batches per call into the graph gives the same weights and cuts the Python overhead
# per batch, but its while loop takes ~3 s longer to trace: it pays from about 300 batches, so trainings
# shorter than MIN_STEPS_FOR_LOOP batches (epochs x batches per epoch) keep one batch per call. XLA is not
# used: Keras turns it off while TensorFlow's op determinism is on.
STEPS_PER_EXECUTION = 64
# Weightings that change λ or the gradient from each replica's own batch (not shared across replicas).
PER_REPLICA_WEIGHTINGS = ("gradnorm", "pcgrad")
MIN_STEPS_FOR_LOOP = 500


def steps_per_execution(rows: int, batch_size: int, epochs: int) -> int:
    """Batches per call into the graph for a training of ``epochs`` over ``rows`` rows (see the constants above).

    Used by mtrec_study.training.trainer.
    """
    return STEPS_PER_EXECUTION if epochs * math.ceil(rows / batch_size) >= MIN_STEPS_FOR_LOOP else 1


class _RetracingNoise(logging.Filter):
    """Drop TensorFlow's "N out of the last M calls ... triggered tf.function retracing" warning.

    Each model gets its own predict function, and a study trains dozens of models in one process
    by design, so TensorFlow's global retracing counter fires although nothing is retraced in vain.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


tf.get_logger().addFilter(_RetracingNoise())


class SumOfTrackers(keras.metrics.Metric):
    """A metric whose result is the sum of other Mean trackers' results (they own the state).

    Used by mtrec_study.training.trainer.
    """

    def __init__(self, trackers: list, name: str = "loss"):
        super().__init__(name=name)
        self._trackers = trackers

    def update_state(self, *args, **kwargs):
        pass

    def result(self):
        return ops.sum(ops.stack([t.result() for t in self._trackers]))

    def reset_state(self):
        pass


class MultiTaskTrainer(keras.Model):
    """Trains ``net`` on its tasks with masked losses and a weighting strategy.

    ``fit(x=features, y=targets)`` where ``targets`` holds each task's labels and
    ``<task>_mask`` (see :meth:`mtrec_study.prepare.TaskSet.targets`). Logged per epoch:
    ``<task>_loss`` (unweighted, masked), ``weight_<task>`` and ``loss``, the unweighted sum of the
    losses of the tasks that are *trained* (λ > 0; the weighted objective differs by strategy, so it
    is not what we compare); with validation data the same with ``val_`` in front. Early stopping
    watches ``val_loss``, so it does not depend on the weighting strategy, and a head with λ = 0
    (logged, never trained) cannot choose the epoch.

    Used by mtrec_study.training.trainer, mtrec_study.training.diagnostics.
    """

    def __init__(self, net: keras.Model, weighting: Weighting, tasks: list[str] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.net = net
        self.tasks = list(tasks or loss_tasks(net))
        self.weighting = weighting
        weighting.setup(self, self.tasks, [task_kind(t) == "regression" for t in self.tasks])
        self.loss_trackers = {t: keras.metrics.Mean(name=f"{t}_loss") for t in self.tasks}
        self.weight_trackers = {t: keras.metrics.Mean(name=f"weight_{t}") for t in self.tasks}
        self.trained = [t for t, lam in zip(self.tasks, weighting.lam, strict=True) if lam > 0]
        self.total_tracker = SumOfTrackers([self.loss_trackers[t] for t in self.trained], name="loss")
        self._shared = None
        # Under a tf.distribute strategy (the trainer is made in its scope) the log also holds the mean
        # rows of one replica's batch: about batch_size / 2 when two workers share each global batch.
        self.rows_tracker = keras.metrics.Mean(name="replica_batch") if tf.distribute.has_strategy() else None
        self._multi_worker = is_multi_worker(tf.distribute.get_strategy())

    @property
    def metrics(self):
        rows = [self.rows_tracker] if self.rows_tracker is not None else []
        return [self.total_tracker, *self.loss_trackers.values(), *self.weight_trackers.values(), *rows]

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Under a strategy Keras 3 first builds the model on one batch averaged across workers, which
        # fails for MultiWorkerMirroredStrategy (it cannot average the per-worker batch). train()
        # builds the network and the optimizer beforehand, so there is nothing left to build.
        if self.optimizer is not None and self.optimizer.built:
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def call(self, inputs, training=False):
        return self.net(inputs, training=training)

    def task_losses(self, y, preds):
        """Masked per-task losses as a list (one scalar per task)."""
        return [task_loss(task_kind(t), y[t], preds[t], y[f"{t}_mask"]) for t in self.tasks]

    def _record(self, losses, y):
        # Each task's epoch loss is weighted by its labelled rows per batch, so batches without
        # labels for a task do not drag its average towards 0.
        w = self.weighting.weights()
        for k, t in enumerate(self.tasks):
            self.loss_trackers[t].update_state(losses[k], sample_weight=ops.sum(ops.cast(y[f"{t}_mask"], "float32")))
            self.weight_trackers[t].update_state(w[k])
        if self.rows_tracker is not None:
            self.rows_tracker.update_state(ops.cast(ops.shape(y[f"{self.tasks[0]}_mask"])[0], "float32"))
        # Keras averages a multi-worker run's logs along axis 0, which a scalar lacks: give it one.
        return {m.name: ops.reshape(m.result(), (1,)) if self._multi_worker else m.result() for m in self.metrics}

    def train_step(self, data):
        x, y = data[0], data[1]
        variables = self.trainable_variables
        wt = self.weighting
        # Every quantity we differentiate must be computed inside the tape (a slice taken
        # after the `with` block is not recorded and would get no gradient).
        with tf.GradientTape(persistent=wt.gradient_based) as tape:
            preds = self.net(x, training=True)
            per_task = self.task_losses(y, preds)
            losses = ops.stack(per_task)
            reg = ops.sum(ops.stack(self.net.losses)) if self.net.losses else ops.convert_to_tensor(0.0)
            total = wt.total(losses) + reg
            replicas = self.distribute_strategy.num_replicas_in_sync
            if replicas > 1:  # each replica's gradient is summed across replicas: scale to the mean
                total = total * (1.0 / replicas)
            if wt.name == "pcgrad":
                lam = ops.convert_to_tensor(wt.lam)
                weighted = [lam[k] * per_task[k] for k in range(len(per_task))]
        if wt.name == "pcgrad":
            grads = self._pcgrad_gradients(tape, weighted, total, reg, variables)
        else:
            if wt.name == "gradnorm":
                self._gradnorm_update(tape, per_task, losses)
            grads = tape.gradient(total, variables)
        del tape
        self.optimizer.apply(grads, variables)
        return self._record(losses, y)

    def _shared_vars(self):
        if self._shared is None:
            self._shared = shared_variables(self.net, self.tasks)
        return self._shared

    def _gradnorm_update(self, tape, per_task, losses):
        wt = self.weighting
        layer_vars = last_shared_layer(self.net, self.tasks).trainable_weights
        norms = []
        for loss in per_task:
            g = _gradients(tape, loss, layer_vars)
            norms.append(ops.sqrt(sum(ops.sum(ops.square(gi)) for gi in g)))
        norms = ops.stack(norms)
        initial = ops.where(ops.sum(wt.initial) > 0, wt.initial, ops.stop_gradient(losses))
        wt.initial.assign(initial)
        ratios = ops.stop_gradient(losses) / ops.maximum(initial, 1e-12)
        wt.w.assign(gradnorm_step(wt.w, ops.stop_gradient(norms), ratios, wt.alpha, wt.lr))

    def _pcgrad_gradients(self, tape, weighted, total, reg, variables):
        shared = self._shared_vars()
        shared_ids = {id(v) for v in shared}
        flat = []
        for loss in weighted:
            g = _gradients(tape, loss, shared)
            flat.append(ops.concatenate([ops.reshape(gi, (-1,)) for gi in g]))
        combined = pcgrad(ops.stack(flat))
        rest = [v for v in variables if id(v) not in shared_ids]
        # Task-specific parameters get their ordinary gradient (total = Σ λ_k L_k + reg).
        rest_grads = _gradients(tape, total, rest)
        reg_shared = _gradients(tape, reg, shared) if self.net.losses else None
        out, offset = {}, 0
        for i, v in enumerate(shared):
            n = int(np.prod(v.shape))
            g = ops.reshape(combined[offset:offset + n], v.shape)
            out[id(v)] = g + reg_shared[i] if reg_shared is not None else g
            offset += n
        for v, g in zip(rest, rest_grads, strict=True):
            out[id(v)] = g
        return [out[id(v)] for v in variables]

    def test_step(self, data):
        x, y = data[0], data[1]
        preds = self.net(x, training=False)
        losses = ops.stack(self.task_losses(y, preds))
        return self._record(losses, y)


class WeightingCallback(keras.callbacks.Callback):
    """Feeds epoch-average task losses to the strategy (DWA) and guards against NaN losses.

    On a NaN loss it stops training, restores the last good epoch's weights and records which
    task and epoch went wrong in :attr:`stopped`.

    Used by mtrec_study.training.trainer.
    """

    def __init__(self, trainer: MultiTaskTrainer):
        super().__init__()
        self.trainer = trainer
        self.stopped: str | None = None
        self._good = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._good = self.trainer.get_weights()

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        for t in self.trainer.tasks:
            v = logs.get(f"{t}_loss")
            if v is not None and not math.isfinite(float(v)):
                self.stopped = (f"NaN loss in task '{t}' at epoch {self._epoch + 1} (by batch {batch + 1}); "
                                f"training stopped and the weights from the end of epoch {self._epoch} kept")
                self.trainer.set_weights(self._good)
                self.trainer.stop_training = True
                return

    def on_epoch_end(self, epoch, logs=None):
        if self.stopped is None and logs is not None:
            self.trainer.weighting.on_epoch_end(epoch, [logs[f"{t}_loss"] for t in self.trainer.tasks])


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained network and everything logged about it.

    Used by mtrec_study.training.trainer, mtrec_study.study.experiment.
    """

    net: keras.Model
    trainer: MultiTaskTrainer
    history: dict[str, list[float]]
    seconds: float
    epoch_seconds: list[float]
    best_epoch: int
    config: dict = field(default_factory=dict)
    stopped: str | None = None
    from_cache: bool = False  # the weights and log were read from the training cache (times are the original run's)

    def to_json(self) -> dict:
        return {"config": self.config, "history": self.history, "seconds": self.seconds,
                "epoch_seconds": self.epoch_seconds, "best_epoch": self.best_epoch, "stopped": self.stopped}

    def summary(self) -> dict[str, float]:
        """Best epoch, wall time, mean epoch time and the mean train-validation loss gap at the best epoch.

        The gap is validation minus training loss per task at the epoch whose weights were kept,
        averaged over the tasks the trainer logged (NaN without validation data).
        """
        k = self.best_epoch - 1
        gap = [self.history[f"val_{t}_loss"][k] - self.history[f"{t}_loss"][k]
               for t in self.trainer.tasks if f"{t}_loss" in self.history and f"val_{t}_loss" in self.history]
        return {"best_epoch": self.best_epoch, "train_seconds": self.seconds,
                "seconds_per_epoch": float(np.mean(self.epoch_seconds)),
                "mean_train_valid_gap": float(np.mean(gap)) if gap else float("nan")}


class _EpochBar(keras.callbacks.Callback):
    """A tqdm bar over epochs with the latest validation loss (cleared when training ends)."""

    def __init__(self, epochs: int, desc: str):
        super().__init__()
        self.epochs, self.desc, self.bar = epochs, desc, None

    def on_train_begin(self, logs=None):
        from tqdm.auto import tqdm

        # delay: trainings shorter than 2 s never draw a bar (keeps executed notebooks readable)
        self.bar = tqdm(total=self.epochs, desc=self.desc, unit="epoch", leave=False, delay=2.0,
                        disable=not show_progress())

    def on_epoch_end(self, epoch, logs=None):
        self.bar.set_postfix_str(f"val_loss {float((logs or {}).get('val_loss', float('nan'))):.4f}")
        self.bar.update()

    def on_train_end(self, logs=None):
        self.bar.close()


class _EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._t)


def train(model: str, prepared: PreparedData | StreamedData, weighting: str = "fixed", lambdas=None, epochs: int = 10,
          batch_size: int = 1024, learning_rate: float = 1e-3, seed: int = 0, patience: int | None = 3,
          tasks: list[str] | None = None, weighting_kwargs: dict | None = None, output_dir: str | Path | None = None,
          verbose: int = 0, callbacks: list | None = None, progress: bool = True,
          distribution: tf.distribute.Strategy | None = None, steps_per_epoch: int | None = None,
          optimizer: str = "adam", **model_hp) -> TrainResult:
    """Build, train (early stopping on validation, best weights restored) and log one model.

    Args:
        model: A name from :data:`mtrec_study.models.MODELS`.
        prepared: The prepared task sets (train and valid are used), or a shard folder read by
            :func:`mtrec_study.streaming.load_shards` (data larger than memory: features are
            gathered per batch, the two-tower network's history read from the folder; never
            cached). Task sets from ``prepare_tasks(..., lookup=True)`` are also gathered per batch.
        weighting: A name from :data:`mtrec_study.training.weighting.WEIGHTINGS`.
        lambdas: Fixed task weights λ, one per trained task (default: all 1).
        epochs, batch_size, learning_rate, patience: Optimisation settings (Adam).
            ``patience=None`` trains exactly ``epochs`` epochs with no validation at all: the
            refit after model selection (:func:`mtrec_study.prepare.refit_split`), whose
            validation part is empty and whose epoch count was chosen on validation before.
        seed: Seeds everything; two runs with the same seed give identical weights on the CPU.
        tasks: For ``single_task``, the one task (``tasks=["interest"]``); for ``two_tower``, the
            article tasks it predicts (default all three; one gives its single-task baseline).
        weighting_kwargs: Hyperparameters of the strategy (``alpha``, ``temperature`` ...).
        output_dir: If given, the history is written there as ``history_<model>_<weighting>.json``.
        verbose: Keras verbosity (1 shows the progress bar).
        callbacks: Extra Keras callbacks.
        progress: Show a tqdm bar over epochs (cleared at the end).
        distribution: A ``tf.distribute`` strategy to train under (see
            :func:`mtrec_study.training.distribute.make_strategy`); ``batch_size`` is then the
            global batch. Such runs are never cached. Save the returned network (on worker 0) and
            predict from the ``.keras`` file in an ordinary process: Keras 3 cannot run ``predict``
            on a network built in a multi-worker scope.
        steps_per_epoch: Shards only: an epoch of this many batches (validation and early
            stopping after each), for training parts too large to pass over between checks.
        optimizer: ``"adam"`` (Keras's), or ``"lazy_adam"``, which moves only the embedding rows
            a batch looked up (:class:`mtrec_study.training.optimizers.LazyAdam`): a step of a
            pointwise network without ``emb_l2`` or PCGrad then costs the same however many users
            and items the tables hold (elsewhere it takes Adam's step; see that module).
        **model_hp: Passed to the model builder (widths, dropout, experts ...).

    Raises:
        ValueError: For unknown names, invalid λ, features that do not match the spec, or a
            per-replica weighting (GradNorm, PCGrad) under a strategy of several replicas.

    Introduced in notebooks/02_feature_extraction.ipynb.
    """
    optimizer_class(optimizer)  # an unknown name stops here, before any data is touched
    set_seed(seed)
    if model == "single_task":
        if not tasks or len(tasks) != 1:
            raise ValueError("single_task needs tasks=[<one task>]")
        model_hp["task"] = tasks[0]
    if model in TOWER_MODELS and tasks:
        model_hp["tasks"] = tuple(tasks)
    streamed = isinstance(prepared, StreamedData)
    looked_up = not streamed and isinstance(prepared.train.features, FeatureView)  # prepare_tasks(lookup=True)
    if steps_per_epoch is not None and (not (streamed or looked_up) or steps_per_epoch < 1):
        raise ValueError(f"steps_per_epoch={steps_per_epoch!r}: give a positive number of batches, and only with a "
                         f"shard folder (mtrec_study.streaming.load_shards) or features looked up by id "
                         f"(prepare_tasks(..., lookup=True)); materialised task sets train whole epochs")
    built_from_data = model_data(model, prepared, model_hp.pop("max_history", MAX_HISTORY))
    strategy = make_weighting(weighting, lambdas=lambdas, **(weighting_kwargs or {}))
    spec = prepared.spec
    if not streamed:
        spec.validate(prepared.train.features.head() if looked_up else prepared.train.features)
    if distribution is None and tf.distribute.has_strategy():  # called inside a strategy's scope
        distribution = tf.distribute.get_strategy()
    distributed = distribution is not None and (tf.distribute.has_strategy()
                                                or distribution is not tf.distribute.get_strategy())
    if distributed and (streamed or looked_up):
        raise ValueError("features looked up by id (shards, or prepare_tasks(..., lookup=True)) are read by one "
                         "Python generator per process, which tf.distribute cannot split between workers; train "
                         "them without --strategy, or distribute materialised task sets")
    if distributed and distribution.num_replicas_in_sync > 1 and weighting in PER_REPLICA_WEIGHTINGS:
        raise ValueError(f"weighting {weighting!r} changes the weights from each replica's own gradients, which "
                         f"replicas do not share; under a strategy of {distribution.num_replicas_in_sync} replicas "
                         f"use one of {', '.join(w for w in WEIGHTINGS if w not in PER_REPLICA_WEIGHTINGS)}")
    with distribution.scope() if distributed else contextlib.nullcontext():
        net = build_model(model, spec, **model_hp, **built_from_data)
        trainer = MultiTaskTrainer(net, strategy, tasks=tasks if model == "single_task" else None)
        train_set, valid_set = (labelled(ts, trainer.tasks) for ts in (prepared.train, prepared.valid))
        trainer.compile(optimizer=make_optimizer(optimizer, learning_rate),
                        # Extra callbacks may watch single batches, so they get one batch per call.
                        steps_per_execution=1 if callbacks else _per_call(len(train_set), batch_size, epochs,
                                                                          steps_per_epoch),
                        jit_compile=False)
        # Adam's slots are made now, not inside the first traced step: a variable created while
        # tracing makes TensorFlow trace the step a second time, about 2 s of a short training.
        trainer.optimizer.build(trainer.trainable_variables)
    config = {"model": model, "weighting": strategy.config(), "epochs": epochs, "batch_size": batch_size,
              "learning_rate": learning_rate, "seed": seed, "patience": patience, "tasks": trainer.tasks,
              "model_hp": {k: (list(v) if isinstance(v, tuple) else v) for k, v in model_hp.items()}}
    if steps_per_epoch is not None:
        config["steps_per_epoch"] = steps_per_epoch
    if looked_up:  # recorded: the batches, and so the training, are those of the materialised rows
        config["features"] = "lookup"
    if optimizer != "adam":  # Adam's runs keep the cache keys they had before the choice existed
        config["optimizer"] = optimizer
    # Extra callbacks observe the training itself (gradient conflicts ...), so those runs always train,
    # as do distributed runs (each worker holds only its share of the work).
    key = None if callbacks or distributed or streamed else _cache_key(config, lambdas, weighting_kwargs, spec, train_set,
                                                           valid_set, built_from_data)
    hit = cache.load(key) if key else None
    if hit is not None:
        weights, record = hit
        trainer.set_weights(weights)
        result = TrainResult(net, trainer, record["history"], record["seconds"], record["epoch_seconds"],
                             record["best_epoch"], config, record["stopped"], from_cache=True)
    else:
        result = _fit(trainer, train_set, valid_set, config, verbose, callbacks, progress)
        if key:
            cache.store(key, trainer.get_weights(), result.to_json())
    if result.stopped:
        warnings.warn(result.stopped, RuntimeWarning, stacklevel=2)
    if output_dir is not None:
        path = Path(output_dir) / f"history_{model}_{weighting}.json"
        atomic_write_text(path, json.dumps(result.to_json(), indent=2, allow_nan=True))
    return result


def _per_call(rows: int, batch_size: int, epochs: int, steps_per_epoch: int | None) -> int:
    """:func:`steps_per_execution` for this training; with ``steps_per_epoch``, a divisor of it, so
    that Keras runs exactly that many batches an epoch (it runs whole graph calls)."""
    if steps_per_epoch is None:
        return steps_per_execution(rows, batch_size, epochs)
    return math.gcd(steps_per_execution(steps_per_epoch * batch_size, batch_size, epochs), steps_per_epoch)


def _fit(trainer: MultiTaskTrainer, train_set: TaskSet | ShardSet, valid_set: TaskSet | ShardSet, config: dict,
         verbose: int, callbacks: list | None, progress: bool) -> TrainResult:
    """``trainer.fit`` with early stopping on ``val_loss`` (best weights restored), timed and logged;
    with ``patience`` None (a refit), exactly ``epochs`` epochs with no validation.

    Every kind of training data is fed as a ``tf.data`` pipeline whose epochs are seeded
    permutations, a new one each epoch, and validated in batches of the same size: materialised task sets as
    :class:`mtrec_study.streaming.ArraySet`, task sets whose features are a
    :class:`~mtrec_study.features.FeatureView` as :class:`mtrec_study.streaming.PairSet` (the
    same batches), and shards as :class:`mtrec_study.streaming.ShardSet`; the last two gather
    each batch's features from the side tables.
    """
    epochs, batch_size = config["epochs"], config["batch_size"]
    guard, timer = WeightingCallback(trainer), _EpochTimer()
    refit = config["patience"] is None  # a fixed number of epochs, nothing to validate on
    early = [] if refit else [keras.callbacks.EarlyStopping(monitor="val_loss", patience=config["patience"],
                                                            restore_best_weights=True)]
    if isinstance(train_set, TaskSet) and isinstance(train_set.features, FeatureView):
        train_set, valid_set = PairSet.of(train_set), PairSet.of(valid_set)
    if isinstance(train_set, (ShardSet, PairSet)):
        # An epoch of steps_per_epoch batches runs on into the next pass instead of stopping short.
        data = {"x": train_set.dataset(batch_size, seed=config["seed"], repeat="steps_per_epoch" in config),
                "shuffle": False, "steps_per_epoch": config.get("steps_per_epoch")}  # shuffled already
        if not refit:
            data["validation_data"] = valid_set.dataset(batch_size, shuffle=False)
    else:  # Keras's shuffle of arrays repeats one order every epoch under a fixed seed: ArraySet draws one per epoch
        data = {"x": ArraySet(train_set.features, train_set.targets()).dataset(batch_size, seed=config["seed"]),
                "shuffle": False}
        if not refit:
            # Validation stays arrays, in batches of the training size: tf.distribute splits arrays between workers
            # as one evaluation, where a generator's batches would be dealt out to the workers.
            data.update(validation_data=(valid_set.features, valid_set.targets()), validation_batch_size=batch_size)
    start = time.perf_counter()
    hist = trainer.fit(**data, epochs=epochs, verbose=verbose, callbacks=[guard, timer, *early, *(callbacks or []),
                                                   *([_EpochBar(epochs, config["model"])] if progress else [])])
    seconds = time.perf_counter() - start
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    val = history.get("val_loss", [])
    if refit:  # the last epoch's weights, or the last good epoch's when the NaN guard stopped training
        best = len(history.get("loss", [])) - (1 if guard.stopped else 0)
    else:
        best = int(np.nanargmin(val)) + 1 if val and not np.all(np.isnan(val)) else len(val)
    return TrainResult(trainer.net, trainer, history, seconds, timer.times, best, config, guard.stopped)


def _cache_key(config: dict, lambdas, weighting_kwargs: dict | None, spec, train_set: TaskSet, valid_set: TaskSet,
               built_from_data: dict) -> str | None:
    """The training cache's key of this run, or None when caching is off or an argument has no content hash."""
    if cache.cache_dir() is None:
        return None
    arguments = {**config, "lambdas": None if lambdas is None else [float(v) for v in lambdas],
                 "weighting_kwargs": weighting_kwargs or {}}
    def content(ts: TaskSet) -> list:
        f = ts.features
        return [[f.user_rows, f.item_rows, f.tables.user, f.tables.item] if isinstance(f, FeatureView) else f,
                ts.targets()]

    data = {"spec": spec.to_dict(), "built_from": built_from_data, "train": content(train_set),
            "valid": content(valid_set)}
    try:
        return cache.training_key(arguments, data)
    except cache.Unhashable:
        return None


def labelled(taskset: TaskSet | ShardSet, tasks: list[str]) -> TaskSet | ShardSet:
    """The rows of ``taskset`` that carry a label for some task in ``tasks``, when retrieval is one of them.

    The retrieval task learns from observed rows only, so the item task's sampled negatives
    carry no label for any task a two-tower network trains; they are left out of its batches
    instead of costing a forward pass for nothing (and, above the full softmax's limit, instead of
    joining the in-batch candidates, whose log-Q correction assumes observed items). Other models
    get ``taskset`` unchanged (their item task is trained on the negatives). Shards are filtered
    as they are read (:meth:`mtrec_study.streaming.ShardSet.labelled`).

    Used by mtrec_study.training.trainer.
    """
    if RETRIEVAL not in tasks:
        return taskset
    if isinstance(taskset, ShardSet):
        return taskset.labelled(tasks)
    keep = labelled_rows(taskset.masks, tasks)
    return taskset if keep.all() else taskset.subset(np.flatnonzero(keep))


def predict(net: keras.Model, taskset: TaskSet | dict, batch_size: int = 8192) -> dict[str, np.ndarray]:
    """Predictions per output as flat arrays.

    Introduced in notebooks/02_feature_extraction.ipynb.
    """
    feats = taskset.features if isinstance(taskset, TaskSet) else taskset
    if isinstance(feats, FeatureView):  # gathered batch by batch, never whole columns
        feats = (PairSet(feats.user_rows, feats.item_rows, {}, feats.tables).dataset(batch_size, shuffle=False)
                 .map(lambda x, _: x))
    out = net.predict(feats, batch_size=None if isinstance(feats, tf.data.Dataset) else batch_size, verbose=0)
    return {k: np.asarray(v).reshape(-1) for k, v in out.items()}


