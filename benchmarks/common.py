"""What every benchmark shares: the machine stamp, JSON results and the README tables."""

from __future__ import annotations

import json
import os
import platform
import re
import time
from pathlib import Path

import pandas as pd

from mtrec_study.report import index as report_index
from mtrec_study.report.plan import versions
from mtrec_study.results import atomic_write_text

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"


def machine() -> dict:
    """Where a benchmark ran: ratios are only comparable within one run on one machine."""
    v = versions()
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "tensorflow": v.get("tensorflow"), "keras": v.get("keras")}


def write_result(name: str, rows: list[dict], checks: dict, notes: str = "", extra: dict | None = None) -> Path:
    """Write ``results/<name>.json`` (rows, pass/fail checks, the machine stamp and ``extra``'s keys)."""
    path = RESULTS / f"{name}.json"
    atomic_write_text(path, json.dumps({"benchmark": name, "machine": machine(), "rows": rows,
                                        "checks": checks, "notes": notes, **(extra or {})}, indent=2))
    return path


def update_readme(name: str, table: pd.DataFrame, checks: dict, more: tuple[pd.DataFrame, ...] = (),
                  stamp: dict | None = None) -> None:
    """Replace the README block between ``<!-- name:start -->`` and ``<!-- name:end -->``.

    ``more`` are further tables shown under the first; ``stamp`` is the machine stamp of a stored
    result (default: this machine, now).
    """
    stamp = stamp or machine()
    lines = [f"<!-- {name}:start -->",
             f"*Measured {stamp['date']} on {stamp['cpus']} CPUs ({stamp['machine']}), "
             f"TensorFlow {stamp['tensorflow']}, Keras {stamp['keras']}.*", "",
             markdown_table(table), ""]
    for extra in more:
        lines += [markdown_table(extra), ""]
    lines += [f"- {'✅' if ok['pass'] else '❌'} {desc}: {ok['value']}" for desc, ok in checks.items()]
    lines.append(f"<!-- {name}:end -->")
    block = "\n".join(lines)
    text = README.read_text()
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    atomic_write_text(README, text)


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (3 significant digits for floats, whole numbers from 1,000 on;
    a value rounded to zero reads 0, not -0)."""
    def sig3(v):
        if not (isinstance(v, float) and v == v):
            return v
        v += 0.0  # -0.0 + 0.0 is +0.0: a result stored as round(-0.00004, 4) shows as 0
        return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.3g}"
    return report_index.markdown_table(table.map(sig3), "{:.3g}")


def check(value: float, ok: bool, fmt: str = "{:.3g}") -> dict:
    return {"value": fmt.format(value), "pass": bool(ok)}


def tuned_choices(data, params: dict, models) -> dict[str, dict[str, dict]]:
    """09's stored ``{model: {split: setting}}`` from ``params/tuned.yaml``, checked against this data,
    the preset's parameters (``params``) and the models' grids, as the notebook checks them."""
    from mtrec_study.config import PARAMS_DIR
    from mtrec_study.study import published
    from mtrec_study.study.tuning import load_tuned

    return load_tuned(PARAMS_DIR / "tuned.yaml", published.tuning_key(data, params),
                      published.grids(params["TUNE_SETTINGS"], list(models)))
