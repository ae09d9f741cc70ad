"""Papermill presets (``params/*.yaml``): loading and validation against the notebooks.

A preset is a flat mapping of UPPER_CASE parameter names to literals. Each notebook receives
the keys that its ``parameters`` cell declares. A key that no notebook declares, or a value whose
type differs from the notebook's default, is an error that names the key.
"""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from mtrec_study.config import NOTEBOOKS_DIR, PARAMS_DIR

PRESETS = ("fast", "full")


class ParamsError(ValueError):
    """A preset or parameter that does not fit the notebooks; the message names the key.

    Used by mtrec_study.params, mtrec_study.cli.
    """


def preset_path(preset: str) -> Path:
    """The YAML file of a preset name (or a path to a YAML file).

    Used by mtrec_study.params, mtrec_study.report.index.
    """
    p = Path(preset)
    if p.suffix in (".yaml", ".yml"):
        return p
    return PARAMS_DIR / f"{preset}.yaml"


def load_preset(preset: str) -> dict:
    """Read a preset.

    Raises:
        ParamsError: If the file is missing, is not a mapping, or has a non-UPPER_CASE key.

    Used by mtrec_study.params, mtrec_study.report.build, mtrec_study.study.published.
    """
    path = preset_path(preset)
    if not path.exists():
        raise ParamsError(f"preset {preset!r}: {path} does not exist; valid presets: {', '.join(PRESETS)}")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: a preset must be a mapping of NAME: value")
    for key in data:
        if not (isinstance(key, str) and key.isupper()):
            raise ParamsError(f"{path}: key {key!r} is not an UPPER_CASE parameter name")
    return data


def notebook_parameters(path: Path) -> dict[str, object]:
    """The literal defaults of a notebook's ``parameters`` cell, by name.

    Raises:
        ParamsError: If the cell is missing or holds something other than literal assignments.

    Used by mtrec_study.params, mtrec_study.study.published.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ParamsError(f"{path.name}: expected exactly one cell tagged 'parameters', found {len(cells)}")
    out: dict[str, object] = {}
    for node in ast.parse(cells[0].source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ParamsError(f"{path.name}: the parameters cell may hold only NAME = literal lines")
        name = node.targets[0].id
        try:
            out[name] = ast.literal_eval(node.value)
        except ValueError as exc:
            raise ParamsError(f"{path.name}: parameter {name} is not a literal") from exc
    return out


def _type_ok(value: object, default: object) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if default is None:
        return True
    return isinstance(value, type(default))


def check_parameters(values: dict, declared: dict[str, object], where: str) -> None:
    """Raise :class:`ParamsError` for an unknown key or a wrong type, naming the key.

    Used by mtrec_study.params, mtrec_study.study.published.
    """
    for key, value in values.items():
        if key not in declared:
            raise ParamsError(f"{where}: unknown parameter {key!r}; valid: {', '.join(sorted(declared))}")
        if not _type_ok(value, declared[key]):
            raise ParamsError(f"{where}: parameter {key!r} should be {type(declared[key]).__name__}, "
                              f"got {type(value).__name__} {value!r}")


def notebooks(folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The study's notebooks in reading order (``NN_name.ipynb``).

    Introduced in notebooks/00_overview.ipynb.
    """
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def params_for_notebooks(preset: str, paths: list[Path] | None = None) -> dict[Path, dict]:
    """Split a preset into each notebook's parameters, validating every key and type.

    Used by mtrec_study.report.build.
    """
    values = load_preset(preset)
    paths = paths if paths is not None else notebooks()
    declared = {p: notebook_parameters(p) for p in paths}
    union: dict[str, object] = {}
    for d in declared.values():
        union.update(d)
    check_parameters(values, union, str(preset_path(preset)))
    return {p: {k: v for k, v in values.items() if k in d} for p, d in declared.items()}


_PARAMETER_TYPES = (bool, int, float, str, list, dict, type(None))


def check_notebook_parameters(namespace: dict, notebook: str, folder: Path = NOTEBOOKS_DIR) -> None:
    """Check the parameters a notebook is running with, including any that papermill injected.

    Called right after the ``parameters`` cell. Every UPPER_CASE name holding a parameter-like
    value (the types papermill can inject) must be declared in the notebook's ``parameters`` cell
    and have its default's type; imported constants such as tuples and paths are not parameters.
    So ``papermill 04_training.ipynb out.ipynb -p EPOCHZ 3`` stops at once, naming ``EPOCHZ``.

    Args:
        namespace: The notebook's ``globals()``.
        notebook: Its stem, such as ``"04_training"``.
        folder: Where the source notebook lives.

    Raises:
        ParamsError: Naming the unknown parameter or the one with a wrong type.

    Introduced in notebooks/00_overview.ipynb.
    """
    declared = notebook_parameters(folder / f"{notebook}.ipynb")
    values = {k: v for k, v in namespace.items() if k.isupper() and not k.startswith("_")
              and type(v) in _PARAMETER_TYPES}
    check_parameters(values, declared, f"{notebook}.ipynb")
