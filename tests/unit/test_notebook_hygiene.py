"""The committed notebooks as a learner opens them: inline figures, quick defaults, honest time notes."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from benchmarks import notebook_times
from mtrec_study.config import PARAMS_DIR
from mtrec_study.params import notebook_parameters, notebooks


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_no_notebook_forces_a_matplotlib_backend(path):
    source = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    assert not re.search(r"matplotlib\.use\(|MPLBACKEND|%matplotlib\s+(agg|Agg)", source), path.name


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_every_cell_has_a_unique_id(path):
    # nbformat 4.5 requires cell ids; a cell without one makes every reader of the file (the
    # notebook's own parameter check among them) print a MissingIDFieldWarning into the report.
    nb = json.loads(path.read_text())
    ids = [c.get("id") for c in nb["cells"]]
    assert (nb["nbformat"], nb["nbformat_minor"]) >= (4, 5), path.name
    assert None not in ids and len(set(ids)) == len(ids), (path.name, [i for i, x in enumerate(ids) if x is None])


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_defaults_are_the_quick_settings(path):
    """Run as opened in JupyterLab, a notebook uses the fast preset's values, not the full study's."""
    fast = yaml.safe_load((PARAMS_DIR / "fast.yaml").read_text())
    defaults = notebook_parameters(path)
    for key, value in defaults.items():
        if key in fast:
            assert value == fast[key], f"{path.name}: {key} = {value!r}, the fast preset has {fast[key]!r}"


def test_run_time_notes_match_the_build_benchmark():
    stale = notebook_times.stale()
    assert not stale, f"run `python -m benchmarks.notebook_times`: stale notes in {stale}"


def test_run_time_notes_come_from_the_measured_times(tmp_path, monkeypatch):
    """Changing the measured times changes the notes: they are generated, never typed in."""
    nb = notebooks()[0]
    copy = tmp_path / nb.name
    copy.write_text(nb.read_text())
    results = tmp_path / "report.json"
    results.write_text(json.dumps({"machine": {"cpus": 2}, "rows": [
        {"preset": "fast", "notebook_seconds": {nb.stem: 61.0}},
        {"preset": "full", "notebook_seconds": {nb.stem: 1234.0}}]}))
    monkeypatch.setattr(notebook_times, "RESULTS", results)
    assert notebook_times.stale(tmp_path, params=None) == [nb.name]
    times, machine = notebook_times.measured()
    assert notebook_times.apply(copy, times, machine)
    first = "".join(json.loads(copy.read_text())["cells"][0]["source"])
    assert "about 60 s with the defaults" in first and "about 21 min with the full preset" in first
    assert notebook_times.stale(tmp_path, params=None) == []
    assert notebook_parameters(copy) == notebook_parameters(nb)  # the comment leaves the parameters alone


def test_preset_build_times_come_from_the_measured_build(tmp_path, monkeypatch):
    """The first line of fast.yaml and full.yaml states the last measured build time, rewritten from it."""
    for preset in ("fast", "full"):
        (tmp_path / f"{preset}.yaml").write_text((PARAMS_DIR / f"{preset}.yaml").read_text())
    results = tmp_path / "report.json"
    results.write_text(json.dumps({"machine": {"cpus": 2}, "rows": [
        {"preset": "fast", "seconds": 100.0, "jobs": 2},
        {"preset": "full", "seconds": 4000.0, "jobs": 2, "slowest_notebook": "09_x", "slowest_notebook_s": 3000.0}]}))
    monkeypatch.setattr(notebook_times, "RESULTS", results)
    empty = tmp_path / "nb"
    empty.mkdir()
    assert notebook_times.stale(empty, params=tmp_path) == ["params/fast.yaml", "params/full.yaml"]
    assert all(notebook_times.apply_preset(tmp_path / f"{p}.yaml") for p in ("fast", "full"))
    full = (tmp_path / "full.yaml").read_text()
    assert full.splitlines()[0].startswith("# What make report runs") and "about 67 min from scratch" in full
    assert "09_x, 50 min" in full
    assert "about 2 min from scratch" in (tmp_path / "fast.yaml").read_text()
    assert notebook_times.stale(empty, params=tmp_path) == []
    assert yaml.safe_load(full) == yaml.safe_load((PARAMS_DIR / "full.yaml").read_text())
