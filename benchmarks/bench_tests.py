"""Wall time of the whole test suite (``make test``'s pytest) from a clean clone, and where it goes.

``python -m benchmarks.bench_tests [--rev REV]`` clones commit ``REV`` (default ``HEAD``) into a
temporary folder and runs the suite there exactly as ``make test`` does (same environment
variables, ``pytest`` with ``--durations=15`` and a JUnit XML log), with this checkout's virtual
environment and the clone's package first on the path. Nothing built in this checkout is reused
(no report, no training cache); the data and model downloads are shared through
``MTREC_CACHE_DIR`` when it is set, so the time is the suite's own, not the network's.

Results: ``results/tests.json`` (total, per test folder, the 15 slowest tests with their
fixtures' set-up included) and the README's ``tests`` block. A failing suite is recorded too,
with its failures named, and the command exits non-zero.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd

from benchmarks.common import check, update_readme, write_result
from mtrec_study.config import PROJECT_ROOT

TARGET_S = 480  # the target for make test on 2 cores (benchmarks/README.md)
SLOWEST = 15
# The environment that the Makefile exports for every target.
MAKE_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0", "PYTHONHASHSEED": "0"}


def case_times(junit: Path) -> pd.DataFrame:
    """One row per test case of a pytest JUnit XML log: ``test``, ``folder``, ``seconds``, ``outcome``.

    A case's seconds include its set-up, so a session fixture is charged to the first test that uses it.
    """
    rows = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        path = case.get("classname", "").replace(".", "/")
        rows.append({"test": f"{path}::{case.get('name')}", "folder": "/".join(path.split("/")[:2]),
                     "seconds": float(case.get("time", 0.0)), "outcome": outcome})
    return pd.DataFrame(rows, columns=["test", "folder", "seconds", "outcome"]).astype({"seconds": float})


def run(rev: str = "HEAD", pytest_args: tuple[str, ...] = ()) -> dict:
    """Clone ``rev``, run the suite in the clone, and record the times (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="mtrec-bench-tests-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "--quiet", str(PROJECT_ROOT), str(clone)], check=True)
        subprocess.run(["git", "checkout", "--quiet", "--detach", rev], cwd=clone, check=True)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, check=True,
                                capture_output=True, text=True).stdout.strip()
        (clone / ".venv").symlink_to(Path(sys.prefix))
        junit = Path(tmp) / "junit.xml"
        env = {**os.environ, **MAKE_ENV, "PYTHONPATH": str(clone)}
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--durations={SLOWEST}",
                               f"--junitxml={junit}", *pytest_args], cwd=clone, env=env)
        seconds = time.perf_counter() - t
        times = case_times(junit) if junit.exists() else _no_cases()
    return {"commit": commit, "seconds": seconds, "returncode": proc.returncode, "times": times}


def _no_cases() -> pd.DataFrame:
    """The empty table of a run that wrote no JUnit log (pytest could not start)."""
    return pd.DataFrame(columns=["test", "folder", "seconds", "outcome"]).astype({"seconds": float})


def main(rev: str = "HEAD", pytest_args: tuple[str, ...] = ()) -> int:
    r = run(rev, pytest_args)
    times = r["times"]
    by_folder = times.groupby("folder")["seconds"].agg(["sum", "count"]).rename(
        columns={"sum": "seconds", "count": "tests"}).sort_values("seconds", ascending=False).reset_index()
    by_folder["seconds"] = by_folder["seconds"].round(1)
    slowest = times.nlargest(SLOWEST, "seconds")[["test", "seconds", "outcome"]].round({"seconds": 1})
    failed = times.loc[times["outcome"].isin(["failure", "error"]), "test"].tolist()
    counts = times["outcome"].value_counts().to_dict()
    checks = {f"pytest from a clean clone of {r['commit']}, s (target <= {TARGET_S})":
              check(r["seconds"], r["seconds"] <= TARGET_S, "{:.0f}"),
              "every test passed": check(0, r["returncode"] == 0 and not failed,
                                         "yes" if r["returncode"] == 0 and not failed else
                                         f"no: exit {r['returncode']}, failed {failed[:5]}")}
    rows = [{"part": row["folder"], "tests": int(row["tests"]), "seconds": row["seconds"]}
            for _, row in by_folder.iterrows()]
    rows.append({"part": "whole suite (wall)", "tests": len(times), "seconds": round(r["seconds"], 1)})
    slow_rows = [{"part": f"slowest: {s['test']}", "tests": 1, "seconds": s["seconds"]} for s in slowest.to_dict("records")]
    write_result("tests", rows + slow_rows, checks,
                 f"commit {r['commit']}, clean clone, outcomes {counts}; a test's seconds include its fixtures' set-up")
    update_readme("tests", pd.DataFrame(rows), checks, more=(slowest,))
    print(pd.DataFrame(rows).to_string(index=False), slowest.to_string(index=False), checks, sep="\n\n")
    return 0 if r["returncode"] == 0 else 1


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="HEAD", help="the commit to clone and test (default HEAD)")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()
    raise SystemExit(main(args.rev, tuple(args.pytest_args)))
