"""The exact gradient noise scale of softmax regression against brute force and Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest

from bench.workload.models import softmax as L
from bench.workload.noise_scale import (
    b_noise,
    expected_minibatch_sq_norm,
    hessian_vector_product,
    noise_along,
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


def _small_problem(n: int = 40, d: int = 6, k: int = 3, seed: int = 2):
    """40 examples, 6 features, 3 classes, parameters away from zero (a curved point)."""
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 1, (n, d)), rng.integers(0, k, n), rng.normal(0, 0.5, (d, k)),
            rng.normal(0, 0.3, k))


def _fd_hessian(x, y, W, b, l2: float, h: float = 1e-5) -> np.ndarray:
    """Central differences of the float64 reference gradient: H over (W flattened, b)."""
    theta = np.concatenate([W.ravel(), b])

    def grad(t):
        gW, gb = L.gradient(x, y, t[:W.size].reshape(W.shape), t[W.size:], l2=l2)
        return np.concatenate([gW.ravel(), gb])

    H = np.stack([(grad(theta + h * e) - grad(theta - h * e)) / (2 * h)
                  for e in np.eye(theta.size)], axis=1)
    return (H + H.T) / 2


@pytest.mark.parametrize("l2", [0.0, 0.05])
def test_hessian_vector_product_matches_finite_differences(l2):
    x, y, W, b = _small_problem()
    H = _fd_hessian(x, y, W, b, l2)
    V = np.random.default_rng(3).normal(size=W.size + b.size)
    hW, hb = hessian_vector_product(x, W, b, V[:W.size].reshape(W.shape), V[W.size:], l2=l2)
    np.testing.assert_allclose(np.concatenate([hW.ravel(), hb]), H @ V, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize(("l2", "chunk"), [(0.0, 7), (0.0, 2048), (0.05, 9)])
def test_b_noise_matches_finite_difference_hessian_and_explicit_covariance(l2, chunk):
    x, y, W, b = _small_problem()
    H = _fd_hessian(x, y, W, b, l2)
    g = np.stack([np.concatenate([gW.ravel(), gb]) for gW, gb in
                  (L.gradient(x[i:i + 1], y[i:i + 1], W, b, l2=l2) for i in range(len(y)))])
    G = g.mean(axis=0)
    cov = (g - G).T @ (g - G) / len(y)                     # population covariance, 1/N
    bn = b_noise(x, y, W, b, l2=l2, chunk=chunk)
    np.testing.assert_allclose(bn.grad_hess_grad, G @ H @ G, rtol=1e-7)
    np.testing.assert_allclose(bn.trace_hess_cov, np.trace(H @ cov), rtol=1e-7)
    np.testing.assert_allclose(bn.b_noise, np.trace(H @ cov) / (G @ H @ G), rtol=1e-7)
    assert (bn.n, bn.l2) == (40, l2)


def test_b_noise_equals_b_simple_where_the_hessian_is_isotropic():
    """x = +-sqrt(D) e_k (mean x~ x~^T = I) at W = b = 0 (p uniform, A = (I - 11^T/K)/K):
    every gradient has columns summing to zero, where H acts as I / K, so
    G^T H G = |G|^2 / K, tr(H S) = tr S / K and B_noise = B_simple."""
    d, k = 5, 4
    x = np.sqrt(d) * np.concatenate([np.eye(d), -np.eye(d)])
    y = np.random.default_rng(4).integers(0, k, 2 * d)
    W, b = np.zeros((d, k)), np.zeros(k)
    bn, ns = b_noise(x, y, W, b), noise_scale(x, y, W, b)
    np.testing.assert_allclose(bn.grad_hess_grad, ns.grad_sq_norm / k, rtol=1e-12)
    np.testing.assert_allclose(bn.trace_hess_cov, ns.trace_cov / k, rtol=1e-12)
    np.testing.assert_allclose(bn.b_noise, ns.b_simple, rtol=1e-12)


def test_b_noise_of_one_example_has_no_noise_and_rejects_bad_input():
    x, y, W, b = _small_problem(n=1)
    assert b_noise(x, y, W, b).trace_hess_cov == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="as many rows of x as labels"):
        b_noise(x, np.zeros(2, int), W, b)
    with pytest.raises(ValueError, match=r"'l2' parameter of b_noise must be a float >= 0"):
        b_noise(x, y, W, b, l2=-1.0)
    with pytest.raises(ValueError, match=r"'chunk' parameter of b_noise"):
        b_noise(x, y, W, b, chunk=0)


def test_noise_along_a_trajectory_is_both_scales_at_each_checkpoint():
    """Full-batch GD on the small problem: every checkpoint carries B_simple and B_noise of its
    own parameters, in order, and the gradient shrinks along the run."""
    x, y, W, b = _small_problem()
    trajectory = []
    for step in range(0, 30, 10):
        trajectory.append((step, L.error(x, y, W, b), W, b))
        for _ in range(10):
            W, b = L.reference_step(x, y, W, b, lr=0.5)
    points = noise_along(trajectory, x, y, chunk=16, group=2)
    assert [p.step for p in points] == [0, 10, 20]
    for p, (_, err, Wc, bc) in zip(points, trajectory, strict=True):
        assert p.valid_error == err
        assert p.b_simple == pytest.approx(noise_scale(x, y, Wc, bc).b_simple, rel=1e-12)
        assert p.b_noise == pytest.approx(b_noise(x, y, Wc, bc).b_noise, rel=1e-12)
    assert points[0].grad_sq_norm > points[-1].grad_sq_norm


@pytest.mark.realdata
def test_b_noise_matches_one_hessian_vector_product_per_example_on_real_data(real_mnist):
    """At MNIST's 784 x 10, after a few GD steps: tr(H S) as (1/N) sum_j g_j^T H g_j - G^T H G
    with each H g_j by ``hessian_vector_product`` (N passes) equals the blocked Gram pairs."""
    N = 300
    x = real_mnist.train.x[:N].astype(np.float64)
    y = real_mnist.train.y[:N]
    W, b = L.init_params("zeros")
    for _ in range(5):
        W, b = L.reference_step(x, y, W, b, lr=0.5)
    gHg = []
    for j in range(N):
        gW, gb = L.gradient(x[j:j + 1], y[j:j + 1], W, b)
        hW, hb = hessian_vector_product(x, W, b, gW, gb)
        gHg.append(np.vdot(gW, hW) + gb @ hb)
    GW, Gb = L.gradient(x, y, W, b)
    hW, hb = hessian_vector_product(x, W, b, GW, Gb)
    GHG = np.vdot(GW, hW) + Gb @ hb
    bn = b_noise(x, y, W, b, chunk=128)
    np.testing.assert_allclose(bn.grad_hess_grad, GHG, rtol=1e-10)
    np.testing.assert_allclose(bn.trace_hess_cov, np.mean(gHg) - GHG, rtol=1e-10)
