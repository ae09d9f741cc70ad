"""Data larger than memory: training examples in Parquet shards, features looked up by id.

The in-memory path (:func:`mtrec_study.prepare.prepare_tasks`) gives every row all of its
features, which costs rows × feature width (about 3 KB a row with text on both sides). Here a
row is only what belongs to the pair: the two ids, the rating and every task's label and mask
(:func:`mtrec_study.tasks.label_rows`, the one definition of the tasks). The features of the
user and of the item come from :class:`mtrec_study.features.FeatureTables`, one row per user
and per item, gathered batch by batch in a ``tf.data`` map. Memory then grows with users +
items, not with rows.

A shard folder, written by :func:`write_synthetic_shards` or, from a prepared data set, by
:func:`write_shards` (``python -m mtrec_study shards``):

========================== =========================================================================
``meta.json``              format version, sizes, seed and how the folder was made
``users.parquet``          the canonical user table (``RatingsData.users``)
``items.parquet``          the canonical item table (``RatingsData.items``)
``counts.parquet``         training interactions per user and per item (the features' counts)
``train/part-*.parquet``   training examples, shuffled across the whole set (an external shuffle)
``valid/part-*.parquet``   validation examples
``history/part-*.parquet`` every training interaction, a user's in one file, in time order (two-tower)
========================== =========================================================================

:func:`load_shards` reads a folder into :class:`StreamedData`, which
:func:`mtrec_study.training.train` accepts in place of a ``PreparedData``: the same models and
the same trainer, fed by :meth:`ShardSet.dataset`.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mtrec_study.config import GENRES
from mtrec_study.datasets.errors import DataFormatError
from mtrec_study.datasets.synthetic import (
    _interaction_counts,
    _item_table,
    _ratings,
    _user_table,
    _world_items,
    _world_users,
)
from mtrec_study.features import FeatureBuilder, FeatureSpec, FeatureTables, FeatureView
from mtrec_study.prepare import sample_negatives, time_order
from mtrec_study.tasks import label_rows

FORMAT_VERSION = 2  # 2: training negatives only among items with a training interaction
PARTS = ("train", "valid")
PAIR_COLUMNS = ("user_id", "item_id", "rating", "observed")
ROWS_PER_SHARD = 2_000_000  # an external-shuffle bucket is read whole: about 130 MB a shard
ROW_GROUP = 65_536
SHUFFLE_WINDOW = 262_144  # rows shuffled together when reading (the shards are shuffled already)
CANDIDATE_FACTOR = 3  # popularity-drawn candidates per interaction a user gets


def labelled_rows(columns: dict[str, np.ndarray], masks) -> np.ndarray:
    """Which rows carry a label for some mask in ``masks``: any of those columns above 0.

    The one rule behind :func:`mtrec_study.training.trainer.labelled` in memory and
    :meth:`ShardSet.labelled` on disk.

    Used by mtrec_study.streaming, mtrec_study.training.trainer.
    """
    keep = np.zeros(len(next(iter(columns.values()))), bool)
    for m in masks:
        keep |= np.asarray(columns[m]) > 0
    return keep


class _BatchedSet:
    """What every set the trainer reads batch by batch shares: its length and its ``tf.data`` pipeline.

    A subclass gives ``rows``, ``target_names``, ``batches(batch_size, seed, epoch, shuffle)``
    (dicts of row numbers and targets) and ``gathers()`` (which row column picks rows of which
    feature tables).
    """

    def __len__(self) -> int:
        return self.rows

    def dataset(self, batch_size: int, seed: int = 0, shuffle: bool = True, repeat: bool = False):
        """A ``tf.data.Dataset`` of ``(features, targets)`` batches, as the trainer's ``fit`` takes them.

        Each batch's features are gathered inside the pipeline by its row numbers. Each new pass
        over the examples is the next epoch of :meth:`batches`, a new seeded order. With
        ``repeat`` the passes follow one another without end, so that an epoch of
        ``steps_per_epoch`` batches never runs short where one pass ends.

        Used by mtrec_study.training.trainer.
        """
        return _lookup_dataset(self, batch_size, seed, shuffle, repeat)


class _TableRows:
    """Sets whose batches pick rows of the user and item tables (``user_row``, ``item_row``)."""

    def gathers(self) -> dict[str, dict[str, np.ndarray]]:
        """Which row column of a batch picks rows of which tables (for :func:`_lookup_dataset`)."""
        return {"user_row": self.tables.user, "item_row": self.tables.item}


class _InMemorySet(_BatchedSet):
    """Sets held in memory: one window of every row, each epoch one seeded permutation of it."""

    def window(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    @property
    def target_names(self) -> tuple[str, ...]:
        return tuple(self.targets)

    def batches(self, batch_size: int, seed: int = 0, epoch: int = 0, shuffle: bool = True):
        """Yield batches of row numbers and targets; with ``shuffle``, each epoch is one seeded
        permutation of every row (the same ``seed`` and ``epoch``, the same batches)."""
        yield from _batched([self.window()], batch_size, np.random.default_rng([seed, epoch]) if shuffle else None)


@dataclass
class ShardSet(_TableRows, _BatchedSet):
    """One part (``train`` or ``valid``) of a shard folder, read in batches.

    Attributes:
        files: The part's Parquet files, in name order.
        rows: Examples in the part (those kept by ``keep_masks``, if any).
        tables: The features of every user and item, gathered for each batch.
        target_names: The label and mask columns the trainer reads (``meta.json``'s ``targets``).
        keep_masks: If any, only rows with one of these masks above 0 are read (:meth:`labelled`).

    Used by mtrec_study.streaming, mtrec_study.training.trainer.
    """

    files: list[Path]
    rows: int
    tables: FeatureTables
    target_names: tuple[str, ...] = ()
    keep_masks: tuple[str, ...] = ()

    def labelled(self, tasks: list[str]) -> ShardSet:
        """The rows that carry a label for some task in ``tasks`` (a mask above 0), as
        :func:`mtrec_study.training.trainer.labelled` keeps them in memory: the same files, read
        with a filter, and the rows counted once from the mask columns.

        Raises:
            DataFormatError: If ``meta.json``'s targets lack a task's mask, or naming a file
                that cannot be read.
        """
        masks = tuple(f"{t}_mask" for t in tasks)
        missing = [m for m in masks if m not in self.target_names]
        if missing:
            raise DataFormatError(f"{self.files[0].parent}: no column {missing[0]!r} among {list(self.target_names)}")
        return ShardSet(self.files, self.count_rows(masks), self.tables, self.target_names, masks)

    def count_rows(self, columns) -> int:
        """Rows with some of ``columns`` above 0, counted over the files (``observed`` counts
        the observed interactions).

        Raises:
            DataFormatError: Naming a file that cannot be read or lacks a column.
        """
        return sum(int(labelled_rows(_read_columns(path, columns), columns).sum()) for path in self.files)

    def batches(self, batch_size: int, seed: int = 0, epoch: int = 0, shuffle: bool = True):
        """Yield batches as dicts of NumPy arrays: table rows ``user_row``/``item_row`` and the targets.

        With ``shuffle``, each epoch reads the files in a seeded order and shuffles windows of
        :data:`SHUFFLE_WINDOW` rows; the same ``seed`` and ``epoch`` give the same batches. With
        ``keep_masks``, the other rows are left out as they are read.

        Raises:
            DataFormatError: Naming the file whose ids have no row in the side tables.
        """
        rng = np.random.default_rng([seed, epoch])
        files = [self.files[i] for i in (rng.permutation(len(self.files)) if shuffle else range(len(self.files)))]
        columns = ["user_id", "item_id", *self.target_names]

        def windows():
            for path in files:
                for window in _windows(path, columns):
                    if self.keep_masks:
                        keep = labelled_rows(window, self.keep_masks)
                        window = {k: v[keep] for k, v in window.items()}
                    try:
                        rows = {"user_row": self.tables.rows("user", window.pop("user_id")),
                                "item_row": self.tables.rows("item", window.pop("item_id"))}
                    except ValueError as err:
                        raise DataFormatError(f"{path}: {err}") from None
                    yield {**rows, **window}

        yield from _batched(windows(), batch_size, rng if shuffle else None)


@dataclass
class PairSet(_TableRows, _InMemorySet):
    """One part of a data set in memory, as table rows and targets only: the features are
    gathered per batch, as for shards (:class:`ShardSet`).

    What :func:`mtrec_study.training.train` trains on when a task set's features are a
    :class:`~mtrec_study.features.FeatureView` (``prepare_tasks(..., lookup=True)``). Its
    batches are :class:`ArraySet`'s for the same rows and seed: the same training.

    Attributes:
        user_rows / item_rows: Each row's place in the user and in the item tables.
        targets: The trainer's labels and masks (``TaskSet.targets()``), one value per row.
        tables: The features of every user and item.

    Used by mtrec_study.streaming, mtrec_study.training.trainer.
    """

    user_rows: np.ndarray
    item_rows: np.ndarray
    targets: dict[str, np.ndarray]
    tables: FeatureTables

    @classmethod
    def of(cls, taskset) -> PairSet:
        """The pair set of a :class:`~mtrec_study.prepare.TaskSet` whose features are a FeatureView.

        Raises:
            TypeError: If the task set's features are materialised arrays.
        """
        view = taskset.features
        if not isinstance(view, FeatureView):
            raise TypeError("PairSet.of needs a task set whose features are a FeatureView "
                            "(prepare_tasks(..., lookup=True)); this one holds materialised arrays")
        return cls(view.user_rows, view.item_rows, taskset.targets(), view.tables)

    @property
    def rows(self) -> int:
        return len(self.user_rows)

    def window(self) -> dict[str, np.ndarray]:
        return {"user_row": self.user_rows, "item_row": self.item_rows,
                **{k: np.asarray(v, "float32") for k, v in self.targets.items()}}


@dataclass
class ArraySet(_InMemorySet):
    """Examples held as arrays (features materialised per row), batched as :class:`PairSet` is:
    each epoch one seeded permutation of every row, a new one each epoch.

    Keras's own shuffle of arrays in ``fit`` draws its permutation inside a ``tf.data`` pipeline
    from TensorFlow's global seed, so with a fixed seed every epoch sees the same order (a test
    shows it); this set gives each epoch its own order, reproducibly. The features are gathered
    by row inside the pipeline.

    Attributes:
        features: Input name -> one row per example.
        targets: Label and mask name -> one value per example.

    Used by mtrec_study.streaming, mtrec_study.study.ablations, mtrec_study.training.trainer.
    """

    features: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]

    @property
    def rows(self) -> int:
        return len(next(iter(self.features.values())))

    def window(self) -> dict[str, np.ndarray]:
        return {"row": np.arange(self.rows, dtype="int32"),
                **{k: np.asarray(v, "float32") for k, v in self.targets.items()}}

    def gathers(self) -> dict[str, dict[str, np.ndarray]]:
        """Which row column of a batch picks rows of which tables (for :func:`_lookup_dataset`)."""
        return {"row": self.features}


def _batched(windows, batch_size: int, rng: np.random.Generator | None):
    """Batches of ``batch_size`` rows from windows of rows (dicts of equal-length arrays), each
    window shuffled by ``rng`` unless it is None; the rest of a window joins the next, and the
    last batch may be short."""
    carry: dict[str, np.ndarray] | None = None
    for window in windows:
        if rng is not None:
            order = rng.permutation(len(next(iter(window.values()))))
            window = {k: v[order] for k, v in window.items()}
        if carry is not None:
            window = {k: np.concatenate([carry[k], v]) for k, v in window.items()}
        n = len(next(iter(window.values())))
        full = n - n % batch_size
        for start in range(0, full, batch_size):
            yield {k: v[start:start + batch_size] for k, v in window.items()}
        carry = {k: v[full:] for k, v in window.items()} if full < n else None
    if carry is not None:
        yield carry


def _lookup_dataset(part: ShardSet | PairSet | ArraySet, batch_size: int, seed: int, shuffle: bool,
                    repeat: bool = False):
    """``part``'s batches as a ``tf.data.Dataset`` of ``(features, targets)``: the features of each
    batch gathered from the part's tables by the batch's row numbers (``part.gathers()``); a new
    seeded order each pass, and with ``repeat`` one pass after another."""
    import itertools

    import tensorflow as tf

    epochs = itertools.count()
    targets = part.target_names
    with tf.device("/CPU:0"):  # the tables feed the input pipeline; they need not sit on an accelerator
        tables = {key: {n: tf.constant(t) for n, t in by_name.items()} for key, by_name in part.gathers().items()}
    signature = {**{key: tf.TensorSpec([None], tf.int32) for key in tables},
                 **{k: tf.TensorSpec([None], tf.float32) for k in targets}}

    def lookup(batch):
        features = {n: tf.gather(t, batch[key]) for key, by_name in tables.items() for n, t in by_name.items()}
        return features, {k: batch[k] for k in targets}

    ds = tf.data.Dataset.from_generator(lambda: part.batches(batch_size, seed, next(epochs), shuffle),
                                        output_signature=signature)
    # batches() yields the full batches and then the rest: Keras then knows an epoch's length.
    ds = ds.apply(tf.data.experimental.assert_cardinality(-(-part.rows // batch_size)))
    if repeat:  # from_generator calls the generator again for each pass: the next epoch's order
        ds = ds.repeat()
    return ds.map(lookup).prefetch(tf.data.AUTOTUNE)


def _read_columns(path: Path, columns) -> dict[str, np.ndarray]:
    """The named columns of one Parquet file as NumPy arrays.

    Raises:
        DataFormatError: Naming the file, if it cannot be read or lacks a column.
    """
    try:
        table = pq.read_table(path, columns=list(columns))
    except (pa.ArrowException, OSError, KeyError) as err:
        raise DataFormatError(f"{path}: {err}") from None
    return {c: table[c].to_numpy(zero_copy_only=False) for c in columns}


def _windows(path: Path, columns: list[str]):
    """The file's rows in windows of about :data:`SHUFFLE_WINDOW`, as dicts of NumPy arrays."""
    parquet = pq.ParquetFile(path)
    for batch in parquet.iter_batches(batch_size=SHUFFLE_WINDOW, columns=columns):
        yield {c: batch.column(c).to_numpy(zero_copy_only=False) for c in columns}


@dataclass
class StreamedData:
    """A shard folder ready to train on: what :func:`mtrec_study.training.train` needs of a
    ``PreparedData`` (the feature spec, ``train`` and ``valid``), with the rows left on disk.

    Used by mtrec_study.streaming, mtrec_study.models.retrieval, mtrec_study.training.trainer.
    """

    folder: Path
    meta: dict
    builder: FeatureBuilder
    train: ShardSet
    valid: ShardSet
    tables: FeatureTables = field(repr=False, default=None)

    @property
    def spec(self) -> FeatureSpec:
        return self.builder.spec

    def history_parts(self):
        """Yield ``(path, user_ids, item_ids)`` for each ``history`` file: the training
        interactions, each user's in time order (a synthetic world's in a seeded random order, as
        it has no time) and all of a user's in one file. What the two-tower network's history
        table is built from, file by file (:func:`mtrec_study.models.retrieval.tower_data`).

        Raises:
            DataFormatError: If the folder was written before shard folders kept a history, or
                naming a file that cannot be read.
        """
        files = sorted((self.folder / "history").glob("part-*.parquet"))
        if not files:
            raise DataFormatError(f"{self.folder}: has no history/part-*.parquet, which the two-tower network "
                                  f"is built from; write the folder again with python -m mtrec_study shards")
        for path in files:
            pairs = _read_columns(path, ["user_id", "item_id"])
            yield path, pairs["user_id"], pairs["item_id"]


def _need(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.exists():
        raise DataFormatError(f"{folder}: has no {name}; a shard folder holds meta.json, users.parquet, "
                              f"items.parquet, counts.parquet, train/ and valid/ (python -m mtrec_study shards)")
    return path


def load_shards(folder: str | Path) -> StreamedData:
    """Read a shard folder: the side tables and counts into memory, the examples left on disk.

    Raises:
        DataFormatError: Naming the folder and the missing file, a format version this code does
            not read, or a part without examples.

    Introduced in notebooks/10_scaling.ipynb.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFormatError(f"{folder}: no such folder of shards (make one with python -m mtrec_study shards)")
    meta_path = _need(folder, "meta.json")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT_VERSION:
        raise DataFormatError(f"{meta_path}: format {meta.get('format')!r}, but this code reads format "
                              f"{FORMAT_VERSION}; write the folder again with python -m mtrec_study shards")
    missing = [k for k in ("rows", "targets") if k not in meta] + [f"rows.{p}" for p in PARTS
                                                                   if p not in meta.get("rows", {})]
    if missing:
        raise DataFormatError(f"{meta_path}: has no {missing[0]!r}; write the folder again with python -m mtrec_study shards")
    users = pd.read_parquet(_need(folder, "users.parquet"))
    items = pd.read_parquet(_need(folder, "items.parquet"))
    counts_path = _need(folder, "counts.parquet")
    counts = pd.read_parquet(counts_path)
    # A prepared data set's folder names its feature columns (write_shards); a synthetic world's are MovieLens-like.
    builder = FeatureBuilder(users, items, user_categorical=tuple(meta.get("user_categorical", ("gender", "occupation"))),
                             item_categorical=tuple(meta.get("item_categorical", ())),
                             genres=tuple(meta.get("genres", [g for g in GENRES if g in items.columns])))
    try:
        by_side = {side: counts.loc[counts["side"] == side].set_index("id")["count"] for side in ("user", "item")}
        builder.fit_counts(by_side["user"], by_side["item"])
    except (KeyError, ValueError) as err:
        raise DataFormatError(f"{counts_path}: {err} (columns side, id, count; one row per user and per item "
                              f"with a training interaction)") from None
    tables = builder.tables()
    sets = {}
    for part in PARTS:
        files = sorted(_need(folder, part).glob("part-*.parquet"))
        if not files:
            raise DataFormatError(f"{folder / part}: no part-*.parquet files")
        sets[part] = ShardSet(files, int(meta["rows"][part]), tables, tuple(meta["targets"]))
    return StreamedData(folder, meta, builder, sets["train"], sets["valid"], tables)


# --------------------------------------------------------------------------- writing a synthetic world
def _block_pairs(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, popularity: np.ndarray,
                 counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each user's items for one block of users, without replacement.

    ``make_recsys_world`` draws ∝ exp(popularity + u·v) by a Gumbel top-k over the whole catalogue,
    which costs users × items. Here each user draws ``CANDIDATE_FACTOR × count + 10`` candidates
    ∝ exp(popularity), then keeps the ``count`` distinct ones with the largest u·v + Gumbel noise:
    a sampling-importance-resampling approximation of the same distribution, in users × count.
    """
    m = CANDIDATE_FACTOR * counts + 10
    owner = np.repeat(np.arange(counts.size), m)
    cand = rng.choice(v.shape[0], size=owner.size, p=popularity)
    score = np.einsum("nk,nk->n", u[owner], v[cand]) - np.log(-np.log(rng.random(owner.size)))
    key = owner.astype("int64") * v.shape[0] + cand
    order = np.lexsort((-score, key))
    distinct = order[np.r_[True, key[order][1:] != key[order][:-1]]]
    ranked = distinct[np.lexsort((-score[distinct], owner[distinct]))]
    own = owner[ranked]
    rank = np.arange(own.size) - np.searchsorted(own, own)
    keep = ranked[rank < counts[own]]
    return owner[keep], cand[keep]


def _examples(users: np.ndarray, items: np.ndarray, ratings: np.ndarray) -> pa.Table:
    """Example rows: ids (1-based), the rating (NaN on negatives), observed, every task's label and mask."""
    observed = ~np.isnan(ratings)
    labels, masks = label_rows(ratings, observed=observed)
    columns = {"user_id": (users + 1).astype("int32"), "item_id": (items + 1).astype("int32"),
               "rating": ratings.astype("float32"), "observed": observed,
               **labels, **{f"{t}_mask": m for t, m in masks.items()}}
    return pa.table(columns)


def write_synthetic_shards(folder: str | Path, n_users: int = 1_000_000, n_items: int = 100_000,
                           n_interactions: int = 50_000_000, seed: int = 0, n_factors: int = 8,
                           valid_frac: float = 0.05, block_users: int = 20_000, rows_per_shard: int = ROWS_PER_SHARD,
                           popularity_skew: float = 1.0, side_signal: float = 0.7, progress: bool = True) -> Path:
    """Generate a synthetic world of ``make_recsys_world``'s kind in blocks of users, into a shard folder.

    Memory is bounded by one block of users and one shard, not by ``n_interactions``. Each
    observed interaction goes to validation with probability ``valid_frac``, else to training.
    Every observed row gets one uniform negative (:func:`mtrec_study.prepare.sample_negatives`):
    training negatives avoid the user's training items, validation negatives all of the user's
    items. As in :func:`mtrec_study.prepare.prepare_tasks`, no training negative is an item
    without a training interaction: those (known once every block is drawn) are dropped, and
    ``meta.json`` counts them. Items are drawn as :func:`_block_pairs` describes.

    The folder is written under a temporary name and swapped in at the end, so a failed run
    leaves an existing folder as it was. Only an empty folder or an earlier shard folder is
    replaced.

    Args:
        folder: The shard folder to write.
        n_users, n_items, n_interactions: Sizes.
        seed: The same seed and settings give identical tables and examples (``meta.json`` records
            the settings and the time taken).
        n_factors, popularity_skew, side_signal: As in :func:`mtrec_study.datasets.synthetic.make_recsys_world`.
        valid_frac: Share of observed interactions held out for validation, in (0, 1).
        block_users: Users generated at a time (bounds memory).
        rows_per_shard: About how many examples a shard holds (bounds the shuffle's memory).
        progress: Print one line per block.

    Returns:
        The folder.

    Raises:
        ValueError: For sizes that cannot hold the interactions, ``valid_frac`` outside (0, 1), or
            a ``folder`` that holds something other than a shard folder (named).

    Used by mtrec_study.cli, mtrec_study.study.scaling.
    """
    if n_interactions > n_users * n_items // 2:
        raise ValueError(f"n_interactions={n_interactions:,} must be at most half of n_users*n_items="
                         f"{n_users * n_items:,}, so every user keeps items to draw negatives from")
    if not 0.0 < valid_frac < 1.0:
        raise ValueError(f"valid_frac must lie in (0, 1) (a validation part drives early stopping), got {valid_frac}")
    settings = {"n_users": n_users, "n_items": n_items, "requested_interactions": n_interactions, "seed": seed,
                "n_factors": n_factors, "valid_frac": valid_frac, "block_users": block_users,
                "rows_per_shard": rows_per_shard, "popularity_skew": popularity_skew, "side_signal": side_signal}
    return _replace_folder(folder, lambda tmp: _write_world(tmp, settings, progress))


def _is_shard_folder(folder: Path) -> bool:
    try:
        return json.loads((folder / "meta.json").read_text()).get("made_by") in ("write_synthetic_shards", "write_shards")
    except (OSError, ValueError):
        return False


def _replace_folder(folder: str | Path, write) -> Path:
    """Call ``write(tmp)`` to fill a temporary folder beside ``folder``, then swap it in.

    A failed write leaves an existing ``folder`` as it was. Only an empty folder or an earlier
    shard folder is replaced.

    Raises:
        ValueError: If ``folder`` holds something other than a shard folder (named).
    """
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not _is_shard_folder(folder):
        raise ValueError(f"{folder} exists and is not a shard folder (no meta.json written by write_synthetic_shards "
                         f"or write_shards); name a new or empty folder, so nothing else is replaced")
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def write_shards(prepared, folder: str | Path, rows_per_shard: int = ROWS_PER_SHARD) -> Path:
    """A prepared split's training and validation examples as a shard folder (what :func:`load_shards` reads).

    For a data set of the reader's own (``python -m mtrec_study shards --dataset ...``): the
    examples keep :func:`mtrec_study.prepare.prepare_tasks`'s rows, negatives, labels and masks,
    in its shuffled order, cut into files of ``rows_per_shard``; the side tables, the training
    counts and the feature columns go beside them, so the features looked up from the folder equal
    the prepared ones. The test part stays with ``prepared``, to be scored in memory.

    Args:
        prepared: A :class:`mtrec_study.prepare.PreparedData` (features materialised or looked up).
        folder: The shard folder to write (replaced only when the write succeeds, and only if it
            is empty or an earlier shard folder).
        rows_per_shard: Examples per file.

    Raises:
        ValueError: If the split carries text vectors (shards hold none: train such a split in
            memory, ``prepare_tasks(..., lookup=True)``), or for a ``folder`` that holds something else.

    Used by mtrec_study.cli.
    """
    if prepared.builder.vectors:
        raise ValueError(f"the split carries vector features ({', '.join(prepared.builder.vectors)}), which a shard "
                         f"folder does not hold; write it without text, or train it in memory with "
                         f"prepare_tasks(..., lookup=True)")
    if rows_per_shard < 1:
        raise ValueError(f"rows_per_shard must be >= 1, got {rows_per_shard}")
    data, builder = prepared.data, prepared.builder

    def write(tmp: Path) -> None:
        rows, targets = {}, []
        for part in PARTS:
            ts = getattr(prepared, part)
            (tmp / part).mkdir()
            columns = {"user_id": ts.pairs["user_id"].to_numpy("int64"), "item_id": ts.pairs["item_id"].to_numpy("int64"),
                       "rating": ts.pairs["rating"].to_numpy("float32"), "observed": ts.pairs["observed"].to_numpy(bool),
                       **{k: np.asarray(v, "float32") for k, v in ts.targets().items()}}
            table, targets = pa.table(columns), list(ts.targets())
            for n, start in enumerate(range(0, max(1, table.num_rows), rows_per_shard)):
                pq.write_table(table.slice(start, rows_per_shard), tmp / part / f"part-{n:05d}.parquet",
                               row_group_size=ROW_GROUP)
            rows[part] = table.num_rows
        train = time_order(prepared.interactions("train"))
        _write_history(tmp, 0, train["user_id"].to_numpy("int64"), train["item_id"].to_numpy("int64"))
        data.users.to_parquet(tmp / "users.parquet")
        data.items.to_parquet(tmp / "items.parquet")
        _write_counts(tmp, builder.user_counts, builder.item_counts)
        meta = {"format": FORMAT_VERSION, "made_by": "write_shards", "dataset": data.name, "split": prepared.split,
                "rows": rows, "targets": targets, "user_categorical": list(builder.user_categorical),
                "item_categorical": list(builder.item_categorical), "genres": list(builder.genres)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))

    return _replace_folder(folder, write)


def _write_history(tmp: Path, part: int, user_ids: np.ndarray, item_ids: np.ndarray) -> None:
    """One ``history`` file: training pairs (ids), grouped by user, each user's in time order."""
    (tmp / "history").mkdir(exist_ok=True)
    pq.write_table(pa.table({"user_id": np.asarray(user_ids, "int64"), "item_id": np.asarray(item_ids, "int64")}),
                   tmp / "history" / f"part-{part:06d}.parquet", row_group_size=ROW_GROUP)


def _write_counts(tmp: Path, user_counts: pd.Series, item_counts: pd.Series) -> None:
    """``counts.parquet``: training interactions per user and per item (id -> count, ids with one only)."""
    pd.DataFrame({"side": ["user"] * len(user_counts) + ["item"] * len(item_counts),
                  "id": np.concatenate([user_counts.index.to_numpy("int64"), item_counts.index.to_numpy("int64")]),
                  "count": np.concatenate([user_counts.to_numpy("int64"), item_counts.to_numpy("int64")])}
                 ).to_parquet(tmp / "counts.parquet")


def _buckets(table: pa.Table, bucket: np.ndarray, shards: int):
    """``(b, rows of table in bucket b)`` for each non-empty bucket: one sort, then slices."""
    order = np.argsort(bucket, kind="stable")
    table = table.take(pa.array(order))
    edges = np.searchsorted(bucket[order], np.arange(shards + 1))
    for b in range(shards):
        if edges[b + 1] > edges[b]:
            yield b, table.slice(edges[b], edges[b + 1] - edges[b])


def _write_world(tmp: Path, settings: dict, progress: bool) -> None:
    """The body of :func:`write_synthetic_shards`, into the temporary folder ``tmp``."""
    started = time.perf_counter()
    n_users, n_items, n_interactions = settings["n_users"], settings["n_items"], settings["requested_interactions"]
    block_users, k = settings["block_users"], settings["n_factors"]
    seeds = np.random.SeedSequence(settings["seed"]).spawn(5)  # the first four as before the history existed
    rng_world, rng_blocks, rng_shuffle, rng_tables, rng_history = (np.random.default_rng(s) for s in seeds)
    user_features, u = _world_users(rng_world, n_users, k, settings["side_signal"])
    genres, v, pop, item_bias = _world_items(rng_world, n_items, k, settings["side_signal"], settings["popularity_skew"])
    counts = _interaction_counts(rng_world, n_users, n_items // 2, n_interactions)
    popularity = np.exp(pop - pop.max())
    popularity /= popularity.sum()
    shards = max(1, int(np.ceil(2 * n_interactions / settings["rows_per_shard"])))
    catalogue = np.arange(n_items)
    observed = 0
    user_counts = np.zeros(n_users, "int64")
    item_counts = np.zeros(n_items, "int64")
    for block, start in enumerate(range(0, n_users, block_users)):
        stop = min(start + block_users, n_users)
        owner, items = _block_pairs(rng_blocks, u[start:stop], v, popularity, counts[start:stop])
        users = owner + start
        observed += users.size
        ratings = _ratings(rng_blocks, np.einsum("nk,nk->n", u[users], v[items]) + item_bias[items])
        valid = rng_blocks.random(users.size) < settings["valid_frac"]
        keys = users.astype("int64") * n_items + items
        for part, rows_of, avoid in (("train", ~valid, np.sort(keys[~valid])), ("valid", valid, np.sort(keys))):
            neg_items = sample_negatives(users[rows_of], catalogue, avoid, n_items, rng_blocks)
            table = _examples(np.concatenate([users[rows_of], users[rows_of]]), np.concatenate([items[rows_of], neg_items]),
                              np.concatenate([ratings[rows_of], np.full(neg_items.size, np.nan)]))
            for b, chunk in _buckets(table, rng_shuffle.integers(0, shards, size=table.num_rows), shards):
                out = tmp / f"_{part}" / f"{b:05d}"
                out.mkdir(parents=True, exist_ok=True)
                pq.write_table(chunk, out / f"{block:06d}.parquet")
        # The block's training pairs, grouped by user; a world has no time, so each user's are in a seeded random order.
        order = np.lexsort((rng_history.random(int((~valid).sum())), users[~valid]))
        _write_history(tmp, block, (users[~valid] + 1)[order], (items[~valid] + 1)[order])
        user_counts += np.bincount(users[~valid], minlength=n_users)
        item_counts += np.bincount(items[~valid], minlength=n_items)
        if progress:
            print(f"  users {stop:,}/{n_users:,}: {observed:,} interactions ({time.perf_counter() - started:.0f} s)",
                  flush=True)
    rows, dropped = dict.fromkeys(PARTS, 0), 0
    cold = np.r_[True, item_counts == 0]  # by 1-based item id: no training interaction
    for part in PARTS:  # the external shuffle's second pass: each bucket is read whole and permuted
        (tmp / part).mkdir()
        buckets = sorted((tmp / f"_{part}").iterdir()) if (tmp / f"_{part}").exists() else []
        if not buckets:
            raise ValueError(f"the {part} part is empty: more interactions or a larger valid_frac are needed")
        for b, bucket in enumerate(buckets):
            table = pa.concat_tables(pq.read_table(f) for f in sorted(bucket.iterdir()))
            if part == "train":
                keep = table["observed"].to_numpy(zero_copy_only=False) | ~cold[table["item_id"].to_numpy()]
                dropped += int((~keep).sum())
                table = table.filter(pa.array(keep))
            table = table.take(pa.array(rng_shuffle.permutation(table.num_rows)))
            rows[part] += table.num_rows
            pq.write_table(table, tmp / part / f"part-{b:05d}.parquet", row_group_size=ROW_GROUP)
            shutil.rmtree(bucket)
        (tmp / f"_{part}").rmdir()
    _user_table(rng_tables, *user_features).to_parquet(tmp / "users.parquet")
    _item_table(rng_tables, genres).to_parquet(tmp / "items.parquet")
    seen_u, seen_i = np.flatnonzero(user_counts), np.flatnonzero(item_counts)
    _write_counts(tmp, pd.Series(user_counts[seen_u], index=seen_u + 1), pd.Series(item_counts[seen_i], index=seen_i + 1))
    targets = [c for c in table.column_names if c not in PAIR_COLUMNS]
    meta = {"format": FORMAT_VERSION, "made_by": "write_synthetic_shards", **settings, "n_interactions": observed,
            "rows": rows, "shards": shards, "cold_training_negatives_dropped": dropped, "targets": targets,
            "seconds": round(time.perf_counter() - started, 1)}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
