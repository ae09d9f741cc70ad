"""What a reader of the built report sees: figures inline, clean outputs, findings first.

These read the fast report that ``tests/conftest.py`` builds once per session. The browser test
opens it in headless Chromium, as a reader would, and keeps its screenshots under the test's
output folder.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd
import pytest

from mtrec_study.params import notebooks
from mtrec_study.report.index import KEY_FIGURES

# Start-up noise of TensorFlow / absl / CUDA and frozen progress bars: none may reach a reader.
NOISE = re.compile(r"absl::|cudart|cuda drivers|oneDNN|^[IWE]\d{4} \d\d:\d\d|it/s\]|\d+%\|", re.M)


def _executed(report: Path) -> list[tuple[str, dict]]:
    return [(p.stem, json.loads((report / p.stem / f"{p.stem}.ipynb").read_text(encoding="utf-8")))
            for p in notebooks()]


def _outputs(nb: dict) -> list[dict]:
    return [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]


def _decode_png(data: str) -> tuple[int, int]:
    raw = base64.b64decode(data)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    img = mpimg.imread(io.BytesIO(raw), format="png")
    return img.shape[1], img.shape[0]


def test_executed_notebooks_show_every_recorded_figure_inline(fast_report):
    for name, nb in _executed(fast_report):
        recorded = json.loads((fast_report / name / "results.json").read_text())["figures"]
        images = [o["data"]["image/png"] for o in _outputs(nb) if "image/png" in o.get("data", {})]
        assert len(images) >= len(recorded), f"{name}: records {len(recorded)} figure(s), shows {len(images)}"
        for data in images:
            width, height = _decode_png(data)
            assert width > 100 and height > 100, name


def test_notebook_html_embeds_images_that_decode(fast_report):
    shown = 0
    for name, nb in _executed(fast_report):
        html = (fast_report / name / f"{name}.html").read_text(encoding="utf-8")
        embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
        outputs = sum("image/png" in o.get("data", {}) for o in _outputs(nb))
        assert len(embedded) == outputs, name
        for data in embedded:
            assert min(_decode_png(data)) > 100, name
        shown += len(embedded)
        assert '<meta charset="utf-8"' in html.lower() and "Noto Sans CJK" in html, name
    assert shown >= len(KEY_FIGURES)


def test_no_startup_noise_or_frozen_progress_bars_in_any_output(fast_report):
    for name, nb in _executed(fast_report):
        for out in _outputs(nb):
            text = "".join(out.get("text", "")) + "".join(out.get("data", {}).get("text/plain", ""))
            assert not NOISE.search(text), f"{name}: {text[:300]!r}"


def test_no_table_cell_is_cut_short(fast_report):
    """pandas cuts a cell longer than 50 characters to "..." unless a notebook says otherwise; a reader
    of the notebook then never sees a caveat or a reason (every notebook sets display.max_colwidth)."""
    for name, nb in _executed(fast_report):
        for out in _outputs(nb):
            table = "".join(out.get("data", {}).get("text/html", ""))
            cut = re.findall(r"<td>([^<]{0,60}(?:\.\.\.|…))</td>", table)
            assert not cut, f"{name}: table cells cut short: {cut[:3]}"


def test_summaries_render_as_markdown(fast_report):
    for name, nb in _executed(fast_report):
        cells = nb["cells"]
        at = next(i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
                  and "".join(c["source"]).lstrip().startswith("## Summary"))
        code = next(c for c in cells[at + 1:] if c["cell_type"] == "code")
        markdown = [o["data"]["text/markdown"] for o in code["outputs"] if "text/markdown" in o.get("data", {})]
        assert markdown and "".join(markdown[0]).startswith("- "), name
        assert not any(o.get("name") == "stdout" for o in code["outputs"]), f"{name}: Summary printed as text"


def test_injected_parameters_show_paths_relative_to_the_notebook(fast_report):
    for name, nb in _executed(fast_report):
        injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
        assert injected, name
        source = "".join(injected[0]["source"])
        assert 'OUTPUT_DIR = "."' in source, (name, source)
        assert ".tmp-" not in source and str(fast_report.parent) not in source, (name, source)


class _Page(HTMLParser):
    """Headings with ids, tables and images of the index, in document order."""

    def __init__(self):
        super().__init__()
        self.order: list[str] = []
        self.tables: list[list[list[tuple[str, str]]]] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self._cell: list[str] | None = None
        self._cls = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "h2" and a.get("id"):
            self.order.append(a["id"])
        elif tag == "table":
            self.tables.append([])
            self.order.append(f"table:{len(self.tables) - 1}")
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell, self._cls = [], a.get("class") or ""
        elif tag == "img":
            self.images.append(a["src"])
            self.order.append("img")
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(("".join(self._cell).strip(), self._cls))
            self._cell = None


def _page(report: Path) -> _Page:
    page = _Page()
    page.feed((report / "index.html").read_text(encoding="utf-8"))
    return page


def test_index_opens_with_findings_then_figures_then_notebooks(fast_report):
    page = _page(fast_report)
    sections = [s for s in page.order if not s.startswith(("table:", "img"))]
    assert sections[:4] == ["verdicts", "headline", "key-figures", "notebooks"], sections
    verdicts = page.tables[0]
    assert verdicts[0][0][0] and len(verdicts) >= 6  # a header and one row per claim
    classes = {cls for row in verdicts[1:] for _, cls in row if cls.startswith("verdict-")}
    assert classes, "no verdict cell is marked"
    headline = page.tables[1]
    assert any(text == "met?" for text, _ in headline[0]) and len(headline) >= 6
    first_imgs = page.order.index("notebooks")
    assert page.order[:first_imgs].count("img") >= 4  # key figures come before the notebook table
    assert max(len(row) for t in page.tables for row in t) <= 12, "a wide pivot table is back"
    for src in page.images + [h for h in page.links if not h.startswith(("http", "#"))]:
        assert (fast_report / src).exists(), src
    text = (fast_report / "index.html").read_text(encoding="utf-8")
    assert "Noto Sans CJK" in text and '<meta charset="utf-8">' in text


def test_results_csv_holds_the_numbers_the_page_shows(fast_report):
    tidy = pd.read_csv(fast_report / "results.csv")
    assert set(tidy.columns) >= {"model", "task", "metric", "protocol", "fold", "segment", "value", "notebook"}
    ev = tidy[tidy["notebook"] == "05_evaluation"]
    beyond = ev[ev["protocol"] == "full catalogue, top-10 lists"]
    for model in ("popularity", "article", "shared_bottom", "single_item"):
        got = set(beyond.loc[beyond["model"] == model, "metric"])
        assert {"coverage", "novelty", "gini"} <= got and any(m.startswith("ild_") for m in got), (model, got)
    head = tidy[tidy["notebook"] == "09_headline_results"]
    for protocol in ("LOO + 99 sampled", "random 80/10/10, full ranking"):
        models = set(head.loc[head["protocol"] == protocol, "model"])
        assert {"bpr", "popularity", "mtl", "single_item"} <= models, (protocol, models)
    # Every (task, metric) of 09's highlighted results table has the best network's rows.
    results = pd.DataFrame(json.loads((fast_report / "09_headline_results" / "results.json").read_text())
                           ["summary"]["results"])
    for task, metric in results[["task", "metric"]].itertuples(index=False):
        if metric == "Δm%":
            continue  # a combination of the three tasks' rows, which are there
        assert not head[(head["model"] == "mtl") & (head["task"] == task) & (head["metric"] == metric)].empty, (task, metric)


@pytest.mark.browser
def test_a_reader_sees_findings_and_figures_in_chromium(fast_report, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is part of the test extra")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=args)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto((fast_report / "index.html").as_uri(), wait_until="load")
        page.screenshot(path=str(shots / "index-first-screen.png"))
        first_screen = page.evaluate("""() => {
            const h = window.innerHeight;
            const table = document.querySelector('#verdicts ~ table');
            const imgs = Array.from(document.images).filter(i => i.getBoundingClientRect().top < h * 2);
            return {verdictTop: table ? table.getBoundingClientRect().top : null,
                    verdictRows: table ? table.rows.length : 0,
                    figures: imgs.map(i => i.naturalWidth)};
        }""")
        assert first_screen["verdictTop"] is not None and first_screen["verdictTop"] < 1000, first_screen
        assert first_screen["verdictRows"] >= 6
        assert any(w > 0 for w in first_screen["figures"]), first_screen
        # The figure beside the verdicts never covers them: at a laptop's width it goes under the table
        # (it once ran over the caveats column at 1000-1300 px), and the table never leaves its column.
        for width in (1000, 1200, 1400):
            page.set_viewport_size({"width": width, "height": 1000})
            box = page.evaluate("""() => {
                const t = document.querySelector('#verdicts ~ table').getBoundingClientRect();
                const a = document.querySelector('.findings aside').getBoundingClientRect();
                const col = document.querySelector('#verdicts').parentElement;
                return {tRight: t.right, tBottom: t.bottom, aLeft: a.left, aTop: a.top,
                        scroll: col.scrollWidth, client: col.clientWidth};
            }""")
            assert box["tRight"] <= box["aLeft"] or box["tBottom"] <= box["aTop"], (width, box)
            assert box["scroll"] <= box["client"], (width, box)
        page.set_viewport_size({"width": 1400, "height": 1000})
        broken = page.evaluate("() => Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
                               ".map(i => i.getAttribute('src'))")
        assert not broken, broken
        hrefs = page.evaluate("() => Array.from(document.links).map(a => a.getAttribute('href'))")
        for href in hrefs:
            if not href.startswith(("http", "#")):
                assert (fast_report / href).exists(), href
        assert not errors, errors  # the index needs nothing from the network
        remote: list[str] = []
        page.on("request", lambda r: remote.append(r.url) if not r.url.startswith(("file:", "data:", "about:")) else None)
        page.goto((fast_report / "04_training" / "04_training.html").as_uri(), wait_until="load")
        page.screenshot(path=str(shots / "04_training.png"), full_page=False)
        widths = page.evaluate("() => Array.from(document.images).map(i => i.naturalWidth)")
        assert len(widths) >= 3 and all(w > 0 for w in widths), widths
        # The equations are typeset by the report's own MathJax, offline: no raw LaTeX, nothing fetched.
        page.goto((fast_report / "03_model_math" / "03_model_math.html").as_uri(), wait_until="load")
        page.wait_for_function("() => window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0", timeout=60_000)
        typeset = page.evaluate("() => document.querySelectorAll('.MathJax, .MathJax_Display').length")
        raw = page.evaluate("() => document.body.innerText.includes('\\\\log p(i \\\\mid u)')")
        page.screenshot(path=str(shots / "03_model_math.png"), full_page=False)
        assert typeset >= 50 and not raw, (typeset, raw)
        assert not remote, remote  # a notebook page needs nothing from the network either
        browser.close()
    assert (shots / "index-first-screen.png").stat().st_size > 20_000


def test_links_inside_notebook_pages_resolve_in_the_report(fast_report):
    """Glossary and solution links written for notebooks/ point at the report's own pages."""
    anchors = {}
    for name, _ in _executed(fast_report):
        page = fast_report / name / f"{name}.html"
        html = page.read_text(encoding="utf-8")
        anchors[page.resolve()] = set(re.findall(r'\bid="([^"]+)"', html))
    checked = 0
    for page in anchors:
        for href in re.findall(r'href="([^"]+)"', page.read_text(encoding="utf-8")):
            if href.startswith(("http", "#", "data:", "mailto:")):
                continue
            target, _, anchor = href.partition("#")
            path = (page.parent / target).resolve()
            assert path.exists(), f"{page.name}: {href}"
            if anchor and path in anchors:
                assert anchor in anchors[path], f"{page.name}: {href} (no such anchor)"
            checked += 1
    assert checked > 0
