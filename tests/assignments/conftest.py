"""Session fixtures for the classroom assignments: one build, one grading batch, one kernel run per notebook.

Everything slow happens once per session: ``otter assign`` builds the four assignments, one
``manage.grade`` call grades every planted submission (solutions, blanks, wrong answers, broken
files), and each student notebook runs twice in the study's real ``mtrec`` kernel.
"""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from .plants import PLANTS
from .support import fill, manage, plant, source


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    dist = tmp_path_factory.mktemp("dist")
    # otter's own solution run is skipped: the `grades` fixture grades each solution anyway.
    manage.build(list(manage.ASSIGNMENTS), dist, run_tests=False)
    return dist


@pytest.fixture(scope="session")
def grades(built, tmp_path_factory):
    """All planted submissions graded in one ``manage.grade`` batch; the CSV rows."""
    subs = tmp_path_factory.mktemp("submissions")
    solutions = {}
    for name in manage.ASSIGNMENTS:
        shutil.copy(built / name / "autograder" / f"{name}.ipynb", subs / f"solution_{name}.ipynb")
        shutil.copy(built / name / "student" / f"{name}.ipynb", subs / f"blank_{name}.ipynb")
        solutions[name] = json.loads((built / name / "autograder" / f"{name}.ipynb").read_text())
    for p in PLANTS:
        (subs / f"{p.submission}.ipynb").write_text(json.dumps(plant(solutions[p.assignment], p.edits)))
    # A submission whose student deleted the cells of question 2, and one that is not a notebook.
    nb = solutions["a1_mtl_loss"]
    nb = {**nb, "cells": [c for c in nb["cells"] if "def total_loss" not in source(c)]}
    (subs / "deleted_a1_mtl_loss.ipynb").write_text(json.dumps(nb))
    (subs / "broken_a2_ranking_metrics.ipynb").write_text("{not json")
    out = manage.grade(subs, subs / "grades.csv", built, jobs=2)
    with open(out) as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="session")
def student_runs(built, tmp_path_factory):
    """Each generated student notebook executed in the study's ``mtrec`` kernel, blank and filled.

    As in JupyterLab: the kernel starts in the notebook's folder (otter's init cell reads the tests
    from the notebook file there), and a cell that raises does not stop the rest. Returns
    ``{(name, "blank" | "filled"): executed notebook}``.
    """
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from nbclient import NotebookClient

    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", manage._env()["JUPYTER_PATH"])
        mp.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
        assert "mtrec" in KernelSpecManager().find_kernel_specs(), "no `mtrec` kernel: run `make venv`"
        for name in manage.ASSIGNMENTS:
            student = json.loads((built / name / "student" / f"{name}.ipynb").read_text())
            autograder = json.loads((built / name / "autograder" / f"{name}.ipynb").read_text())
            for kind, nb in (("blank", student), ("filled", fill(student, autograder))):
                folder = tmp_path_factory.mktemp(f"{kind}-{name}")
                shutil.copytree(built / name / "student", folder, dirs_exist_ok=True)
                path = folder / f"{name}.ipynb"
                path.write_text(json.dumps(nb))  # what the student saved
                executed = nbformat.read(path, as_version=4)
                NotebookClient(executed, kernel_name="mtrec", allow_errors=True, timeout=600,
                               resources={"metadata": {"path": str(folder)}}).execute()
                runs[name, kind] = executed
    return runs
