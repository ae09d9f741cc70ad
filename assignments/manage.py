"""Build the student notebooks and autograders, and grade a folder of submissions.

    python assignments/manage.py build [NAME ...]          # -> assignments/dist/<name>/
    python assignments/manage.py grade SUBMISSIONS [--out grades.csv]

``make assignments`` and ``make grade SUBMISSIONS=dir`` call this. Grading uses ``otter run``
(no Docker, no network); see README.md for what that does and does not protect against.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
DIST = HERE / "dist"
ROOT = HERE.parent
ASSIGNMENTS = ("a1_mtl_loss", "a2_ranking_metrics", "a3_mmoe_gate", "a4_ablation")
FIELDS = ("submission", "assignment", "question", "score", "max_score", "status", "public", "reason")
# A line that names an exception, e.g. "AssertionError" or "TypeError: ...", not code that mentions one.
ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)(: .*)?$")


def _env() -> dict:
    """Let Jupyter find the study's ``mtrec`` kernel (the venv's Python) wherever this runs."""
    env = dict(os.environ)
    share = Path(sys.prefix) / "share" / "jupyter"
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(share), env.get("JUPYTER_PATH", "")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def build(names: list[str] | None = None, dist: Path = DIST, run_tests: bool = True) -> dict[str, Path]:
    """Run ``otter assign`` on each master; return ``{name: autograder zip}``.

    The student notebook lands in ``dist/<name>/student/<name>.ipynb``; its first cell defines
    ``grader`` (``init_cell: true``), so its ``grader.check`` cells run in JupyterLab. The output
    folder is written under a temporary name and renamed, so a failed build never leaves a
    half-built one. ``run_tests=False`` skips otter's own run of the solution against the tests
    (the test suite grades the solution itself, through ``grade``).
    """
    names = names or list(ASSIGNMENTS)
    unknown = sorted(set(names) - set(ASSIGNMENTS))
    if unknown:
        raise SystemExit(f"unknown assignments {unknown}; valid: {', '.join(ASSIGNMENTS)}")
    dist.mkdir(parents=True, exist_ok=True)
    zips = {}
    for name in names:
        master = HERE / name / f"{name}.ipynb"
        tmp = Path(tempfile.mkdtemp(dir=dist, prefix=f".{name}-"))
        try:
            cmd = [sys.executable, "-m", "otter", "assign", str(master), str(tmp)]
            proc = subprocess.run(cmd + ([] if run_tests else ["--no-run-tests"]),
                                  cwd=master.parent, env=_env(), capture_output=True, text=True, timeout=900)
            if proc.returncode != 0:
                raise SystemExit(f"otter assign failed for {master}:\n{(proc.stderr or proc.stdout)[-3000:]}")
            final = dist / name
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        zips[name] = autograder_zip(name, dist)
        print(f"built {name}: student notebook {final / 'student' / (name + '.ipynb')}, autograder {zips[name]}")
    return zips


def autograder_zip(name: str, dist: Path = DIST) -> Path:
    found = sorted((dist / name / "autograder").glob(f"{name}-autograder_*.zip"))
    if not found:
        raise SystemExit(f"no autograder for {name} in {dist / name}; run `make assignments` first")
    return found[-1]


def which_assignment(path: Path) -> str | None:
    """The assignment a submission belongs to: the one whose name its file name contains."""
    matches = [a for a in ASSIGNMENTS if a in path.stem]
    return matches[0] if len(matches) == 1 else None


def grade_one(path: Path, dist: Path = DIST, timeout: int = 900) -> list[dict]:
    """Grade one submission with ``otter run``; never raises, so one bad notebook cannot stop a batch."""
    name = which_assignment(path)
    base = {"submission": path.name, "assignment": name or "?"}
    if name is None:
        return [{**base, "question": "all", "score": 0, "max_score": "", "status": "error",
                 "reason": f"the file name names none of the assignments ({', '.join(ASSIGNMENTS)})"}]
    try:
        json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return [{**base, "question": "all", "score": 0, "max_score": "", "status": "error",
                 "reason": f"not a readable notebook: {exc}"}]
    with tempfile.TemporaryDirectory(prefix="grade-") as out:
        try:
            proc = subprocess.run([sys.executable, "-m", "otter", "run", "-a", str(autograder_zip(name, dist)),
                                   "-o", out, str(path)], env=_env(), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return [{**base, "question": "all", "score": 0, "max_score": "", "status": "error",
                     "reason": f"grading took longer than {timeout} s"}]
        results = Path(out) / "results.json"
        if not results.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            return [{**base, "question": "all", "score": 0, "max_score": "", "status": "error",
                     "reason": f"otter run produced no results (exit {proc.returncode}): {tail[0][:300]}"}]
        tests = json.loads(results.read_text())["tests"]
    public = next((t.get("output", "") for t in tests if t["name"] == "Public Tests"), "")
    rows = []
    for t in tests:
        if t["name"] == "Public Tests" or "max_score" not in t:
            continue
        failed = t.get("score", 0) < t["max_score"]
        reason = ""
        if failed:
            lines = [ln.strip() for ln in t.get("output", "").splitlines() if ln.strip()]
            # The first error is the cause; later ones often follow from it.
            reason = next((ln for ln in lines if ERROR_LINE.match(ln)), "a test failed")[:300]
        rows.append({**base, "question": t["name"], "score": t.get("score", 0), "max_score": t["max_score"],
                     "status": ("failed" if not t.get("score") else "partial") if failed else "passed",
                     "public": _public_status(public, t["name"]), "reason": reason})
    master = json.loads((HERE / name / f"{name}.ipynb").read_text())
    for cell in master["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "raw" and src.startswith("# BEGIN QUESTION") and "manual: true" in src:
            q = next(ln.split(":", 1)[1].strip() for ln in src.splitlines() if ln.startswith("name:"))
            pts = next(ln.split(":", 1)[1].strip() for ln in src.splitlines() if ln.startswith("points:"))
            rows.append({**base, "question": q, "score": "", "max_score": pts, "status": "manual",
                         "reason": "graded by hand: rubric in the master's model answer and assignments/README.md"})
    return rows


def _public_status(public_output: str, question: str) -> str:
    """``passed`` or ``failed``: what the student saw from ``grader.check`` (the public tests only)."""
    if f"{question} results: All test cases passed!" in public_output:
        return "passed"
    return "failed" if f"{question} results:" in public_output else ""


def grade(submissions: Path, out: Path, dist: Path = DIST, jobs: int = 1) -> Path:
    """Grade every ``*.ipynb`` under ``submissions`` into one CSV (written atomically).

    ``jobs`` submissions are graded at once (each ``otter run`` is its own process); rows keep the
    sorted order of the files whatever the order in which they finish.
    """
    paths = sorted(Path(submissions).rglob("*.ipynb"))
    if not paths:
        raise SystemExit(f"no notebooks (*.ipynb) under {submissions}")
    rows = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for p, graded in zip(paths, pool.map(lambda p: grade_one(p, dist), paths), strict=True):
            rows += graded
            print(f"graded {p.name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    with os.fdopen(fd, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, out)
    print(f"grades written: {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="otter assign every master into assignments/dist/")
    b.add_argument("names", nargs="*")
    g = sub.add_parser("grade", help="grade a folder of submitted notebooks into a CSV")
    g.add_argument("submissions", type=Path)
    g.add_argument("--out", type=Path, default=DIST / "grades.csv")
    g.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default 1)")
    args = ap.parse_args(argv)
    if args.cmd == "build":
        build(args.names or None)
    else:
        grade(args.submissions, args.out, jobs=args.jobs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
