"""The weighting strategies' classes without a training run: what each creates, totals, logs and
reports. A Keras layer stands in for the trainer (it only has to own the strategy's weights)."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from mtrec_study.training import weighting as W

TASKS = ["interest", "item", "behaviour"]
REG = [False, False, True]
L = np.array([0.5, 2.0, 1.2], "float32")


def _setup(strategy):
    host = keras.layers.Layer()
    strategy.setup(host, TASKS, REG)
    return host


def test_fixed_defaults_to_ones_and_uses_given_lambdas():
    s = W.make_weighting("fixed")
    _setup(s)
    assert float(s.total(L)) == pytest.approx(float(L.sum()))
    np.testing.assert_array_equal(np.asarray(s.weights()), [1, 1, 1])
    assert s.config() == {"name": "fixed", "lambdas": None}
    s = W.make_weighting("fixed", lambdas=[0.5, 0.0, 2.0])
    _setup(s)
    assert float(s.total(L)) == pytest.approx(0.5 * 0.5 + 2.0 * 1.2)
    np.testing.assert_allclose(np.asarray(s.weights()), [0.5, 0.0, 2.0])
    assert s.config() == {"name": "fixed", "lambdas": [0.5, 0.0, 2.0]}
    np.testing.assert_array_equal(s.regression, [0, 0, 1])
    assert s.tasks == TASKS and not s.gradient_based
    with pytest.raises(ValueError, match="all λ are zero"):
        _setup(W.make_weighting("fixed", lambdas=[0, 0, 0]))


def test_uncertainty_owns_trainable_log_variances_from_zero():
    s = W.make_weighting("uncertainty")
    host = _setup(s)
    assert s.log_vars.trainable and tuple(s.log_vars.shape) == (3,)
    assert any(v is s.log_vars for v in host.trainable_weights)
    np.testing.assert_array_equal(np.asarray(s.log_vars), 0.0)
    # At s = 0: c_k L_k with c = 1/2 for the rating task.
    assert float(s.total(L)) == pytest.approx(0.5 + 2.0 + 0.5 * 1.2, rel=1e-6)
    s.log_vars.assign([0.2, -0.4, 0.7])
    by_hand = [math.exp(-0.2), math.exp(0.4), 0.5 * math.exp(-0.7)]
    np.testing.assert_allclose(np.asarray(s.weights()), by_hand, rtol=1e-6)
    assert float(s.total(L)) == pytest.approx(sum(w * x for w, x in zip(by_hand, L, strict=True)) + 0.25, rel=1e-6)
    assert s.config()["name"] == "uncertainty"


def test_dwa_starts_at_one_then_follows_the_loss_history():
    s = W.make_weighting("dwa", temperature=2.0)
    _setup(s)
    assert not s.w.trainable
    np.testing.assert_array_equal(np.asarray(s.weights()), 1.0)
    assert float(s.total(L)) == pytest.approx(float(L.sum()))
    s.on_epoch_end(0, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(np.asarray(s.weights()), 1.0)  # one epoch: no ratio yet
    s.on_epoch_end(1, [0.5, 1.0, 2.0])
    e = np.exp(np.array([0.5, 1.0, 2.0]) / 2.0)
    np.testing.assert_allclose(np.asarray(s.weights()), 3 * e / e.sum(), rtol=1e-6)
    assert float(s.total(L)) == pytest.approx(float((3 * e / e.sum() * L).sum()), rel=1e-6)
    assert s.config() == {"name": "dwa", "lambdas": None, "temperature": 2.0}
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="temperature must be positive"):
            W.make_weighting("dwa", temperature=bad)
        with pytest.raises(ValueError, match="temperature must be positive"):
            W.dwa_weights([[1.0], [1.0]], temperature=bad)


def test_gradnorm_state_and_validation():
    s = W.make_weighting("gradnorm", alpha=0.5, lr=0.1)
    _setup(s)
    assert s.gradient_based and not s.w.trainable and not s.initial.trainable
    np.testing.assert_array_equal(np.asarray(s.weights()), 1.0)
    np.testing.assert_array_equal(np.asarray(s.initial), 0.0)
    s.w.assign([0.5, 1.0, 1.5])
    assert float(s.total(L)) == pytest.approx(0.25 + 2.0 + 1.8, rel=1e-6)
    assert s.config() == {"name": "gradnorm", "lambdas": None, "alpha": 0.5, "lr": 0.1}
    assert W.make_weighting("gradnorm", alpha=0.0).alpha == 0.0  # alpha = 0 is allowed
    with pytest.raises(ValueError, match="alpha >= 0 and lr > 0"):
        W.make_weighting("gradnorm", alpha=-0.1)
    with pytest.raises(ValueError, match="alpha >= 0 and lr > 0"):
        W.make_weighting("gradnorm", lr=0.0)


def test_pcgrad_is_gradient_based_with_fixed_lambdas():
    s = W.make_weighting("pcgrad", lambdas=[1.0, 2.0, 0.5])
    _setup(s)
    assert s.gradient_based and s.name == "pcgrad"
    assert float(s.total(L)) == pytest.approx(0.5 + 4.0 + 0.6, rel=1e-6)


def test_gradnorm_step_by_hand():
    """One step: target_k = mean(w G) · (r_k / mean r)^α; w_k -= lr · sign(w_k G_k - target_k) · G_k."""
    w = np.array([1.0, 1.0], "float32")
    g = np.array([1.0, 3.0], "float32")
    r = np.array([1.0, 3.0], "float32")
    out = np.asarray(W.gradnorm_step(w, g, r, alpha=1.0, lr=0.1))
    # mean(wG) = 2; r / mean r = (0.5, 1.5): targets (1, 3); gaps (0, 0): no move, renormalised.
    np.testing.assert_allclose(out, [1.0, 1.0], rtol=1e-6)
    out = np.asarray(W.gradnorm_step(w, g, np.ones(2, "float32"), alpha=1.0, lr=0.1))
    # targets (2, 2): task 0 below (+), task 1 above (-): w = (1 + 0.1, 1 - 0.3) = (1.1, 0.7) → × 2 / 1.8.
    np.testing.assert_allclose(out, np.array([1.1, 0.7]) * 2 / 1.8, rtol=1e-5)
    # Weights never fall below 1e-3 before renormalising.
    out = np.asarray(W.gradnorm_step(w, np.array([1.0, 100.0], "float32"), np.ones(2, "float32"), alpha=1.0, lr=1.0))
    np.testing.assert_allclose(out, np.array([2.0, 1e-3]) * 2 / 2.001, rtol=1e-4)


def test_dwa_weights_edge_cases():
    assert W.dwa_weights([[1.0, 2.0]]).tolist() == [1.0, 1.0]
    assert W.dwa_weights([]).tolist() == []
    # A zero loss two epochs back does not divide by zero.
    np.testing.assert_allclose(W.dwa_weights([[0.0, 1.0], [1.0, 1.0]]), [2.0, 0.0], atol=1e-9)


def test_strategy_weights_are_named_shaped_and_typed():
    """The variables' names appear in logs and saved trainers; their shapes and dtypes are fixed."""
    u, d, g = (W.make_weighting(n) for n in ("uncertainty", "dwa", "gradnorm"))
    for s in (u, d, g):
        _setup(s)
    assert u.log_vars.name == "log_vars" and u.log_vars.trainable is True
    assert d.w.name == "dwa_weights" and d.w.trainable is False
    assert g.w.name == "gradnorm_weights" and g.w.trainable is False
    assert g.initial.name == "gradnorm_l0" and g.initial.trainable is False and tuple(g.initial.shape) == (3,)
    for s in (u, d, g):
        np.testing.assert_array_equal(s.regression, [0, 0, 1])
        assert s.lam.dtype == np.float32
    assert W.make_weighting("fixed", lambdas=[1, 0, 2]).lambdas.dtype == np.float32
    assert W.check_lambdas([1, 0, 2], TASKS).dtype == np.float64


def test_defaults_and_lambdas_reach_every_strategy():
    assert W.make_weighting("dwa").temperature == 2.0
    g = W.make_weighting("gradnorm")
    assert (g.alpha, g.lr) == (1.5, 0.025)
    assert W.make_weighting("dwa", temperature=0.5).temperature == 0.5  # below 1 is allowed
    assert W.dwa_weights([[1.0, 1.0], [0.5, 1.0]], temperature=0.5).sum() == pytest.approx(2.0)
    for name in ("dwa", "gradnorm", "pcgrad", "uncertainty"):
        s = W.make_weighting(name, lambdas=[1.0, 2.0, 3.0])
        assert s.config()["lambdas"] == [1.0, 2.0, 3.0], name
    hist = [[1.0, 1.0], [0.5, 1.0]]
    np.testing.assert_allclose(W.dwa_weights(hist), W.dwa_weights(hist, temperature=2.0))
    # A strategy's own temperature is the one used at the end of an epoch.
    s = W.make_weighting("dwa", temperature=0.5)
    _setup(s)
    for epoch, losses in enumerate(([1.0, 1.0, 1.0], [0.5, 1.0, 2.0])):
        s.on_epoch_end(epoch, losses)
    np.testing.assert_allclose(np.asarray(s.weights()), W.dwa_weights([[1.0, 1.0, 1.0], [0.5, 1.0, 2.0]], 0.5),
                               rtol=1e-6)


def test_dwa_uses_the_last_two_epochs_of_a_longer_history():
    e = np.exp(np.array([2.0, 1.0]) / 2.0)
    np.testing.assert_allclose(W.dwa_weights([[9.0, 1.0], [1.0, 1.0], [2.0, 1.0]]), 2 * e / e.sum())


def test_pcgrad_edge_cases_by_hand():
    # Three parameters, two tasks: the projection runs over tasks, not parameters.
    g = np.array([[1.0, 0.0, 0.0], [-1.0, 1.0, 0.0]], "float32")
    p1 = g[0] - (g[0] @ g[1]) / (g[1] @ g[1]) * g[1]
    p2 = g[1] - (g[1] @ g[0]) / (g[0] @ g[0]) * g[0]
    np.testing.assert_allclose(np.asarray(W.pcgrad(g)), p1 + p2, rtol=1e-6)
    # A small positive dot product is agreement: nothing is projected.
    a = np.array([[1.0, 0.0], [0.5, 1.0]], "float32")
    np.testing.assert_allclose(np.asarray(W.pcgrad(a)), a.sum(axis=0), rtol=1e-6)
    # Small conflicting gradients are projected exactly (no floor on |g_j|² but 1e-20).
    s = np.array([[0.1, 0.0], [-0.1, 0.1]], "float32")
    q1 = s[0] - (s[0] @ s[1]) / (s[1] @ s[1]) * s[1]
    q2 = s[1] - (s[1] @ s[0]) / (s[0] @ s[0]) * s[0]
    np.testing.assert_allclose(np.asarray(W.pcgrad(s)), q1 + q2, rtol=1e-5)
