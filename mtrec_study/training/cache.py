"""A content-addressed cache of trained networks, so one build never trains the same thing twice.

Training is deterministic on the CPU (same seed, same data, same code: same weights), so a
network trained once can be reused wherever the same configuration is trained on the same rows:
05's and 09's folds, 06's and 07's references, the tuner's chosen setting and 09's final fit.

The key of an entry hashes everything that decides the weights:

- the arguments of :func:`mtrec_study.training.train` (model, weighting, λ, epochs, batch size,
  learning rate, seed, patience, tasks, model hyperparameters);
- the training and validation rows (every feature, label and mask array, byte for byte), the
  feature spec, and what the model is built from beyond the spec (the two-tower network's history
  and catalogue);
- the package's source (:func:`mtrec_study.reproducibility.package_hash`) and the versions of
  TensorFlow, Keras and NumPy.

An entry is a folder holding the trainer's weights (``weights.npz``, the network's and the
weighting strategy's), the training log (``result.json``) and the SHA-256 of both
(``checksums.json``). It is written to a temporary folder and renamed, so a crash leaves no
partial entry. An entry whose checksums do not match (a truncated or edited file) is removed and
recomputed, with a one-line warning; it is never used.

The cache is on only where ``MTREC_TRAIN_CACHE`` names a folder: ``make report`` and ``make tune``
set it to ``reports/_cache`` (``make clean`` removes it). ``MTREC_NO_CACHE=1`` turns it off.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mtrec_study.config import NO_CACHE_ENV, NUMERIC_ENV, TRAIN_CACHE_ENV
from mtrec_study.reproducibility import package_hash

FORMAT = 1  # bump when an entry's layout changes
_FILES = ("weights.npz", "result.json")

log = logging.getLogger(__name__)


class Unhashable(TypeError):
    """A training argument whose value cannot be hashed by content (the run is not cached).

    Used by mtrec_study.training.cache, mtrec_study.training.trainer.
    """


def cache_dir() -> Path | None:
    """The cache's folder, or None when caching is off (no ``MTREC_TRAIN_CACHE``, or ``MTREC_NO_CACHE=1``).

    Used by mtrec_study.training.cache, mtrec_study.training.trainer.
    """
    if os.environ.get(NO_CACHE_ENV, "").strip() not in ("", "0"):
        return None
    folder = os.environ.get(TRAIN_CACHE_ENV, "").strip()
    return Path(folder).expanduser() if folder else None


def _feed(h: hashlib._Hash, obj: Any) -> None:
    """Feed ``obj`` into ``h`` by content, with its type, so ``1`` and ``"1"`` or ``[1]`` differ."""
    if obj is None or isinstance(obj, (bool, int, float, str, np.generic)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        h.update(f"ndarray:{arr.dtype.str}:{arr.shape};".encode())
        if arr.dtype == object:
            _feed(h, arr.tolist())
        else:
            h.update(arr.tobytes())
    elif isinstance(obj, Mapping):
        # In insertion order: the order of a spec's features decides the layers' build order, and so the
        # initial weights (two orders may only cost a miss, never a wrong hit).
        h.update(f"map:{len(obj)};".encode())
        for key in obj:
            _feed(h, str(key))
            _feed(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        h.update(f"seq:{len(obj)};".encode())
        for item in obj:
            _feed(h, item)
    else:
        raise Unhashable(f"cannot hash a {type(obj).__name__} by content")


def content_hash(*parts: Any) -> str:
    """SHA-256 of ``parts`` by content (arrays byte for byte, mappings in key order).

    Raises:
        Unhashable: For anything but scalars, arrays, mappings and sequences of them (a callback, a layer).

    Used by mtrec_study.training.cache.
    """
    h = hashlib.sha256()
    for part in parts:
        _feed(h, part)
    return h.hexdigest()


def _versions() -> dict[str, str]:
    """What else decides the floating-point results: libraries, oneDNN and thread counts
    (:data:`mtrec_study.config.NUMERIC_ENV`), Python and the CPU."""
    import platform
    import sys

    import keras
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
            "numerics": {key: os.environ.get(key, "") for key in NUMERIC_ENV}, "python": sys.version,
            "machine": platform.machine(), "processor": platform.processor()}


def training_key(arguments: dict, data: Any) -> str:
    """The cache key of one training: its arguments, its data, the package source and the library versions.

    Raises:
        Unhashable: If an argument cannot be hashed by content.

    Used by mtrec_study.training.trainer.
    """
    return content_hash({"format": FORMAT, "arguments": arguments, "package": package_hash(),
                         "versions": _versions()}, data)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load(key: str, folder: Path | None = None) -> tuple[list[np.ndarray], dict] | None:
    """The weights and training log stored under ``key``, or None on a miss.

    A damaged entry (missing file, checksum mismatch, unreadable content) is removed with a
    one-line warning and reported as a miss, so the caller trains afresh.

    Used by mtrec_study.training.trainer.
    """
    folder = folder or cache_dir()
    if folder is None:
        return None
    entry = folder / key[:2] / key
    if not entry.exists():
        return None
    try:
        sums = json.loads((entry / "checksums.json").read_text())
        bad = [name for name in _FILES if sums.get(name) != _sha(entry / name)]
        if bad:
            raise ValueError(f"checksum mismatch in {', '.join(bad)}")
        with np.load(entry / "weights.npz", allow_pickle=False) as npz:
            weights = [npz[f"w{k}"] for k in range(len(npz.files))]
        record = json.loads((entry / "result.json").read_text())
    except Exception as exc:  # noqa: BLE001 - any damage means: do not use it
        log.warning("training cache: entry %s is damaged (%s); removed, training again", entry, exc)
        shutil.rmtree(entry, ignore_errors=True)
        return None
    return weights, record


def store(key: str, weights: list[np.ndarray], record: dict, folder: Path | None = None) -> Path | None:
    """Store one training under ``key`` (temporary folder, then rename); returns the entry or None.

    A concurrent build that stored the same key first wins, silently; both entries are the same
    training. A full disk, an unwritable folder or a log that JSON cannot hold only costs the
    reuse: it is logged, never raised.

    Used by mtrec_study.training.trainer.
    """
    folder = folder or cache_dir()
    if folder is None:
        return None
    entry = folder / key[:2] / key
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{key[:12]}."))
        try:
            buf = io.BytesIO()
            np.savez(buf, **{f"w{k}": np.asarray(w) for k, w in enumerate(weights)})
            (tmp / "weights.npz").write_bytes(buf.getvalue())
            (tmp / "result.json").write_text(json.dumps(record, allow_nan=True))
            (tmp / "checksums.json").write_text(json.dumps({name: _sha(tmp / name) for name in _FILES}))
            if entry.exists():
                return entry
            try:
                os.replace(tmp, entry)
            except OSError:
                if entry.exists():  # another build stored the same training a moment earlier
                    return entry
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except (OSError, TypeError, ValueError) as exc:  # no room, no permission, or a log JSON cannot hold
        log.warning("training cache: could not store %s (%s)", entry, exc)
        return None
    return entry
