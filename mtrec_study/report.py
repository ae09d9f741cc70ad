"""``make report``: run every notebook with papermill, render HTML, build the index page.

The build is incremental and atomic:

* each notebook has a content hash of (its file, the package's source, the preset's values for
  it, the hash of the notebook before it); a notebook whose hash matches the last good report is
  copied instead of rerun;
* everything is written to ``reports/.tmp-<preset>-<pid>/`` and renamed over
  ``reports/<preset>/`` only when every notebook succeeded, so an interrupted or failed run never
  leaves a report that looks complete and never destroys the last good one.

It also survives what users do:

* a failed notebook or a dead kernel ends the build with one line naming the notebook, the kept
  report, the partial notebook and the log (``reports/logs/<preset>-build.log``) that holds the
  full traceback; the other running kernels are stopped at once;
* SIGINT and SIGTERM stop the kernels, remove the temporary folder and end with one line;
  temporary folders left by builds that are gone are removed when the next build starts;
* one build per preset at a time: ``reports/.lock-<preset>`` (holding the pid) makes a second
  build wait, or stop at once with ``wait=False`` (``--no-wait``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import logging
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mtrec_study.config import PROJECT_ROOT, REPORTS_DIR
from mtrec_study.params import load_preset, notebooks, params_for_notebooks
from mtrec_study.report_index import FigureNotDrawn, update_readme_findings, write_index
from mtrec_study.results import atomic_write_text

PACKAGES = ("tensorflow", "keras", "keras-hub", "numpy", "pandas", "scikit-learn", "scipy",
            "matplotlib", "papermill", "nbconvert", "tqdm", "safetensors")
MANIFEST = "manifest.json"
README_PRESET = "full"  # whose findings README.md shows (between its findings markers)


class ReportError(RuntimeError):
    """A report step failed; the message names the notebook and cell.

    Args:
        message: What failed and where.
        executed: The executed notebook holding the error, when there is one.
    """

    def __init__(self, message: str, executed: Path | None = None):
        super().__init__(message)
        self.executed = executed


class ReportInterrupted(ReportError):
    """A build stopped by SIGINT or SIGTERM: its kernels were stopped, its temporary folder removed.

    Args:
        message: What was stopped and what was kept.
        signum: The signal's number (the CLI exits with 128 + ``signum``).
    """

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class _Interrupt(BaseException):
    """Raised in the main thread by a build's signal handler (not an Exception: nothing swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


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


class _Kernels:
    """The kernels of one build, so that a failure or an interrupt can stop them all at once.

    jupyter_client starts each kernel in a session of its own (so a terminal's Ctrl-C never reaches
    it); its pid is its process group, and killing that group also ends whatever it started.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._pids: set[int] = set()
        self.stopped = False
        self.killed = 0

    def add(self, pid: int) -> None:
        with self._lock:
            self._pids.add(pid)
            if self.stopped:  # started while the build was stopping
                self._kill(pid)

    def discard(self, pid: int) -> None:
        with self._lock:
            self._pids.discard(pid)

    def stop(self) -> None:
        """Kill every running kernel of the build; kernels started later are killed at once."""
        with self._lock:
            self.stopped = True
            for pid in self._pids:
                self._kill(pid)

    def _kill(self, pid: int) -> None:
        try:
            os.killpg(pid, signal.SIGKILL)  # the kernel's own session: it and whatever it started
        except OSError:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                return  # already gone
        self.killed += 1

    def manager_class(self, started: list[int]) -> type:
        """A jupyter_client kernel manager that registers each kernel it starts here and in ``started``."""
        from jupyter_client import AsyncKernelManager

        kernels = self

        class TrackedKernelManager(AsyncKernelManager):
            async def _async_launch_kernel(self, kernel_cmd, **kw):
                await super()._async_launch_kernel(kernel_cmd, **kw)
                pid = getattr(self.provisioner, "pid", None)
                if pid:
                    started.append(pid)
                    kernels.add(pid)

        return TrackedKernelManager


def _first_line(text: object) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""


def run_notebook(path: Path, out_dir: Path, params: dict, kernel: str | None = None,
                 kernels: _Kernels | None = None) -> float:
    """Execute one notebook with papermill into ``out_dir`` and render its HTML.

    Args:
        path: The source notebook.
        out_dir: Where the executed notebook, its HTML and its recorded results go.
        params: Its parameters (``OUTPUT_DIR`` is set to ``out_dir``).
        kernel: The kernel's name (default :func:`kernel_name`).
        kernels: The build's kernels, which :func:`build_report` stops on a failure or an interrupt.

    Returns:
        Wall time in seconds.

    Raises:
        ReportError: One line naming the notebook and what happened: the failing cell and its
            error, a kernel that died (killed, or out of memory), or a kernel that did not start.
            ``executed`` is the partial notebook.

    Introduced in notebooks/00_overview.ipynb.
    """
    import papermill as pm
    from nbclient.exceptions import DeadKernelError

    kernels = kernels or _Kernels()
    if kernels.stopped:
        raise ReportError(f"{path.name} was not started: the build is stopping")
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / path.name
    params = {**params, "OUTPUT_DIR": str(out_dir)}
    start = time.perf_counter()
    started: list[int] = []
    with _kernel_env():
        try:
            pm.execute_notebook(str(path), str(executed), parameters=params, kernel_name=kernel or kernel_name(),
                                cwd=str(path.parent), progress_bar=False, log_output=False,
                                kernel_manager_class=kernels.manager_class(started))
        except pm.PapermillExecutionError as exc:
            raise ReportError(f"{path.name} failed in cell {exc.exec_count} ({exc.ename}: {_first_line(exc.evalue)})",
                              executed) from exc
        except DeadKernelError as exc:
            raise ReportError(f"{path.stem}'s kernel died (killed, or out of memory) after "
                              f"{time.perf_counter() - start:.0f} s", executed) from exc
        except Exception as exc:  # a kernel that did not start, a lost connection: still one line
            raise ReportError(f"{path.name} could not be run ({type(exc).__name__}: {_first_line(exc)})",
                              executed) from exc
        finally:
            for pid in started:
                kernels.discard(pid)
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
    atomic_write_text(dest, report_links(body.replace("</head>", CJK_STYLE + "</head>", 1)))


def report_links(html: str) -> str:
    """Point a rendered notebook's links at the report's pages instead of the source tree.

    In ``notebooks/`` a glossary link reads ``00_overview.ipynb#g-…`` and an exercise's
    ``solutions/NN_name.md``; in the report the page lies in ``NN_name/NN_name.html`` and the
    solutions in ``solutions/`` beside the index.
    """
    html = re.sub(r'href="(\d\d_[A-Za-z0-9_]+)\.ipynb(#[^"]*)?"', r'href="../\1/\1.html\2"', html)
    return re.sub(r'href="solutions/([^"/]+)"', r'href="../solutions/\1"', html)


def copy_solutions(notebooks_dir: Path | None, report_dir: Path) -> None:
    """Copy the exercises' solutions (``notebooks/solutions/``) next to the report's index."""
    folder = notebooks_dir / "solutions" if notebooks_dir else None
    if folder is not None and folder.is_dir():
        shutil.copytree(folder, report_dir / "solutions", dirs_exist_ok=True)


# The article's Chinese section titles render with a CJK font where one is installed (Noto CJK on
# Debian: fonts-noto-cjk), instead of boxes; the page already declares UTF-8.
CJK_STYLE = ("<style>body, .jp-RenderedHTMLCommon, .jp-RenderedMarkdown {font-family: system-ui, -apple-system, "
             "'Segoe UI', Roboto, 'Noto Sans', 'Noto Sans CJK SC', 'Noto Sans SC', 'PingFang SC', "
             "'Microsoft YaHei', sans-serif;}</style>")


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


def _show(path: Path) -> str:
    """A path as the user typed it: relative to the working folder when it lies inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists (a process of another user counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Signals:
    """SIGINT and SIGTERM during a build: the first raises :class:`_Interrupt` in the main thread.

    While ``defer`` is set (the cleanup after a failure or an interrupt, the final rename) a signal
    is only recorded, so that the cleanup runs to its end.
    """

    def __init__(self):
        self.defer = False
        self.received: int | None = None

    def handler(self, signum, frame) -> None:
        first = self.received is None
        self.received = self.received or signum
        if first and not self.defer:
            self.defer = True
            raise _Interrupt(signum)


@contextmanager
def _interrupts():
    """Turn SIGINT and SIGTERM into :class:`_Interrupt` (only possible in the main thread)."""
    state = _Signals()
    old = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, state.handler)
    try:
        yield state
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


@contextmanager
def _build_lock(out_root: Path, name: str, wait: bool, poll: float = 0.5):
    """Hold ``reports/.lock-<preset>`` (holding this pid) for one build of a preset at a time.

    The lock is an ``flock`` on that file, so the system releases it when its process dies, however
    it dies; the pid inside names the holder in messages. A file whose lock is free but which
    still holds a pid was left by a build that is gone: it is taken over with a note.

    Raises:
        ReportError: When another build holds the lock and ``wait`` is False, naming its pid.
    """
    import fcntl

    out_root.mkdir(parents=True, exist_ok=True)
    path = out_root / f".lock-{name}"
    told = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd) or "unknown"  # unknown: it has locked the file but not yet written its pid
            os.close(fd)
            if not wait:
                raise ReportError(f"another build of the {name!r} report is running (pid {holder}, lock "
                                  f"{_show(path)}); nothing was changed. Wait for it to finish, or run "
                                  f"without --no-wait to wait for it") from None
            if not told:
                print(f"waiting for the build of the {name!r} report by pid {holder} to finish "
                      f"(lock {_show(path)}) ...", file=sys.stderr, flush=True)
                told = True
            time.sleep(poll)
            continue
        try:  # the holder we waited for removes the file before unlocking it: lock the file at `path`
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        stale = _read_pid(fd)
        if stale is not None and stale != os.getpid():
            print(f"note: took over the stale lock {_show(path)} of pid {stale}, whose build is no longer running",
                  file=sys.stderr, flush=True)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        path.unlink(missing_ok=True)  # before unlocking, so that a waiting build locks a fresh file
        os.close(fd)


_LEFTOVER = re.compile(r"^\.(?P<kind>tmp|old)-(?P<preset>.+)-(?P<pid>\d+)$")


def _remove_stale(out_root: Path, name: str) -> None:
    """Remove the temporary folders of builds that are gone (called holding the preset's lock).

    ``.tmp-<preset>-<pid>`` and ``.old-<preset>-<pid>`` folders whose process is gone are
    removed; those of this preset whatever their pid, since this build holds its lock. A build
    killed between its two final renames leaves its last good report as ``.old-...``: when the
    report itself is missing, that folder is renamed back instead.
    """
    removed, restored = [], None
    for entry in sorted(out_root.iterdir()):
        m = _LEFTOVER.match(entry.name)
        if not (m and entry.is_dir()) or int(m["pid"]) == os.getpid():
            continue
        own = m["preset"] == name
        if not own and _alive(int(m["pid"])):
            continue
        report = out_root / m["preset"]
        if m["kind"] == "old" and not report.exists():
            if own:
                os.replace(entry, report)
                restored = entry.name
            continue  # another preset's: its own next build restores it
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry.name)
    if removed:
        print(f"note: removed {len(removed)} temporary folder(s) of builds that are gone: {', '.join(removed)}",
              file=sys.stderr, flush=True)
    if restored:
        print(f"note: restored the last good report {_show(out_root / name)} from {restored}, left by a build "
              f"killed while replacing it", file=sys.stderr, flush=True)


@contextmanager
def _library_log(log: Path):
    """papermill's and nbclient's own messages (``Kernel died while waiting ...``) go to the build log.

    Without a handler Python prints them on the terminal, around the one line that says what happened.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log, encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    logger = logging.getLogger("papermill")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


def _log_failure(log: Path, name: str, line: str, exc: BaseException) -> None:
    """Append the full traceback of a failed build to its log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} build of {name!r} (pid {os.getpid()}) failed\n"
                 f"{line}\n\n{''.join(traceback.format_exception(exc))}\n")


def build_report(preset: str = "fast", only: list[str] | None = None, out_root: Path | None = None,
                 force: bool = False, progress: bool = True, jobs: int | None = None, wait: bool = True) -> Path:
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
        wait: When another build of this preset is running (``reports/.lock-<preset>``), wait for
            it (True) or stop at once (False, the CLI's ``--no-wait``).

    Raises:
        ReportError: In one line: the data cannot be obtained (nothing runs), another build of the
            preset is running and ``wait`` is False, or a notebook failed or its kernel died (the
            last good report is kept; the full traceback is in ``<out_root>/logs/<preset>-build.log``).
        ReportInterrupted: On SIGINT or SIGTERM, after stopping the kernels and removing the
            temporary folder (the last good report is kept).

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
    name = Path(preset).stem
    final = out_root / name
    tmp = out_root / f".tmp-{name}-{os.getpid()}"
    build_log = out_root / "logs" / f"{name}-build.log"
    begun = time.perf_counter()
    kernels = _Kernels()
    created = False
    try:
        with _interrupts() as signals, _library_log(build_log):
            check_data(values)
            with _build_lock(out_root, name, wait):
                _remove_stale(out_root, name)
                try:
                    shutil.rmtree(tmp, ignore_errors=True)
                    tmp.mkdir(parents=True)
                    created = True
                    old_manifest = {}
                    if (final / MANIFEST).exists():
                        old_manifest = {r["name"]: r for r in json.loads((final / MANIFEST).read_text())["notebooks"]}
                    pkg = package_hash()
                    kernel = kernel_name()
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
                    if os.environ.get("MTREC_DATA_DIR"):  # kernels run in notebooks/: a relative folder would move
                        kernel_log["MTREC_DATA_DIR"] = str(Path(os.environ["MTREC_DATA_DIR"]).expanduser().resolve())
                    with _kernel_env(kernel_log), ThreadPoolExecutor(max_workers=jobs) as pool, \
                            tqdm(total=len(todo), desc=f"report {name} ({jobs} at a time)", unit="notebook",
                                 disable=not progress, file=sys.stderr) as bar:
                        futures = {pool.submit(run_notebook, path, tmp / path.stem, per_nb[path], kernel, kernels): (path, h)
                                   for path, h in todo}
                        pending = set(futures)
                        try:
                            while pending:
                                done, pending = wait_for_futures(pending, return_when=FIRST_COMPLETED)
                                for fut in done:
                                    path, h = futures[fut]
                                    if fut.exception() is not None:
                                        raise fut.exception()
                                    runs[path.stem] = NotebookRun(path.stem, h, fut.result(), False)
                                    bar.set_postfix_str(path.stem)
                                    bar.update()
                        finally:
                            if pending:  # a failure or an interrupt: the others' work is discarded, so stop them now
                                signals.defer = True
                                kernels.stop()
                                for other in pending:
                                    other.cancel()
                    ordered = [runs[p.stem] for p in paths if p.stem in runs]
                    atomic_write_text(tmp / MANIFEST, json.dumps({"preset": name, "jobs": jobs,
                                                                  "notebooks": [r.__dict__ for r in ordered]}, indent=2))
                    copy_solutions(paths[0].parent if paths else None, tmp)
                    try:
                        write_index(tmp, name, ordered, environment_stamp(name, values, jobs), jobs)
                    except FigureNotDrawn as exc:
                        raise ReportError(str(exc)) from exc
                except BaseException as exc:
                    signals.defer = True  # a second Ctrl-C does not cut the cleanup short
                    keep = out_root / f"{name}-failed.ipynb"
                    keep.unlink(missing_ok=True)
                    executed = getattr(exc, "executed", None)
                    if executed is not None and executed.exists():
                        shutil.copyfile(executed, keep)
                    shutil.rmtree(tmp, ignore_errors=True)
                    if not isinstance(exc, Exception):
                        raise  # an interrupt (or SystemExit): reported below
                    what = str(exc) if isinstance(exc, ReportError) else \
                        f"the build failed ({type(exc).__name__}: {_first_line(exc)})"
                    line = "; ".join([
                        what.rstrip("."),
                        f"the last good report at {_show(final)} is unchanged" if final.exists()
                        else f"no report was written to {_show(final)}",
                        *([f"the partial notebook is at {_show(keep)}"] if keep.exists() else []),
                        f"the full traceback is in {_show(build_log)}"])
                    _log_failure(build_log, name, line, exc)
                    raise ReportError(line) from exc
                signals.defer = True  # the final renames are not interrupted halfway
                backup = out_root / f".old-{name}-{os.getpid()}"
                if final.exists():
                    os.replace(final, backup)
                os.replace(tmp, final)
                shutil.rmtree(backup, ignore_errors=True)
                if name == README_PRESET and out_root.resolve() == REPORTS_DIR.resolve() and not only:
                    update_readme_findings(final)  # the front page shows what the full study found
    except _Interrupt as stop:
        parts = [f"interrupted by {signal.Signals(stop.signum).name} after {time.perf_counter() - begun:.0f} s",
                 *([f"stopped {kernels.killed} running kernel(s)"] if kernels.killed else []),
                 *([f"removed {_show(tmp)}"] if created else []),
                 f"the last good report at {_show(final)} is unchanged" if final.exists()
                 else f"no report was written to {_show(final)}"]
        raise ReportInterrupted("; ".join(parts), stop.signum) from None
    if signals.received:  # a signal came during the final renames: the report is complete
        print(f"note: {signal.Signals(signals.received).name} came while the finished report was being moved "
              f"into place; {_show(final)} is complete", file=sys.stderr)
    return final / "index.html"
