"""The report build's errors: one line for the user, the traceback in the build log."""

from __future__ import annotations

from pathlib import Path


class ReportError(RuntimeError):
    """A report step failed; the message names the notebook and cell.

    Args:
        message: What failed and where.
        executed: The executed notebook holding the error, when there is one.

    Used by mtrec_study.report.errors, mtrec_study.cli, mtrec_study.report.build, mtrec_study.report.plan, mtrec_study.report.run.
    """

    def __init__(self, message: str, executed: Path | None = None):
        super().__init__(message)
        self.executed = executed


class ReportInterrupted(ReportError):
    """A build stopped by SIGINT or SIGTERM: its kernels were stopped, its temporary folder removed.

    Args:
        message: What was stopped and what was kept.
        signum: The signal's number (the CLI exits with 128 + ``signum``).

    Used by mtrec_study.cli, mtrec_study.report.build.
    """

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class _Interrupt(BaseException):
    """Raised in the main thread by a build's signal handler (not an Exception: nothing swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
