"""The loss and weighting math against values worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from keras import ops

from mtrec_study.training import losses, weighting


def test_masked_loss_averages_over_labelled_rows_only():
    y = np.array([1.0, 0.0, 1.0, 0.0], "float32")
    p = np.array([0.9, 0.2, 0.5, 0.99], "float32")
    m = np.array([1, 1, 0, 0], "float32")
    got = float(losses.task_loss("binary", y, p, m))
    assert got == pytest.approx((-math.log(0.9) - math.log(0.8)) / 2, rel=1e-5)
    r = float(losses.task_loss("regression", np.array([4.0, 2.0]), np.array([3.0, 2.0]), np.array([1.0, 0.0])))
    assert r == pytest.approx(1.0)


def test_batch_without_labels_contributes_exactly_zero():
    y = np.array([1.0, 0.0], "float32")
    p = np.array([0.0, 1.0], "float32")  # would be log(0) if not masked and clipped
    for kind in ("binary", "regression"):
        v = float(losses.task_loss(kind, y, p, np.zeros(2, "float32")))
        assert v == 0.0 and not math.isnan(v)
    one = float(losses.task_loss("binary", y, np.array([0.5, 0.5], "float32"), np.array([0, 1], "float32")))
    assert one == pytest.approx(math.log(2), rel=1e-5)
    with pytest.raises(ValueError, match="unknown task type"):
        losses.task_loss("ordinal", y, p, y)


def test_dwa_weights_from_a_loss_history():
    hist = [[1.0, 1.0], [0.5, 1.0]]  # task 0 halved, task 1 flat: r = (0.5, 1.0)
    w = weighting.dwa_weights(hist, temperature=2.0)
    e0, e1 = math.exp(0.25), math.exp(0.5)
    assert w == pytest.approx([2 * e0 / (e0 + e1), 2 * e1 / (e0 + e1)])
    assert weighting.dwa_weights(hist[:1]) == pytest.approx([1.0, 1.0])
    assert weighting.dwa_weights(hist, temperature=1e6) == pytest.approx([1.0, 1.0], abs=1e-5)


def test_pcgrad_projects_conflicts_and_keeps_agreement():
    g1, g2 = np.array([1.0, 0.0]), np.array([-1.0, 1.0])  # conflicting: dot = -1
    total = np.asarray(weighting.pcgrad(np.stack([g1, g2]).astype("float32")))
    p1 = g1 - (g1 @ g2) / (g2 @ g2) * g2  # (0.5, 0.5), orthogonal to g2
    p2 = g2 - (g2 @ g1) / (g1 @ g1) * g1  # (0, 1), orthogonal to g1
    assert p1 @ g2 == pytest.approx(0.0) and p2 @ g1 == pytest.approx(0.0)
    assert total == pytest.approx(p1 + p2)
    a, b = np.array([1.0, 2.0]), np.array([2.0, 1.0])  # agreeing: unchanged
    assert np.asarray(weighting.pcgrad(np.stack([a, b]).astype("float32"))) == pytest.approx(a + b)


def test_uncertainty_weighting_moves_toward_inverse_loss_scale():
    reg = np.array([0.0, 1.0], "float32")  # task 0 classification, task 1 regression
    s = np.array([0.0, 0.0], "float32")
    L = np.array([0.5, 2.0], "float32")
    assert float(weighting.uncertainty_total(L, s, reg)) == pytest.approx(0.5 + 0.5 * 2.0)
    # Minimise over s by gradient descent: optimum s_k = log(2 c_k L_k), weight c_k e^{-s_k} = 1/(2 L_k).
    for _ in range(2000):
        c = 1.0 - 0.5 * reg
        grad = -c * np.exp(-s) * L + 0.5
        s = (s - 0.1 * grad).astype("float32")
    w = np.asarray(weighting.uncertainty_weights(s, reg))
    assert w == pytest.approx(1.0 / (2.0 * L), rel=1e-3)
    assert w[0] / w[1] == pytest.approx(L[1] / L[0], rel=1e-3)


def test_gradnorm_equalises_gradient_norms_on_a_toy():
    w = np.ones(2, "float32")
    norms = np.array([1.0, 3.0], "float32")  # task 1's gradient is 3x larger
    ratios = np.ones(2, "float32")  # equal training rates: target is equal norms
    gaps = []
    for _ in range(1500):  # the L1 objective's sign step oscillates within about lr * norm
        w = np.asarray(weighting.gradnorm_step(w, norms, ratios, alpha=1.5, lr=0.002))
        gaps.append(abs(w[0] * norms[0] - w[1] * norms[1]))
    assert w.sum() == pytest.approx(2.0)
    assert gaps[-1] < 0.05 and gaps[-1] < gaps[0] / 20
    assert w[0] == pytest.approx(1.5, abs=0.02) and w[1] == pytest.approx(0.5, abs=0.02)


def test_lambda_and_name_validation():
    tasks = ["interest", "item", "behaviour"]
    with pytest.raises(ValueError, match="all λ are zero"):
        weighting.check_lambdas([0, 0, 0], tasks)
    with pytest.raises(ValueError, match="non-negative"):
        weighting.check_lambdas([1, -0.5, 1], tasks)
    with pytest.raises(ValueError, match="one λ per task"):
        weighting.check_lambdas([1, 1], tasks)
    with pytest.raises(ValueError, match="valid: fixed, uncertainty, gradnorm, dwa, pcgrad"):
        weighting.make_weighting("softmax")
    assert float(ops.sum(weighting.make_weighting("fixed").lambdas is None)) == 1.0
