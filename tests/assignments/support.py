"""Helpers shared by the assignment tests: the ``manage`` module and notebook surgery."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).parents[2] / "assignments"
spec = importlib.util.spec_from_file_location("manage", ROOT / "manage.py")
manage = importlib.util.module_from_spec(spec)
spec.loader.exec_module(manage)


def code_cells(nb: dict, tag: str) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code" and tag in c.get("metadata", {}).get("tags", [])]


def source(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def plant(solution: dict, edits) -> dict:
    """The solution notebook with each (old, new) edit applied to the one code cell that holds ``old``."""
    nb = json.loads(json.dumps(solution))
    for old, new in edits:
        hits = [c for c in nb["cells"] if c["cell_type"] == "code" and old in source(c)]
        assert len(hits) == 1 and source(hits[0]).count(old) == 1, f"edit no longer applies: {old!r}"
        hits[0]["source"] = source(hits[0]).replace(old, new)
    return nb


def fill(student: dict, autograder: dict) -> dict:
    """The student notebook with each answer cell replaced by the solution cell at the same place."""
    nb = json.loads(json.dumps(student))
    answers = code_cells(nb, "otter_answer_cell")
    solutions = code_cells(autograder, "otter_assign_solution_cell")
    assert answers and len(answers) == len(solutions), (len(answers), len(solutions))
    for answer, solution in zip(answers, solutions, strict=True):
        answer["source"] = source(solution)
    return nb
