"""Softmax regression for NumPy and CuPy (``xp`` handed in); see ``bench.workload.models.softmax``.

The logits' gradient, in place on Z (B x 10), shared by every model ending in a softmax::

    Z -= max_k Z                           shift: exp cannot overflow
    s = sum_k exp(Z)                       nll_i = log s_i - Z[i, y_i]  (stably)
    Z <- exp(Z) / s - onehot(y)            P - Y

then ``dW = X^T (P - Y) / B + l1 sign(W) + 2 l2 W`` and ``db = sum_i (P - Y)_i / B``.
The row and column reductions are the trainer's (NumPy overrides them with BLAS products).
"""

from __future__ import annotations

from typing import Any

from impls.ops import ModelOps

__all__ = ["SoftmaxOps", "add_penalty", "softmax_delta"]


def softmax_delta(t: Any, Z: Any, y: Any) -> Any:
    """Turn logits ``Z`` into ``P - Y`` in place; return the batch's mean NLL (a device
    scalar). ``t`` is the trainer: its ``xp``, row indices and reductions."""
    xp = t.xp
    B = len(y)
    rows = t._rows[:B]
    Z -= t._row_max(Z)
    zy = Z[rows, y]
    xp.exp(Z, out=Z)
    s = t._row_sum(Z)
    nll = (xp.log(s[:, 0]) - zy).sum() / B
    Z /= s                                   # P
    Z[rows, y] -= 1                          # G = P - Y
    return nll


def add_penalty(xp: Any, g: Any, W: Any, l1: float, l2: float) -> None:
    """``g += l1 sign(W) + 2 l2 W`` in place."""
    if l1:
        g += l1 * xp.sign(W)
    if l2:
        g += (2.0 * l2) * W


class SoftmaxOps(ModelOps):
    """Parameters ``W`` (D, K) and ``b`` (K,) as arrays of the trainer's ``xp``."""

    names = ("W", "b")

    def gradient(self, params: dict[str, Any], X: Any, y: Any, l1: float, l2: float,
                 grads: dict[str, Any]) -> Any:
        """Write ``dcost/dW``, ``dcost/db`` into ``grads``; return the mean NLL."""
        t, xp = self.t, self.t.xp
        W = params["W"]
        B = len(y)
        Z = X @ W
        Z += params["b"]
        nll = softmax_delta(t, Z, y)
        gW, gb = grads["W"], grads["b"]
        xp.matmul(X.T, Z, out=gW)
        gW *= 1.0 / B
        gb[...] = t._column_sum(Z)
        gb *= 1.0 / B
        add_penalty(xp, gW, W, l1, l2)
        return nll

    def errors(self, params: dict[str, Any], X: Any, y: Any) -> Any:
        return (self.t.xp.argmax(X @ params["W"] + params["b"], axis=1) != y).sum()


