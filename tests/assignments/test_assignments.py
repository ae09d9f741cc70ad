"""Classroom assignments: solutions score full marks, blank student versions score zero, nothing leaks."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2] / "assignments"
spec = importlib.util.spec_from_file_location("manage", ROOT / "manage.py")
manage = importlib.util.module_from_spec(spec)
spec.loader.exec_module(manage)


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    dist = tmp_path_factory.mktemp("dist")
    manage.build(list(manage.ASSIGNMENTS), dist)
    return dist


@pytest.fixture(scope="session")
def grades(built, tmp_path_factory):
    subs = tmp_path_factory.mktemp("submissions")
    for name in manage.ASSIGNMENTS:
        shutil.copy(built / name / "autograder" / f"{name}.ipynb", subs / f"solution_{name}.ipynb")
        shutil.copy(built / name / "student" / f"{name}.ipynb", subs / f"blank_{name}.ipynb")
    # A submission whose student deleted the cells of question 2, and one that is not a notebook.
    nb = json.loads((built / "a1_mtl_loss" / "autograder" / "a1_mtl_loss.ipynb").read_text())
    nb["cells"] = [c for c in nb["cells"] if "def total_loss" not in "".join(c["source"])]
    (subs / "deleted_a1_mtl_loss.ipynb").write_text(json.dumps(nb))
    (subs / "broken_a2_ranking_metrics.ipynb").write_text("{not json")
    out = manage.grade(subs, subs / "grades.csv", built)
    with open(out) as fh:
        return list(csv.DictReader(fh))


def _rows(grades, submission):
    return [r for r in grades if r["submission"] == submission]


def _source(path: Path) -> str:
    return "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])


@pytest.mark.parametrize("name", manage.ASSIGNMENTS)
def test_solution_scores_full_marks(grades, name):
    rows = [r for r in _rows(grades, f"solution_{name}.ipynb") if r["status"] != "manual"]
    assert rows, name
    for r in rows:
        assert float(r["score"]) == float(r["max_score"]) > 0, r


@pytest.mark.parametrize("name", manage.ASSIGNMENTS)
def test_blank_student_notebook_scores_zero(grades, name):
    rows = [r for r in _rows(grades, f"blank_{name}.ipynb") if r["status"] != "manual"]
    assert rows and all(float(r["score"]) == 0 and r["status"] == "failed" and r["reason"] for r in rows), rows


def test_manual_question_is_listed_for_hand_grading(grades):
    manual = [r for r in _rows(grades, "solution_a4_ablation.ipynb") if r["status"] == "manual"]
    assert [r["question"] for r in manual] == ["q2_interpretation"]


def test_bad_submissions_get_a_reason_not_a_crash(grades):
    deleted = {r["question"]: r for r in _rows(grades, "deleted_a1_mtl_loss.ipynb")}
    assert float(deleted["q1_task_loss"]["score"]) == 4 and float(deleted["q2_total_loss"]["score"]) == 0
    assert "total_loss" in deleted["q2_total_loss"]["reason"]  # NameError: name 'total_loss' is not defined
    broken = _rows(grades, "broken_a2_ranking_metrics.ipynb")
    assert broken[0]["status"] == "error" and "not a readable notebook" in broken[0]["reason"]


@pytest.mark.parametrize("name", manage.ASSIGNMENTS)
def test_no_hidden_test_or_solution_in_the_student_notebook(built, name):
    master = json.loads((ROOT / name / f"{name}.ipynb").read_text())
    student = _source(built / name / "student" / f"{name}.ipynb")
    secrets, in_solution, in_tests = [], False, False
    for cell in master["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "raw":
            in_solution = src.startswith("# BEGIN SOLUTION") or (in_solution and not src.startswith("# END SOLUTION"))
            in_tests = src.startswith("# BEGIN TESTS") or (in_tests and not src.startswith("# END TESTS"))
            continue
        if in_tests and src.lstrip().startswith("# HIDDEN"):
            secrets += [ln.strip() for ln in src.splitlines()[1:] if len(ln.strip()) > 12]
        if in_solution:
            lines = src.splitlines()
            inside = False
            for ln in lines:
                if ln.strip() == "# BEGIN SOLUTION":
                    inside = True
                elif ln.strip() == "# END SOLUTION":
                    inside = False
                elif (inside or ln.rstrip().endswith("# SOLUTION")) and len(ln.strip()) > 12:
                    secrets.append(ln.strip().removesuffix("# SOLUTION").strip())
    assert secrets, f"{name}: the master defines no hidden tests or solutions"
    leaked = [s for s in secrets if s in student]
    assert not leaked, leaked
    assert "# HIDDEN" not in student
