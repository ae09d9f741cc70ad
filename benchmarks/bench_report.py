"""Wall time of a report built from scratch: ``make report-fast`` (and ``make report`` with --full).

Each build goes to a temporary folder with ``force=True``, so nothing is reused. The result is
also shown on every report's index page (``mtrec_study.report`` reads ``results/report.json``).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import RESULTS, check, update_readme, write_result
from mtrec_study.report import build_report

LIMITS = {"fast": 5 * 60, "full": 30 * 60}


def run(preset: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="mtrec-bench-") as tmp:
        t = time.perf_counter()
        index = build_report(preset, out_root=Path(tmp), force=True, progress=True)
        seconds = time.perf_counter() - t
        manifest = json.loads((index.parent / "manifest.json").read_text())
    per_nb = {r["name"]: round(r["seconds"], 1) for r in manifest["notebooks"]}
    return {"preset": preset, "seconds": seconds, "limit_s": LIMITS[preset], "slowest_notebook": max(per_nb, key=per_nb.get),
            "slowest_notebook_s": max(per_nb.values()), "notebook_seconds": per_nb}


def main(full: bool = False) -> dict:
    previous = {}
    path = RESULTS / "report.json"
    if path.exists():  # keep the other preset's last measurement
        previous = {r["preset"]: r for r in json.loads(path.read_text())["rows"]}
    for preset in ("fast", "full") if full else ("fast",):
        previous[preset] = run(preset)
        print({k: v for k, v in previous[preset].items() if k != "notebook_seconds"}, flush=True)
    rows = [previous[p] for p in ("fast", "full") if p in previous]
    checks = {f"make report{'' if r['preset'] == 'full' else '-fast'} from scratch, s (target < {r['limit_s']})":
              check(r["seconds"], r["seconds"] < r["limit_s"], "{:.0f}") for r in rows}
    write_result("report", rows, checks, "force=True into a temporary folder; the full preset runs with --full")
    table = pd.DataFrame([{k: v for k, v in r.items() if k != "notebook_seconds"} for r in rows])
    update_readme("report", table, checks)
    return {"rows": rows, "checks": checks}


if __name__ == "__main__":
    import sys

    main(full="--full" in sys.argv)
