"""Wall time of a report built from scratch: ``make report-fast``, ``make report``, ``make ablations-full``.

``python -m benchmarks.bench_report [--preset fast full ablations-full]`` (default: fast). Each
build goes to a temporary folder with ``force=True``, so nothing is reused; notebooks run as many
at a time as the report's default (two on 2+ CPUs). The result is also shown on every report's
index page (``mtrec_study.report`` reads ``results/report.json``); the other presets' last
measurements are kept.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import RESULTS, check, update_readme, write_result
from mtrec_study.report.build import build_report

LIMITS = {"fast": 5 * 60, "full": 30 * 60, "ablations-full": None, "fast-one-at-a-time": None}
NOTEBOOK_LIMIT_S = 90  # each notebook on the fast preset, run alone
# name: (preset, notebooks (None = all), notebooks at a time (None = the report's default))
PRESETS = {"fast": ("fast", None, None), "full": ("full", None, None),
           "ablations-full": ("params/ablations-full.yaml", ["06_ablations", "08_sharing_mechanisms"], None),
           "fast-one-at-a-time": ("fast", None, 1)}


def run(preset: str) -> dict:
    source, only, jobs = PRESETS[preset]
    with tempfile.TemporaryDirectory(prefix="mtrec-bench-") as tmp:
        t = time.perf_counter()
        index = build_report(source, out_root=Path(tmp), force=True, progress=True, only=only, jobs=jobs)
        seconds = time.perf_counter() - t
        manifest = json.loads((index.parent / "manifest.json").read_text())
    per_nb = {r["name"]: round(r["seconds"], 1) for r in manifest["notebooks"]}
    return {"preset": preset, "seconds": seconds, "limit_s": LIMITS[preset], "jobs": manifest.get("jobs", 1),
            "slowest_notebook": max(per_nb, key=per_nb.get), "slowest_notebook_s": max(per_nb.values()),
            "notebook_seconds": per_nb}


def main(presets=("fast",)) -> dict:
    previous = {}
    path = RESULTS / "report.json"
    if path.exists():  # keep the other presets' last measurements
        previous = {r["preset"]: r for r in json.loads(path.read_text())["rows"]}
    for preset in presets:
        if preset not in PRESETS:
            raise SystemExit(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
        previous[preset] = run(preset)
        print({k: v for k, v in previous[preset].items() if k != "notebook_seconds"}, flush=True)
    rows = [previous[p] for p in PRESETS if p in previous]
    target = {"fast": "make report-fast", "full": "make report"}
    checks = {f"{target[r['preset']]} from scratch, s (target < {r['limit_s']})":
              check(r["seconds"], r["seconds"] < r["limit_s"], "{:.0f}") for r in rows if r["limit_s"]}
    alone = previous.get("fast-one-at-a-time")
    if alone:
        checks[f"slowest notebook on the fast preset, run alone, s (target < {NOTEBOOK_LIMIT_S})"] = check(
            f"{alone['slowest_notebook_s']:.0f} ({alone['slowest_notebook']})",
            alone["slowest_notebook_s"] < NOTEBOOK_LIMIT_S, "{}")
    write_result("report", rows, checks, "force=True into a temporary folder, notebooks two at a time; "
                 "ablations-full has no target (it is the grid that the full preset leaves out)")
    table = pd.DataFrame([{k: v for k, v in r.items() if k != "notebook_seconds"} for r in rows])
    update_readme("report", table, checks)
    return {"rows": rows, "checks": checks}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", nargs="+", default=["fast"], choices=list(PRESETS))
    main(parser.parse_args().preset)
