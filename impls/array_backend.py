"""The NumPy / CuPy trainer body (the array module ``xp`` handed in), with one specialisation:
softmax regression with plain SGD updates W and b in place, fused with the penalties::

    Z = X W + b;  Z <- P - Y  (``impls.xp.softmax.softmax_delta``)
    W <- (1 - 2 lr l2) W - lr l1 sign(W_old) - (lr / B) X^T (P - Y)
    b <- b - (lr / B) sum_i (P - Y)_i

which saves the gradient buffers' extra passes of the generic step (model gradient, then
``SGD.step``); a test shows the two equal.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from impls.base import Specialisation, Trainer
from impls.xp.softmax import softmax_delta

__all__ = ["SOFTMAX_SGD_FUSED", "ArrayTrainer"]

SOFTMAX_SGD_FUSED = Specialisation("softmax-sgd-fused", "_softmax_sgd_step")


class ArrayTrainer(Trainer):
    """The NumPy / CuPy trainer body; subclasses name ``xp`` and the memory primitives."""

    xp: ClassVar[ModuleType]
    ops_module = "impls.xp"
    specialisations = (SOFTMAX_SGD_FUSED,)

    def _param(self, host: np.ndarray) -> Any:
        return self.xp.array(host, dtype=self.dtype)

    def configure(self, **kwargs: Any) -> None:
        self._rows = self.xp.arange(int(kwargs["batch_size"]))
        super().configure(**kwargs)

    def _reset_cost(self) -> None:
        self._cost = self.xp.zeros((), dtype=np.float64)

    def _cost_sum(self) -> float:
        return float(self._cost)

    def _softmax_sgd_step(self, X: Any, y: Any) -> None:
        xp, params = self.xp, self.params
        B = len(y)
        lr = self.learning_rate
        Z = X @ params["W"]
        Z += params["b"]
        self._cost += softmax_delta(self, Z, y)
        W = params["W"]
        if self.l1:
            sign = xp.sign(W)                    # of the old W
        if self.l2:
            W *= 1.0 - 2.0 * lr * self.l2
        if self.l1:
            W -= (lr * self.l1) * sign
        W -= (lr / B) * (X.T @ Z)
        params["b"] -= (lr / B) * self._column_sum(Z)

    def _row_max(self, Z: Any) -> Any:
        """``max_k Z[i, k]`` as a (B, 1) column."""
        return Z.max(axis=1, keepdims=True)

    def _row_sum(self, Z: Any) -> Any:
        """``sum_k Z[i, k]`` as a (B, 1) column."""
        return Z.sum(axis=1, keepdims=True)

    def _column_sum(self, Z: Any) -> Any:
        """``sum_i Z[i, k]``, shape (10,)."""
        return Z.sum(axis=0)
