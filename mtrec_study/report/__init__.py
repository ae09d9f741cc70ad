"""The report: ``make report`` runs every notebook with a preset and publishes ``reports/<preset>/``.

- :mod:`~mtrec_study.report.plan`: content hashes, data checks and the environment stamp;
- :mod:`~mtrec_study.report.run`: one notebook under papermill in the ``mtrec`` kernel;
- :mod:`~mtrec_study.report.publish`: HTML pages with embedded figures and report-relative links;
- :mod:`~mtrec_study.report.index`: the findings-first index page (template in ``templates/``)
  and the README's findings block;
- :mod:`~mtrec_study.report.build`: :func:`build_report`, incremental and atomic, one build per
  preset at a time.
"""

from mtrec_study.report.build import build_report
from mtrec_study.report.errors import ReportError, ReportInterrupted
from mtrec_study.report.plan import versions

__all__ = ["ReportError", "ReportInterrupted", "build_report", "versions"]
