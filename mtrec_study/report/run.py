"""Running one notebook: papermill in the ``mtrec`` kernel, with the inline backend, no progress
bars and the kernels' C-level output sent to a log.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mtrec_study.report.errors import ReportError
from mtrec_study.report.publish import render_html
from mtrec_study.results import atomic_write_text


@dataclass
class NotebookRun:
    """One notebook of a build: its name, content hash, run time and whether it was reused.

    Used by mtrec_study.report.build.
    """

    name: str
    hash: str
    seconds: float
    reused: bool


def kernel_name() -> str:
    """The registered study kernel ``mtrec`` if the venv has it, else ``python3``.

    Used by mtrec_study.report.run, mtrec_study.report.build.
    """
    from jupyter_client.kernelspec import KernelSpecManager

    return "mtrec" if "mtrec" in KernelSpecManager().find_kernel_specs() else "python3"


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

    Used by mtrec_study.report.build.
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

    Used by mtrec_study.report.run.
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
