"""The float64 reference proves itself: finite differences, stability, the definitions."""

from __future__ import annotations

import numpy as np
import pytest

from bench.workload.models import softmax as L


def _problem(seed=0, B=7, n_in=12, n_out=4):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((B, n_in)), rng.integers(0, n_out, B),
            rng.standard_normal((n_in, n_out)), rng.standard_normal(n_out))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("l1, l2", [(0.0, 0.0), (1e-2, 0.0), (0.0, 3e-2), (2e-2, 5e-2)])
def test_gradient_matches_central_differences(seed, l1, l2):
    x, y, W, b = _problem(seed)
    gW, gb = L.gradient(x, y, W, b, l1, l2)
    h = 1e-6
    num_W = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        Wp, Wm = W.copy(), W.copy()
        Wp[idx] += h
        Wm[idx] -= h
        num_W[idx] = (L.cost(x, y, Wp, b, l1, l2) - L.cost(x, y, Wm, b, l1, l2)) / (2 * h)
    num_b = np.array([(L.cost(x, y, W, b + h * e, l1, l2) - L.cost(x, y, W, b - h * e, l1, l2))
                      / (2 * h) for e in np.eye(len(b))])
    np.testing.assert_allclose(gW, num_W, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gb, num_b, rtol=1e-6, atol=1e-8)


def test_softmax_is_stable_for_large_logits():
    z = np.array([[1000.0, 999.0, -1000.0], [-1e4, -1e4, -1e4]])
    p = L.softmax(z)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[0, :2], [1 / (1 + np.exp(-1)), np.exp(-1) / (1 + np.exp(-1))])
    np.testing.assert_allclose(p[1], 1 / 3)
    x = np.array([[1.0]])
    nll = L.negative_log_likelihood(x, np.array([1]), np.array([[800.0, 0.0]]), np.zeros(2))
    assert nll == pytest.approx(800.0)


def test_definitions():
    x, y, W, b = _problem(1)
    logits = x @ W + b
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert L.negative_log_likelihood(x, y, W, b) == pytest.approx(
        -np.mean(np.log(p[np.arange(len(y)), y])))
    assert L.penalty(W, 0.1, 0.2) == pytest.approx(0.1 * np.abs(W).sum() + 0.2 * (W**2).sum())
    assert L.error(x, y, W, b) == pytest.approx(np.mean(p.argmax(1) != y))
    # the penalty is on W only: the bias gradient has no penalty term
    _, gb0 = L.gradient(x, y, W, b)
    _, gb1 = L.gradient(x, y, W, b, 0.5, 0.5)
    np.testing.assert_array_equal(gb0, gb1)


def test_reference_step_and_init():
    x, y, W, b = _problem(2)
    W1, b1 = L.reference_step(x, y, W, b, 0.1, 0.01, 0.02)
    gW, gb = L.gradient(x, y, W, b, 0.01, 0.02)
    np.testing.assert_allclose(W1, W - 0.1 * gW)
    np.testing.assert_allclose(b1, b - 0.1 * gb)
    W0, b0 = L.init_params()
    assert W0.shape == (784, 10) and not W0.any() and not b0.any()
    Wr, _ = L.init_params("random", seed=3)
    np.testing.assert_array_equal(Wr, L.init_params("random", seed=3)[0])
    assert 0.005 < Wr.std() < 0.015
    with pytest.raises(ValueError, match="'init' parameter must be one of"):
        L.init_params("ones")
