"""A learner's path: the `mtrec` kernel, found the way JupyterLab finds it, runs a notebook on its own defaults."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from mtrec_study import kernel
from mtrec_study.config import PROJECT_ROOT

VENV_KERNELS = Path(sys.prefix) / "share" / "jupyter"


def test_kernelspec_is_the_venv_python_with_quiet_tensorflow(tmp_path):
    folder = kernel.install(tmp_path)
    spec = json.loads((folder / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable and spec["argv"][1:3] == ["-m", "mtrec_study.kernel"]
    assert "{connection_file}" in spec["argv"] and spec["env"]["TF_CPP_MIN_LOG_LEVEL"] == "3"


def test_a_notebook_runs_on_its_own_defaults_in_the_mtrec_kernel(tmp_path, monkeypatch):
    """As `make lab` starts JupyterLab: JUPYTER_PATH names the venv's kernels, no backend or bar is forced."""
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from nbclient import NotebookClient

    if not (VENV_KERNELS / "kernels" / kernel.NAME / "kernel.json").exists():
        pytest.skip("the mtrec kernel is not registered in this environment (make venv registers it)")
    monkeypatch.setenv("JUPYTER_PATH", str(VENV_KERNELS))
    for var in ("MPLBACKEND", "TQDM_DISABLE", "TF_CPP_MIN_LOG_LEVEL", "MTREC_KERNEL_LOG"):
        monkeypatch.delenv(var, raising=False)
    spec = KernelSpecManager().get_kernel_spec(kernel.NAME)
    assert Path(spec.argv[0]).resolve() == Path(sys.executable).resolve()
    # A copy, so its default OUTPUT_DIR (../reports/dev/...) lands in the test's folder.
    work = tmp_path / "notebooks"
    work.mkdir()
    nb_path = shutil.copy(PROJECT_ROOT / "notebooks" / "01_data_preprocessing.ipynb", work)
    nb = nbformat.read(nb_path, as_version=4)
    NotebookClient(nb, kernel_name=kernel.NAME, timeout=600, resources={"metadata": {"path": str(work)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3, "the figures did not show inline"
    stderr = "".join("".join(o.get("text", "")) for o in outputs if o.get("name") == "stderr")
    assert "cuda" not in stderr and "absl" not in stderr, stderr[:500]
    recorded = json.loads((tmp_path / "reports" / "dev" / "01_data_preprocessing" / "results.json").read_text())
    assert recorded["summary"]["n_ratings"] > 0
    assert os.environ.get("MPLBACKEND") is None
