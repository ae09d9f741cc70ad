"""Wall time of a report built from scratch: ``make report-fast``, ``make report``, ``make ablations-full``.

``python -m benchmarks.bench_report [--preset fast full ablations-full]`` (default: fast). Each
build goes to a temporary folder with ``force=True`` and an empty training cache, so nothing from
an earlier build is reused (networks trained twice within the build are, as in ``make report``);
notebooks run as many at a time as the report's default (two on 2+ CPUs). The result is also shown
on every report's index page (``mtrec_study.report`` reads ``results/report.json``); the other
presets' last measurements are kept.

``--compare REV`` builds the preset from scratch twice, one after the other on this machine: first
from commit ``REV`` (a ``git worktree`` in a temporary folder, its package first on the path),
then from this checkout. Both use the same data cache and the same virtual environment. The ratio
of the two wall times is the speed-up that holds on a shared, noisy machine
(``results/report_compare.json``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import RESULTS, check, update_readme, write_result
from mtrec_study.config import NUMERIC_ENV, PROJECT_ROOT, TRAIN_CACHE_ENV, cache_dir
from mtrec_study.report.build import build_report

LIMITS = {"fast": 180, "full": 1200, "ablations-full": None, "fast-one-at-a-time": None}  # the speed targets
NOTEBOOK_LIMIT_S = 90  # each notebook on the fast preset, run alone
# name: (preset, notebooks (None = all), notebooks at a time (None = the report's default))
PRESETS = {"fast": ("fast", None, None), "full": ("full", None, None),
           "ablations-full": ("params/ablations-full.yaml", ["06_ablations", "08_sharing_mechanisms"], None),
           "fast-one-at-a-time": ("fast", None, 1)}


def recorded(report_dir: Path) -> dict:
    """A finished ``make report`` build's timing, from its ``manifest.json`` (as :func:`run` measures it).

    Raises:
        SystemExit: If the build reused a notebook (it was not from scratch), or its manifest has no
            total time (a build from before the manifest recorded one), naming the folder.
    """
    manifest = json.loads((Path(report_dir) / "manifest.json").read_text())
    reused = [r["name"] for r in manifest["notebooks"] if r.get("reused")]
    if reused or "seconds" not in manifest:
        raise SystemExit(f"{report_dir}: not a build from scratch with its total time "
                         f"({'reused ' + ', '.join(reused) if reused else 'no total seconds'}); "
                         "remove the folder and build again")
    return _row(manifest["preset"], manifest["seconds"], manifest)


def _row(preset: str, seconds: float, manifest: dict) -> dict:
    """One row of ``report.json``: a build's wall time and, from its manifest, each notebook's."""
    per_nb = {r["name"]: round(r["seconds"], 1) for r in manifest["notebooks"]}
    return {"preset": preset, "seconds": seconds, "limit_s": LIMITS.get(preset), "jobs": manifest.get("jobs", 1),
            "slowest_notebook": max(per_nb, key=per_nb.get), "slowest_notebook_s": max(per_nb.values()),
            "notebook_seconds": per_nb}


def run(preset: str) -> dict:
    source, only, jobs = PRESETS[preset]
    with tempfile.TemporaryDirectory(prefix="mtrec-bench-") as tmp:
        os.environ.pop(TRAIN_CACHE_ENV, None)  # the build's own, empty training cache in its temporary folder
        t = time.perf_counter()
        index = build_report(source, out_root=Path(tmp), force=True, progress=True, only=only, jobs=jobs)
        seconds = time.perf_counter() - t
        manifest = json.loads((index.parent / "manifest.json").read_text())
    return _row(preset, seconds, manifest)


_THREAD_ENV = tuple(k for k in NUMERIC_ENV if k.endswith("_THREADS"))  # the pinned thread counts

# Run inside the checkout under test (its own package first on sys.path): build, then print the timings.
_CHILD = """
import hashlib, json, sys, tempfile, time
from pathlib import Path
from mtrec_study.report.build import build_report
with tempfile.TemporaryDirectory(prefix="mtrec-compare-") as tmp:
    t = time.perf_counter()
    args = json.loads(sys.argv[1])
    index = build_report(args["source"], out_root=Path(tmp), force=True, progress=False, only=args["only"],
                         jobs=args["jobs"])
    seconds = time.perf_counter() - t
    manifest = json.loads((index.parent / "manifest.json").read_text())
    results = hashlib.sha256((index.parent / "results.csv").read_bytes()).hexdigest()
print("RESULT " + json.dumps({"seconds": seconds, "results_sha256": results, "notebook_seconds": {r["name"]: round(r["seconds"], 1)
                                                                       for r in manifest["notebooks"]}}))
"""


def _build_in(checkout: Path, preset: str) -> dict:
    """Build ``preset`` (a key of :data:`PRESETS`) from scratch with the package and notebooks of ``checkout``,
    in a fresh process."""
    source, only, jobs = PRESETS[preset]
    # The thread counts that `import mtrec_study` set in this process are left to each checkout: this one
    # pins them itself, and a commit from before the pin runs with TensorFlow's and OpenBLAS's defaults.
    env = {**{k: v for k, v in os.environ.items() if k not in _THREAD_ENV}, "PYTHONPATH": str(checkout),
           "MTREC_CACHE_DIR": str(cache_dir().resolve())}
    env.pop(TRAIN_CACHE_ENV, None)  # each build starts with an empty training cache in its temporary folder
    arg = json.dumps({"source": source, "only": only, "jobs": jobs})
    proc = subprocess.run([sys.executable, "-c", _CHILD, arg], cwd=checkout, env=env, capture_output=True,
                          text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"the build in {checkout} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def compare(rev: str, preset: str = "fast") -> dict:
    """Build ``preset`` (a key of :data:`PRESETS`) from commit ``rev``, then from this checkout, and write the ratio.

    The earlier commit builds first, so it also fills the shared data cache (downloads, text vectors)
    if that is empty; run a build first on a new machine.
    """
    with tempfile.TemporaryDirectory(prefix="mtrec-rev-") as tmp:
        tree = Path(tmp) / "rev"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev], cwd=PROJECT_ROOT, check=True,
                       capture_output=True)
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", rev], cwd=PROJECT_ROOT, check=True,
                                    capture_output=True, text=True).stdout.strip()
            before = _build_in(tree, preset)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=PROJECT_ROOT, capture_output=True)
    after = _build_in(PROJECT_ROOT, preset)
    ratio = after["seconds"] / before["seconds"]
    same = before["results_sha256"] == after["results_sha256"]
    nbs = sorted(set(before["notebook_seconds"]) | set(after["notebook_seconds"]))
    rows = [{"notebook": n, f"{commit} (s)": before["notebook_seconds"].get(n), "this checkout (s)":
             after["notebook_seconds"].get(n)} for n in nbs]
    rows.append({"notebook": "whole build", f"{commit} (s)": round(before["seconds"], 1),
                 "this checkout (s)": round(after["seconds"], 1)})
    checks = {f"{preset} build from scratch, this checkout / {commit}, same run (target <= 0.6)":
              check(ratio, ratio <= 0.6, "{:.2f}"),
              "results.csv byte-identical to the earlier commit's": check(0, same, "yes" if same else "no, it differs")}
    write_result("report_compare", rows, checks, f"preset {preset}, built from scratch: {rev} ({commit}) first, "
                 "then this checkout, one after the other")
    update_readme("report_compare", pd.DataFrame(rows), checks)
    return {"rows": rows, "ratio": ratio}


def main(presets=("fast",), record: Path | None = None) -> dict:
    previous = {}
    path = RESULTS / "report.json"
    if path.exists():  # keep the other presets' last measurements
        previous = {r["preset"]: r for r in json.loads(path.read_text())["rows"]}
    measured = [recorded(record)] if record else []
    for preset in [] if record else presets:
        if preset not in PRESETS:
            raise SystemExit(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
        measured.append(run(preset))
    for row in measured:
        previous[row["preset"]] = row
        print({k: v for k, v in row.items() if k != "notebook_seconds"}, flush=True)
    rows = [previous[p] for p in PRESETS if p in previous]
    target = {"fast": "make report-fast", "full": "make report"}
    checks = {f"{target[r['preset']]} from scratch, s (target < {r['limit_s']})":
              check(r["seconds"], r["seconds"] < r["limit_s"], "{:.0f}") for r in rows if r["limit_s"]}
    alone = previous.get("fast-one-at-a-time")
    if alone:
        checks[f"slowest notebook on the fast preset, run alone, s (target < {NOTEBOOK_LIMIT_S})"] = check(
            f"{alone['slowest_notebook_s']:.0f} ({alone['slowest_notebook']})",
            alone["slowest_notebook_s"] < NOTEBOOK_LIMIT_S, "{}")
    write_result("report", rows, checks, "force=True into a temporary folder (or --record: a `make report` "
                 "build from scratch, timed by its manifest), notebooks two at a time; "
                 "ablations-full has no target (it is the grid that the full preset leaves out)")
    table = pd.DataFrame([{k: v for k, v in r.items() if k != "notebook_seconds"} for r in rows])
    update_readme("report", table, checks)
    return {"rows": rows, "checks": checks}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", nargs="+", default=["fast"], choices=list(PRESETS))
    parser.add_argument("--compare", metavar="REV", help="build from commit REV, then from this checkout; "
                        "write the ratio (first --preset only)")
    parser.add_argument("--record", metavar="DIR", type=Path,
                        help="record a finished build from scratch (e.g. reports/full after `rm -rf reports/full "
                             "&& make report`) instead of building one")
    args = parser.parse_args()
    if args.compare:
        print(compare(args.compare, args.preset[0]))
    else:
        main(args.preset, args.record)
