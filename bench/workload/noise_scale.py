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

**B_noise** (McCandlish et al.'s eq. 2.7; the quantity their theory ties to B_crit) weighs the
noise and the gradient by the curvature: ``B_noise = tr(H S) / (G^T H G)``. Softmax regression's
Hessian is exact in closed form: with ``x~ = [x, 1]``, ``A_i = diag(p_i) - p_i p_i^T`` and the
parameters stacked as a (D + 1) x K matrix ``V = [V_W; V_b]``,

    H V = (1/N) sum_i x~_i (A_i V^T x~_i)^T  (+ 2 l2 [V_W; 0]),

and since ``g_j = x~_j delta_j^T`` (``delta_j = p_j - e_{y_j}``), ``g_j^T H g_j`` needs only the
Gram entry ``C_ij = x~_i . x~_j``:

    tr(H S) = (1/N^2) sum_{i,j} C_ij^2 delta_j^T A_i delta_j - G^T H G  (+ 2 l2 tr_W S),
    delta_j^T A_i delta_j = p_i . delta_j^2 - (p_i . delta_j)^2,

with G and H of the NLL here (S = (1/N) sum_j g_j g_j^T - G G^T) and tr_W S the trace over the
weight entries; B_noise's denominator takes G and H with the L2 term.

Everything is framework-free float64 NumPy: it is spec-layer maths. The regularisers (l1, l2)
are the same for every example, so they never enter S. B_simple is the noise of the
unregularised loss the study trains; B_noise takes ``l2`` (its curvature ``2 l2`` on the
weights and its gradient ``2 l2 W``); L1 is left out of both: its Hessian is zero wherever it
exists and undefined at ``W_ij = 0``, so no finite curvature represents it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from bench.workload.models.softmax import softmax

__all__ = [
    "CurvedNoiseScale",
    "NoiseCheckpoint",
    "NoiseScale",
    "b_noise",
    "b_noise_many",
    "checked_rows",
    "expected_minibatch_sq_norm",
    "hessian_vector_product",
    "noise_along",
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


def checked_rows(name: str, x: np.ndarray, y: np.ndarray, chunk: int) -> int:
    """The number of rows of (x, y); a ValueError naming ``name`` for mismatched or empty rows
    or a chunk below 1."""
    n = len(y)
    if n == 0 or len(x) != n:
        raise ValueError(f"{name} needs as many rows of x as labels, at least one; got "
                         f"x with {len(x)} rows and y with {n} labels.")
    if chunk < 1:
        raise ValueError(f"The 'chunk' parameter of {name} must be an int >= 1. "
                         f"Got {chunk!r} instead.")
    return n


def noise_scale(x: np.ndarray, y: np.ndarray, W: np.ndarray, b: np.ndarray,
                chunk: int = 5000) -> NoiseScale:
    """|G|^2, tr S and B_simple over all rows of (x, y) at parameters (W, b), exactly.

    One pass in chunks of ``chunk`` rows (float64 temporaries of ``chunk`` x 784 only):
    ``sum_i ||g_i||^2`` from the closed form, ``G`` from ``X^T (P - Y) / N`` and the bias row.
    """
    n = checked_rows("noise_scale", x, y, chunk)
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


def _augmented(x: np.ndarray) -> np.ndarray:
    """``x~ = [x, 1]`` in float64, shape (n, D + 1): the bias as a constant feature."""
    x = np.asarray(x, np.float64)
    return np.hstack([x, np.ones((len(x), 1))])


def _curvature_form(p: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``u_i^T A_i v_i = p_i . (u_i v_i) - (p_i . u_i)(p_i . v_i)`` for every row, shape (n,)."""
    return (np.einsum("ik,ik,ik->i", p, u, v)
            - np.einsum("ik,ik->i", p, u) * np.einsum("ik,ik->i", p, v))


def hessian_vector_product(x: np.ndarray, W: np.ndarray, b: np.ndarray, V_W: np.ndarray,
                           V_b: np.ndarray, l2: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``H V`` of the mean NLL (+ ``l2 sum W**2``) over the rows of ``x``, exactly, in float64.

    ``H V = (1/N) X~^T [(P * Z) - P * rowsum(P * Z)] + 2 l2 [V_W; 0]`` with ``Z = X~ V``: two
    (N x (D+1)) x ((D+1) x K) products, ``4 N (D + 1) K`` flops; H is never formed. Returns
    the (W, b) parts, shaped like (``V_W``, ``V_b``).
    """
    xa = _augmented(x)
    V_W = np.asarray(V_W, np.float64)
    p = softmax(xa[:, :-1] @ np.asarray(W, np.float64) + np.asarray(b, np.float64))
    pz = p * (xa @ np.vstack([V_W, np.asarray(V_b, np.float64)]))
    hv = xa.T @ (pz - p * pz.sum(axis=1, keepdims=True)) / len(xa)
    return hv[:-1] + 2.0 * l2 * V_W, hv[-1]


@dataclass(frozen=True)
class CurvedNoiseScale:
    """McCandlish et al.'s curvature-weighted noise scale and its two parts.

    ``grad_hess_grad`` = G^T H G and ``trace_hess_cov`` = tr(H S), both in loss units^3 per
    parameter unit^2 (gradient^2 x curvature); ``b_noise`` = tr(H S) / G^T H G in examples;
    ``n`` = the N examples; ``l2`` = the L2 coefficient included in H and G.
    """

    grad_hess_grad: float
    trace_hess_cov: float
    b_noise: float
    n: int
    l2: float


def _pair_features(p: np.ndarray, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``F_i`` (from ``p_i``) and ``F'_j`` (from ``delta_j``) with ``F_i . F'_j = delta_j^T A_i
    delta_j``: ``[p_ik ; w_kl p_ik p_il]`` and ``[delta_jk^2 ; -delta_jk delta_jl]`` over k and the
    pairs k <= l (``w_kl`` = 1 on the diagonal, 2 off it), K + K (K + 1) / 2 columns each."""
    k, m = np.triu_indices(p.shape[1])
    w = np.where(k == m, 1.0, 2.0)
    return (np.hstack([p, p[:, k] * p[:, m] * w]),
            np.hstack([delta * delta, -(delta[:, k] * delta[:, m])]))


def b_noise(x: np.ndarray, y: np.ndarray, W: np.ndarray, b: np.ndarray, l2: float = 0.0,
            chunk: int = 2048) -> CurvedNoiseScale:
    """``B_noise = tr(H S) / (G^T H G)`` over all rows of (x, y) at (W, b), exactly, in float64
    (``b_noise_many`` at one point)."""
    return b_noise_many(x, y, [(W, b)], l2, chunk)[0]


def b_noise_many(x: np.ndarray, y: np.ndarray, params: Sequence[tuple[np.ndarray, np.ndarray]],
                 l2: float = 0.0, chunk: int = 2048) -> list[CurvedNoiseScale]:
    """``B_noise`` at each ``(W, b)`` of ``params`` over all rows of (x, y), exactly, in float64.

    G, G^T H G and the second moment's trace against H as in the module docstring, with no
    sampling and no approximation. The double sum ``sum_ij C_ij^2 delta_j^T A_i delta_j`` is
    ``sum_ij C_ij^2 F_i . F'_j`` (``_pair_features``), taken in blocks of ``chunk`` rows
    (I <= J, each pair once): the Gram block ``C_IJ^2`` depends on the data alone, so one Gram
    pass (``N^2 (D + 1)`` flops) serves every point, and each point adds two products with its
    ``K + K (K + 1) / 2`` = 65 feature columns (``2 N^2 65`` flops). Measured in CPU seconds on
    one thread of the shared 2-core AMD EPYC (load 7-9, wall about twice that): at N = 16,384
    the Gram pass took 6.1 s and each point 1.0 s more, so at MNIST's N = 50,000 (x 9.3, the
    pairs) about 57 s and 9 s. Memory: about 15 MB per point (its N x 2K probabilities and
    residuals, its block features) plus a few ``chunk`` x ``chunk`` blocks (32 MiB each at 2048).
    """
    n = checked_rows("b_noise", x, y, chunk)
    if not l2 >= 0:
        raise ValueError(f"The 'l2' parameter of b_noise must be a float >= 0. "
                         f"Got {l2!r} instead.")
    blocks = range(0, n, chunk)
    rows = np.arange(n)
    probs, deltas, out = [], [], []
    for W, b in params:
        W = np.asarray(W, np.float64)
        p = np.concatenate([softmax(np.asarray(x[s:s + chunk], np.float64) @ W
                                    + np.asarray(b, np.float64)) for s in blocks])
        delta = p.copy()
        delta[rows, np.asarray(y)] -= 1.0
        probs.append(p)
        deltas.append(delta)

    def features(s: int) -> tuple[np.ndarray, np.ndarray]:
        """Every point's F and F' of rows s.., side by side: two (rows, points x 65) arrays."""
        pairs = [_pair_features(p[s:s + chunk], d[s:s + chunk])
                 for p, d in zip(probs, deltas, strict=True)]
        return np.hstack([f for f, _ in pairs]), np.hstack([g for _, g in pairs])

    second = np.zeros(len(params))                          # sum_ij C_ij^2 F_i . F'_j
    for s in blocks:
        xi = _augmented(x[s:s + chunk])
        fi, gi = features(s)
        for t in blocks[s // chunk:]:
            xj = xi if t == s else _augmented(x[t:t + chunk])
            fj, gj = (fi, gi) if t == s else features(t)
            gram = xi @ xj.T
            gram *= gram                                    # in place: one chunk^2 temporary
            both = (fi * (gram @ gj)).reshape(len(xi), len(params), -1).sum(axis=(0, 2))
            if t != s:
                both += (gi * (gram @ fj)).reshape(len(xi), len(params), -1).sum(axis=(0, 2))
            second += both
    for (W, _), p, delta, sec in zip(params, probs, deltas, second, strict=True):
        W = np.asarray(W, np.float64)
        G = np.zeros((W.shape[0] + 1, W.shape[1]))          # the NLL's gradient, [G_W; G_b]
        sq_norm_w = 0.0                                     # sum_j ||delta_j||^2 ||x_j||^2
        for s in blocks:
            xa = _augmented(x[s:s + chunk])
            G += xa.T @ delta[s:s + chunk]
            sq_norm_w += float(np.square(delta[s:s + chunk]).sum(axis=1)
                               @ (np.square(xa).sum(axis=1) - 1))
        G /= n
        G_total = G.copy()
        G_total[:-1] += 2.0 * l2 * W                        # + the gradient of l2 sum W**2
        ghg = ghg_total = 0.0
        for s in blocks:
            xi, pi = _augmented(x[s:s + chunk]), p[s:s + chunk]
            ghg += float(_curvature_form(pi, xi @ G, xi @ G).sum())
            ghg_total += float(_curvature_form(pi, xi @ G_total, xi @ G_total).sum())
        trace_w = max(sq_norm_w / n - float(np.square(G[:-1]).sum()), 0.0)    # tr_W S
        trace_hs = max(sec / n**2 - ghg / n, 0.0) + 2.0 * l2 * trace_w
        ghg_total = ghg_total / n + 2.0 * l2 * float(np.square(G_total[:-1]).sum())
        out.append(CurvedNoiseScale(grad_hess_grad=ghg_total, trace_hess_cov=trace_hs,
                                    b_noise=trace_hs / ghg_total if ghg_total > 0
                                    else float("inf"), n=n, l2=l2))
    return out


@dataclass(frozen=True)
class NoiseCheckpoint:
    """Both noise scales at one checkpoint of a trajectory: its ``step`` and ``valid_error``
    (as the run recorded them), B_simple's parts and B_noise's parts (see their classes)."""

    step: int
    valid_error: float
    b_simple: float
    b_noise: float
    grad_sq_norm: float
    trace_cov: float
    grad_hess_grad: float
    trace_hess_cov: float


def noise_along(checkpoints: Iterable[tuple[int, float, np.ndarray, np.ndarray]],
                x: np.ndarray, y: np.ndarray, l2: float = 0.0, chunk: int = 2048,
                group: int = 48) -> list[NoiseCheckpoint]:
    """B_simple and B_noise at every ``(step, valid_error, W, b)`` of one or more trajectories,
    over the rows of (x, y), in the checkpoints' order: the series that show the noise scales
    against training progress. ``b_noise_many`` takes ``group`` checkpoints per Gram pass (see
    its cost and memory)."""
    if group < 1:
        raise ValueError(f"The 'group' parameter of noise_along must be an int >= 1. "
                         f"Got {group!r} instead.")
    points = list(checkpoints)
    out = []
    for start in range(0, len(points), group):
        part = points[start:start + group]
        curved = b_noise_many(x, y, [(W, b) for _, _, W, b in part], l2, chunk)
        for (step, valid_error, W, b), c in zip(part, curved, strict=True):
            simple = noise_scale(x, y, W, b, chunk=chunk)
            out.append(NoiseCheckpoint(step=int(step), valid_error=float(valid_error),
                                       b_simple=simple.b_simple, b_noise=c.b_noise,
                                       grad_sq_norm=simple.grad_sq_norm,
                                       trace_cov=simple.trace_cov,
                                       grad_hess_grad=c.grad_hess_grad,
                                       trace_hess_cov=c.trace_hess_cov))
    return out
