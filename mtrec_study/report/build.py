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

import json
import os
import re
import shutil
import signal
import sys
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures
from contextlib import contextmanager
from pathlib import Path

from mtrec_study.config import REPORTS_DIR, TRAIN_CACHE_ENV, TRAIN_CACHE_FOLDER
from mtrec_study.params import load_preset, notebooks, params_for_notebooks
from mtrec_study.report.errors import ReportError, ReportInterrupted, _Interrupt
from mtrec_study.report.index import FigureNotDrawn, update_readme_findings, write_index
from mtrec_study.report.plan import (
    MANIFEST,
    _expected_seconds,
    check_data,
    default_jobs,
    environment_stamp,
    notebook_hash,
)
from mtrec_study.report.publish import copy_mathjax, copy_solutions
from mtrec_study.report.run import (
    NotebookRun,
    _first_line,
    _kernel_env,
    _Kernels,
    _library_log,
    kernel_name,
    run_notebook,
)
from mtrec_study.reproducibility import package_hash
from mtrec_study.results import atomic_write_text

README_PRESET = "full"  # whose findings README.md shows (between its findings markers)


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

    Used by mtrec_study.cli.
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
                    if not os.environ.get(TRAIN_CACHE_ENV):  # trained networks reused across notebooks and builds
                        kernel_log[TRAIN_CACHE_ENV] = str((out_root / TRAIN_CACHE_FOLDER).resolve())
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
                                                                  "seconds": round(time.perf_counter() - begun, 1),
                                                                  "notebooks": [r.__dict__ for r in ordered]}, indent=2))
                    copy_solutions(paths[0].parent if paths else None, tmp)
                    copy_mathjax(tmp)
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
