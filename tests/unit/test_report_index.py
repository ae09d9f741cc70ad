"""The index page and the README's findings block, on small hand-made reports."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from mtrec_study.config import PROJECT_ROOT, REPORTS_DIR
from mtrec_study.report import index as RI
from mtrec_study.results import figure_path, record_results, show_summary

STAMP = {"preset": "full", "seed": 42, "git commit": "0123456789abcdef", "built": "2026-12-03 12:00:00 UTC",
         "machine": "x86_64, 2 CPUs"}


def _figure(out: Path, name: str) -> str:
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    fig.savefig(figure_path(out, name))
    plt.close(fig)
    return f"figures/{name}"


def _report(tmp_path: Path) -> tuple[Path, list]:
    root = tmp_path / "full"
    verdicts = pd.DataFrame({"claim": ["MTL helps cold start", "MTL overfits"], "section": ["§8.1", "§3.3"],
                             "verdict": ["refuted", "supported"], "estimate": [-0.01234, 0.5]})
    record_results({"verdicts": verdicts}, root / "07_article_claims", highlights=["verdicts"])
    results = pd.DataFrame({"task": ["behaviour"], "metric": ["rmse"], "our best multi-task": ["0.9118 [0.9062, 0.9175]"],
                            "met?": ["no (gap 0.012)"]})
    fig = _figure(root / "09_headline_results", "rmse_folds.png")
    tidy = pd.DataFrame({"model": ["mtl", "mtl"], "task": ["behaviour"] * 2, "metric": ["rmse"] * 2,
                         "protocol": ["5-fold CV"] * 2, "fold": [0, 1], "segment": ["all"] * 2, "value": [0.9, 0.92]})
    record_results({"results": results}, root / "09_headline_results", tidy=tidy, figures=[fig], highlights=["results"])
    (root / "stamp.json").write_text(json.dumps(STAMP))
    runs = [SimpleNamespace(name=n, seconds=1.0, reused=False) for n in ("07_article_claims", "09_headline_results")]
    return root, runs


def test_index_puts_findings_first_in_the_notebooks_column_order(tmp_path):
    root, runs = _report(tmp_path)
    html = RI.write_index(root, "full", runs, STAMP).read_text(encoding="utf-8")
    order = [html.index(s) for s in ('id="verdicts"', 'id="headline"', 'id="key-figures"', 'id="notebooks"')]
    assert order == sorted(order)
    # The notebook's column order survives the sorted JSON, and verdict and 'met?' cells are marked.
    claims_row = html[html.index('id="verdicts"'):html.index('id="headline"')]
    assert claims_row.index("<th>claim</th>") < claims_row.index("<th>section</th>") < claims_row.index("<th>verdict</th>")
    assert '<td class="verdict-refuted">refuted</td>' in html and "-0.0123" in html
    assert '<td class="met-no">no (gap 0.012)</td>' in html
    assert 'src="09_headline_results/figures/rmse_folds.png"' in html
    csv = pd.read_csv(root / "results.csv")
    assert list(csv["value"]) == [0.9, 0.92] and set(csv["notebook"]) == {"09_headline_results"}


def test_results_by_notebook_has_no_empty_cells():
    tidy = pd.DataFrame({"model": ["a", "a", "b"], "task": ["t"] * 3, "metric": ["m"] * 3, "protocol": ["p"] * 3,
                         "fold": [0, 1, 0], "segment": [None, "all", "all"], "value": [1.0, 3.0, 2.0],
                         "notebook": ["n1", "n1", "n2"]})
    views = RI.results_by_notebook(tidy)
    assert [v["notebook"] for v in views] == ["n1", "n2"]
    first = views[0]
    assert first["rows"][0][-2]["text"] == f"2.0000 ± {pd.Series([1.0, 3.0]).std():.4f}"
    assert all(cell["text"] for v in views for row in v["rows"] for cell in row)


def test_a_recorded_figure_that_was_never_drawn_fails_the_index(tmp_path):
    root, runs = _report(tmp_path)
    res = root / "09_headline_results" / "results.json"
    data = json.loads(res.read_text())
    data["figures"].append("figures/gate_usage.png")
    res.write_text(json.dumps(data))
    with pytest.raises(RI.FigureNotDrawn, match=r"09_headline_results records the figure 'figures/gate_usage.png'"):
        RI.write_index(root, "full", runs, STAMP)


def test_record_results_refuses_figures_outside_or_missing(tmp_path):
    with pytest.raises(ValueError, match="never drawn"):
        record_results({}, tmp_path, figures=["figures/nothing.png"])
    with pytest.raises(ValueError, match="outside the output folder"):
        record_results({}, tmp_path, figures=["../elsewhere.png"])
    with pytest.raises(ValueError, match=r"'\.\./x\.png' would be written to .* outside"):
        figure_path(tmp_path, "../x.png")


def test_show_summary_returns_markdown_and_checks_bullets(capsys):
    assert show_summary(["- one **bold**", "- two"]) == "- one **bold**\n- two"
    with pytest.raises(ValueError, match="must start with '- '"):
        show_summary(["no dash"])


def test_readme_findings_block_is_generated_from_the_report(tmp_path):
    root, runs = _report(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n\n{RI.FINDINGS_START}\nold\n{RI.FINDINGS_END}\n\nafter\n", encoding="utf-8")
    assert RI.update_readme_findings(root, readme)
    block = RI.readme_findings(readme)
    assert block == RI.findings_markdown(root)
    assert "commit `0123456789ab`" in block and "| refuted |" in block and "| no (gap 0.012) |" in block
    assert readme.read_text().endswith("after\n") and not RI.update_readme_findings(root, readme)
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="no findings block"):
        RI.update_readme_findings(root, readme)


def test_readme_findings_match_the_full_report_when_it_exists():
    full = REPORTS_DIR / "full"
    if not (full / "stamp.json").exists():
        pytest.skip("no full report on this checkout (make report builds it)")
    assert RI.readme_findings(PROJECT_ROOT / "README.md") == RI.findings_markdown(full), \
        "README.md's findings block is not the one reports/full gives: run make report"
