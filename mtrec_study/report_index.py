"""The report's index page: findings first, then figures, notebooks and the environment stamp.

Rendered from ``templates/index.html.j2`` (Jinja2). Every number it shows is read from the
notebooks' recorded JSON; ``results.csv`` holds all tidy rows.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from mtrec_study.config import PROJECT_ROOT
from mtrec_study.results import TIDY_COLUMNS, atomic_write_text


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


def write_index(report_dir: Path, preset: str, runs: list, stamp: dict, jobs: int = 1) -> Path:
    """Write ``index.html``: headline tables, key figures, notebook links and the stamp."""
    tidy = collect_tidy(report_dir, [r.name for r in runs])
    tidy.drop(columns="notebook").to_csv(report_dir / "results.csv", index=False)
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
