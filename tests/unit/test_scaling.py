"""The scaling study's pieces: world shapes, reuse of written worlds, one measured training in its own
process, log-log slopes, the slow-training rule and the benchmark's points."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from mtrec_study import plots  # noqa: E402
from mtrec_study.study import scaling  # noqa: E402


def test_world_shapes_follow_the_stated_rule():
    assert scaling.world_shape(10_000) == (200, 1000)
    assert scaling.world_shape(1_000_000) == (20_000, 100_000)
    assert scaling.world_shape(50_000_000) == (1_000_000, 100_000)
    with pytest.raises(ValueError, match="at least 1,000 interactions, got 999"):
        scaling.world_shape(999)


def test_a_written_world_is_reused_and_a_changed_one_rewritten(tmp_path):
    first = scaling.world(2000, root=tmp_path, seed=1)
    stamp = (first / "meta.json").stat().st_mtime_ns
    assert scaling.world(2000, root=tmp_path, seed=1) == first
    assert (first / "meta.json").stat().st_mtime_ns == stamp  # not written again
    meta = json.loads((first / "meta.json").read_text())
    (first / "meta.json").write_text(json.dumps({**meta, "n_users": 7}))
    scaling.world(2000, root=tmp_path, seed=1)
    assert json.loads((first / "meta.json").read_text())["n_users"] == scaling.world_shape(2000)[0]


def test_one_training_measured_in_its_own_process(tmp_path):
    folder = scaling.world(3000, root=tmp_path, seed=0)
    cost = scaling.measure_training(shards=folder, model="single_task", tasks=["item"], epochs=2, batch_size=1024)
    meta = json.loads((folder / "meta.json").read_text())
    assert cost["train_rows"] == cost["rows_per_epoch"] == meta["rows"]["train"]
    assert len(cost["epoch_seconds"]) == len(cost["val_loss"]) == 2
    assert cost["examples_per_s"] == pytest.approx(cost["rows_per_epoch"] / cost["epoch_seconds"][1])
    assert 0.2 < cost["peak_gb"] < 4  # a TensorFlow process, measured by itself
    from mtrec_study.streaming import load_shards

    data = load_shards(folder)
    spec, t = data.spec, data.tables
    assert cost["materialised_gb"] == pytest.approx(cost["train_rows"] * scaling.row_bytes(spec) / 1e9)
    # held: 12 bytes (a float32 weight and Adam's two moments) per parameter, of which the id
    # embeddings alone are (users + items) × 32, plus the tables: 8-byte ids and one row per id
    row_bytes = {side: sum(a.itemsize * int(np.prod(a.shape[1:])) for a in getattr(t, side).values())
                 for side in ("user", "item")}
    tables = len(t.user_ids) * (8 + row_bytes["user"]) + len(t.item_ids) * (8 + row_bytes["item"])
    assert cost["params"] > (len(t.user_ids) + len(t.item_ids)) * 32
    assert cost["held_gb"] * 1e9 == pytest.approx(12 * cost["params"] + tables, rel=1e-12)
    # ids, age and year buckets, gender and occupation; 19 genres; two log counts and the age z-score
    assert scaling.row_bytes(spec) == 4 * (6 + 19 + 3)
    with pytest.raises(RuntimeError, match=r"training single_task \(.*world-3000-seed0.*\) failed \(exit 1\)(.|\n)*single_task needs tasks"):
        scaling.measure_training(shards=folder, model="single_task", epochs=1)  # single_task needs its task
    with pytest.raises(ValueError, match="exactly one of shards"):
        scaling.measure_training(model="mmoe")


def test_slopes_recover_a_power_law():
    x = np.array([1e3, 1e4, 1e5, 1e6])
    table = pd.DataFrame({"net": ["a"] * 4 + ["b"] * 4, "rows": np.r_[x, x],
                          "s": np.r_[3 * x ** 1.0, 2 * x ** 0.5], "gb": np.r_[np.full(4, 0.8), 0.1 * x ** 0.25]})
    slopes = scaling.scaling_slopes(table, "rows", ["s", "gb"], "net").set_index("net")
    assert slopes.loc["a", "slope of s"] == pytest.approx(1.0)
    assert slopes.loc["b", "slope of s"] == pytest.approx(0.5)
    assert slopes.loc["a", "slope of gb"] == pytest.approx(0.0, abs=1e-9)
    assert slopes.loc["b", "slope of gb"] == pytest.approx(0.25)
    assert slopes.loc["a", "sizes"] == 4


def test_the_slow_training_rule_reads_the_largest_size():
    relative = pd.DataFrame({"multi-task / one single-task": [3.0, 1.5], "multi-task / all three": [1.2, 0.5]},
                            index=[1000, 10_000])
    slopes = pd.DataFrame({"network": [scaling.MULTI, "single-task a", "single-task b"],
                           "slope of epoch s": [0.95, 0.9, 0.7]})
    verdict = scaling.slow_verdict(relative, slopes)
    assert verdict.startswith("per network, slower than a single-task network (1.50×)")
    assert "per task served, cheaper than the three single-task networks (0.50×)" in verdict
    assert "grows faster with the data (slope 0.95 against 0.80)" in verdict
    relative.iloc[-1] = [0.9, 1.1]
    slopes.loc[0, "slope of epoch s"] = 0.85
    verdict = scaling.slow_verdict(relative, slopes)
    assert "not slower than a single-task network (0.90×)" in verdict and "slower than the three" in verdict
    assert "grows no faster" in verdict


def test_benchmark_points_come_from_its_results_file(tmp_path):
    assert scaling.benchmark_points(tmp_path / "none.json").empty
    path = tmp_path / "streaming.json"
    path.write_text(json.dumps({"machine": {"date": "2026-12-04"}, "rows": [
        {"interactions": 1_000_000, "training rows": 2_000_000, "examples/s": 40_000.0, "train peak GB": 1.1}]}))
    points = scaling.benchmark_points(path)
    assert scaling.fixed_catalogue_points(path).empty and scaling.fixed_catalogue_points(tmp_path / "none.json").empty
    fixed = {"training shards": 1, "training rows": 1_899_151, "users": 1_000_000, "items": 100_000, "epoch s": 14.0,
             "examples/s": 135_940, "train peak GB": 2.35, "materialised GB": 0.21}
    with_fixed = tmp_path / "fixed.json"
    with_fixed.write_text(json.dumps({**json.loads(path.read_text()), "fixed_catalogue": [fixed]}))
    assert scaling.fixed_catalogue_points(with_fixed).to_dict("records") == [fixed]
    assert list(points.columns) == scaling.POINT_COLUMNS
    assert points.loc[0, "epoch s"] == pytest.approx(50.0) and points.loc[0, "peak GB"] == 1.1
    assert points.loc[0, "source"] == "streaming benchmark, 2026-12-04"
    here = pd.DataFrame({"interactions": [10, 100], "network": scaling.MULTI, "training rows": [20, 200],
                         "epoch s": [1.0, 2.0], "examples/s": [20.0, 100.0], "peak GB": [0.8, 0.8],
                         "materialised GB": [0.001, 0.01], "source": "this run"})
    fig = plots.scaling(pd.concat([here, points], ignore_index=True))
    left, right = fig.axes
    assert left.get_xscale() == right.get_yscale() == "log"
    assert len(left.lines) == 2  # this run's line and the benchmark's hollow points
    assert [ln.get_label() for ln in right.lines][-1] == "features materialised per row"


def test_a_child_reports_its_own_peak_memory_not_its_parents():
    import subprocess
    import sys

    held = np.ones(700_000_000 // 8)  # 0.7 GB in this process when the child starts
    assert scaling.peak_memory_gb() > 0.7
    out = subprocess.run([sys.executable, "-c", "from mtrec_study.study.scaling import peak_memory_gb; "
                          "print(peak_memory_gb())"], capture_output=True, text=True, check=True)
    # getrusage's ru_maxrss would carry the parent's 0.7 GB over the exec.
    assert 0.01 < float(out.stdout.strip().splitlines()[-1]) < 0.5
    del held
