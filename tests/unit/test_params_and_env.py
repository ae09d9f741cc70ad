from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mtrec_study import params
from mtrec_study.config import PROJECT_ROOT


def _normalise(req: str) -> str:
    return re.sub(r"\s+", "", req).lower()


def test_environment_yml_matches_pyproject():
    import tomllib

    deps = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert sorted(map(_normalise, deps)) == sorted(_normalise(p) for p in pip if not p.startswith("-e"))
    assert "-e .[peers]" in pip  # conda users get the Surprise peers that `make report` installs
    assert not any("tf-keras" in d or "tf_keras" in d for d in deps)


def test_presets_validate_against_notebooks():
    for preset in params.PRESETS:
        per_nb = params.params_for_notebooks(preset)
        assert per_nb and all(isinstance(v, dict) for v in per_nb.values())


def test_unknown_key_and_wrong_type_are_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("SEED: 1\nEPOCHZ: 3\n")
    with pytest.raises(params.ParamsError, match="unknown parameter 'EPOCHZ'"):
        params.params_for_notebooks(str(bad))
    bad.write_text("SEED: 'forty-two'\n")
    with pytest.raises(params.ParamsError, match="parameter 'SEED' should be int"):
        params.params_for_notebooks(str(bad))
    bad.write_text("seed: 1\n")
    with pytest.raises(params.ParamsError, match="not an UPPER_CASE"):
        params.load_preset(str(bad))
    with pytest.raises(params.ParamsError, match="valid presets: fast, full"):
        params.load_preset("medium")


def test_parameters_cells_hold_literals_only():
    for nb in params.notebooks():
        declared = params.notebook_parameters(nb)
        assert "OUTPUT_DIR" in declared and all(k.isupper() for k in declared), nb.name


def test_committed_notebooks_have_no_outputs():
    import nbformat

    paths = sorted(Path(PROJECT_ROOT / "notebooks").glob("*.ipynb"))
    assert paths
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} has outputs"


def test_notebooks_follow_the_template():
    import nbformat

    for path in params.notebooks():
        nb = nbformat.read(path, as_version=4)
        md = [c.source for c in nb.cells if c.cell_type == "markdown"]
        assert md[0].startswith(f"# {path.stem[:2]}"), path.name
        assert any(s.startswith("## 0 Global settings") for s in md), path.name
        assert any(s.startswith("## Summary") for s in md) and any(s.startswith("## Exercises") for s in md)
        assert any("record_results(" in c.source for c in nb.cells if c.cell_type == "code"), path.name


def test_set_seed_rejects_bad_seed():
    from mtrec_study.reproducibility import set_seed

    with pytest.raises(ValueError, match="non-negative integer"):
        set_seed(-1)


def test_notebook_checks_the_parameters_it_runs_with():
    ok = {"SEED": 7, "OUTPUT_DIR": "x", "TASKS": ("interest",), "np": object()}
    params.check_notebook_parameters(ok, "00_overview")  # imported tuples and modules are not parameters
    with pytest.raises(params.ParamsError, match="00_overview.ipynb: unknown parameter 'EPOCHZ'"):
        params.check_notebook_parameters({**ok, "EPOCHZ": 3}, "00_overview")
    with pytest.raises(params.ParamsError, match="parameter 'SEED' should be int, got str 'forty'"):
        params.check_notebook_parameters({**ok, "SEED": "forty"}, "00_overview")


def test_every_notebook_checks_its_parameters_right_after_the_parameters_cell():
    import nbformat

    for path in params.notebooks():
        cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        i = next(k for k, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
        assert f'check_notebook_parameters(globals(), "{path.stem}")' in cells[i + 1].source, path.name


def test_kernel_env_sets_keeps_and_restores(monkeypatch):
    import os

    from mtrec_study.report.run import INLINE_BACKEND, _kernel_env

    monkeypatch.setenv("MPLBACKEND", "Agg")  # a caller's Agg must not reach the kernels
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    with _kernel_env():
        assert os.environ["MPLBACKEND"] == INLINE_BACKEND and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"
        with _kernel_env():  # nested, as run_notebook inside build_report: changes nothing
            assert os.environ["MPLBACKEND"] == INLINE_BACKEND
        assert os.environ["MPLBACKEND"] == INLINE_BACKEND  # the inner exit did not undo the outer
    assert os.environ["MPLBACKEND"] == "Agg" and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"


def _env_after_import(env: dict[str, str]) -> dict[str, str]:
    """The numeric settings a fresh Python sees after ``import mtrec_study``, started with ``env``."""
    import json
    import os
    import subprocess
    import sys

    from mtrec_study.config import NUMERIC_ENV

    base = {k: v for k, v in os.environ.items() if k not in NUMERIC_ENV}
    code = ("import json, os, mtrec_study; "
            f"print(json.dumps({{k: os.environ.get(k) for k in {sorted(NUMERIC_ENV)!r}}}))")
    out = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True,
                         check=True, timeout=120, cwd=PROJECT_ROOT)
    return json.loads(out.stdout)


def test_import_pins_the_settings_that_decide_the_rounding():
    """A fresh process gets 2 threads and no oneDNN from ``import mtrec_study``; a value set before wins."""
    from mtrec_study.config import NUMERIC_ENV

    assert NUMERIC_ENV == {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_NUM_INTRAOP_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}
    assert _env_after_import({}) == NUMERIC_ENV
    assert _env_after_import({"TF_NUM_INTRAOP_THREADS": "8"}) == {**NUMERIC_ENV, "TF_NUM_INTRAOP_THREADS": "8"}

