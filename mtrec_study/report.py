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
import html
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

import pandas as pd

from mtrec_study.config import PROJECT_ROOT, REPORTS_DIR
from mtrec_study.params import load_preset, notebooks, params_for_notebooks
from mtrec_study.results import TIDY_COLUMNS, atomic_write_text

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


def collect_tidy(report_dir: Path, names: list[str]) -> pd.DataFrame:
    """All notebooks' tidy rows in one table (with a ``notebook`` column)."""
    frames = []
    for name in names:
        path = report_dir / name / "results.json"
        if path.exists():
            rows = json.loads(path.read_text()).get("tidy")
            if rows:
                frames.append(pd.DataFrame(rows).assign(notebook=name))
    if not frames:
        return pd.DataFrame(columns=[*TIDY_COLUMNS, "notebook"])
    return pd.concat(frames, ignore_index=True)


HEADLINE_REPORT_METRICS = ("auc", "gauc", "f1_tuned", "ece", "rmse", "mae", "hr@10", "ndcg@10", "recall@10")


def headline_table(tidy: pd.DataFrame, metrics=HEADLINE_REPORT_METRICS) -> pd.DataFrame:
    """Models × (notebook, protocol, task, metric) with mean ± std over folds, segment ``all``.

    Single-task models (``single_<task>``) are merged into one ``single_task`` column. Runs of
    different notebooks stay apart: they are different experiments, not folds.

    Introduced in notebooks/05_evaluation.ipynb.
    """
    from mtrec_study.evaluation import merge_single_task  # lazy: it imports TensorFlow

    if tidy.empty:
        return pd.DataFrame()
    df = tidy[(tidy["segment"].fillna("all") == "all") & tidy["metric"].isin(metrics)]
    if "notebook" not in df:
        df = df.assign(notebook="")
    df = pd.concat([merge_single_task(g).assign(notebook=nb) for nb, g in df.groupby("notebook")], ignore_index=True)
    g = df.groupby(["notebook", "protocol", "task", "metric", "model"])["value"]
    out = g.agg(["mean", "std", "count"]).reset_index()
    out["value"] = [f"{m:.4f}" + (f" ± {s:.4f}" if c > 1 and pd.notna(s) else "")
                    for m, s, c in zip(out["mean"], out["std"], out["count"], strict=True)]
    return out.pivot_table(index=["notebook", "protocol", "task", "metric"], columns="model", values="value",
                           aggfunc="first")


def _benchmark_section() -> str:
    """The measured build times of ``make report-fast`` / ``make report`` (benchmarks/bench_report.py)."""
    path = PROJECT_ROOT / "benchmarks" / "results" / "report.json"
    if not path.exists():
        return ("<h2>Build time benchmark</h2><p>Not measured on this checkout yet: run "
                "<code>make benchmark BENCH_ARGS=\"--only report\"</code>.</p>")
    res = json.loads(path.read_text())
    m = res["machine"]
    rows = "".join(f"<tr><td>{html.escape(r['preset'])}</td><td>{r['seconds']:.0f}</td><td>{r['limit_s'] or 'none'}</td>"
                   f"<td>{('yes' if r['seconds'] < r['limit_s'] else 'no') if r['limit_s'] else '—'}</td></tr>"
                   for r in res["rows"])
    return ("<h2>Build time benchmark</h2><p>A from-scratch build measured by <code>benchmarks/bench_report.py</code> "
            f"on {m['cpus']} CPUs, {html.escape(str(m['date']))}:</p><table><tr><th>preset</th><th>seconds</th>"
            f"<th>target (s)</th><th>met?</th></tr>{rows}</table>")


def write_index(report_dir: Path, preset: str, runs: list[NotebookRun], values: dict, jobs: int = 1) -> Path:
    """Write ``index.html``: headline tables, key figures, notebook links and the stamp."""
    tidy = collect_tidy(report_dir, [r.name for r in runs])
    tidy.drop(columns="notebook").to_csv(report_dir / "results.csv", index=False)
    stamp = {"preset": preset, "seed": values.get("SEED"), "git commit": git_commit(),
             "built": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
             "notebooks at a time": jobs,
             **versions()}
    parts = [f"<h1>mtrec-study report — preset <code>{html.escape(preset)}</code></h1>",
             "<p>Multi-task learning for recommender systems, reproduced from the article's four steps. "
             "Every number below was produced by this run and read from the notebooks' recorded JSON.</p>",
             "<h2>Notebooks</h2><table><tr><th>notebook</th><th>run time (s)</th><th>rerun?</th><th>files</th></tr>"]
    for r in runs:
        parts.append(f"<tr><td><a href='{r.name}/{r.name}.html'>{html.escape(r.name)}</a></td>"
                     f"<td>{r.seconds:.1f}</td><td>{'reused (unchanged)' if r.reused else 'ran'}</td>"
                     f"<td><a href='{r.name}/{r.name}.ipynb'>ipynb</a> · <a href='{r.name}/results.json'>results.json</a></td></tr>")
    total = sum(r.seconds for r in runs)
    parts.append(f"</table><p>Total notebook time: {total:.1f} s; {jobs} notebook(s) ran at a time, so a "
                 "notebook's run time includes waiting for the CPU it shared.</p>")
    table = headline_table(tidy)
    if not table.empty:
        parts.append("<h2>Headline results</h2><p>Mean ± std over folds where there are several; "
                     "the full tidy table is in <a href='results.csv'>results.csv</a>.</p>")
        parts.append(table.to_html(na_rep="", escape=True, classes="results"))
    else:
        parts.append("<p>No tidy results were recorded yet (<a href='results.csv'>results.csv</a>).</p>")
    highlights = []
    for r in runs:
        res = report_dir / r.name / "results.json"
        if res.exists():
            recorded = json.loads(res.read_text())
            for key in recorded.get("highlights", []):
                table = pd.DataFrame(recorded["summary"][key])
                highlights.append(f"<h3><a href='{r.name}/{r.name}.html'>{html.escape(r.name)}</a>: "
                                  f"{html.escape(key.replace('_', ' '))}</h3>"
                                  + table.to_html(index=False, na_rep="", escape=True, float_format="{:.4f}".format,
                                                  classes="results"))
    if highlights:
        parts.append("<h2>Verdicts and comparisons</h2>" + "".join(highlights))
    figs = []
    for r in runs:
        res = report_dir / r.name / "results.json"
        if res.exists():
            for fig in json.loads(res.read_text()).get("figures", []):
                figs.append(f"<figure><img src='{r.name}/{fig}' alt='{html.escape(fig)}' width='560'>"
                            f"<figcaption>{html.escape(r.name)}: {html.escape(Path(fig).stem)}</figcaption></figure>")
    if figs:
        parts.append("<h2>Key figures</h2>" + "".join(figs))
    parts.append(_benchmark_section())
    parts.append("<h2>Environment stamp</h2><table>" + "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in stamp.items()) + "</table>")
    css = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
           "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
           "figure{display:inline-block;margin:1em}")
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>mtrec-study report ({html.escape(preset)})"
            f"</title><style>{css}</style></head><body>{''.join(parts)}</body></html>")
    atomic_write_text(report_dir / "index.html", page)
    atomic_write_text(report_dir / "stamp.json", json.dumps(stamp, indent=2))
    return report_dir / "index.html"


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
        write_index(tmp, name, ordered, values, jobs)
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
