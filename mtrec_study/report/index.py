"""The report's index page: findings first, then figures, notebooks and the environment stamp.

Rendered from ``templates/index.html.j2`` (Jinja2). Every number it shows is read from the
notebooks' recorded JSON; ``results.csv`` holds all tidy rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mtrec_study.config import PROJECT_ROOT
from mtrec_study.results import TIDY_COLUMNS, atomic_write_text


def collect_tidy(report_dir: Path, names: list[str]) -> pd.DataFrame:
    """All notebooks' tidy rows in one table (with a ``notebook`` column).

    Used by mtrec_study.report.index.
    """
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


# The figures a reader sees first: (notebook, recorded figure, caption).
KEY_FIGURES = (
    ("04_training", "figures/learning_curves.png", "Learning curves: train (solid) and validation (dashed) loss per task"),
    ("06_ablations", "figures/lambda_pareto.png", "The λ simplex: interest AUC against rating RMSE, with its Pareto front"),
    ("08_sharing_mechanisms", "figures/mmoe_synthetic.png",
     "The MMoE paper's synthetic experiment: loss as the task correlation p falls"),
    ("09_headline_results", "figures/rmse_folds.png", "Rating RMSE per fold: our networks against the Surprise peers"),
    ("04_training", "figures/gate_usage.png", "MMoE gate usage: how each task spreads its weight over the experts"),
)
# Highlight tables that open the page, by (notebook, summary key).
VERDICTS = ("07_article_claims", "verdicts")
HEADLINE = ("09_headline_results", "results")
TEMPLATE = "index.html.j2"


class FigureNotDrawn(RuntimeError):
    """A notebook recorded a figure whose file does not exist; the message names both.

    Used by mtrec_study.report.index, mtrec_study.report.build.
    """


def _cell(column: str, value) -> dict:
    """One table cell: text formatted for a reader, and a CSS class for verdicts and 'met?'."""
    if value is None or (isinstance(value, float) and value != value):
        text = ""
    elif isinstance(value, float):
        text = f"{value:.4f}"
    else:
        text = str(value)
    cls = ""
    if column == "verdict" and text:
        cls = "verdict-" + text.lower().replace(" ", "-")
    elif column == "met?" and text:
        cls = "met-yes" if text.lower().startswith("yes") else "met-no" if text.lower().startswith("no") else ""
    return {"text": text, "cls": cls}


def table_view(rows: list[dict] | pd.DataFrame, columns: list[str] | None = None) -> dict:
    """Columns and formatted cells of a recorded table, for the template.

    Used by mtrec_study.report.index.
    """
    df = pd.DataFrame(rows)
    if columns and set(columns) == {str(c) for c in df.columns}:
        df = df[columns]  # the order the notebook gave (JSON sorts keys)
    columns = [str(c) for c in df.columns]
    return {"columns": columns,
            "rows": [[_cell(c, v) for c, v in zip(columns, row, strict=True)] for row in df.itertuples(index=False)]}


def results_by_notebook(tidy: pd.DataFrame) -> list[dict]:
    """Per notebook, every tidy row summarised as mean ± std over folds: a long table with no empty cells.

    Used by mtrec_study.report.index.
    """
    out = []
    keys = ["protocol", "task", "metric", "segment", "model"]
    for name, g in tidy.groupby("notebook", sort=False):
        g = g.assign(segment=g["segment"].fillna("all"))
        agg = g.groupby(keys, sort=False)["value"].agg(["mean", "std", "count"]).reset_index()
        agg["value"] = [f"{m:.4f}" + (f" ± {s:.4f}" if c > 1 and pd.notna(s) else "")
                        for m, s, c in zip(agg["mean"], agg["std"], agg["count"], strict=True)]
        view = agg[[*keys, "value", "count"]].rename(columns={"count": "n"})
        out.append({"notebook": name, "n_rows": len(g), **table_view(view)})
    return out


def _recorded(report_dir: Path, runs: list) -> dict[str, dict]:
    out = {}
    for r in runs:
        path = report_dir / r.name / "results.json"
        if path.exists():
            out[r.name] = json.loads(path.read_text(encoding="utf-8"))
    return out


def _figures(report_dir: Path, recorded: dict[str, dict]) -> list[dict]:
    """Every recorded figure; a recorded figure whose file is missing raises :class:`FigureNotDrawn`."""
    out = []
    for name, res in recorded.items():
        for fig in res.get("figures", []):
            if not (report_dir / name / fig).is_file():
                raise FigureNotDrawn(f"{name} records the figure {fig!r}, but {name}/{fig} was never drawn")
            out.append({"notebook": name, "file": fig, "src": f"{name}/{fig}", "link": f"{name}/{name}.html",
                        "caption": Path(fig).stem.replace("_", " ")})
    return out


def _lead(preset: str, recorded: dict[str, dict]) -> str:
    """The opening paragraph: what was studied, on what data, with which preset."""
    from mtrec_study.params import preset_path

    path = preset_path(preset)
    description = ""
    if path.exists():
        first = path.read_text(encoding="utf-8").splitlines()[:1]
        description = first[0].lstrip("# ").strip().rstrip(".;,") if first and first[0].startswith("#") else ""
    data = recorded.get("01_data_preprocessing", {}).get("summary", {})
    on = (f"{data['dataset']} ({data['n_ratings']:,} ratings by {data['n_users']:,} users on {data['n_items']:,} items)"
          if {"dataset", "n_ratings", "n_users", "n_items"} <= set(data) else "MovieLens")
    return ("This report tests the article's proposal — one network trained on three recommendation tasks at once "
            "(user-interest prediction, item recommendation and user-behaviour prediction), with the loss "
            "L = λ1·L_interest + λ2·L_item + λ3·L_behaviour — and the claims it makes for it, on "
            f"{on} and on synthetic data whose task correlation is known. Preset {preset}"
            + (f": {description}" if description else "") + ". Every number on this page was computed by this "
            "build and read from the notebooks' recorded results.")


def _highlight(recorded: dict[str, dict], key: tuple[str, str]) -> dict | None:
    name, table = key
    res = recorded.get(name)
    if not res or table not in res.get("highlights", []):
        return None
    return {"notebook": name, "link": f"{name}/{name}.html",
            **table_view(res["summary"][table], res.get("columns", {}).get(table))}


def _benchmark() -> dict | None:
    """The measured build times of ``make report-fast`` / ``make report`` (benchmarks/bench_report.py)."""
    path = PROJECT_ROOT / "benchmarks" / "results" / "report.json"
    if not path.exists():
        return None
    res = json.loads(path.read_text())
    rows = [{"preset": r["preset"], "seconds": f"{r['seconds']:.0f}", "target": r["limit_s"] or "none",
             "met": ("yes" if r["seconds"] < r["limit_s"] else "no") if r["limit_s"] else "—"} for r in res["rows"]]
    return {"cpus": res["machine"]["cpus"], "date": res["machine"]["date"], "rows": rows}


def render_index(report_dir: Path, preset: str, runs: list, stamp: dict, jobs: int = 1,
                 tidy: pd.DataFrame | None = None) -> str:
    """The index page's HTML, findings first (see the module docstring).

    Raises:
        FigureNotDrawn: If a notebook recorded a figure it never drew, naming both.

    Used by mtrec_study.report.index.
    """
    import jinja2

    recorded = _recorded(report_dir, runs)
    if tidy is None:
        tidy = collect_tidy(report_dir, [r.name for r in runs])
    figures = _figures(report_dir, recorded)
    by_src = {f["src"]: f for f in figures}
    key = [{**by_src[f"{nb}/{fig}"], "caption": caption} for nb, fig, caption in KEY_FIGURES
           if f"{nb}/{fig}" in by_src]
    others = []
    for name, res in recorded.items():
        for table in res.get("highlights", []):
            if (name, table) not in (VERDICTS, HEADLINE):
                others.append({"notebook": name, "link": f"{name}/{name}.html", "title": table.replace("_", " "),
                               **table_view(res["summary"][table], res.get("columns", {}).get(table))})
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.get_template(TEMPLATE).render(
        preset=preset, lead=_lead(preset, recorded), verdicts=_highlight(recorded, VERDICTS),
        headline=_highlight(recorded, HEADLINE), key_figures=key, runs=runs,
        total_seconds=sum(r.seconds for r in runs), jobs=jobs, stamp=stamp, other_highlights=others,
        by_notebook=results_by_notebook(tidy) if not tidy.empty else [], all_figures=figures,
        benchmark=_benchmark())


def write_index(report_dir: Path, preset: str, runs: list, stamp: dict, jobs: int = 1) -> Path:
    """Write ``index.html`` (findings first), ``results.csv`` (every tidy row) and ``stamp.json``.

    Raises:
        FigureNotDrawn: If a notebook recorded a figure it never drew, naming both.

    Used by mtrec_study.report.build.
    """
    tidy = collect_tidy(report_dir, [r.name for r in runs])
    page = render_index(report_dir, preset, runs, stamp, jobs, tidy)
    atomic_write_text(report_dir / "results.csv", tidy.to_csv(index=False))
    atomic_write_text(report_dir / "index.html", page)
    atomic_write_text(report_dir / "stamp.json", json.dumps(stamp, indent=2))
    return report_dir / "index.html"


FINDINGS_START, FINDINGS_END = "<!-- findings:start -->", "<!-- findings:end -->"


def markdown_table(table: pd.DataFrame, float_format: str = "{:.4f}") -> str:
    """A GitHub-flavoured Markdown table; floats formatted with ``float_format``, ``|`` escaped.

    Used by mtrec_study.report.index.
    """
    def cell(v) -> str:
        if v is None or (isinstance(v, float) and v != v):
            return ""
        return (float_format.format(v) if isinstance(v, float) else str(v)).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def findings_markdown(report_dir: Path) -> str:
    """The README's findings block from a built report: its verdicts and headline comparison.

    Raises:
        FileNotFoundError: If the report lacks its stamp or the notebooks that hold the findings.

    Used by mtrec_study.report.index.
    """
    report_dir = Path(report_dir)
    stamp = json.loads((report_dir / "stamp.json").read_text(encoding="utf-8"))
    parts = [FINDINGS_START,
             f"*Generated by `make report` from `reports/{stamp['preset']}` (preset `{stamp['preset']}`, seed "
             f"{stamp['seed']}), built {stamp['built']} at commit `{str(stamp['git commit'])[:12]}` on "
             f"{stamp['machine']}. Do not edit by hand.*", ""]
    for (name, key), title in ((VERDICTS, "The article's claims"), (HEADLINE, "Against published baselines")):
        path = report_dir / name / "results.json"
        if not path.exists():
            raise FileNotFoundError(f"{path}: the findings need {name}; build the whole report with make report")
        res = json.loads(path.read_text(encoding="utf-8"))
        view = table_view(res["summary"][key], res.get("columns", {}).get(key))
        table = pd.DataFrame([[c["text"] for c in row] for row in view["rows"]], columns=view["columns"])
        parts += [f"**{title}** ([{name}](notebooks/{name}.ipynb)):", "", markdown_table(table), ""]
    parts.append(FINDINGS_END)
    return "\n".join(parts)


def update_readme_findings(report_dir: Path, readme: Path | None = None) -> bool:
    """Replace the block between the findings markers in ``README.md``; return whether it changed.

    Raises:
        ValueError: If the README lacks the markers, naming the file and the markers.

    Used by mtrec_study.report.build.
    """
    readme = Path(readme or PROJECT_ROOT / "README.md")
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(FINDINGS_START), text.find(FINDINGS_END)
    if start < 0 or end < start:
        raise ValueError(f"{readme}: no findings block; add the lines {FINDINGS_START} and {FINDINGS_END}")
    new = text[:start] + findings_markdown(report_dir) + text[end + len(FINDINGS_END):]
    if new != text:
        atomic_write_text(readme, new)
    return new != text


def readme_findings(readme: Path | None = None) -> str:
    """The findings block as it stands in ``README.md`` (markers included), or ``""``.

    Used by the tests only.
    """
    text = Path(readme or PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    start, end = text.find(FINDINGS_START), text.find(FINDINGS_END)
    return text[start:end + len(FINDINGS_END)] if 0 <= start < end else ""
