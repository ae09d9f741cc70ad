"""Promises that had no test: the CLI's ``train --save``, atomic writes under a crash,
the report's rerun decision, and ``.keras`` round trips of every trained, non-default model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from mtrec_study import results
from mtrec_study.config import PROJECT_ROOT
from mtrec_study.models import MODELS, build_model
from mtrec_study.models.zoo import model_data
from mtrec_study.prepare import prepare_tasks
from mtrec_study.training.trainer import MultiTaskTrainer, predict
from mtrec_study.training.weighting import make_weighting


@pytest.fixture(scope="module")
def prepared(small_world):
    return prepare_tasks(small_world.data, "per_user_recent", seed=0, neg_ratio=1.0)


# --------------------------------------------------------------------------- CLI
def test_cli_train_save_then_load_and_predict(tmp_path):
    """``python -m mtrec_study train ... --save X.keras`` writes a model that loads and predicts
    what the same training in this process predicts (training is deterministic on the CPU).

    Seed 3: the default synthetic world of seed 0 has a user who rated all 400 items, so no
    negative can be sampled for it and ``train`` stops with a clear error.
    """
    out = tmp_path / "model.keras"
    args = ["train", "--model", "mmoe", "--dataset", "synthetic", "--epochs", "1", "--batch-size", "2048",
            "--seed", "3", "--output-dir", str(tmp_path / "hist"), "--save", str(out)]
    env = {**os.environ, "MTREC_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"}
    proc = subprocess.run([sys.executable, "-m", "mtrec_study", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"saved {out}" in proc.stdout
    assert json.loads((tmp_path / "hist" / "history_mmoe_fixed.json").read_text())["config"]["seed"] == 3
    loaded = keras.saving.load_model(out)

    from mtrec_study.datasets import load_dataset
    prep = prepare_tasks(load_dataset("synthetic", seed=3, log=None), "per_user_recent", seed=3)
    got = predict(loaded, prep.test)
    assert set(got) == {"interest", "item", "behaviour"}
    assert all(v.shape == (len(prep.test),) and np.isfinite(v).all() for v in got.values())
    # The file holds the weights the CLI trained: their validation losses are the ones it logged.
    history = json.loads((tmp_path / "hist" / "history_mmoe_fixed.json").read_text())["history"]
    evaluator = MultiTaskTrainer(loaded, make_weighting("fixed"))
    evaluator.compile()
    logs = evaluator.evaluate(prep.valid.features, prep.valid.targets(), batch_size=2048, return_dict=True, verbose=0)
    for task in got:
        assert logs[f"{task}_loss"] == pytest.approx(history[f"val_{task}_loss"][-1], rel=1e-4), task
    # An untrained copy predicts something else.
    fresh = predict(keras.models.clone_model(loaded), prep.test)
    assert not np.allclose(fresh["behaviour"], got["behaviour"])


# --------------------------------------------------------------------------- atomic writes
def _leftovers(folder: Path, name: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != name)


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "deep" / "results.json"
    results.atomic_write_text(path, "first")
    results.atomic_write_text(path, "second")
    assert path.read_text() == "second" and _leftovers(path.parent, path.name) == []


def test_atomic_write_crash_before_the_rename_keeps_the_old_file(tmp_path, monkeypatch):
    """A crash after the data is written but before the rename: the old file survives whole."""
    path = tmp_path / "results.json"
    path.write_text("old")

    def crash(src, dst):
        raise OSError("simulated crash")

    monkeypatch.setattr(results.os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        results.atomic_write_text(path, "new " * 1000)
    assert path.read_text() == "old" and _leftovers(tmp_path, path.name) == []


def test_atomic_write_crash_while_writing_keeps_the_old_file(tmp_path, monkeypatch):
    """A crash (here an interrupt) half-way through writing: the old file survives, no temp is left."""
    path = tmp_path / "results.json"
    path.write_text("old")
    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()
            return False

        def write(self, text):
            self.fh.write(text[: len(text) // 2])
            self.fh.flush()
            raise KeyboardInterrupt

    monkeypatch.setattr(results.os, "fdopen", lambda fd, *a, **k: HalfWriter(real_fdopen(fd, *a, **k)))
    with pytest.raises(KeyboardInterrupt):
        results.atomic_write_text(path, "new " * 1000)
    assert path.read_text() == "old" and _leftovers(tmp_path, path.name) == []


# --------------------------------------------------------------------------- the report's rerun decision
def test_notebook_hash_changes_with_parameters_package_and_the_notebook_before(tmp_path):
    from mtrec_study.report.plan import notebook_hash

    nb = tmp_path / "01_x.ipynb"
    nb.write_text('{"cells": []}')
    base = notebook_hash(nb, {"SEED": 1, "EPOCHS": 2}, "prev", "pkg")
    assert notebook_hash(nb, {"EPOCHS": 2, "SEED": 1}, "prev", "pkg") == base  # key order is no change
    changed = {notebook_hash(nb, {"SEED": 2, "EPOCHS": 2}, "prev", "pkg"),  # a parameter
               notebook_hash(nb, {"SEED": 1, "EPOCHS": 2}, "prev", "pkg2"),  # the package
               notebook_hash(nb, {"SEED": 1, "EPOCHS": 2}, "prev2", "pkg")}  # an earlier notebook
    nb.write_text('{"cells": [1]}')
    changed.add(notebook_hash(nb, {"SEED": 1, "EPOCHS": 2}, "prev", "pkg"))  # the notebook itself
    assert base not in changed and len(changed) == 4


def test_package_hash_follows_every_source_file(tmp_path, monkeypatch):
    """Editing, adding or renaming a package module changes the hash; nothing else does."""
    from mtrec_study.reproducibility import package_hash

    pkg = tmp_path / "mtrec_study"
    (pkg / "models").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "models" / "b.py").write_text("y = 2\n")
    (pkg / "notes.txt").write_text("not source")
    first = package_hash(tmp_path)
    assert package_hash(tmp_path) == first
    (pkg / "notes.txt").write_text("changed, but not source")
    assert package_hash(tmp_path) == first
    seen = {first}
    (pkg / "models" / "b.py").write_text("y = 3\n")  # an edit in a subpackage
    seen.add(package_hash(tmp_path))
    (pkg / "c.py").write_text("")  # a new, empty module
    seen.add(package_hash(tmp_path))
    (pkg / "c.py").rename(pkg / "d.py")  # the same bytes under another name
    seen.add(package_hash(tmp_path))
    assert len(seen) == 4


def test_build_report_reruns_exactly_what_a_change_touches(tmp_path, monkeypatch):
    """The decision inside build_report: nothing reruns when nothing changed; a parameter of the
    second notebook reruns it alone; a parameter of the first reruns both (the chain); a package
    change reruns both. Notebook execution is replaced by a stub that records its calls."""
    from mtrec_study.report import build as report

    nbs = []
    for stem in ("01_first", "02_second"):
        nbs.append(tmp_path / "nb" / f"{stem}.ipynb")
        nbs[-1].parent.mkdir(exist_ok=True)
        nbs[-1].write_text(json.dumps({"cells": [], "name": stem}))
    params = {nbs[0]: {"SEED": 1}, nbs[1]: {"EPOCHS": 2}}
    pkg = {"hash": "p1"}
    ran: list[str] = []

    def fake_run(path, out_dir, p, kernel=None, *args, **kwargs):
        ran.append(path.stem)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"{path.stem}.html").write_text("<html></html>")
        (out_dir / "results.json").write_text(json.dumps({"summary": {}, "params": p}))
        return 0.1

    def fake_index(out, *args, **kwargs):
        (Path(out) / "index.html").write_text("<html></html>")
        return Path(out) / "index.html"

    monkeypatch.setattr(report, "notebooks", lambda *a, **k: list(nbs))
    monkeypatch.setattr(report, "params_for_notebooks", lambda preset, paths=None: {p: dict(params[p]) for p in nbs})
    monkeypatch.setattr(report, "load_preset", lambda preset: {})
    monkeypatch.setattr(report, "check_data", lambda values: None)
    monkeypatch.setattr(report, "kernel_name", lambda: "stub")
    monkeypatch.setattr(report, "package_hash", lambda: pkg["hash"])
    monkeypatch.setattr(report, "run_notebook", fake_run)
    monkeypatch.setattr(report, "write_index", fake_index)
    monkeypatch.setattr(report, "environment_stamp", lambda *a, **k: {})
    out_root = tmp_path / "reports"

    def build():
        ran.clear()
        report.build_report("fast", out_root=out_root, progress=False, jobs=1)
        return sorted(ran)

    assert build() == ["01_first", "02_second"]
    assert build() == []  # unchanged: both copied from the last report
    params[nbs[1]] = {"EPOCHS": 3}
    assert build() == ["02_second"]
    params[nbs[0]] = {"SEED": 2}
    assert build() == ["01_first", "02_second"]
    pkg["hash"] = "p2"
    assert build() == ["01_first", "02_second"]
    assert build() == []
    assert json.loads((out_root / "fast" / "02_second" / "results.json").read_text())["params"] == {"EPOCHS": 3}


# --------------------------------------------------------------------------- .keras round trips
NON_DEFAULT = {
    "article": {"hidden": 24, "id_dim": 12, "emb_l2": 1e-3},
    "shared_bottom": {"bottom": (40, 20), "tower": (12,), "dropout": 0.3, "l2": 1e-3, "emb_l2": 1e-4},
    "mmoe": {"n_experts": 3, "expert_units": (20,), "tower": (12,), "dropout": 0.3, "l2": 1e-3},
    "omoe": {"n_experts": 5, "expert_units": (20, 12), "dropout": 0.25, "l2": 2e-3},
    "ple": {"levels": 2, "n_specific": 2, "n_shared": 1, "expert_units": (16,), "dropout": 0.3, "l2": 1e-3},
    "esmm": {"bottom": (32,), "tower": (8,), "dropout": 0.3, "l2": 1e-3},
    "single_task": {"bottom": (32,), "dropout": 0.3, "l2": 1e-3},
    "mf": {"factors": 6, "l2": 1e-3},
    "two_tower": {"arch": "mmoe", "dim": 16, "tower_units": (24,), "ranking": (20,), "tower": (8,), "dropout": 0.2,
                  "l2": 1e-3, "n_experts": 3, "id_dim": 12},
}
# Hyperparameters a layer keeps as attributes; a get_config that drops one reloads its default.
HP_ATTRIBUTES = ("dropout", "l2", "rate", "units", "n", "n_experts", "expert_units", "n_gates", "n_tasks",
                 "n_specific", "n_shared", "last", "id_dim", "side_dim", "vector_dim", "lo", "hi")


def _layers(net):
    return list(net._flatten_layers(include_self=False, recursive=True))


def _fresh_weights(name, prepared, hp):
    keras.utils.set_random_seed(2)
    return build_model(name, prepared.spec, **hp, **model_data(name, prepared)).get_weights()


def test_non_default_settings_cover_every_model():
    assert set(NON_DEFAULT) == set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_trained_non_default_model_round_trips_through_keras_file(prepared, name, tmp_path):
    hp = dict(NON_DEFAULT[name])
    if name == "single_task":
        hp["task"] = "behaviour"
    keras.utils.set_random_seed(2)
    net = build_model(name, prepared.spec, **hp, **model_data(name, prepared))
    trainer = MultiTaskTrainer(net, make_weighting("fixed"))
    trainer.compile(optimizer=keras.optimizers.Adam(0.01))
    for start in range(0, 512, 128):  # trained briefly, eagerly (tracing fit would cost more than it trains)
        part = prepared.train.subset(np.arange(start, start + 128))
        trainer.train_step((part.features, {k: keras.ops.convert_to_tensor(v) for k, v in part.targets().items()}))
    assert any(not np.array_equal(w, w0) for w, w0 in zip(net.get_weights(), _fresh_weights(name, prepared, hp),
                                                              strict=True))
    path = tmp_path / f"{name}.keras"
    net.save(path)
    loaded = keras.saving.load_model(path)
    x = prepared.test.subset(np.arange(200)).features
    before = {k: np.asarray(v).ravel() for k, v in net(x, training=False).items()}
    after = {k: np.asarray(v).ravel() for k, v in loaded(x, training=False).items()}
    assert set(before) == set(after)
    for k in before:
        np.testing.assert_array_equal(before[k], after[k], err_msg=k)
    assert json.dumps(loaded.get_config(), sort_keys=True, default=str) == json.dumps(
        net.get_config(), sort_keys=True, default=str)
    # Each layer's hyperparameters survive, including those that never change a prediction.
    orig, back = _layers(net), _layers(loaded)
    assert [type(v).__name__ for v in orig] == [type(v).__name__ for v in back]
    for layer, again in zip(orig, back, strict=True):
        for attr in HP_ATTRIBUTES:
            if hasattr(layer, attr) and not callable(getattr(layer, attr)):
                assert getattr(again, attr) == getattr(layer, attr), (layer.name, attr)
    # L2 penalties (weight regularisers) are the same; with L2 set they are not zero.
    reg_before = float(sum(float(v) for v in net.losses))
    assert float(sum(float(v) for v in loaded.losses)) == pytest.approx(reg_before, rel=1e-6)
    if hp.get("l2") or hp.get("emb_l2"):
        assert reg_before > 0
    # Dropout still acts in training mode after loading.
    if hp.get("dropout"):
        keras.utils.set_random_seed(0)
        noisy = loaded(x, training=True)
        task = next(iter(noisy))
        assert not np.allclose(np.asarray(noisy[task]).ravel(), after[task])
