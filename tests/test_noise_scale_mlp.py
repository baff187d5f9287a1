"""The MLP's exact noise scale (per-example gradients through torch.func) against a loop of
per-example autograd gradients, and against softmax regression's closed form."""

from __future__ import annotations

import numpy as np
import pytest

from bench.workload.noise_scale import noise_scale

torch = pytest.importorskip("torch", reason="mlp_noise_scale needs torch: "
                                            "pip install 'gdbench[torch]'")

from bench.workload.noise_scale_mlp import mlp_noise_scale  # noqa: E402


def _problem(n: int = 37, d: int = 6, hidden: int = 5, k: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = rng.integers(0, k, n)
    params = {"W1": rng.normal(0, 0.5, (d, hidden)), "b1": rng.normal(0, 0.1, hidden),
              "W2": rng.normal(0, 0.5, (hidden, k)), "b2": rng.normal(0, 0.1, k)}
    return x, y, params


def _autograd_loop(x, y, params) -> tuple[float, float]:
    """(|G|^2, tr S) from each example's gradient alone, by torch.autograd in float64."""
    p = {name: torch.tensor(v, dtype=torch.float64, requires_grad=True)
         for name, v in params.items()}
    grads = []
    for i in range(len(y)):
        h = torch.tanh(torch.tensor(x[i], dtype=torch.float64) @ p["W1"] + p["b1"])
        loss = -torch.log_softmax(h @ p["W2"] + p["b2"], dim=-1)[int(y[i])]
        grads.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(
            p.values()))]).numpy())
    g = np.stack(grads)
    G = g.mean(axis=0)
    return float(G @ G), float(np.mean(np.sum(np.square(g - G), axis=1)))


@pytest.mark.parametrize("chunk", [1, 8, 1000])
def test_mlp_noise_scale_equals_a_loop_of_per_example_autograd_gradients(chunk):
    x, y, params = _problem()
    grad_sq, trace = _autograd_loop(x, y, params)
    ns = mlp_noise_scale(x, y, params, chunk=chunk)
    assert ns.n == len(y)
    np.testing.assert_allclose([ns.grad_sq_norm, ns.trace_cov], [grad_sq, trace], rtol=1e-10)
    np.testing.assert_allclose(ns.b_simple, trace / grad_sq, rtol=1e-10)


def test_without_its_hidden_layer_it_is_softmax_regressions_closed_form():
    rng = np.random.default_rng(3)
    x = rng.random((50, 784))
    y = rng.integers(0, 10, 50)
    W, b = rng.normal(0, 0.05, (784, 10)), rng.normal(0, 0.1, 10)
    ns = mlp_noise_scale(x, y, {"W1": W, "b1": b}, chunk=16)
    ref = noise_scale(x, y, W, b)
    np.testing.assert_allclose([ns.grad_sq_norm, ns.trace_cov, ns.b_simple],
                               [ref.grad_sq_norm, ref.trace_cov, ref.b_simple], rtol=1e-10)


@pytest.mark.parametrize("params, match", [
    ({"W1": np.zeros((2, 2)), "b2": np.zeros(2)}, "W1, b1, ..., Wk, bk"),
    ({}, "W1, b1, ..., Wk, bk"),
])
def test_badly_named_parameters_are_refused(params, match):
    with pytest.raises(ValueError, match=match):
        mlp_noise_scale(np.zeros((3, 2)), np.zeros(3, int), params)


def test_mismatched_rows_and_a_bad_chunk_are_refused():
    x, y, params = _problem()
    with pytest.raises(ValueError, match="as many rows"):
        mlp_noise_scale(x[:3], y, params)
    with pytest.raises(ValueError, match="'chunk'"):
        mlp_noise_scale(x, y, params, chunk=0)


def test_without_torch_the_error_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    x, y, params = _problem()
    with pytest.raises(ImportError, match=r"gdbench\[torch\]"):
        mlp_noise_scale(x, y, params)
