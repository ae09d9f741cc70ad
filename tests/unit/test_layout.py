"""The package's layout stays readable: imports point down the layers, each task is defined once,
docstrings name the notebook that really uses a function, and no tracker wording leaks into code."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import mtrec_study
from tools import docstring_links

PACKAGE = Path(mtrec_study.__file__).parent
ROOT = PACKAGE.parent

# From the bottom up; a module may import from its own layer or any layer below, never above.
LAYERS = (
    ("core", {"config", "reproducibility", "results", "params", "tasks", "kernel"}),
    ("data", {"datasets"}),
    ("preparation", {"features", "text", "prepare", "streaming"}),
    ("models", {"models"}),
    ("training", {"training"}),
    ("evaluation", {"evaluation"}),
    ("study", {"study"}),
    ("presentation", {"plots", "report", "cli", "__main__"}),
)
RANK = {top: k for k, (_, tops) in enumerate(LAYERS) for top in tops}
# Array-level code that must stay free of Keras and TensorFlow (usable without a model).
NO_KERAS = ("mtrec_study.evaluation.metrics", "mtrec_study.evaluation.stats", "mtrec_study.evaluation.predictions",
            "mtrec_study.tasks", "mtrec_study.results")


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every ``mtrec_study`` module imported anywhere in ``path`` (function-level imports too)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mtrec_study"):
            if node.module == "mtrec_study":
                out += [(node.lineno, f"mtrec_study.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("mtrec_study")]
    return out


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) < 2:
        return 0  # the package itself: its __init__ holds the version and pins the numerics from core
    if parts[1] not in RANK:
        raise AssertionError(f"{module}: its top-level name {parts[1]!r} is in no layer of {LAYERS}")
    return RANK[parts[1]]


def test_every_module_imports():
    """Each module imports on its own (no cycle, no import of a name that moved)."""
    for info in pkgutil.walk_packages(mtrec_study.__path__, "mtrec_study."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)


def test_every_top_level_name_has_a_layer():
    tops = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in _modules()} - {"__init__"}
    assert tops <= set(RANK), f"not in any layer: {sorted(tops - set(RANK))}"


def test_imports_point_down_the_layers():
    """``core < data < preparation < models < training < evaluation < study < presentation``."""
    upward = []
    for path in _modules():
        own = _layer(_name(path))
        for line, target in _imports(path):
            if _layer(target) > own:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {target} "
                              f"({LAYERS[_layer(target)][0]} above {LAYERS[own][0]})")
    assert not upward, "\n".join(upward)


def test_the_layer_check_catches_an_upward_import(tmp_path):
    """The checker itself: a data-layer module importing the trainer is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("from mtrec_study.training import train\n")
    assert _layer(_imports(bad)[0][1]) > _layer("mtrec_study.datasets.bad")


@pytest.mark.parametrize("module", NO_KERAS)
def test_array_level_modules_do_not_import_keras(module):
    path = PACKAGE.joinpath(*module.split(".")[1:]).with_suffix(".py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    heavy = [n.lineno for n in ast.walk(tree)
             if (isinstance(n, ast.Import) and any(a.name.split(".")[0] in ("keras", "tensorflow") for a in n.names))
             or (isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] in ("keras", "tensorflow"))]
    assert not heavy, f"{module} imports Keras or TensorFlow at lines {heavy}"


def test_tasks_are_defined_once():
    """Task names, kinds and the auxiliary ESMM output appear as literals only in ``tasks.py``."""
    literal = re.compile(r"""["'](ctcvr|interest|behaviour)["']\s*:|TASK_TYPES\s*=|TASKS\s*=|\bLIKE_THRESHOLD\s*=""")
    found = []
    for path in _modules():
        if path.name == "tasks.py":
            continue
        for k, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if literal.search(code) or re.search(r"""["']ctcvr["']""", code):
                found.append(f"{path.relative_to(ROOT)}:{k}: {line.strip()}")
    assert not found, "task definitions outside mtrec_study/tasks.py:\n" + "\n".join(found)


def test_adding_a_task_is_one_registry_entry():
    """Labels, masks, kinds and the trained outputs all follow the registry."""
    import numpy as np

    from mtrec_study import tasks

    labels, masks = tasks.label_rows(np.array([5.0, 3.0, np.nan]))
    assert list(labels) == list(masks) == list(tasks.REGISTRY)
    assert labels["interest"].tolist() == [1, 0, 0] and masks["interest"].tolist() == [1, 1, 0]
    assert labels["item"].tolist() == [1, 1, 0] and masks["item"].tolist() == [1, 1, 1]
    assert labels["behaviour"].tolist() == [5, 3, 0] and masks["behaviour"].tolist() == [1, 1, 0]
    assert labels["ctcvr"].tolist() == [1, 0, 0] and masks["ctcvr"].tolist() == [1, 1, 1]
    labels["interest"][0] = 7  # arrays are not shared between tasks
    assert labels["ctcvr"][0] == 1
    assert tasks.TASKS == ("interest", "item", "behaviour")
    assert tasks.PRIMARY_METRICS == (("interest", "auc"), ("item", "auc"), ("behaviour", "rmse"))
    assert tasks.trained_tasks(["interest", "item", "behaviour", "ctcvr"]) == ["item", "behaviour", "ctcvr"]
    assert tasks.trained_tasks(["interest", "behaviour"]) == ["interest", "behaviour"]
    with pytest.raises(ValueError, match="unknown task 'clicks'; valid: interest, item, behaviour, ctcvr"):
        tasks.get_task("clicks")
    with pytest.raises(ValueError, match="task 'x': kind 'ordinal' is not one of binary, regression"):
        tasks.Task("x", "ordinal", label="like", mask="all", primary_metric="auc", description="")


def test_docstrings_name_a_notebook_that_uses_the_function():
    """``Introduced in notebooks/NN`` names the first notebook whose code uses it; else ``Used by``.

    Fix with ``python -m tools.docstring_links --fix``.
    """
    wrong = [f"{d.path.relative_to(ROOT)}: {d.name}: {d.line!r} should be {want!r}"
             for d, want in docstring_links.problems()]
    assert not wrong, "\n".join(wrong)


def test_no_public_definition_is_dead_code():
    """Every public function or class is used by a notebook, a module or at least a test."""
    dead = [d.qualified for d in docstring_links.definitions()
            if docstring_links.expected_line(d) == "Used by no notebook or module."]
    assert not dead, f"unused public definitions: {dead}"


def test_the_link_check_catches_a_wrong_notebook(monkeypatch):
    """A function the notebooks never use cannot claim a notebook introduces it."""
    d = docstring_links.Definition("mtrec_study.tasks", "never_used_anywhere", PACKAGE / "tasks.py",
                                   "Introduced in notebooks/04_training.ipynb.")
    assert docstring_links.expected_line(d) == "Used by no notebook or module."
    used = docstring_links.Definition("mtrec_study.tasks", "label_rows", PACKAGE / "tasks.py",
                                      "Introduced in notebooks/04_training.ipynb.")
    assert docstring_links.expected_line(used) == "Used by mtrec_study.prepare, mtrec_study.streaming."


def test_no_issue_tracker_wording_in_code_or_tests():
    """Code explains itself; it does not point at tracker numbers."""
    pattern = re.compile("|".join((r"\b[Ii]ssue\s+#?\d+", r"\b[Ii]ssue's\b", r"\bthe issue\b")))
    found = []
    for path in [*_modules(), *sorted((ROOT / "tests").rglob("*.py")), *sorted((ROOT / "benchmarks").rglob("*.py"))]:
        for k, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                found.append(f"{path.relative_to(ROOT)}:{k}: {line.strip()}")
    assert not found, "\n".join(found)


def test_notebook_code_cells_stay_short():
    """A long code cell is bookkeeping that belongs in the package (the longest teaching cell has 38 lines)."""
    import json

    long = []
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for k, cell in enumerate(json.loads(nb.read_text(encoding="utf-8"))["cells"]):
            n = len("".join(cell["source"]).splitlines())
            if cell["cell_type"] == "code" and n > 40:
                long.append(f"{nb.name} cell {k}: {n} lines")
    assert not long, "\n".join(long)


def test_every_dotted_reference_to_the_package_resolves():
    """Docs, notebooks (also the ones stored as .json), presets and code name only modules and
    attributes that exist, so a moved module cannot leave a stale path behind."""
    import subprocess

    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    examples = ("tools/docstring_links.py", "tests/unit/test_layout.py")  # they name made-up modules on purpose
    wanted = [f for f in files if f.endswith((".py", ".ipynb", ".json", ".md", ".yaml", ".yml", ".toml", ".j2"))
              and not f.startswith("benchmarks/results/") and f not in examples]
    pattern = re.compile(r"\bmtrec_study(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
    broken = set()
    for f in wanted:
        for ref in set(pattern.findall((ROOT / f).read_text(encoding="utf-8", errors="replace"))):
            parts = ref.split(".")
            if "__main__" in parts or "__mutmut_" in ref:  # runs the command line / a mutant-name glob
                continue
            obj, k = None, len(parts)
            while k > 0:  # the longest importable prefix, then attributes
                try:
                    obj = importlib.import_module(".".join(parts[:k]))
                    break
                except ImportError:
                    k -= 1
            for name in parts[k:]:
                if obj is None or not hasattr(obj, name):
                    broken.add(f"{f}: {ref}")
                    break
                obj = getattr(obj, name)
    assert not broken, "\n".join(sorted(broken))
