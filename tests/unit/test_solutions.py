"""The learner's map: objectives, hints, solutions, references and glossary links in every notebook.

Solutions live in ``notebooks/solutions/<notebook>.md``, one ``## Exercise N`` heading per
question of that notebook's ``## Exercises`` cell. A solution without a matching notebook or
question is reported by name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
HEADING = re.compile(r"^## Exercise (\d+)\s*$", re.M)
QUESTION = re.compile(r"^(\d+)\. ", re.M)


def _markdown(nb_path: Path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(nb_path.read_text(encoding="utf-8"))["cells"]
            if c["cell_type"] == "markdown"]


def exercises(nb_path: Path) -> dict[int, str]:
    """Question number -> its text (hint included), from the notebook's ``## Exercises`` cell."""
    cells = [m for m in _markdown(nb_path) if m.startswith("## Exercises")]
    if not cells:
        return {}
    parts = QUESTION.split(cells[0])
    return {int(n): text for n, text in zip(parts[1::2], parts[2::2], strict=True)}


def solution_problems(notebooks: Path, solutions: Path) -> list[str]:
    """Every mismatch between solution files and notebook exercises, each naming its file and heading."""
    problems = []
    stems = {p.stem for p in notebooks.glob("*.ipynb")}
    for sol in sorted(solutions.glob("*.md")):
        name = sol.relative_to(notebooks.parent)
        if sol.stem not in stems:
            problems.append(f"{name}: no notebook {sol.stem}.ipynb")
            continue
        questions = exercises(notebooks / f"{sol.stem}.ipynb")
        headings = [int(n) for n in HEADING.findall(sol.read_text(encoding="utf-8"))]
        for n in headings:
            if n not in questions:
                problems.append(f"{name}: 'Exercise {n}' has no question in {sol.stem}'s Exercises "
                                f"(it has {sorted(questions)})")
        for n in sorted(set(questions) - set(headings)):
            problems.append(f"{name}: question {n} of {sol.stem} has no solution")
    for stem in sorted(stems - {p.stem for p in solutions.glob("*.md")}):
        problems.append(f"{stem}.ipynb: no solutions file {solutions.name}/{stem}.md")
    return problems


def test_every_solution_matches_a_question():
    problems = solution_problems(NOTEBOOKS, NOTEBOOKS / "solutions")
    assert not problems, "\n".join(problems)


def test_a_solution_without_a_question_is_reported_by_name(tmp_path):
    nbs = tmp_path / "notebooks"
    (nbs / "solutions").mkdir(parents=True)
    cell = {"cell_type": "markdown", "metadata": {}, "source": ["## Exercises\n", "\n", "1. Why?\n", "   *Hint:* look.\n"]}
    (nbs / "01_x.ipynb").write_text(json.dumps({"cells": [cell]}))
    (nbs / "solutions" / "01_x.md").write_text("## Exercise 1\n\nBecause.\n\n## Exercise 3\n\nExtra.\n")
    (nbs / "solutions" / "02_y.md").write_text("## Exercise 1\n")
    problems = solution_problems(nbs, nbs / "solutions")
    assert any("01_x.md: 'Exercise 3' has no question" in p for p in problems), problems
    assert any("02_y.md: no notebook 02_y.ipynb" in p for p in problems), problems


def test_every_notebook_has_objectives_hints_and_references():
    for nb in sorted(NOTEBOOKS.glob("*.ipynb")):
        md = _markdown(nb)
        first = md[0].rstrip("\n").split("\n")
        # The run-time note (benchmarks/notebook_times.py: its marker line, then the note) stays last.
        assert first[-2] == "<!-- run-time -->" and first[-1].startswith("*Reading time"), \
            f"{nb.name}: the run-time note must stay last"
        objectives = md[0].split("**Learning objectives.**")
        assert len(objectives) == 2 and len(QUESTION.findall(objectives[1])) == 3, f"{nb.name}: three learning objectives"
        qs = exercises(nb)
        assert 2 <= len(qs) <= 4, f"{nb.name}: {len(qs)} exercises"
        for n, text in qs.items():
            assert "*Hint:*" in text, f"{nb.name}: exercise {n} has no hint"
        assert f"solutions/{nb.stem}.md" in md[[i for i, m in enumerate(md) if m.startswith("## Exercises")][0]]
        refs = [m for m in md if m.startswith("## References")]
        assert refs and re.search(r"\]\(https?://", refs[0]), f"{nb.name}: references with links"
        assert any(m.startswith("## Summary") for m in md), nb.name


def test_glossary_links_resolve():
    overview = "\n".join(_markdown(NOTEBOOKS / "00_overview.ipynb"))
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', overview))
    assert "glossary" in anchors and len([a for a in anchors if a.startswith("g-")]) >= 20
    used = 0
    for nb in sorted(NOTEBOOKS.glob("*.ipynb")):
        for target in re.findall(r"\]\(00_overview\.ipynb#([^)]+)\)", "\n".join(_markdown(nb))):
            used += 1
            assert target in anchors, f"{nb.name} links to a glossary entry that does not exist: #{target}"
    assert used >= 30
