"""Publishing an executed notebook: HTML with embedded figures, report-relative links and a CJK
font stack, and the solutions copied beside it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from mtrec_study.results import atomic_write_text


def render_html(notebook: Path, dest: Path) -> None:
    """Render an executed notebook to a standalone HTML page (images embedded).

    Used by mtrec_study.report.run.
    """
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nbformat.read(notebook, as_version=4))
    atomic_write_text(dest, report_links(body.replace("</head>", CJK_STYLE + "</head>", 1)))


def report_links(html: str) -> str:
    """Point a rendered notebook's links at the report's pages instead of the source tree.

    In ``notebooks/`` a glossary link reads ``00_overview.ipynb#g-…`` and an exercise's
    ``solutions/NN_name.md``; in the report the page lies in ``NN_name/NN_name.html`` and the
    solutions in ``solutions/`` beside the index.

    Used by mtrec_study.report.publish.
    """
    html = re.sub(r'href="(\d\d_[A-Za-z0-9_]+)\.ipynb(#[^"]*)?"', r'href="../\1/\1.html\2"', html)
    return re.sub(r'href="solutions/([^"/]+)"', r'href="../solutions/\1"', html)


def copy_solutions(notebooks_dir: Path | None, report_dir: Path) -> None:
    """Copy the exercises' solutions (``notebooks/solutions/``) next to the report's index.

    Used by mtrec_study.report.build.
    """
    folder = notebooks_dir / "solutions" if notebooks_dir else None
    if folder is not None and folder.is_dir():
        shutil.copytree(folder, report_dir / "solutions", dirs_exist_ok=True)


# The article's Chinese section titles render with a CJK font where one is installed (Noto CJK on
# Debian: fonts-noto-cjk), instead of boxes; the page already declares UTF-8.
CJK_STYLE = ("<style>body, .jp-RenderedHTMLCommon, .jp-RenderedMarkdown {font-family: system-ui, -apple-system, "
             "'Segoe UI', Roboto, 'Noto Sans', 'Noto Sans CJK SC', 'Noto Sans SC', 'PingFang SC', "
             "'Microsoft YaHei', sans-serif;}</style>")
