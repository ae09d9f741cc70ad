"""The report builds, its links resolve, rebuilds are incremental and failures keep the last good one."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from mtrec_study.params import notebooks
from mtrec_study.report import build as report


def _links(index: Path) -> list[str]:
    return re.findall(r"""(?:href|src)=["']([^"']+)["']""", index.read_text())


def test_index_links_and_images_resolve(fast_report):
    index = fast_report / "index.html"
    links = _links(index)
    assert len(links) >= 3 * len(notebooks())
    for link in links:
        assert (fast_report / link).exists(), link
    text = index.read_text()
    for key in ("tensorflow", "git commit", "preset", "run time", "tf_num_intraop_threads", "tf_enable_onednn_opts"):
        assert key in text
    # Tables that notebooks mark as highlights: 07's verdicts first, 08's comparison with the paper later.
    assert "The article's claims: verdicts" in text and "More comparisons" in text and "paper check" in text
    assert re.search(r'<td class="verdict-[a-z-]+">(supported|refuted|inconclusive)</td>', text)
    assert (fast_report / "results.csv").exists()
    manifest = json.loads((fast_report / "manifest.json").read_text())
    assert [r["name"] for r in manifest["notebooks"]] == [p.stem for p in notebooks()]
    # The build's own wall time: at least its slowest notebook, at most all of them one after another
    # plus the index (benchmarks/bench_report.py --record reads it).
    slowest, total = max(r["seconds"] for r in manifest["notebooks"]), sum(r["seconds"] for r in manifest["notebooks"])
    assert slowest <= manifest["seconds"] <= total + 120


def test_bench_report_records_only_a_build_from_scratch(fast_report, tmp_path):
    from benchmarks.bench_report import recorded

    row = recorded(fast_report)
    manifest = json.loads((fast_report / "manifest.json").read_text())
    assert row["preset"] == "fast" and row["seconds"] == manifest["seconds"] and row["limit_s"] == 180
    assert row["notebook_seconds"] == {r["name"]: round(r["seconds"], 1) for r in manifest["notebooks"]}
    manifest["notebooks"][0]["reused"] = True
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SystemExit, match=f"reused {manifest['notebooks'][0]['name']}"):
        recorded(tmp_path)


def test_rebuild_is_incremental(fast_report, tmp_path):
    root = tmp_path / "reports"
    shutil.copytree(fast_report, root / "fast")
    report.build_report("fast", out_root=root, progress=False)
    manifest = json.loads((root / "fast" / "manifest.json").read_text())
    assert all(r["reused"] for r in manifest["notebooks"])
    assert not list(root.glob(".tmp-*")) and not list(root.glob(".old-*"))


def _toy_notebook(path: Path, body: str) -> Path:
    nb = new_notebook(cells=[new_markdown_cell("# 99 toy"), new_code_cell("SEED = 1\nDATASET = 'synthetic'\nOUTPUT_DIR = '.'"),
                             new_code_cell(body)], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells[1].metadata["tags"] = ["parameters"]
    nbformat.write(nb, path)
    return path


def test_failing_notebook_keeps_last_good_report(tmp_path, monkeypatch):
    nb_dir, root = tmp_path / "nb", tmp_path / "reports"
    nb_dir.mkdir()
    preset = tmp_path / "toy.yaml"
    preset.write_text("SEED: 3\nDATASET: synthetic\n")
    good = _toy_notebook(nb_dir / "99_toy.ipynb", "from mtrec_study.results import record_results\nrecord_results({'x': SEED}, OUTPUT_DIR)")
    monkeypatch.setattr(report, "notebooks", lambda: [good])
    index = report.build_report(str(preset), out_root=root, progress=False)
    before = index.read_text()
    _toy_notebook(good, "raise RuntimeError('deliberate failure')")
    with pytest.raises(report.ReportError, match=r"99_toy.ipynb failed in cell .*deliberate failure"):
        report.build_report(str(preset), out_root=root, progress=False)
    assert index.read_text() == before
    assert not list(root.glob(".tmp-*")) and (root / "toy-failed.ipynb").exists()


def test_only_reruns_the_named_notebook_and_keeps_the_others(tmp_path, monkeypatch):
    nb_dir, root = tmp_path / "nb", tmp_path / "reports"
    nb_dir.mkdir()
    preset = tmp_path / "toy.yaml"
    preset.write_text("SEED: 3\nDATASET: synthetic\n")
    record = "from mtrec_study.results import record_results\nrecord_results({'x': %d}, OUTPUT_DIR)"
    first = _toy_notebook(nb_dir / "98_toy.ipynb", record % 1)
    second = _toy_notebook(nb_dir / "99_toy.ipynb", record % 2)
    monkeypatch.setattr(report, "notebooks", lambda: [first, second])
    report.build_report(str(preset), out_root=root, progress=False)
    _toy_notebook(first, record % 10)
    _toy_notebook(second, record % 20)
    report.build_report(str(preset), out_root=root, only=["99_toy"], progress=False)
    summary = {n: json.loads((root / "toy" / n / "results.json").read_text())["summary"]["x"] for n in ("98_toy", "99_toy")}
    assert summary == {"98_toy": 1, "99_toy": 20}  # 98 carried over as it was, 99 rerun
    manifest = json.loads((root / "toy" / "manifest.json").read_text())
    assert [(r["name"], r["reused"]) for r in manifest["notebooks"]] == [("98_toy", True), ("99_toy", False)]


def test_missing_data_stops_before_running(tmp_path, monkeypatch, cache):
    nb_dir = tmp_path / "nb"
    nb_dir.mkdir()
    nb = _toy_notebook(nb_dir / "99_toy.ipynb", "raise SystemExit('must not run')")
    monkeypatch.setattr(report, "notebooks", lambda: [nb])
    preset = tmp_path / "toy.yaml"
    preset.write_text("DATASET: ml-1m\n")
    with pytest.raises(report.ReportError, match="(?s)cannot be obtained, so no notebook was run.*MTREC_DATA_DIR"):
        report.build_report(str(preset), out_root=tmp_path / "reports", progress=False)
    assert not (tmp_path / "reports" / "toy").exists()


def test_report_jobs_setting_is_checked(monkeypatch):
    monkeypatch.setenv("MTREC_REPORT_JOBS", "two")
    with pytest.raises(report.ReportError, match="MTREC_REPORT_JOBS='two' is not valid"):
        report.default_jobs()
    monkeypatch.setenv("MTREC_REPORT_JOBS", "3")
    assert report.default_jobs() == 3


@pytest.mark.parametrize("cpus,threads,jobs", [(1, "2", 1), (2, "2", 2), (4, "2", 2), (16, "2", 8), (16, "4", 4),
                                               (16, "x", 8)])
def test_notebooks_at_a_time_follow_the_cores(monkeypatch, cpus, threads, jobs):
    """One notebook per TensorFlow's thread count of cores (2 pinned), at least 2 on 2+ cores; a
    thread count that is not a whole number falls back to the pinned 2."""
    from mtrec_study.report import plan

    monkeypatch.delenv("MTREC_REPORT_JOBS", raising=False)
    monkeypatch.setattr(plan.os, "cpu_count", lambda: cpus)
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", threads)
    assert report.default_jobs() == jobs


def test_the_stamp_records_the_settings_that_decide_the_rounding(monkeypatch):
    from mtrec_study.config import NUMERIC_ENV
    from mtrec_study.report.plan import environment_stamp

    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "3")
    stamp = environment_stamp("fast", {"SEED": 42}, 2)
    assert stamp["tf_num_intraop_threads"] == "3"
    assert {k.lower() for k in NUMERIC_ENV} <= set(stamp)


def test_papermill_run_with_an_unknown_or_mistyped_parameter_names_it(tmp_path):
    import papermill as pm

    nb = next(p for p in notebooks() if p.stem == "00_overview")
    for params_, pattern in (({"EPOCHZ": 3}, "unknown parameter 'EPOCHZ'"), ({"SEED": "forty"}, "parameter 'SEED' should be int")):
        with pytest.raises(pm.PapermillExecutionError, match=pattern):
            pm.execute_notebook(str(nb), str(tmp_path / "out.ipynb"), parameters={**params_, "OUTPUT_DIR": str(tmp_path)},
                                kernel_name=report.kernel_name(), cwd=str(nb.parent), progress_bar=False)


def test_notebooks_share_a_training_cache_under_the_reports_folder(tmp_path, monkeypatch):
    """The build names ``<reports>/_cache`` to its kernels (no network is trained twice across notebooks);
    MTREC_NO_CACHE reaches them too, and a folder the caller names is kept."""
    from mtrec_study.config import NO_CACHE_ENV, TRAIN_CACHE_ENV

    nb_dir, root = tmp_path / "nb", tmp_path / "reports"
    nb_dir.mkdir()
    preset = tmp_path / "toy.yaml"
    preset.write_text("SEED: 3\nDATASET: synthetic\n")
    body = ("import os\nfrom mtrec_study.results import record_results\nfrom mtrec_study.training import cache\n"
            "record_results({'env': os.environ.get(cache.TRAIN_CACHE_ENV), 'dir': str(cache.cache_dir())}, OUTPUT_DIR)")
    nb = _toy_notebook(nb_dir / "99_toy.ipynb", body)
    monkeypatch.setattr(report, "notebooks", lambda: [nb])
    monkeypatch.delenv(TRAIN_CACHE_ENV, raising=False)
    monkeypatch.delenv(NO_CACHE_ENV, raising=False)

    def seen():
        report.build_report(str(preset), out_root=root, progress=False, force=True)
        return json.loads((root / "toy" / "99_toy" / "results.json").read_text())["summary"]

    assert seen() == {"env": str((root / "_cache").resolve()), "dir": str((root / "_cache").resolve())}
    assert TRAIN_CACHE_ENV not in os.environ  # set for the kernels only, while the build runs
    monkeypatch.setenv(NO_CACHE_ENV, "1")
    assert seen()["dir"] == "None"
    monkeypatch.delenv(NO_CACHE_ENV)
    monkeypatch.setenv(TRAIN_CACHE_ENV, str(tmp_path / "mine"))
    assert seen()["env"] == str(tmp_path / "mine")
