"""The generated student notebooks run in JupyterLab: the grader is defined and its checks report.

Each student notebook is executed top to bottom in the study's real ``mtrec`` kernel (see
``student_runs`` in conftest.py), once as generated and once with the solution in its answer cells.
"""

from __future__ import annotations

import json

import pytest

from .support import ROOT, manage, source


def _text(output: dict) -> str:
    if output["output_type"] == "stream":
        return output["text"]
    if output["output_type"] == "error":
        return f"{output['ename']}: {output['evalue']}"
    return str(output.get("data", {}).get("text/plain", ""))


def _checks(nb) -> dict[str, dict]:
    """``{question: check cell}`` for every ``grader.check("...")`` cell."""
    out = {}
    for cell in nb.cells:
        src = source(cell).strip()
        if cell.cell_type == "code" and src.startswith("grader.check("):
            out[src.split('"')[1]] = cell
    return out


def _result(cell) -> str:
    results = [_text(o) for o in cell.outputs if o["output_type"] == "execute_result"]
    errors = [_text(o) for o in cell.outputs if o["output_type"] == "error"]
    assert not errors and len(results) == 1, f"check cell {source(cell)!r} raised instead of reporting: {errors}"
    return results[0]


def _autograded(name: str) -> set[str]:
    meta = json.loads((ROOT / name / f"{name}.ipynb").read_text())
    questions = set()
    for cell in meta["cells"]:
        src = source(cell)
        if cell["cell_type"] == "raw" and src.startswith("# BEGIN QUESTION") and "manual: true" not in src:
            questions.add(next(ln.split(":", 1)[1].strip() for ln in src.splitlines() if ln.startswith("name:")))
    return questions


@pytest.mark.parametrize("name", manage.ASSIGNMENTS)
def test_student_notebook_defines_the_grader_before_any_check(built, name):
    nb = json.loads((built / name / "student" / f"{name}.ipynb").read_text())
    first = nb["cells"][0]
    assert first["cell_type"] == "code" and f'grader = otter.Notebook("{name}.ipynb")' in source(first)
    checks = [source(c) for c in nb["cells"] if c["cell_type"] == "code" and "grader.check(" in source(c)]
    public = nb["metadata"]["otter"]["tests"]  # the public tests travel in the notebook's metadata
    asked = {c.split('"')[1] for c in checks}
    assert asked == _autograded(name) and asked <= set(public), (asked, sorted(public))


@pytest.mark.parametrize("name", manage.ASSIGNMENTS)
def test_filled_student_notebook_passes_every_public_check(student_runs, name):
    nb = student_runs[name, "filled"]
    errors = [_text(o) for c in nb.cells if c.cell_type == "code" for o in c.outputs if o["output_type"] == "error"]
    assert not errors, errors
    checks = _checks(nb)
    assert set(checks) == _autograded(name)
    for question, cell in checks.items():
        assert _result(cell) == f"{question} results: All test cases passed!", _result(cell)


@pytest.mark.parametrize("name", manage.ASSIGNMENTS)
def test_blank_student_notebook_checks_report_failures_not_a_name_error(student_runs, name):
    nb = student_runs[name, "blank"]
    errors = [_text(o) for c in nb.cells if c.cell_type == "code" for o in c.outputs if o["output_type"] == "error"]
    assert not errors, errors  # before init_cell: true, every check cell raised NameError: name 'grader' ...
    outputs = "\n".join(_text(o) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "name 'grader' is not defined" not in outputs
    checks = _checks(nb)
    assert set(checks) == _autograded(name)
    for question, cell in checks.items():
        report = _result(cell)
        assert report.startswith(f"{question} results:") and "Test case failed" in report, report[:2000]
        assert "All test cases passed" not in report
