"""Classroom grading: solutions score full marks, blanks zero, planted wrong answers lose points, nothing leaks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .plants import PLANTS
from .support import ROOT, manage


def _rows(grades, submission):
    return [r for r in grades if r["submission"] == submission]


def _source(path: Path) -> str:
    return "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])


@pytest.mark.parametrize("name", manage.ASSIGNMENTS)
def test_solution_scores_full_marks(grades, name):
    rows = [r for r in _rows(grades, f"solution_{name}.ipynb") if r["status"] != "manual"]
    assert rows, name
    for r in rows:
        assert float(r["score"]) == float(r["max_score"]) > 0 and r["public"] == "passed", r


@pytest.mark.parametrize("name", manage.ASSIGNMENTS)
def test_blank_student_notebook_scores_zero(grades, name):
    rows = [r for r in _rows(grades, f"blank_{name}.ipynb") if r["status"] != "manual"]
    assert rows and all(float(r["score"]) == 0 and r["status"] == "failed" and r["reason"] for r in rows), rows
    assert all(r["public"] == "failed" for r in rows), rows


def test_manual_question_is_listed_for_hand_grading(grades):
    manual = [r for r in _rows(grades, "solution_a4_ablation.ipynb") if r["status"] == "manual"]
    assert [r["question"] for r in manual] == ["q2_interpretation"]
    assert "rubric" in manual[0]["reason"]


def _questions(name: str) -> dict[str, dict]:
    """The master's questions: ``{name: {"points": int, "manual": bool}}``."""
    out = {}
    for cell in json.loads((ROOT / name / f"{name}.ipynb").read_text())["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "raw" and src.startswith("# BEGIN QUESTION"):
            fields = dict(ln.split(":", 1) for ln in src.splitlines()[1:] if ":" in ln)
            out[fields["name"].strip()] = {"points": int(fields["points"]), "manual": "manual" in fields}
    return out


@pytest.mark.parametrize("plant", PLANTS, ids=lambda p: p.submission)
def test_planted_submission_is_graded_as_expected(grades, plant):
    """Each plausible wrong answer loses points on the questions it touches, and only there."""
    rows = {r["question"]: r for r in _rows(grades, f"{plant.submission}.ipynb") if r["status"] != "manual"}
    auto = {q for q, v in _questions(plant.assignment).items() if not v["manual"]}
    assert set(rows) == auto and set(plant.expect) <= auto, (plant.submission, rows)
    for q, r in rows.items():
        want = plant.expect.get(q, "passed")
        score, top = float(r["score"]), float(r["max_score"])
        assert r["status"] == want, (plant.why, r)
        assert {"passed": score == top, "partial": 0 < score < top, "failed": score == 0}[want], (plant.why, r)
        if want != "passed":
            assert plant.reason.get(q, "") in r["reason"] and r["reason"] != "", (plant.why, r)


@pytest.mark.parametrize("name", manage.ASSIGNMENTS)
def test_every_autograded_question_has_a_planted_wrong_answer(name):
    """A question no wrong answer is planted for has tests nobody has shown to tell right from wrong."""
    auto = [q for q, v in _questions(name).items() if not v["manual"]]
    for q in auto:
        wrong = [p.submission for p in PLANTS if p.assignment == name and p.expect.get(q) in ("partial", "failed")
                 and not p.reason]  # bad-input plants (with an expected error) do not count
        assert wrong, f"{name}/{q}: no planted wrong answer"


def test_a_wrong_answer_that_passes_the_public_checks_still_loses_points(grades):
    """Hidden tests matter: these mistakes pass every public check and only the hidden tests catch them."""
    for submission, q in (("allrows_a1_mtl_loss", "q1_task_loss"), ("allusers_a2_ranking_metrics", "q2_hr_ndcg"),
                          ("sigmoid_a3_mmoe_gate", "q1_gate"), ("nolambda_a4_ablation", "q1_run_ablation")):
        row = next(r for r in _rows(grades, f"{submission}.ipynb") if r["question"] == q)
        assert row["public"] == "passed" and row["status"] == "partial", row


def _rubric(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip().startswith("| ") and ln.strip()[2:3].isdigit()]


def test_hand_graded_question_has_a_rubric_for_teachers_only(built):
    """a4's written answer: a rubric whose points add up to the question's, in the master and the README."""
    master = json.loads((ROOT / "a4_ablation" / "a4_ablation.ipynb").read_text())
    rubric = [row for c in master["cells"] if c["cell_type"] == "markdown" for row in _rubric("".join(c["source"]))]
    assert rubric and sum(int(row.split("|")[1]) for row in rubric) == _questions("a4_ablation")["q2_interpretation"]["points"]
    assert rubric == _rubric((ROOT / "README.md").read_text()), "README's rubric differs from the master's"
    assert not _rubric(_source(built / "a4_ablation" / "student" / "a4_ablation.ipynb")), "rubric leaked to students"


def test_a4_points_to_the_notebook_that_treats_gradient_conflict():
    master = json.loads((ROOT / "a4_ablation" / "a4_ablation.ipynb").read_text())
    question = next("".join(c["source"]) for c in master["cells"] if "**Question 2" in "".join(c["source"]))
    assert "`08_sharing_mechanisms`" in question and "03_model_math" not in question
    nb08 = ROOT.parent / "notebooks" / "08_sharing_mechanisms.ipynb"
    assert "Gradient conflict" in nb08.read_text()


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
