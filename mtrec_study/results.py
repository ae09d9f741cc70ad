"""Recording results: every number a report shows is read from JSON written here.

Notebooks end with ``record_results({...}, OUTPUT_DIR)``. The JSON has free-form ``summary``
values, optional ``tidy`` rows in the one result format (``model, task, metric, protocol, fold,
segment, value``) and the ``figures`` worth showing on the report's index page.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TIDY_COLUMNS = ("model", "task", "metric", "protocol", "fold", "segment", "value")


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, pd.DataFrame):
        return _jsonable(x.to_dict(orient="records"))
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return None if math.isnan(float(x)) else float(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, Path):
        return str(x)
    return x


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``.

    Introduced in notebooks/01_data_preprocessing.ipynb.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def record_results(summary: dict, output_dir: str | Path, tidy: pd.DataFrame | None = None,
                   figures: list[str] | None = None, name: str = "results.json",
                   highlights: list[str] | None = None) -> Path:
    """Write a notebook's results as JSON (atomically) and return the path.

    Args:
        summary: Key numbers, JSON-serialisable after NumPy/pandas conversion (NaN -> null).
        output_dir: The notebook's ``OUTPUT_DIR``.
        tidy: Optional rows in the tidy result format (:data:`TIDY_COLUMNS`).
        figures: File names (relative to ``output_dir``) to show on the report's index page.
        name: File name.
        highlights: Keys of ``summary`` holding tables (lists of rows) to show on the index page.

    Raises:
        ValueError: If tidy columns are missing or a highlight is not a key of ``summary``.

    Introduced in notebooks/01_data_preprocessing.ipynb.
    """
    unknown = [k for k in highlights or [] if k not in summary]
    if unknown:
        raise ValueError(f"highlights {unknown} are not keys of the summary; keys: {sorted(summary)}")
    payload: dict[str, Any] = {"summary": _jsonable(summary), "figures": list(figures or []),
                               "highlights": list(highlights or [])}
    if tidy is not None:
        missing = [c for c in TIDY_COLUMNS if c not in tidy.columns]
        if missing:
            raise ValueError(f"tidy results lack columns {missing}; expected {list(TIDY_COLUMNS)}")
        payload["tidy"] = _jsonable(tidy[list(TIDY_COLUMNS)])
    path = Path(output_dir) / name
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, allow_nan=False))
    return path


def load_results(output_dir: str | Path, name: str = "results.json") -> dict:
    """Read what :func:`record_results` wrote.

    Introduced in notebooks/07_article_claims.ipynb.
    """
    path = Path(output_dir) / name
    if not path.exists():
        raise FileNotFoundError(f"{path}: no recorded results; run the notebook that writes them first")
    return json.loads(path.read_text(encoding="utf-8"))


def figure_path(output_dir: str | Path, name: str) -> Path:
    """Where a figure called ``name`` goes (``<OUTPUT_DIR>/figures/name``), folder created.

    Introduced in notebooks/01_data_preprocessing.ipynb.
    """
    path = Path(output_dir) / "figures" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
