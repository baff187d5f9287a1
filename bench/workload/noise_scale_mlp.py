"""The exact gradient noise scale of the tutorial's MLP, from per-example gradients (float64).

Each example's gradient ``g_i`` of the mean-NLL loss ``l_i = -log softmax(z_i)_{y_i}`` comes
from ``torch.func`` (``vmap(grad(l))``: one batched backward pass per chunk, no Python loop over
examples), taken with respect to every layer's output (``delta_{l,i}``, one vector per layer)
rather than its weights: a dense layer's weight gradient for one example is the outer product
``a_{l-1,i} delta_{l,i}^T`` of its input and that vector, so, exactly and without forming it,

    ||g_i||^2 = sum_l (||a_{l-1,i}||^2 + 1) ||delta_{l,i}||^2       (weights and bias)
    G         = (1/N) sum_i g_i  = (1/N) [A_{l-1}^T Delta_l ; 1^T Delta_l]  per layer
    tr S      = (1/N) sum_i ||g_i||^2 - |G|^2
    B_simple  = tr S / |G|^2                                         (examples)

over all N rows, as ``bench.workload.noise_scale`` defines them for softmax regression (the same
``NoiseScale``; unregularised, as there; that module's closed form is the case of one layer).
The network is read from the parameter names: layers ``W1, b1, ..., Wk, bk`` with tanh after
every layer but the last, so the tutorial's MLP is ``{W1, b1, W2, b2}`` and ``{W1, b1}`` alone
is softmax regression.

Cost: about three forward passes per example in float64; ``chunk`` rows of activations at a
time. MNIST's 50,000 rows took 7.7 s on the shared 2-core AMD EPYC at load 7.5 (one thread).
PyTorch is optional (``pip install 'gdbench[torch]'``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.workload.noise_scale import NoiseScale, checked_rows

__all__ = ["TORCH_EXTRA", "layer_count", "mlp_noise_scale"]

#: How to install what this module needs.
TORCH_EXTRA = "pip install 'gdbench[torch]'"


def layer_count(params: dict[str, Any]) -> int:
    """The k of parameters named ``W1, b1, ..., Wk, bk`` (a ValueError naming what is wrong
    otherwise)."""
    k = sum(1 for name in params if name.startswith("W"))
    expected = {f"{p}{i}" for i in range(1, k + 1) for p in "Wb"}
    if k == 0 or set(params) != expected:
        raise ValueError(f"The 'params' of mlp_noise_scale must be named W1, b1, ..., Wk, bk "
                         f"(the MLP: W1, b1, W2, b2). Got {sorted(params)!r} instead.")
    return k


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise ImportError(f"mlp_noise_scale needs PyTorch (torch.func), which is not "
                          f"installed: {TORCH_EXTRA}") from exc
    return torch


def mlp_noise_scale(x: np.ndarray, y: np.ndarray, params: dict[str, Any],
                    chunk: int = 5000) -> NoiseScale:
    """|G|^2, tr S and B_simple of the mean NLL over all rows of (x, y) at ``params``
    (``W1, b1, ..., Wk, bk``; tanh between layers), exactly, in float64, in chunks of
    ``chunk`` rows (per-example gradients by ``torch.func.vmap(grad(...))``, see above)."""
    n = checked_rows("mlp_noise_scale", x, y, chunk)
    k = layer_count(params)
    torch = _torch()
    from torch.func import grad, vmap

    p64 = {name: torch.as_tensor(np.asarray(v, np.float64)) for name, v in params.items()}
    widths = [p64[f"b{i}"].shape[0] for i in range(1, k + 1)]

    def loss(eps: list[Any], xi: Any, yi: Any) -> tuple[Any, list[Any]]:
        """Example i's NLL with ``eps_l`` added to layer l's output (zero: its gradient is
        delta_l), and the inputs a_{l-1} of every layer."""
        inputs, a = [], xi
        for i in range(1, k + 1):
            inputs.append(a)
            a = a @ p64[f"W{i}"] + p64[f"b{i}"] + eps[i - 1]
            if i < k:
                a = torch.tanh(a)
        nll = -torch.log_softmax(a, dim=-1).gather(-1, yi.unsqueeze(-1)).squeeze(-1)
        return nll, inputs

    per_example = vmap(grad(loss, has_aux=True), in_dims=(None, 0, 0))
    zeros = [torch.zeros(w, dtype=torch.float64) for w in widths]
    total = {name: torch.zeros_like(v) for name, v in p64.items()}
    sum_sq = 0.0
    with torch.no_grad():
        for start in range(0, n, chunk):
            xc = torch.as_tensor(np.array(x[start:start + chunk], np.float64))
            yc = torch.as_tensor(np.array(y[start:start + chunk], np.int64))
            deltas, inputs = per_example(zeros, xc, yc)
            for i, (d, a) in enumerate(zip(deltas, inputs, strict=True), start=1):
                # ||a d^T||^2 + ||d||^2 = (||a||^2 + 1) ||d||^2 per example
                sum_sq += float(((a * a).sum(dim=1) + 1.0) @ (d * d).sum(dim=1))
                total[f"W{i}"] += a.T @ d
                total[f"b{i}"] += d.sum(dim=0)
    grad_sq = float(sum(torch.dot(t.reshape(-1), t.reshape(-1)) for t in total.values())) / n**2
    trace = max(sum_sq / n - grad_sq, 0.0)
    return NoiseScale(grad_sq_norm=grad_sq, trace_cov=trace,
                      b_simple=trace / grad_sq if grad_sq > 0 else float("inf"), n=n)
