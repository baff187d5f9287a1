"""The exact gradient noise scale of softmax regression against brute force and Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest

from bench.workload.models import softmax as L
from bench.workload.noise_scale import (
    expected_minibatch_sq_norm,
    noise_scale,
    per_example_sq_norms,
)


def _problem(n: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, L.N_IN))
    y = rng.integers(0, L.N_OUT, n)
    W = rng.normal(0, 0.05, (L.N_IN, L.N_OUT))
    b = rng.normal(0, 0.1, L.N_OUT)
    return x, y, W, b


def _per_example_gradients(x, y, W, b) -> np.ndarray:
    """Brute force: the float64 reference gradient of each example alone, flattened (W, b)."""
    return np.stack([np.concatenate([gW.ravel(), gb])
                     for gW, gb in (L.gradient(x[i:i + 1], y[i:i + 1], W, b)
                                    for i in range(len(y)))])


def test_per_example_norm_closed_form_matches_brute_force():
    x, y, W, b = _problem()
    brute = np.square(_per_example_gradients(x, y, W, b)).sum(axis=1)
    np.testing.assert_allclose(per_example_sq_norms(x, y, W, b), brute, rtol=1e-12)


@pytest.mark.parametrize("chunk", [7, 5000])
def test_noise_scale_matches_brute_force(chunk):
    x, y, W, b = _problem(n=50, seed=1)
    g = _per_example_gradients(x, y, W, b)
    G = g.mean(axis=0)
    trace = np.square(g - G).sum(axis=1).mean()           # population covariance, 1/N
    ns = noise_scale(x, y, W, b, chunk=chunk)
    assert ns.n == 50
    np.testing.assert_allclose(ns.grad_sq_norm, G @ G, rtol=1e-10)
    np.testing.assert_allclose(ns.trace_cov, trace, rtol=1e-10)
    np.testing.assert_allclose(ns.b_simple, trace / (G @ G), rtol=1e-10)


def test_finite_population_form_limits_and_errors():
    assert expected_minibatch_sq_norm(2.0, 6.0, 100, 100) == pytest.approx(2.0)   # B = N
    assert expected_minibatch_sq_norm(2.0, 6.0, 100, 1) == pytest.approx(8.0)     # B = 1
    iid = 2.0 + 6.0 / 10
    assert expected_minibatch_sq_norm(2.0, 6.0, 10**9, 10) == pytest.approx(iid)
    with pytest.raises(ValueError, match=r"'batch_size'.*\[1, n=100\]"):
        expected_minibatch_sq_norm(2.0, 6.0, 100, 101)
    with pytest.raises(ValueError, match="as many rows of x as labels"):
        noise_scale(np.zeros((3, L.N_IN)), np.zeros(2, int), np.zeros((L.N_IN, 10)),
                    np.zeros(10))


@pytest.mark.realdata
@pytest.mark.parametrize("B", [4, 40, 300])
def test_finite_population_form_matches_monte_carlo_over_real_minibatches(real_mnist, B):
    """E||G_B||^2 over minibatches drawn without replacement from N real examples (at the
    parameters after a few full-batch steps) against the formula; at B = N/2 the i.i.d. form
    |G|^2 + tr S / B would be off by a factor (N - 1)/(N - B) ~ 2 in the noise term."""
    N, draws = 600, 4000
    x = real_mnist.train.x[:N].astype(np.float64)
    y = real_mnist.train.y[:N]
    W, b = L.init_params("zeros")
    for _ in range(5):
        W, b = L.reference_step(x, y, W, b, lr=0.5)
    g = _per_example_gradients(x, y, W, b)
    ns = noise_scale(x, y, W, b)
    rng = np.random.default_rng(0)
    idx = np.stack([rng.choice(N, B, replace=False) for _ in range(draws)])
    gram = g @ g.T                   # ||mean_{i in S} g_i||^2 = sum_{i,j in S} <g_i, g_j> / B^2
    sq = np.array([gram[np.ix_(i, i)].sum() / B**2 for i in idx])
    expected = ns.expected_minibatch_sq_norm(B)
    se = sq.std(ddof=1) / np.sqrt(draws)
    assert abs(sq.mean() - expected) < 4 * se, (sq.mean(), expected, se)
    iid = ns.grad_sq_norm + ns.trace_cov / B
    if B == 300:
        assert abs(sq.mean() - iid) > 10 * se   # the finite-population factor matters here
