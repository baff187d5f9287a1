"""Softmax-regression SGD written once for NumPy and CuPy: the array module ``xp`` is handed in.

The step, with Z the logits of a minibatch of B rows (see ``bench.spec.models.softmax``)::

    Z = X W + b;  Z -= max_k Z              shift: exp cannot overflow
    s = sum_k exp(Z)                        cost_i = log s_i - Z[i, y_i]  (the NLL, stably)
    G = exp(Z) / s - onehot(y)              P - Y
    W <- W - lr (X^T G / B + l1 sign(W) + 2 l2 W)
    b <- b - lr sum_i G_i / B
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from impls.base import Trainer

__all__ = ["ArrayTrainer"]


class ArrayTrainer(Trainer):
    """The NumPy / CuPy trainer body; subclasses name ``xp`` and the memory primitives."""

    xp: ClassVar[ModuleType]

    def set_params(self, W: np.ndarray, b: np.ndarray) -> None:
        self.W = self.xp.array(W, dtype=self.dtype)
        self.b = self.xp.array(b, dtype=self.dtype)

    def configure(self, **kwargs: Any) -> None:
        super().configure(**kwargs)
        self._rows = self.xp.arange(self.batch_size)

    def _reset_cost(self) -> None:
        self._cost = self.xp.zeros((), dtype=np.float64)

    def _cost_sum(self) -> float:
        return float(self._cost)

    def _step(self, X: Any, y: Any) -> None:
        xp = self.xp
        B = len(y)
        rows = self._rows[:B]
        lr = self.learning_rate
        Z = X @ self.W
        Z += self.b
        Z -= self._row_max(Z)
        zy = Z[rows, y]
        xp.exp(Z, out=Z)
        s = self._row_sum(Z)
        self._cost += (xp.log(s[:, 0]) - zy).sum() / B
        Z /= s                                   # P
        Z[rows, y] -= 1                          # G = P - Y
        W = self.W
        if self.l1:
            sign = xp.sign(W)                    # of the old W
        if self.l2:
            W *= 1.0 - 2.0 * lr * self.l2
        if self.l1:
            W -= (lr * self.l1) * sign
        W -= (lr / B) * (X.T @ Z)
        self.b -= (lr / B) * self._column_sum(Z)

    def _row_max(self, Z: Any) -> Any:
        """``max_k Z[i, k]`` as a (B, 1) column."""
        return Z.max(axis=1, keepdims=True)

    def _row_sum(self, Z: Any) -> Any:
        """``sum_k Z[i, k]`` as a (B, 1) column."""
        return Z.sum(axis=1, keepdims=True)

    def _column_sum(self, Z: Any) -> Any:
        """``sum_i Z[i, k]``, shape (10,)."""
        return Z.sum(axis=0)

    def _count_errors(self, X: Any, y: Any) -> Any:
        return (self.xp.argmax(X @ self.W + self.b, axis=1) != y).sum()
