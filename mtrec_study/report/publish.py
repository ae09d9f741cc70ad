"""Publishing an executed notebook: HTML with embedded figures, report-relative links, a CJK
font stack and MathJax served from the report itself, and the solutions copied beside it.
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

    exporter = HTMLExporter(template_name="lab", mathjax_url=f"../{MATHJAX_DIR}/MathJax.js?config={MATHJAX_CONFIG}")
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    body = REQUIRE_JS.sub("", body, count=1)  # only widgets need require.js, and the study has none
    atomic_write_text(dest, report_links(body.replace("</head>", CJK_STYLE + MATHJAX_FONTS + "</head>", 1)))


# The notebooks' equations are typeset by MathJax 2.7 from the report's own folder (the
# jupyter-server-mathjax package ships it), so a reader offline, or on a network that blocks
# CDNs, sees formulas instead of raw LaTeX.
MATHJAX_DIR = "_mathjax"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"
# The package ships MathJax's STIX web fonts only (as Jupyter's classic notebook used them); without
# this, MathJax first asks for its TeX fonts, which are not there.
MATHJAX_FONTS = ('<script type="text/x-mathjax-config">MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], '
                 'imageFont: null, preferredFont: null, webFont: "STIX-Web", font: "STIX-Web"}});</script>')
REQUIRE_JS = re.compile(r'<script src="[^"]*require(?:\.min)?\.js"></script>\s*')


def copy_mathjax(report_dir: Path) -> Path:
    """Copy MathJax (from the jupyter-server-mathjax package) into ``<report>/_mathjax``.

    Used by mtrec_study.report.build.
    """
    import jupyter_server_mathjax

    source = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (source / "MathJax.js").exists():
        raise FileNotFoundError(f"{source / 'MathJax.js'} is missing; reinstall jupyter-server-mathjax")
    shutil.copytree(source, report_dir / MATHJAX_DIR, dirs_exist_ok=True)
    return report_dir / MATHJAX_DIR


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
