"""The exact gradient noise scale of softmax regression (McCandlish et al. 2018), in float64.

Per example i the loss is ``l_i = -log softmax(x_i W + b)_{y_i}`` and its gradient has a closed
form (see ``bench.workload.models.softmax``):

    grad_W l_i = x_i (p_i - e_{y_i})^T,     grad_b l_i = p_i - e_{y_i},

an outer product plus its bias row, so its squared Frobenius norm factorises:

    ||g_i||^2 = ||p_i - e_{y_i}||^2 (||x_i||^2 + 1).

One pass over the N training examples thus gives, exactly (no sampling):

    G       = (1/N) sum_i g_i                       the full-batch gradient,  |G|^2 = ||G||^2
    tr S    = (1/N) sum_i ||g_i - G||^2 = (1/N) sum_i ||g_i||^2 - |G|^2
                                                    the trace of the per-example covariance
    B_simple = tr S / |G|^2                         the simple noise scale (examples).

A minibatch of B examples drawn **without replacement** (as an epoch's shuffle does) has mean
gradient G_B with the finite-population variance, so

    E ||G_B||^2 = |G|^2 + tr S (N - B) / (B (N - 1)),

which is exactly |G|^2 at B = N and |G|^2 + tr S / B (the i.i.d. form) when N >> B.
B_simple is McCandlish's prediction of the critical batch size B_crit: batches much smaller than
it are noise-dominated (perfect scaling), much larger ones waste examples.

Everything is framework-free float64 NumPy: it is spec-layer maths. The regularisers of the
run configuration (l1, l2) are the same for every example and do not enter the noise; this
module covers the unregularised loss the study trains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.workload.models.softmax import softmax

__all__ = [
    "NoiseScale",
    "expected_minibatch_sq_norm",
    "noise_scale",
    "per_example_sq_norms",
]


def _residual(x: np.ndarray, y: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``P - Y`` in float64: probabilities minus one-hot labels, shape (n, 10)."""
    delta = softmax(np.asarray(x, np.float64) @ np.asarray(W, np.float64)
                    + np.asarray(b, np.float64))
    delta[np.arange(len(y)), np.asarray(y)] -= 1.0
    return delta


def per_example_sq_norms(x: np.ndarray, y: np.ndarray, W: np.ndarray,
                         b: np.ndarray) -> np.ndarray:
    """``||g_i||^2 = ||p_i - e_{y_i}||^2 (||x_i||^2 + 1)`` for every row: float64, shape (n,).

    The squared norm of example i's gradient over all parameters (W and b) of the mean-NLL
    loss, without forming the (784 x 10) per-example gradients.
    """
    x = np.asarray(x, np.float64)
    delta = _residual(x, y, W, b)
    return np.einsum("ij,ij->i", delta, delta) * (np.einsum("ij,ij->i", x, x) + 1.0)


@dataclass(frozen=True)
class NoiseScale:
    """The full-batch gradient's squared norm, the per-example covariance trace, and their ratio.

    ``grad_sq_norm`` = |G|^2 and ``trace_cov`` = tr S in (loss units / parameter unit)^2;
    ``b_simple`` = tr S / |G|^2 in examples; ``n`` = the N examples they were computed over.
    """

    grad_sq_norm: float
    trace_cov: float
    b_simple: float
    n: int

    def expected_minibatch_sq_norm(self, batch_size: int | np.ndarray) -> float | np.ndarray:
        """E ||G_B||^2 for a B-minibatch drawn without replacement from these n examples."""
        return expected_minibatch_sq_norm(self.grad_sq_norm, self.trace_cov, self.n,
                                          batch_size)


def noise_scale(x: np.ndarray, y: np.ndarray, W: np.ndarray, b: np.ndarray,
                chunk: int = 5000) -> NoiseScale:
    """|G|^2, tr S and B_simple over all rows of (x, y) at parameters (W, b), exactly.

    One pass in chunks of ``chunk`` rows (float64 temporaries of ``chunk`` x 784 only):
    ``sum_i ||g_i||^2`` from the closed form, ``G`` from ``X^T (P - Y) / N`` and the bias row.
    """
    n = len(y)
    if n == 0 or len(x) != n:
        raise ValueError(f"noise_scale needs as many rows of x as labels, at least one; got "
                         f"x with {len(x)} rows and y with {n} labels.")
    if chunk < 1:
        raise ValueError(f"The 'chunk' parameter of noise_scale must be an int >= 1. "
                         f"Got {chunk!r} instead.")
    W = np.asarray(W, np.float64)
    gW = np.zeros_like(W)
    gb = np.zeros(W.shape[1])
    sum_sq = 0.0
    for start in range(0, n, chunk):
        xc = np.asarray(x[start:start + chunk], np.float64)
        delta = _residual(xc, y[start:start + chunk], W, b)
        gW += xc.T @ delta
        gb += delta.sum(axis=0)
        sum_sq += float(np.einsum("ij,ij->i", delta, delta)
                        @ (np.einsum("ij,ij->i", xc, xc) + 1.0))
    grad_sq = float((np.square(gW).sum() + np.square(gb).sum()) / n**2)
    trace = max(sum_sq / n - grad_sq, 0.0)
    b_simple = trace / grad_sq if grad_sq > 0 else float("inf")
    return NoiseScale(grad_sq_norm=grad_sq, trace_cov=trace, b_simple=b_simple, n=n)


def expected_minibatch_sq_norm(grad_sq_norm: float, trace_cov: float, n: int,
                               batch_size: int | np.ndarray) -> float | np.ndarray:
    """``E ||G_B||^2 = |G|^2 + tr S (N - B) / (B (N - 1))``: sampling without replacement.

    ``batch_size`` must lie in [1, n]; at B = n the minibatch is the full batch (no noise).
    """
    B = np.asarray(batch_size, dtype=np.float64)
    if np.any(B < 1) or np.any(n < B) or n < 2:
        raise ValueError(f"The 'batch_size' of expected_minibatch_sq_norm must lie in "
                         f"[1, n={n}] with n >= 2. Got {batch_size!r} instead.")
    out = grad_sq_norm + trace_cov * (n - B) / (B * (n - 1))
    return float(out) if np.ndim(out) == 0 else out
