"""Planning a report build: what each notebook's content hash is, whether its data are there,
and the environment stamp that the index shows.

A notebook reruns only when its hash changes: its file, the package's source, the preset's
values for it and the hash of the notebook before it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
import platform
import subprocess
import time
from pathlib import Path

from mtrec_study.config import NUMERIC_ENV, PROJECT_ROOT
from mtrec_study.report.errors import ReportError

PACKAGES = ("tensorflow", "keras", "keras-hub", "numpy", "pandas", "scikit-learn", "scipy",
            "matplotlib", "papermill", "nbconvert", "tqdm", "safetensors")


MANIFEST = "manifest.json"


def versions() -> dict[str, str]:
    """Resolved versions of Python and the study's key packages.

    Introduced in notebooks/00_overview.ipynb.
    """
    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def git_commit() -> str:
    """The current commit (with ``+dirty`` when the tree has changes), or ``unknown``.

    Used by mtrec_study.report.plan.
    """
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (sha or "unknown") + ("+dirty" if dirty and sha else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def notebook_hash(path: Path, params: dict, previous: str, pkg: str) -> str:
    """Content hash deciding whether a notebook must rerun.

    Used by mtrec_study.report.build.
    """
    h = hashlib.sha256()
    for part in (path.read_bytes(), json.dumps(params, sort_keys=True).encode(), previous.encode(), pkg.encode()):
        h.update(part)
    return h.hexdigest()[:16]


def check_data(preset_values: dict) -> None:
    """Make sure the preset's data set (and text model) can be obtained before any notebook runs.

    Raises:
        ReportError: With the loader's message, which says how to supply the data.

    Used by mtrec_study.report.build.
    """
    from mtrec_study.datasets import DataError, load_dataset
    from mtrec_study.text import TextModelError, check_model_dir, fetch_minilm

    name = preset_values.get("DATASET", "ml-100k")
    if name != "synthetic":
        try:
            load_dataset(name, log=None)
        except (DataError, ValueError) as exc:
            raise ReportError(f"the data set {name!r} cannot be obtained, so no notebook was run.\n{exc}") from exc
    if "TEXT_MODEL_DIR" in preset_values:
        folder = preset_values["TEXT_MODEL_DIR"]
        try:
            check_model_dir(folder) if folder else fetch_minilm(progress=True)
        except TextModelError as exc:
            raise ReportError(f"the text model cannot be obtained, so no notebook was run.\n{exc}") from exc


def environment_stamp(preset: str, values: dict, jobs: int) -> dict:
    """What a report was built with: preset, seed, commit, time, machine, the numeric settings
    (:data:`mtrec_study.config.NUMERIC_ENV`) and package versions.

    Used by mtrec_study.report.build.
    """
    return {"preset": preset, "seed": values.get("SEED"), "git commit": git_commit(),
            "built": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "notebooks at a time": jobs, **{key.lower(): os.environ.get(key, "unset") for key in NUMERIC_ENV},
            **versions()}


def default_jobs() -> int:
    """How many notebooks run at once: ``MTREC_REPORT_JOBS``, else one per two CPUs, at least 2 when
    there are 2+ CPUs.

    The notebooks are independent (each reads the data itself), and much of a fast-preset run is
    single-threaded Python (kernel start, imports, graph tracing), so two at a time use two cores.
    Each notebook's TensorFlow uses 2 threads (:data:`mtrec_study.config.NUMERIC_ENV`, which keeps
    every machine to the same numbers), so a machine with more cores runs more notebooks at once.

    Used by mtrec_study.report.build.
    """
    env = os.environ.get("MTREC_REPORT_JOBS")
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ReportError(f"MTREC_REPORT_JOBS={env!r} is not valid: use a whole number of notebooks, 1 or more")
        return int(env)
    cpus = os.cpu_count() or 1
    threads = os.environ.get("TF_NUM_INTRAOP_THREADS", "")
    threads = int(threads) if threads.isdigit() and int(threads) > 0 else int(NUMERIC_ENV["TF_NUM_INTRAOP_THREADS"])
    return max(2, cpus // threads) if cpus >= 2 else 1


def _expected_seconds(preset: str, old_manifest: dict) -> dict[str, float]:
    """Each notebook's last run time: from the last report of this preset, else the build benchmark."""
    out: dict[str, float] = {}
    bench = PROJECT_ROOT / "benchmarks" / "results" / "report.json"
    if bench.exists():
        for row in json.loads(bench.read_text()).get("rows", []):
            if row.get("preset") == preset:
                out.update(row.get("notebook_seconds", {}))
    out.update({k: float(r["seconds"]) for k, r in old_manifest.items()})
    return out
