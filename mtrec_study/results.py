"""Recording results: every number a report shows is read from JSON written here.

Notebooks end with ``record_results({...}, OUTPUT_DIR)``. The JSON has free-form ``summary``
values, optional ``tidy`` rows in the one result format (``model, task, metric, protocol, fold,
segment, value``; :func:`tidy_rows` and :func:`as_tidy` make them) and the ``figures`` worth showing on the report's index page.
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


def tidy_rows(values: dict[str, float], model: str, task: str, protocol: str, fold: int = 0,
              segment: str = "all") -> list[dict]:
    """Turn ``{metric: value}`` into rows of the one result format.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    return [{"model": model, "task": task, "metric": m, "protocol": protocol, "fold": int(fold),
             "segment": segment, "value": float(v)} for m, v in values.items()]


def as_tidy(rows: list[dict]) -> pd.DataFrame:
    """Rows → a frame with exactly :data:`TIDY_COLUMNS`, in that order.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    return pd.DataFrame(rows, columns=list(TIDY_COLUMNS))


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

    Used by mtrec_study.results, mtrec_study.report.build, mtrec_study.report.index, mtrec_study.report.publish, mtrec_study.report.run, mtrec_study.study.tuning, mtrec_study.training.trainer.
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
        ValueError: If tidy columns are missing, a highlight is not a key of ``summary``, or a
            recorded figure lies outside ``output_dir`` or was never drawn (each named).

    Introduced in notebooks/00_overview.ipynb.
    """
    unknown = [k for k in highlights or [] if k not in summary]
    if unknown:
        raise ValueError(f"highlights {unknown} are not keys of the summary; keys: {sorted(summary)}")
    for fig in figures or []:
        target = (Path(output_dir) / fig).resolve()
        if not target.is_relative_to(Path(output_dir).resolve()):
            raise ValueError(f"figure {fig!r} lies outside the output folder {output_dir}")
        if not target.is_file():
            raise ValueError(f"figure {fig!r} is recorded but was never drawn: {target} does not exist; "
                             "save it with plots.save(fig, figure_path(OUTPUT_DIR, name)) first")
    payload: dict[str, Any] = {"summary": _jsonable(summary), "figures": list(figures or []),
                               "highlights": list(highlights or [])}
    # JSON objects are written with sorted keys; keep each highlighted table's column order.
    payload["columns"] = {k: [str(c) for c in pd.DataFrame(summary[k]).columns] for k in highlights or []}
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

    Used by the tests only.
    """
    path = Path(output_dir) / name
    if not path.exists():
        raise FileNotFoundError(f"{path}: no recorded results; run the notebook that writes them first")
    return json.loads(path.read_text(encoding="utf-8"))


def show_summary(bullets: list[str]) -> str:
    """Display a notebook's Summary bullets as rendered Markdown and return the Markdown text.

    Each bullet is one string starting with ``"- "``; ``**bold**`` and inline code render as
    they would in a markdown cell, in JupyterLab and in the report's HTML alike.

    Raises:
        ValueError: If a bullet does not start with ``"- "``, naming it.

    Introduced in notebooks/00_overview.ipynb.
    """
    bad = [b for b in bullets if not b.startswith("- ")]
    if bad:
        raise ValueError(f"summary bullets must start with '- ': {bad[0]!r}")
    text = "\n".join(bullets)
    try:
        from IPython.display import Markdown, display
    except ImportError:  # plain Python: print the Markdown
        print(text)
    else:
        display(Markdown(text))
    return text


def figure_path(output_dir: str | Path, name: str) -> Path:
    """Where a figure called ``name`` goes (``<OUTPUT_DIR>/figures/name``), folder created.

    Introduced in notebooks/00_overview.ipynb.
    """
    folder = (Path(output_dir) / "figures").resolve()
    path = (folder / name).resolve()
    if path.parent != folder:
        raise ValueError(f"figure {name!r} would be written to {path}, outside the notebook's figures folder "
                         f"{folder}; give a plain file name such as 'learning_curves.png'")
    folder.mkdir(parents=True, exist_ok=True)
    return Path(output_dir) / "figures" / name
