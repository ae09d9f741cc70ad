"""Project paths, the data's column names and the progress-bar switch.

The tasks are defined once, in :mod:`mtrec_study.tasks`.

No other module hard-codes a path: they all ask this one. Every path can be moved with an
environment variable, so a classroom or CI machine can point the cache somewhere writable.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
PARAMS_DIR = PROJECT_ROOT / "params"
REPORTS_DIR = Path(os.environ.get("MTREC_REPORTS_DIR", PROJECT_ROOT / "reports"))

# The settings that decide floating-point results beyond the code and the seed. A sum split between
# threads adds up in another order with another thread count: TensorFlow's intra-op pool and OpenBLAS
# (numpy, scipy, scikit-learn) then give other, equally valid, numbers (09's fold-0 network
# predicts up to 0.47 away with 1 thread instead of 2; benchmarks/results/fold.json). oneDNN's
# kernels are chosen by the CPU they run on. The published numbers were made with these values, so
# the package sets them when it is imported, before numpy or TensorFlow start their threads.
NUMERIC_ENV = {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_NUM_INTRAOP_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}


def pin_numerics() -> dict[str, str]:
    """Set :data:`NUMERIC_ENV` in the environment where it is not set already; return what is in effect.

    ``import mtrec_study`` calls it, and so does every process the study starts through the package
    (the ``mtrec`` kernel, ``python -m mtrec_study``, the tests), so the same seed gives the same
    numbers on a machine with any number of cores. A value set beforehand wins (for example
    ``TF_ENABLE_ONEDNN_OPTS=1``, faster and with other rounding; see benchmarks/README.md), and the
    report's environment stamp and the training cache's key record it. The values take effect only
    in a process that has not yet loaded numpy or started TensorFlow.

    Introduced in notebooks/00_overview.ipynb.
    """
    for key, value in NUMERIC_ENV.items():
        os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in NUMERIC_ENV}


def cache_dir() -> Path:
    """Return the data and model cache folder (``MTREC_CACHE_DIR`` or ``<root>/data/cache``).

    Read at call time so that tests can move it with ``monkeypatch.setenv``.

    Used by mtrec_study.datasets.sources, mtrec_study.study.scaling, mtrec_study.text.
    """
    return Path(os.environ.get("MTREC_CACHE_DIR", PROJECT_ROOT / "data" / "cache"))


def show_progress(progress: bool = True) -> bool:
    """Whether to draw a progress bar: ``progress``, unless ``TQDM_DISABLE`` is set.

    tqdm reads ``TQDM_DISABLE`` only where a bar's ``disable`` is not given, and its notebook bar
    never reads it; the report sets it so that executed notebooks hold no frozen bar lines.

    Introduced in notebooks/04_training.ipynb.
    """
    return progress and os.environ.get("TQDM_DISABLE", "").lower() in ("", "0", "false")


# Canonical columns, whatever the source of the data.
INTERACTION_COLUMNS = ("user_id", "item_id", "rating", "timestamp")
USER_COLUMNS = ("age", "gender", "occupation", "zip")
GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)


# The training cache (mtrec_study.training.cache): here, so a report build can name its folder to the
# kernels without importing the training package (and TensorFlow with it).
TRAIN_CACHE_ENV = "MTREC_TRAIN_CACHE"
NO_CACHE_ENV = "MTREC_NO_CACHE"
TRAIN_CACHE_FOLDER = "_cache"  # under the reports folder (``reports/_cache``)
