"""``make report``: run every notebook with papermill, render HTML, build the index page.

The build is incremental and atomic:

* each notebook has a content hash of (its file, the package's source, the preset's values for
  it, the hash of the notebook before it); a notebook whose hash matches the last good report is
  copied instead of rerun;
* everything is written to ``reports/.tmp-<preset>-<pid>/`` and renamed over
  ``reports/<preset>/`` only when every notebook succeeded, so an interrupted or failed run never
  leaves a report that looks complete and never destroys the last good one.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mtrec_study.config import PROJECT_ROOT, REPORTS_DIR
from mtrec_study.params import load_preset, notebooks, params_for_notebooks
from mtrec_study.report_index import write_index
from mtrec_study.results import atomic_write_text

PACKAGES = ("tensorflow", "keras", "keras-hub", "numpy", "pandas", "scikit-learn", "scipy",
            "matplotlib", "papermill", "nbconvert", "tqdm", "safetensors")
MANIFEST = "manifest.json"


class ReportError(RuntimeError):
    """A report step failed; the message names the notebook and cell.

    Args:
        message: What failed and where.
        executed: The executed notebook holding the error, when there is one.
    """

    def __init__(self, message: str, executed: Path | None = None):
        super().__init__(message)
        self.executed = executed


@dataclass
class NotebookRun:
    name: str
    hash: str
    seconds: float
    reused: bool


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
    """The current commit (with ``+dirty`` when the tree has changes), or ``unknown``."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (sha or "unknown") + ("+dirty" if dirty and sha else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_hash() -> str:
    """Hash of the package's source files: a change to any reruns every notebook."""
    h = hashlib.sha256()
    for path in sorted((PROJECT_ROOT / "mtrec_study").rglob("*.py")):
        h.update(path.relative_to(PROJECT_ROOT).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def notebook_hash(path: Path, params: dict, previous: str, pkg: str) -> str:
    """Content hash deciding whether a notebook must rerun."""
    h = hashlib.sha256()
    for part in (path.read_bytes(), json.dumps(params, sort_keys=True).encode(), previous.encode(), pkg.encode()):
        h.update(part)
    return h.hexdigest()[:16]


def kernel_name() -> str:
    """The registered study kernel ``mtrec`` if the venv has it, else ``python3``."""
    from jupyter_client.kernelspec import KernelSpecManager

    return "mtrec" if "mtrec" in KernelSpecManager().find_kernel_specs() else "python3"


def check_data(preset_values: dict) -> None:
    """Make sure the preset's data set (and text model) can be obtained before any notebook runs.

    Raises:
        ReportError: With the loader's message, which says how to supply the data.
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


def run_notebook(path: Path, out_dir: Path, params: dict, kernel: str | None = None) -> float:
    """Execute one notebook with papermill into ``out_dir`` and render its HTML.

    Returns:
        Wall time in seconds.

    Raises:
        ReportError: Naming the notebook, the failing cell and the error.

    Introduced in notebooks/00_overview.ipynb.
    """
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / path.name
    params = {**params, "OUTPUT_DIR": str(out_dir)}
    start = time.perf_counter()
    with _kernel_env():
        try:
            pm.execute_notebook(str(path), str(executed), parameters=params, kernel_name=kernel or kernel_name(),
                                cwd=str(path.parent), progress_bar=False, log_output=False)
        except pm.PapermillExecutionError as exc:
            raise ReportError(f"{path.name} failed in cell {exc.exec_count} ({exc.ename}: {exc.evalue})",
                              executed) from exc
    seconds = time.perf_counter() - start
    relative_output_dir(executed, out_dir)
    render_html(executed, out_dir / (path.stem + ".html"))
    return seconds


def relative_output_dir(executed: Path, out_dir: Path) -> None:
    """Show ``OUTPUT_DIR = "."`` in the injected-parameters cell instead of the build's temporary path.

    The notebook ran with the absolute path of this build's temporary folder, which is renamed
    when the build succeeds; relative to the executed notebook, which lies in that folder, the
    output folder is ``"."`` both before and after the rename.
    """
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    changed = False
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            new = cell.source.replace(repr(str(out_dir)), '"."').replace(json.dumps(str(out_dir)), '"."')
            changed, cell.source = changed or new != cell.source, new
    if changed:
        atomic_write_text(executed, nbformat.writes(nb))


# Figures are embedded as image/png outputs (the inline backend, whatever MPLBACKEND the caller
# has); progress bars would be frozen text lines in the HTML, so they are off inside the report.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
KERNEL_ENV = {"MPLBACKEND": INLINE_BACKEND, "TF_CPP_MIN_LOG_LEVEL": "3", "TQDM_DISABLE": "1"}
FORCED_ENV = ("MPLBACKEND", "TQDM_DISABLE")


@contextmanager
def _kernel_env(extra: dict[str, str] | None = None):
    """Kernels started inside embed figures inline, draw no progress bars and keep TensorFlow quiet.

    ``TF_CPP_MIN_LOG_LEVEL=3`` hides the harmless ``NodeDef mentions attribute ...`` lines that
    TensorFlow 2.21 logs at error level for every ``fit``, which would otherwise fill the executed
    notebooks; a real failure still raises in Python. A value the caller set is kept, except the
    backend and the progress bars, and ``extra`` (such as the kernels' log file). Set once by
    :func:`build_report` before its worker threads start, so the threads only read it.
    """
    wanted = {**KERNEL_ENV, **(extra or {})}
    before = {k: os.environ.get(k) for k in wanted}
    changed = {k: v for k, v in wanted.items()
               if (k in FORCED_ENV or k in (extra or {}) or before[k] is None) and before[k] != v}
    os.environ.update(changed)  # nested use (run_notebook inside build_report's threads) changes nothing
    try:
        yield
    finally:
        for key in changed:
            if before[key] is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = before[key]


def environment_stamp(preset: str, values: dict, jobs: int) -> dict:
    """What a report was built with: preset, seed, commit, time, machine and package versions."""
    return {"preset": preset, "seed": values.get("SEED"), "git commit": git_commit(),
            "built": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "notebooks at a time": jobs, **versions()}


def default_jobs() -> int:
    """How many notebooks run at once: ``MTREC_REPORT_JOBS``, else 2 when there are 2+ CPUs.

    The notebooks are independent (each reads the data itself), and much of a fast-preset run is
    single-threaded Python (kernel start, imports, graph tracing), so two at a time use two cores.
    """
    env = os.environ.get("MTREC_REPORT_JOBS")
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ReportError(f"MTREC_REPORT_JOBS={env!r} is not valid: use a whole number of notebooks, 1 or more")
        return int(env)
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def render_html(notebook: Path, dest: Path) -> None:
    """Render an executed notebook to a standalone HTML page (images embedded)."""
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nbformat.read(notebook, as_version=4))
    atomic_write_text(dest, body)


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


def build_report(preset: str = "fast", only: list[str] | None = None, out_root: Path | None = None,
                 force: bool = False, progress: bool = True, jobs: int | None = None) -> Path:
    """Run the study's notebooks into ``reports/<preset>/`` and return the index page.

    Args:
        preset: ``fast``, ``full`` or a path to a YAML preset.
        only: Notebook stems to run (default: all, in order). The others are carried over
            unchanged from the last report where it has them.
        out_root: Where reports go (default ``reports/``).
        force: Rerun every notebook even when its hash is unchanged.
        progress: Show a tqdm bar over notebooks.
        jobs: Notebooks run at once (default :func:`default_jobs`). Every notebook reads the data
            itself and writes only its own folder, so the results do not depend on ``jobs``.

    Raises:
        ReportError: If the data cannot be obtained (nothing runs) or a notebook fails (the
            last good report is kept).

    Introduced in notebooks/00_overview.ipynb.
    """
    from tqdm.auto import tqdm

    out_root = Path(out_root or REPORTS_DIR)
    paths = notebooks()
    per_nb = params_for_notebooks(preset, paths)  # every key is checked against every notebook
    if only:
        unknown = sorted(set(only) - {p.stem for p in paths})
        if unknown:
            raise ReportError(f"unknown notebooks {unknown}; valid: {[p.stem for p in paths]}")
    values = load_preset(preset)
    check_data(values)
    name = Path(preset).stem
    final = out_root / name
    tmp = out_root / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    old_manifest = {}
    if (final / MANIFEST).exists():
        old_manifest = {r["name"]: r for r in json.loads((final / MANIFEST).read_text())["notebooks"]}
    pkg = package_hash()
    kernel = kernel_name()
    try:
        runs: dict[str, NotebookRun] = {}
        todo: list[tuple[Path, str]] = []
        previous = ""
        for path in paths:
            h = notebook_hash(path, per_nb[path], previous, pkg)
            previous = h
            old = old_manifest.get(path.stem)
            have_old = bool(old) and (final / path.stem / f"{path.stem}.html").exists()
            if only and path.stem not in only:
                # Not asked for: keep what the last report had (as it was), or leave it out.
                if have_old:
                    shutil.copytree(final / path.stem, tmp / path.stem)
                    runs[path.stem] = NotebookRun(path.stem, old["hash"], old["seconds"], True)
            elif not force and have_old and old["hash"] == h:
                shutil.copytree(final / path.stem, tmp / path.stem)
                runs[path.stem] = NotebookRun(path.stem, h, old["seconds"], True)
            else:
                todo.append((path, h))
        jobs = max(1, min(jobs or default_jobs(), len(todo) or 1))
        # Longest first, so the slowest notebook never starts last (durations of the last report or
        # benchmark; unknown ones keep their reading order after the known ones).
        expected = _expected_seconds(name, old_manifest)
        todo.sort(key=lambda item: -expected.get(item[0].stem, 0.0))
        # C-level output of the kernels (TensorFlow's start-up lines, a crash's last words) goes here.
        kernel_log = {"MTREC_KERNEL_LOG": str(out_root / "logs" / f"{name}-kernels.log")}
        with _kernel_env(kernel_log), ThreadPoolExecutor(max_workers=jobs) as pool, \
                tqdm(total=len(todo), desc=f"report {name} ({jobs} at a time)", unit="notebook",
                     disable=not progress, file=sys.stderr) as bar:
            futures = {pool.submit(run_notebook, path, tmp / path.stem, per_nb[path], kernel): (path, h)
                       for path, h in todo}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    path, h = futures[fut]
                    if fut.exception() is not None:
                        for other in pending:
                            other.cancel()
                        raise fut.exception()
                    runs[path.stem] = NotebookRun(path.stem, h, fut.result(), False)
                    bar.set_postfix_str(path.stem)
                    bar.update()
        ordered = [runs[p.stem] for p in paths if p.stem in runs]
        atomic_write_text(tmp / MANIFEST, json.dumps({"preset": name, "jobs": jobs,
                                                      "notebooks": [r.__dict__ for r in ordered]}, indent=2))
        write_index(tmp, name, ordered, environment_stamp(name, values, jobs), jobs)
    except ReportError as exc:
        keep = out_root / f"{name}-failed.ipynb"
        if exc.executed is not None and exc.executed.exists():
            shutil.copyfile(exc.executed, keep)
        shutil.rmtree(tmp, ignore_errors=True)
        raise ReportError(f"{exc}. The last good report in {final} is kept"
                          + (f"; the executed notebook with the error is {keep}" if keep.exists() else "")) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    backup = out_root / f".old-{name}-{os.getpid()}"
    if final.exists():
        os.replace(final, backup)
    os.replace(tmp, final)
    shutil.rmtree(backup, ignore_errors=True)
    return final / "index.html"
