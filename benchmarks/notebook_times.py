"""The time notes at the top of every notebook, generated from the measured build times.

Each notebook's first markdown cell carries one line (after the marker ``<!-- run-time -->``)
with its reading time and its run time on its own defaults (the fast preset's values) and on the
full preset; its ``parameters`` cell starts with a comment saying the same and how to run the
full study. The run times come from ``results/report.json`` (``bench_report``), never typed in.
The first line of ``params/fast.yaml`` and ``params/full.yaml`` carries the same preset's total build
time in the same way (``PRESET_LINE``).

``python -m benchmarks.notebook_times`` rewrites the notes (run it after each ``bench_report``
measurement); ``--check`` exits 1 naming each notebook whose notes are stale.
``tests/unit/test_notebook_hygiene.py`` runs the check.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

from mtrec_study.config import NOTEBOOKS_DIR, PARAMS_DIR
from mtrec_study.params import notebooks
from mtrec_study.results import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results" / "report.json"
MARKER = "<!-- run-time -->"
PARAMS_NOTE = "# Defaults:"
PARAMS_NOTE_2 = "# Full study:"
PRESET_LINE = {  # the generated first line of each preset file; {timing} comes from report.json.
    # The index page quotes it as plain text after "Preset <name>:", so it neither names the preset
    # again nor uses Markdown.
    "fast": "# Small grids and few epochs, for a first look and for the tests; {timing}.",
    "full": "# What make report runs; {timing}.",
}
WORDS_PER_MINUTE = 200  # prose
CODE_LINES_PER_MINUTE = 25  # reading code is slower than prose


def _report() -> tuple[dict[str, dict], dict]:
    """The rows of ``report.json`` by preset, and its machine (both empty before the first measurement)."""
    if not RESULTS.exists():
        return {}, {}
    res = json.loads(RESULTS.read_text())
    return {r["preset"]: r for r in res["rows"]}, res["machine"]


def measured() -> tuple[dict[str, dict[str, float]], dict]:
    """Per-notebook seconds of the ``fast`` and ``full`` builds, and the machine they ran on."""
    rows, machine = _report()
    return {p: rows.get(p, {}).get("notebook_seconds", {}) for p in ("fast", "full")}, machine


def reading_minutes(nb: dict) -> int:
    """Reading time of a notebook's prose and code, rounded up to 5 minutes."""
    words = sum(len("".join(c["source"]).split()) for c in nb["cells"] if c["cell_type"] == "markdown")
    code = sum(len([ln for ln in "".join(c["source"]).splitlines() if ln.strip()])
               for c in nb["cells"] if c["cell_type"] == "code")
    minutes = words / WORDS_PER_MINUTE + code / CODE_LINES_PER_MINUTE
    return max(5, 5 * math.ceil(minutes / 5))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "not measured yet"
    if seconds < 90:
        return f"about {max(5, round(seconds / 5) * 5):.0f} s"
    return f"about {math.ceil(seconds / 60):.0f} min"


def preset_line(preset: str) -> str:
    """The first line of ``params/<preset>.yaml``: what the preset is and its last measured build time."""
    rows, machine = _report()
    row = rows.get(preset)
    if row is None:
        timing = "build time not measured yet (python -m benchmarks.bench_report measures it)"
    else:
        cpus = machine.get("cpus", "?")
        slowest = row.get("slowest_notebook")
        longest = (f"; the longest notebook, {slowest}, {_duration(row['slowest_notebook_s']).removeprefix('about ')}"
                   if slowest and row.get("slowest_notebook_s") else "")
        timing = (f"{_duration(row['seconds'])} from scratch on {cpus} CPU cores, {row.get('jobs', '?')} notebooks "
                  f"at a time{longest} (measured in benchmarks/results/report.json, copied here by "
                  "python -m benchmarks.notebook_times)")
    return PRESET_LINE[preset].format(timing=timing)


def _preset_text(path: Path) -> tuple[str, str]:
    """The preset file's text, and the same text with its first line generated."""
    text = path.read_text(encoding="utf-8")
    _, _, rest = text.partition("\n")
    return text, preset_line(path.stem) + "\n" + rest


def _preset_stale(path: Path) -> bool:
    """Whether the preset file's first line differs from the generated one."""
    old, new = _preset_text(path)
    return old != new


def notes(stem: str, nb: dict, times: dict, machine: dict) -> tuple[str, str]:
    """The markdown line and the parameters-cell comment for one notebook."""
    fast, full = _duration(times.get("fast", {}).get(stem)), _duration(times.get("full", {}).get(stem))
    cpus = f"{machine.get('cpus', '?')} CPU cores" if machine else "this machine"
    # The marker is an HTML block of its own line, so the note below it renders as Markdown.
    line = (f"{MARKER}\n*Reading time {reading_minutes(nb)} min. Run time on {cpus}: {fast} with the defaults "
            f"below (the fast preset), {full} with the full preset (`make report`).*")
    comment = (f"{PARAMS_NOTE} quick settings (the fast preset), {fast} on {cpus}.\n"
               f"{PARAMS_NOTE_2} `make report`, or papermill with `-f ../params/full.yaml` ({full} for this notebook).")
    return line, comment


def apply(path: Path, times: dict, machine: dict) -> bool:
    """Write the notes into one notebook; return whether it changed."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    line, comment = notes(path.stem, nb, times, machine)
    first = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    params = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    md = "".join(first["source"])
    md = re.sub(rf"\n*{re.escape(MARKER)}[^\n]*(\n\*Reading time[^\n]*)?", "", md).rstrip("\n") + "\n\n" + line
    src = "".join(params["source"])
    src = "\n".join(ln for ln in src.splitlines() if not ln.startswith((PARAMS_NOTE, PARAMS_NOTE_2)))
    src = comment + "\n" + src
    changed = md != "".join(first["source"]) or src != "".join(params["source"])
    first["source"], params["source"] = md.splitlines(keepends=True), src.splitlines(keepends=True)
    if changed:
        atomic_write_text(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return changed


def apply_preset(path: Path) -> bool:
    """Write the generated first line into one preset file; return whether it changed."""
    old, new = _preset_text(path)
    if new != old:
        atomic_write_text(path, new)
    return new != old


def stale(folder: Path = NOTEBOOKS_DIR, params: Path | None = PARAMS_DIR) -> list[str]:
    """Notebooks and preset files (in ``params``; None skips them) whose notes differ from the measured times."""
    times, machine = measured()
    out = [f"params/{p}.yaml" for p in PRESET_LINE
           if params is not None and _preset_stale(params / f"{p}.yaml")]
    for path in notebooks(folder):
        nb = json.loads(path.read_text(encoding="utf-8"))
        line, comment = notes(path.stem, nb, times, machine)
        first = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
        params = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
        if line not in "".join(first["source"]) or not "".join(params["source"]).startswith(comment + "\n"):
            out.append(path.name)
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--check" in args:
        bad = stale()
        for name in bad:
            print(f"{name}: run-time notes are stale; run `python -m benchmarks.notebook_times`")
        return 1 if bad else 0
    times, machine = measured()
    for path in notebooks():
        if apply(path, times, machine):
            print(f"updated {path.name}")
    for preset in PRESET_LINE:
        if apply_preset(PARAMS_DIR / f"{preset}.yaml"):
            print(f"updated params/{preset}.yaml")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
