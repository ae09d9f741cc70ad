"""Each notebook, executed by papermill on the fast preset (inside the report build), recorded
the numbers it promises. A model's metric is compared with a baseline computed in this run on
the same data, split and seed (the per-item mean for ratings, chance for AUC, popularity for
ranking) and must beat it by a margin; wide absolute ranges would let a trivial model through."""

from __future__ import annotations

import html
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mtrec_study import evaluation as E
from mtrec_study.params import notebooks

RMSE_MARGIN = 0.02  # below the per-item mean's RMSE by at least this much
AUC_MARGIN = 0.05  # above chance (0.5) by at least this much


@pytest.fixture(scope="module")
def fast_data():
    """The fast preset's values and its cleaned interactions (what every notebook loads)."""
    from mtrec_study.datasets import load_dataset
    from mtrec_study.params import load_preset
    from mtrec_study.prepare import clean

    preset = load_preset("fast")
    cleaned, _ = clean(load_dataset(preset["DATASET"], seed=preset["SEED"], log=None))
    return preset, cleaned.interactions


def item_mean_baseline(inter, idx) -> dict[str, float]:
    """The per-item mean rating of the training part (the global mean for unseen items) as a
    predictor: its test RMSE, and its test AUC for interest (rating >= 4)."""
    from mtrec_study.tasks import LIKE_THRESHOLD

    train, test = inter.iloc[idx["train"]], inter.iloc[idx["test"]]
    pred = train.groupby("item_id")["rating"].mean().reindex(test["item_id"]).fillna(train["rating"].mean()).to_numpy()
    y = test["rating"].to_numpy("float64")
    like = (y >= LIKE_THRESHOLD).astype(int)
    from sklearn.metrics import roc_auc_score

    return {"rmse": float(np.sqrt(np.mean((y - pred) ** 2))), "interest_auc": float(roc_auc_score(like, pred))}


@pytest.fixture(scope="module")
def recent_baseline(fast_data):
    from mtrec_study.prepare import split_indices

    _, inter = fast_data
    return item_mean_baseline(inter, split_indices(inter, "per_user_recent"))


def _summary(report_dir, stem):
    return json.loads((report_dir / stem / "results.json").read_text())["summary"]


def _assert_shown_in_full(report_dir, stem, rows, columns):
    """Each of these table cells appears whole in the executed notebook's HTML outputs (pandas cuts
    text longer than 50 characters with "…" unless told not to, and a reader then sees no caveat)."""
    nb = json.loads((report_dir / stem / f"{stem}.ipynb").read_text())
    shown = "".join("".join(o.get("data", {}).get("text/html", "")) for c in nb["cells"] for o in c.get("outputs", []))
    for row in rows:
        for col in columns:
            assert html.escape(str(row[col]), quote=False) in shown, (stem, col, row[col])


def test_every_notebook_was_executed(fast_report):
    for nb in notebooks():
        assert (fast_report / nb.stem / f"{nb.stem}.html").exists(), nb.stem
        assert (fast_report / nb.stem / "results.json").exists(), nb.stem


def test_00_overview(fast_report):
    s = _summary(fast_report, "00_overview")
    # One question per notebook after the overview, 01 to 10, each answered in this build.
    assert s["n_questions"] == 10 and {"01_data_preprocessing", "10_scaling"} <= set(s["notebooks_present"])
    assert [q["in this build"] for q in s["questions"]] == ["yes"] * 10
    assert s["versions"]["tensorflow"] != "not installed"
    # The kernel ran with the settings that decide the rounding (pinned by `import mtrec_study`, as in
    # this process, unless the environment set them first).
    import os

    from mtrec_study.config import NUMERIC_ENV

    assert s["numerics"] == {k: os.environ.get(k, v) for k, v in NUMERIC_ENV.items()}


def test_01_data_preprocessing(fast_report):
    s = _summary(fast_report, "01_data_preprocessing")
    assert s["n_ratings"] == 100_000 and s["n_users"] == 943 and s["n_items"] == 1682
    assert s["dropped"] == 0
    assert 3.4 < s["mean_rating"] < 3.7 and 0.5 < s["train_like_rate"] < 0.6
    splits = {r["split"]: r for r in s["splits"]}
    assert splits["per_user_recent"]["train"] + splits["per_user_recent"]["valid"] + splits["per_user_recent"]["test"] == 100_000
    assert splits["loo"]["test"] == 943
    # What each split's test measures: the global cutoff never trains on a later rating (the per-user
    # split does), and its test is mostly new users; every test user of cold_user is new.
    assert splits["global_time"]["later training share"] == 0 < splits["per_user_recent"]["later training share"]
    assert splits["global_time"]["new-user test share"] > 0.5 and splits["cold_user"]["new-user test share"] == 1
    assert splits["per_user_recent"]["new-user test share"] == 0 == splits["random"]["new-user test share"]
    assert splits["cold_item"]["new-item test share"] == 1 and splits["cold_item"]["new-user test share"] == 0
    tasks = {(r["part"], r["task"]): r for r in s["task_summary"]}
    assert tasks[("train", "item")]["mean_label"] == pytest.approx(0.5)


def test_02_feature_extraction(fast_report):
    s = _summary(fast_report, "02_feature_extraction")
    assert s["leak_free"] is True
    names = {r["feature"]: r for r in s["features"]}
    assert {"user_idx", "item_idx", "genres", "age_bucket"} <= set(names)
    assert names["genres"]["size"] == 19 and names["user_idx"]["side"] == "user" and names["genres"]["side"] == "item"
    assert s["encoded_widths"]["all"] == s["encoded_widths"]["user"] + s["encoded_widths"]["item"]
    assert 0 < s["unseen_item_test_ratings"] < 1000 and s["unseen_user_test_ratings"] == 0
    for fig in ("feature_distributions.png", "text_embedding_map.png"):
        assert (fast_report / "02_feature_extraction" / "figures" / fig).stat().st_size > 5_000
    # The large-model part: MiniLM loaded offline, cached second run, sane neighbours, the switch.
    assert s["text_model"] == "all-MiniLM-L6-v2" and s["text_dim"] == 384
    assert 22_000_000 < s["text_parameters"] < 23_500_000
    # The cache, by counts rather than timings: a second call runs nothing through the model.
    assert s["computed_again"] == 0 and 0 <= s["computed_first"] <= s["n_texts"] and s["cache_identical"] is True
    star_wars = next(r for r in s["neighbours"] if r["item"] == "Star Wars")
    assert "Return of the Jedi" in star_wars["MiniLM neighbours"]
    switch = {r["task"]: r for r in s["text_switch_auc"]}
    assert set(switch) == {"interest", "item"}
    # Interest on items withheld from training: the user's taste still tells, so above chance.
    for c in ("with text", "without text"):
        assert switch["interest"][c] > 0.5 + AUC_MARGIN, c
    # The item task on cold items is near chance in the fast report (no id, no history): the
    # notebook states it as an open question, so only its being measured is checked here.
    assert all(0.0 <= switch["item"][c] <= 1.0 for c in ("with text", "without text"))


def test_03_model_math(fast_report):
    s = _summary(fast_report, "03_model_math")
    # float32 autodiff against a float64 hand derivation: round-off only.
    assert s["grad_max_rel_diff"] < 1e-4 and s["loss_abs_diff"] < 1e-5
    assert len(s["grad_rows"]) == 7
    assert s["empty_mask_loss"] == 0 and s["empty_mask_grad_norm"] == 0
    assert max(s["mmoe_max_diff"], s["cgc_max_diff"], s["esmm_max_diff"]) < 1e-5
    # The two-tower retrieval softmax and its Bayes sigmoid, recomputed in NumPy (float32 logits over the catalogue).
    assert s["two_tower_logp_max_diff"] < 1e-4 and s["two_tower_bayes_max_diff"] < 1e-4
    assert sum(s["dwa_example"]) == pytest.approx(3) and abs(s["pcgrad_projected_dot"]) < 1e-5
    assert s["uncertainty_optimum_gap"] < 1e-3


def test_04_training(fast_report, recent_baseline):
    s = _summary(fast_report, "04_training")
    table = {r["model"]: r for r in s["table"]}
    expected = {"article", "shared_bottom", "mmoe", "ple", "esmm", "single_interest", "single_item",
                "single_behaviour", "mf"}
    assert expected <= set(table)
    base = recent_baseline
    for name in ("shared_bottom", "mmoe", "ple", "esmm", "single_interest"):
        assert table[name]["interest_auc"] > max(0.5 + AUC_MARGIN, base["interest_auc"]), (name, base)
    for name in ("shared_bottom", "mmoe", "ple", "single_behaviour"):
        assert table[name]["behaviour_rmse"] < base["rmse"] - RMSE_MARGIN, (name, base)
    # The article's interest head sees no item: it must trail the corrected model.
    assert table["article"]["interest_auc"] < table["shared_bottom"]["interest_auc"] - 0.05
    assert s["gates"] and all(abs(sum(g) - 1) < 1e-4 for g in s["gates"].values())
    for fig in ("learning_curves.png", "task_weights.png", "gate_usage.png"):
        assert (fast_report / "04_training" / "figures" / fig).stat().st_size > 5_000
    tidy = json.loads((fast_report / "04_training" / "results.json").read_text())["tidy"]
    assert {r["metric"] for r in tidy} == {"auc", "rmse"}


def test_05_evaluation(fast_report, recent_baseline, fast_data):
    s = _summary(fast_report, "05_evaluation")
    tvt = {(r["model"], r["part"]): r for r in s["train_vs_test"]}
    # Training rows flatter the article's model: the lesson of section 2.
    assert tvt[("article", "train")]["interest_accuracy"] > tvt[("article", "test")]["interest_accuracy"]
    holdout = {(r["task"], r["metric"]): r for r in s["holdout"]}
    for key in [("interest", "auc"), ("interest", "f1_tuned"), ("interest", "ece"), ("interest", "gauc"),
                ("item", "logloss"), ("behaviour", "rmse"), ("behaviour", "mae")]:
        assert key in holdout, key
    base = recent_baseline
    assert holdout[("interest", "auc")]["shared_bottom"] > max(0.5 + AUC_MARGIN, base["interest_auc"]), base
    assert holdout[("behaviour", "rmse")]["single_task"] < base["rmse"] - RMSE_MARGIN, base
    ranking = {(r["protocol"], r["metric"]): r for r in s["ranking"]}
    # Popularity, recorded in the same run on the same candidates, is the bar for ranking.
    for metric in ("hr@10", "ndcg@10"):
        for model in ("shared_bottom", "single_item"):
            assert ranking[("sampled 99", metric)][model] > ranking[("sampled 99", metric)]["popularity"], (metric, model)
    # The full catalogue is checked last (see the end of this test).
    full_short = {f"{model} {metric}": (round(ranking[("full catalogue", metric)][model], 4),
                                        round(ranking[("full catalogue", metric)]["popularity"], 4))
                  for metric in ("hr@10", "ndcg@10") for model in ("shared_bottom", "single_item")
                  if not ranking[("full catalogue", metric)][model] > ranking[("full catalogue", metric)]["popularity"]}
    # 99 sampled negatives are far easier than the full catalogue.
    assert ranking[("sampled 99", "hr@10")]["shared_bottom"] > ranking[("full catalogue", "hr@10")]["shared_bottom"]
    beyond = {r["model"]: r for r in s["beyond_accuracy"]}
    # Popularity gives every user the same list: the fewest distinct items and the most unequal use.
    others = [m for m in beyond if m != "popularity"]
    assert beyond["popularity"]["coverage"] < min(beyond[m]["coverage"] for m in others if m != "article")
    assert beyond["popularity"]["gini"] >= max(beyond[m]["gini"] for m in others if m != "article")
    cv = s["cv_summary"]
    assert {r["model"] for r in cv} == {"shared_bottom", "single_task"} and all(r["n"] == s["cv_folds"] for r in cv)
    # Each interval is the t interval of its own mean and std over the folds.
    for r in cv:
        if r["n"] - r["n_undefined"] >= 2 and r["std"] is not None:
            half = stats.t.ppf(0.975, r["n"] - r["n_undefined"] - 1) * r["std"] / math.sqrt(r["n"] - r["n_undefined"])
            assert (r["ci_low"], r["ci_high"]) == pytest.approx((r["mean"] - half, r["mean"] + half), rel=1e-6, abs=1e-9)
    # Each paired t-test's p-value is the two-sided tail of its own t statistic on n - 1 degrees.
    defined = [r for r in s["paired_tests"] if r.get("t") is not None and r.get("p_t") is not None]
    assert defined
    for r in defined:
        assert r["p_t"] == pytest.approx(2 * stats.t.sf(abs(r["t"]), r["n"] - 1), rel=1e-6, abs=1e-12)
    assert {r["task"] for r in s["paired_tests"]} == {"interest", "item", "behaviour"}
    # The corrected t widens the plain one's variance s²/n to (1/n + n_test/n_train) s², with the folds'
    # own ratio: above 1/(k - 1), because each fold's training part holds 10% out for validation.
    ratio = s["cv_test_train_ratio"]
    assert ratio == pytest.approx(1 / (0.9 * (s["cv_folds"] - 1)), rel=0.02)
    for r in defined:
        assert r["t_corrected"] == pytest.approx(r["t"] * math.sqrt((1 / r["n"]) / (1 / r["n"] + ratio)), rel=1e-6)
    # The three tasks' tests are one family: p_holm is Holm's step-down adjustment of p_corrected, by hand.
    rows = sorted((r for r in s["paired_tests"] if r["p_corrected"] is not None), key=lambda r: r["p_corrected"])
    running = 0.0
    for i, r in enumerate(rows):
        running = max(running, min(1.0, (len(rows) - i) * r["p_corrected"]))
        assert r["p_holm"] == pytest.approx(running, abs=1e-12), r
    boot = s["delta_m_bootstrap"]
    assert boot["ci_low"] <= boot["estimate"] <= boot["ci_high"] and boot["n_users"] == 943
    # Section 6 trains every model with the preset's seeds and pools them. Each seed's Δm% and RMSE
    # difference are what that seed's recorded values give (a check of consistency: both come from the
    # same predictions), and the estimates are their means.
    preset, _ = fast_data
    assert s["seeds"] == list(range(preset["SEED"], preset["SEED"] + preset["SEEDS"])) and len(s["seeds"]) >= 2
    rmse_boot = s["rmse_difference_bootstrap"]
    assert boot["n_seeds"] == rmse_boot["n_seeds"] == len(s["seeds"])
    by_seed = {(r["model"], r["seed"], r["task"], r["metric"]): r["value"] for r in s["holdout_values_by_seed"]}
    keys = [tuple(k) for k in E.PRIMARY_METRICS]
    dm = [E.delta_m({k: by_seed[("shared_bottom", seed, *k)] for k in keys},
                    {k: by_seed[("single_task", seed, *k)] for k in keys}) for seed in s["seeds"]]
    assert boot["seed_estimates"] == pytest.approx(dm, abs=1e-9)
    assert boot["estimate"] == pytest.approx(np.mean(dm), abs=1e-9)
    rd = [by_seed[("shared_bottom", seed, "behaviour", "rmse")] - by_seed[("single_task", seed, "behaviour", "rmse")]
          for seed in s["seeds"]]
    assert rmse_boot["seed_estimates"] == pytest.approx(rd, abs=1e-9)
    # Different seeds train different networks: the seeds' estimates are not copies of one run.
    assert len(set(boot["seed_estimates"])) == len(s["seeds"]), boot["seed_estimates"]
    # The interval pools the seeds: every seed's own estimate lies inside it (each sits in the middle of
    # its own resamples, which make up 1/SEEDS of the pool), as one seed's interval need not.
    for b in (boot, rmse_boot):
        assert b["ci_low"] <= min(b["seed_estimates"]) and max(b["seed_estimates"]) <= b["ci_high"], b
    # The first seed is section 2's run: its interest AUC is the holdout table's (scikit-learn's AUC there).
    assert by_seed[("shared_bottom", s["seeds"][0], "interest", "auc")] == pytest.approx(
        holdout[("interest", "auc")]["shared_bottom"], abs=1e-9)
    assert len(s["delta_m_folds"]) == s["cv_folds"]
    tidy = json.loads((fast_report / "05_evaluation" / "results.json").read_text())["tidy"]
    assert {r["protocol"] for r in tidy} >= {"per-user recent holdout", "full catalogue", "sampled 99", f"{s['cv_folds']}-fold CV"}
    for fig in ("cv_ci.png", "seed_intervals.png", "calibration.png"):
        assert (fast_report / "05_evaluation" / "figures" / fig).stat().st_size > 5_000
    if full_short:
        # A known gap, not a pass: with the fast preset's 2 epochs the personalised models may not
        # beat popularity over the full catalogue. Reported as an expected failure, so that it is seen.
        pytest.xfail(f"full catalogue: model below popularity, (model, popularity) = {full_short}")


def test_06_ablations(fast_report):
    s = _summary(fast_report, "06_ablations")
    models = {r["model"] for r in s["summary"]}
    assert {"reference", "reference+text"} <= models
    # Every λ of the grid ran (the equal point is the reference) and the front is non-empty.
    table = {r["model"]: r for r in s["lambda_table"]}
    assert len(table) >= len(s["lambda_grid"]) and any(r["pareto"] for r in table.values())
    assert all(0.0 <= r["item ndcg@10"] <= 1.0 for r in table.values())
    assert table["reference"]["kind"] == "equal weights"
    # The vertex that trains only the rating head leaves the interest head at chance.
    vertex = table["λ=(0.00,0.00,1.00)"]
    assert abs(vertex["interest auc"] - 0.5) < 0.25 and vertex["behaviour rmse"] < 1.2
    assert all(r["n"] == s["folds"] for r in s["lambda_tests"])
    # Below 5 folds no p-value is reported, in the tables or in the recorded results; from 5 on, each is.
    statistics = set(E.TEST_STATISTICS)
    assert {"p_t", "p_corrected", "p_holm", "p_wilcoxon"} <= statistics  # every p-value paired_tests gives
    assert s["lambda_tests"] and s["text_tests"]  # the fast preset runs no weighting strategy: that table is empty
    for key in ("lambda_tests", "weighting_tests", "architecture_tests", "text_tests"):
        if not s[key]:
            continue
        recorded = set().union(*(r.keys() for r in s[key]))
        assert {"model", "task", "metric", "n", "mean_diff"} <= recorded, key
        assert (recorded & statistics == set()) if s["folds"] < 5 else statistics <= recorded, key
    defined = [r for r in s["lambda_tests"] if r.get("t") is not None and r.get("p_t") is not None]
    assert bool(defined) == (s["folds"] >= 5)
    for r in defined:  # the two-sided tail of each test's own t statistic on n - 1 degrees
        assert r["p_t"] == pytest.approx(2 * stats.t.sf(abs(r["t"]), r["n"] - 1), rel=1e-6, abs=1e-12)
    assert {r["segment"] for r in s["text_tests"]} >= {"all", "warm"}
    assert {r["model"] for r in s["architectures"]} >= {"reference", "popularity"}
    for fig in ("lambda_pareto.png", "architectures_ci.png"):
        assert (fast_report / "06_ablations" / "figures" / fig).stat().st_size > 5_000


def test_07_article_claims(fast_report, fast_data):
    s = _summary(fast_report, "07_article_claims")
    preset, _ = fast_data
    n = preset["SEEDS"]
    verdicts = {r["claim"].split(" (")[0]: r for r in s["verdicts"]}
    assert len(verdicts) == 6
    # The multi-task and single-task models of the accuracy comparison stop early with the same patience.
    assert s["patience_by_run"] == {m: preset["PATIENCE"] for m in ("shared_bottom", "single_behaviour", "single_interest",
                                                                    "single_item")}
    assert all(r["verdict"] in ("supported", "refuted", "inconclusive") for r in verdicts.values())
    # Verdicts are generated from each claim's primary comparison by the stated rule, never typed in.
    from mtrec_study.study.claims import (ALL_SINGLES, ONE_SINGLE, SECONDARY_IN_FULL, claim_text, overfitting_verdict,
                                          ratio_comparison, verdict)

    for claim, key in (("accuracy", "accuracy_evidence"), ("cold_start", "cold_evidence"), ("text", "text_evidence"),
                       ("diversity", "diversity_evidence")):
        rows = s[key]
        assert rows and all(r["ci_low"] <= r["estimate"] <= r["ci_high"] or r["outcome"] == "undefined" for r in rows)
        row = verdicts[claim_text(claim).split(" (")[0]]
        primary = [r for r in rows if row["primary comparison (95% CI)"].startswith(r["comparison"] + ": ")]
        assert len(primary) == 1, claim
        assert verdict(primary[0]["outcome"]) == row["verdict"], claim
    # Section 2.1: the global time cutoff, a secondary comparison with one seed, split by known and new users.
    profiles = {r["split"]: r for r in s["split_profiles"]}
    assert profiles["global time cutoff"]["later training share"] == 0 < profiles["per-user recent"]["later training share"]
    future = pd.DataFrame(s["future_evidence"])
    assert set(future["segment"]) == {"all", "known user", "new user"} and future["comparison"].str.endswith("(1 seed)").all()
    by_seg = future.pivot_table(index="task", columns="segment", values="rows")
    assert (by_seg["known user"] + by_seg["new user"] == by_seg["all"]).all() and (by_seg > 0).all().all()
    # The accuracy claim's secondary rows: the per-user tasks besides interest, and the global cutoff's
    # all and known-user rows. With more than SECONDARY_IN_FULL, those with a difference are shown, the rest counted.
    accuracy_row = verdicts[claim_text("accuracy").split(" (")[0]]
    cell = accuracy_row["other comparisons (95% CI)"]
    secondary = [r for r in s["accuracy_evidence"] if not accuracy_row["primary comparison (95% CI)"].startswith(
        r["comparison"] + ": ")] + future[future["segment"].isin(["all", "known user"])].to_dict("records")
    assert len(secondary) > SECONDARY_IN_FULL
    for r in secondary:
        assert (f"{r['comparison']}: {r['estimate']:+.4f}" in cell) == (r["outcome"] != "no difference"), r["comparison"]
    n_none = sum(r["outcome"] == "no difference" for r in secondary)
    n_shown = len(secondary) - n_none
    counted = f"{n_none} more with no difference" if n_shown else f"{n_none} comparisons, all with no difference"
    assert (f"{counted} (07 shows each)" in cell) if n_none else "07 shows" not in cell
    assert {r["segment"] for r in s["cold_table"]} == {"new user", "new item", "both new"}
    # The claim is about new users: its verdict row reads new-user comparisons only (new items are in §3's table).
    cold_row = verdicts[claim_text("cold_start").split(" (")[0]]
    assert "new item" not in cold_row["other comparisons (95% CI)"] + cold_row["experiment"]
    assert cold_row["primary comparison (95% CI)"].startswith("new user, item, with text: ")
    assert all(n > 0 for n in s["cold_segments"].values())
    assert all(0.3 < r["single AUC"] < 1 for r in s["cold_table"])
    div = {r["model"]: r for r in s["diversity"]}
    assert set(div) == {"shared_bottom", "single_item"} and all(0 < r["coverage"] <= 1 for r in div.values())
    # Training time: one ratio per seed, recomputed from the recorded epoch times, then the one interval rule.
    slow_row = verdicts[claim_text("slow").split(" (")[0]]
    timing = pd.DataFrame(s["timing"])
    assert sorted(set(timing["seed"])) == s["seeds"]
    epochs = timing.pivot_table(index="seed", columns="model", values="mean epoch (s)")
    singles = [c for c in epochs.columns if c != "shared_bottom"]
    assert len(singles) == 3
    ratios = {ONE_SINGLE: epochs["shared_bottom"] / epochs[singles].mean(axis=1),
              ALL_SINGLES: epochs["shared_bottom"] / epochs[singles].sum(axis=1)}
    for name, want in ratios.items():
        assert [r[name] for r in s["time_ratios_by_seed"]] == pytest.approx(list(want)), name
    for recorded, (name, want) in zip(s["time_evidence"], ratios.items(), strict=True):
        expected = ratio_comparison(name, want)
        assert recorded["comparison"] == expected["comparison"] and recorded["outcome"] == expected["outcome"]
        assert [recorded[k] for k in ("estimate", "ci_low", "ci_high")] == pytest.approx(
            [expected[k] for k in ("estimate", "ci_low", "ci_high")], nan_ok=True)
        assert s["time_ratios"][name] == pytest.approx(1 + expected["estimate"])
    primary = s["time_evidence"][0]
    assert slow_row["primary comparison (95% CI)"].startswith(primary["comparison"] + ": ")
    assert f"({primary['outcome_reads']})" in slow_row["primary comparison (95% CI)"]
    assert slow_row["verdict"] == verdict(primary["outcome"])
    assert slow_row["training seeds"] == n and "own rule" not in slow_row["caveats"]
    # The measured overfitting claim: its verdict follows from the recorded numbers by its stated rule.
    assert {r["task"] for r in s["overfitting"]} == {"interest", "item", "behaviour"}
    plain = [r for r in s["overfitting"] if r["regularisation"] == "none"] or \
        [r for r in s["overfitting"] if r["regularisation"] == "dropout 0.1 (default)"]
    assert plain
    expected = overfitting_verdict([r["rise above best valid"] for r in plain], [r["valid loss"] for r in plain])[0]
    assert verdicts[claim_text("overfitting").split(" (")[0]]["verdict"] == expected
    assert (fast_report / "07_article_claims" / "figures" / "overfitting_curves.png").stat().st_size > 5_000
    # Every comparison behind an interval pools the preset's training seeds, and so does each verdict.
    assert n >= 2 and s["seeds"] == list(range(preset["SEED"], preset["SEED"] + n))
    for key in ("accuracy_evidence", "cold_evidence", "text_evidence", "diversity_evidence"):
        assert all(r["seeds"] == n and len(r["seed_estimates"]) == n for r in s[key]), key
        assert all(r["estimate"] == pytest.approx(np.mean(r["seed_estimates"])) for r in s[key]), key
    assert {r["training seeds"] for r in s["verdicts"]} == {n, "—"}
    _assert_shown_in_full(fast_report, "07_article_claims", s["verdicts"],
                          ["claim", "primary comparison (95% CI)", "other comparisons (95% CI)", "caveats"])
    assert (fast_report / "07_article_claims" / "figures" / "seed_intervals.png").stat().st_size > 5_000


def test_08_sharing_mechanisms(fast_report):
    s = _summary(fast_report, "08_sharing_mechanisms")
    sizes = s["synthetic_parameters"]
    assert max(sizes.values()) / min(sizes.values()) < 1.15  # the paper's models are about the same size
    degr = {r["model"]: r for r in s["synthetic_degradation"]}
    assert set(degr) == {"shared_bottom", "omoe", "mmoe"}
    assert all(r["n"] >= 2 for r in s["synthetic_summary"])
    assert {r["comparison"].split(" at ")[0] for r in s["synthetic_tests"]} == {
        "mmoe vs shared_bottom", "omoe vs shared_bottom", "mmoe vs omoe"}
    # One family of three comparisons: Holm's adjustment recomputed from the recorded p-values.
    from mtrec_study.evaluation import holm

    def p(value):  # results.json stores an undefined p-value (NaN) as null
        return np.nan if value is None else float(value)

    tests = s["synthetic_tests"]
    assert [p(r["p_holm"]) for r in tests] == pytest.approx(list(holm([p(r["p_t"]) for r in tests])), nan_ok=True)
    assert all(p(r["p_holm"]) >= p(r["p_t"]) for r in tests if r["p_t"] is not None)
    checks = {r["paper's finding"]: r["seen here?"] for r in s["paper_check"]}
    assert len(checks) == 3
    for r in tests:
        model = r["comparison"].split(" vs ")[0]
        if r["comparison"].startswith(("mmoe vs shared_bottom", "omoe vs shared_bottom")):
            expect = r["mean_diff"] < 0 and p(r["p_holm"]) < 0.05
            assert checks[f"{model} beats shared-bottom at low correlation"] == expect, r
    least = min(s["synthetic_degradation"], key=lambda r: r["growth_pct"])["model"]
    assert checks["MMoE degrades least as p falls"] == (least == "mmoe")
    assert all(r["interest_auc"] > 0.5 + AUC_MARGIN for r in s["experts"])
    for g in s["gates"]:
        assert 0 <= g["entropy"] <= g["uniform_entropy"] + 1e-6 and 0 < g["max_share"] <= 1
    assert s["gradient_conflict"] and all(-1 <= v <= 1 for r in s["gradient_conflict"] for k, v in r.items() if "~" in k)
    for fig in ("mmoe_synthetic.png", "gradient_conflict.png"):
        assert (fast_report / "08_sharing_mechanisms" / "figures" / fig).stat().st_size > 5_000


def test_10_scaling(fast_report):
    from mtrec_study.params import load_preset
    from mtrec_study.study.scaling import NETWORKS

    s = _summary(fast_report, "10_scaling")
    sizes = load_preset("fast")["SCALING_SIZES"]
    costs = pd.DataFrame(s["costs"])
    assert sorted(costs["interactions"].unique()) == sorted(sizes) and set(costs["network"]) == set(NETWORKS)
    assert (costs["epoch s"] > 0).all() and (costs["examples/s"] > 0).all()
    assert costs["peak GB"].between(0.2, 4).all()  # one TensorFlow process each, far below the data's size in memory
    rows = costs.groupby("interactions")["training rows"].first()
    assert rows.is_monotonic_increasing and rows.iloc[-1] > 5 * rows.iloc[0]
    assert {r["network"] for r in s["slopes"]} == set(NETWORKS)
    last = s["relative"][-1]
    assert last["multi-task / all three"] == pytest.approx(
        last["multi-task epoch s"] / last["three single-task epochs, s"])
    assert s["verdict"].startswith("per network, ")
    workers = {r["workers"]: r for r in s["two_workers"]}
    assert workers[2]["rows per replica and batch"] < 0.55 * workers[1]["rows per replica and batch"]
    assert s["two_worker_val_gap"] < 0.01  # the distribute test's tolerance
    assert (fast_report / "10_scaling" / "figures" / "scaling.png").stat().st_size > 5_000


def test_09_headline_results(fast_report, fast_data):
    from mtrec_study.study import published as H
    from mtrec_study.prepare import split_indices

    s = _summary(fast_report, "09_headline_results")
    results = s["results"]
    assert [(r["task"], r["metric"]) for r in results] == [(t["task"], t["metric"]) for t in H.TARGETS]
    _assert_shown_in_full(fast_report, "09_headline_results", results, ["published reference", "peer measured here", "met?"])
    # One setting per model: the search scores nothing, and the table of the multi-task network's
    # validation criteria says so instead of showing stale or made-up scores.
    assert s["mtl_search"] == [] and {r["model"] for r in s["tuning"]} >= {"mtl", "bpr"}
    nb = json.loads((fast_report / "09_headline_results" / "09_headline_results.ipynb").read_text())
    assert any("Nothing was scored: one setting per model." in "".join(o.get("text", ""))
               for c in nb["cells"] for o in c.get("outputs", []))
    # Every cell is generated: each row has a number for our model and a "met?" from the stated rule.
    for row, target in zip(results, H.TARGETS, strict=True):
        assert row["our best multi-task"] not in ("—", "") and row["met?"] != "not run"
        assert row["met?"].startswith(("yes", "no"))
        if target["target"] is not None and target["metric"] != "Δm%":
            est = float(row["our best multi-task"].split(" ")[0])
            ok = est >= target["target"] if target["higher"] else est <= target["target"]
            if target.get("beats"):  # and the paired difference to that baseline lies above 0
                paired = [d for d in s["ranking_differences"] if d["baseline"] == target["beats"]
                          and d["metric"] == target["metric"] and target["protocol"].startswith(
                              {"loo": "LOO", "random": "random"}[d["protocol"]])]
                assert len(paired) == 1, (target, s["ranking_differences"])
                ok = ok and paired[0]["ci_low"] > 0
            assert row["met?"].startswith("yes") == ok, (row, target)
        if target["metric"] == "Δm%":  # above 0 with the CI, not the estimate alone
            low = float(row["our best multi-task"].split("[")[1].split(",")[0])
            assert row["met?"].startswith("yes") == (low > 0), row
    # Every missed target shows what was tried, once per task and protocol: this build's search first,
    # then the benchmarks that tried other designs for it (the committed results files), all in full.
    missed: dict[str, list[str]] = {}
    for r in results:
        if not r["met?"].startswith("yes"):
            missed.setdefault(f"{r['task']}, {r['protocol']}", []).append(r["metric"])
    evidence = s["miss_evidence"]
    assert missed and list(dict.fromkeys(e["target"] for e in evidence)) == [f"{k}: {', '.join(v)}"
                                                                          for k, v in missed.items()]
    for target in {e["target"] for e in evidence}:
        assert [e["source"] for e in evidence if e["target"] == target][0] == "this build's validation search"
    assert all(any(e["source"] == "retrieval_variants.json" for e in evidence if e["target"] == target)
               for target in {e["target"] for e in evidence} if target.startswith("item, LOO"))
    _assert_shown_in_full(fast_report, "09_headline_results", evidence, ["what was tried", "test", "difference to BPR"])
    # Δm% counts the item ranking too: four terms. Each training seed's estimate is what that seed's
    # recorded values give, and the row's estimate is their mean over seeds.
    held = {(r["model"], r["task"], r["metric"]): r["value"] for r in s["holdout_values"]}
    assert ("mtl", "item", "ndcg@10") in held and ("single_item", "item", "ndcg@10") in held
    keys = [("interest", "auc"), ("item", "auc"), ("item", "ndcg@10"), ("behaviour", "rmse")]
    by_seed = {(r["model"], r["seed"], r["task"], r["metric"]): r["value"] for r in s["holdout_values_by_seed"]}
    per_seed = [E.delta_m({k: by_seed[("mtl", seed, *k)] for k in keys},
                          {k: by_seed[(f"single_{k[0]}", seed, *k)] for k in keys}) for seed in s["seeds"]]
    assert s["delta_m"]["seed_estimates"] == pytest.approx(per_seed, abs=1e-9)
    assert s["delta_m"]["estimate"] == pytest.approx(np.mean(per_seed), abs=1e-9)
    for (m, t, k), v in held.items():  # the table's values are the seeds' means
        assert v == pytest.approx(np.mean([by_seed[(m, seed, t, k)] for seed in s["seeds"]]), abs=1e-12)
    # One setting per model in the fast preset: nothing is searched, so no choice sits at an edge.
    assert s["grid_edges"] == []
    models = {r["model"] for r in s["rmse_tests"]}
    assert {"BaselineOnly (default)", "BaselineOnly (tuned)", "SVD (default)", "SVD (tuned)",
            "single_behaviour"} <= models
    assert all(r["n"] == s["cv_folds"] for r in s["rmse_tests"])  # fold by fold, paired
    # Fold by fold, every rating model beats the per-item mean of that fold's own training part.
    preset, inter = fast_data
    assert len(s["rmse_by_fold"]) == s["cv_folds"]
    for r in s["rmse_by_fold"]:
        idx = split_indices(inter, "kfold", seed=preset["SEED"], fold=int(r["fold"]), k=s["cv_folds"])
        base = item_mean_baseline(inter, idx)["rmse"]
        for m in r:
            if m != "fold":
                assert r[m] < base - RMSE_MARGIN, (r["fold"], m, r[m], base)
    assert {r["protocol"] for r in s["ranking"]} == {"loo", "random"}
    assert {r["model"] for r in s["ranking"]} == {"mtl", "single_item", "two_tower", "two_tower_item", "bpr", "ease",
                                                  "popularity"}
    # The item rows read the two-tower network, with its paired differences to BPR and EASE.
    summary = {(r["protocol"], r["model"], r["metric"]): r["estimate"] for r in s["ranking"]}
    labels = {"LOO + 99 sampled": "loo", "random 80/10/10, full ranking": "random"}
    for row in results:
        if row["task"] == "item":
            est = float(row["our best multi-task"].split(" ")[0])
            assert est == pytest.approx(summary[(labels[row["protocol"]], "two_tower", row["metric"])], abs=5e-5)
            assert "two_tower − bpr: " in row["peer measured here"], row
    assert {(d["protocol"], d["baseline"]) for d in s["ranking_differences"]} == {
        (p, b) for p in ("loo", "random") for b in ("bpr", "ease")}
    for row in results:  # the ranking rows name EASE among the baselines measured here
        if row["task"] == "item":
            assert "EASE 0." in row["peer measured here"] and "BPR 0." in row["peer measured here"], row
    assert {r["model"] for r in s["costs"]} >= {"mtl", "bpr", "logreg", "SVD (tuned)"}
    assert all(r["train_seconds"] >= 0 for r in s["costs"])
    # The fast preset's cap (EPOCHS = PATIENCE = 2) ends every network training before early stopping could:
    # each network's runs are all counted as cut; the other models have no epochs to count.
    for r in s["costs"]:
        if r["best epochs"] == "—":
            assert r["runs cut by the cap"] is None, r
        else:
            assert r["runs cut by the cap"] == r["runs"], r
    assert (fast_report / "09_headline_results" / "figures" / "rmse_folds.png").stat().st_size > 5_000
    # Sections 4 and 5 train every model once per training seed, and their intervals pool the seeds.
    n = preset["SEEDS"]
    assert n >= 2 and s["seeds"] == list(range(preset["SEED"], preset["SEED"] + n))
    pooled = [s["delta_m"], *s["interest_holdout"].values(), *s["ranking_differences"],
              *[r for r in s["ranking"] if r["model"] in ("two_tower", "bpr")]]
    assert all(d["n_seeds"] == n and len(d["seed_estimates"]) == n for d in pooled)
    assert all(r["n_seeds"] == 1 for r in s["ranking"] if r["model"] not in ("two_tower", "bpr"))
    # A second seed trains another network (its estimate differs); a seedless model is fitted once.
    assert all(len(set(d["seed_estimates"])) == n for d in s["ranking_differences"] if d["baseline"] == "ease")
    runs = {r["model"]: r["runs"] for r in s["costs"]}
    assert runs["two_tower"] == runs["bpr"] == 2 * n and runs["ease"] == runs["popularity"] == runs["two_tower_item"] == 2
    assert runs["mtl"] == s["cv_folds"] + n + 2 and runs["logreg"] == s["cv_folds"] + 1
    assert {r["training seeds"] for r in results} == {f"1 per fold ({s['cv_folds']} folds)", f"{n}, pooled",
                                                      f"multi-task {n}, pooled; single-task 1"}
    # The k-fold interest differences carry Nadeau and Bengio's correction.
    assert all(d["p_corrected"] is None or 0 <= d["p_corrected"] <= 1 for d in s["interest_cv"].values())
    assert (fast_report / "09_headline_results" / "figures" / "seed_intervals.png").stat().st_size > 5_000


def test_09_is_deterministic(fast_report, tmp_path, monkeypatch):
    """Two runs with the same seed and parameters give the same results table (on the CPU). The
    second trains every network afresh (no training cache), while the report's build may have
    reused networks other notebooks trained: a cache hit equals a fresh training."""
    from mtrec_study.config import NOTEBOOKS_DIR
    from mtrec_study.params import load_preset, notebook_parameters
    from mtrec_study.report.run import run_notebook
    from mtrec_study.config import NO_CACHE_ENV, TRAIN_CACHE_ENV

    monkeypatch.delenv(TRAIN_CACHE_ENV, raising=False)
    monkeypatch.setenv(NO_CACHE_ENV, "1")

    stem = "09_headline_results"
    declared = notebook_parameters(NOTEBOOKS_DIR / f"{stem}.ipynb")
    params = {k: v for k, v in load_preset("fast").items() if k in declared}
    run_notebook(NOTEBOOKS_DIR / f"{stem}.ipynb", tmp_path, params)
    again = json.loads((tmp_path / "results.json").read_text())["summary"]
    first = _summary(fast_report, stem)
    assert again["results"] == first["results"]
    assert again["rmse_by_fold"] == first["rmse_by_fold"] and again["ranking"] == first["ranking"]
