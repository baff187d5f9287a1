"""The tutorial's MLP for NumPy and CuPy (``xp`` handed in); see ``bench.workload.models.mlp``.

    H = tanh(X W1 + b1);  Z = H W2 + b2;  D = (P - Y) / B
    dW2 = H^T D;  db2 = sum_i D_i;  E = (D W2^T) * (1 - H**2);  dW1 = X^T E;  db1 = sum_i E_i
    (+ l1 sign(W) + 2 l2 W on W1 and W2)
"""

from __future__ import annotations

from typing import Any

from impls.ops import ModelOps
from impls.xp.softmax import add_penalty, softmax_delta

__all__ = ["MLPOps"]


class MLPOps(ModelOps):
    """Parameters ``W1`` (D, 500), ``b1``, ``W2`` (500, K), ``b2`` of the trainer's ``xp``."""

    names = ("W1", "b1", "W2", "b2")

    def gradient(self, params: dict[str, Any], X: Any, y: Any, l1: float, l2: float,
                 grads: dict[str, Any]) -> Any:
        """Write every parameter's gradient into ``grads``; return the mean NLL."""
        t, xp = self.t, self.t.xp
        W1, W2 = params["W1"], params["W2"]
        B = len(y)
        H = X @ W1
        H += params["b1"]
        xp.tanh(H, out=H)
        Z = H @ W2
        Z += params["b2"]
        nll = softmax_delta(t, Z, y)
        Z *= 1.0 / B                                  # D
        xp.matmul(H.T, Z, out=grads["W2"])
        grads["b2"][...] = Z.sum(axis=0)
        E = Z @ W2.T
        H *= H
        xp.subtract(1.0, H, out=H)                    # 1 - tanh**2
        E *= H
        xp.matmul(X.T, E, out=grads["W1"])
        grads["b1"][...] = E.sum(axis=0)
        add_penalty(xp, grads["W1"], W1, l1, l2)
        add_penalty(xp, grads["W2"], W2, l1, l2)
        return nll

    def errors(self, params: dict[str, Any], X: Any, y: Any) -> Any:
        xp = self.t.xp
        H = xp.tanh(X @ params["W1"] + params["b1"])
        return (xp.argmax(H @ params["W2"] + params["b2"], axis=1) != y).sum()
