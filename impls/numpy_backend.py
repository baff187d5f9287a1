"""NumPy on the CPU: the shared array code with ``xp = numpy``; data stays where it is.

Per-sample SGD (B = 1) has its own loop: the step is dominated by fixed per-call costs, so it
works on 1-d vectors in preallocated buffers and updates W with one in-place rank-1 BLAS call
(``ger``: ``W^T <- W^T - lr g x^T``) instead of forming the 784 x 10 outer product. It reads
each example where it lies, through the epoch's permutation, so it needs no gather.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.linalg.blas import get_blas_funcs

from impls.array_backend import ArrayTrainer

__all__ = ["NumpyTrainer"]


class NumpyTrainer(ArrayTrainer):
    backend = "numpy"
    devices = ("cpu",)
    xp = np

    def get_params(self) -> tuple[np.ndarray, np.ndarray]:
        return self.W.astype(np.float64), self.b.astype(np.float64)

    def _to_device(self, host: np.ndarray) -> np.ndarray:
        return host

    def _host(self, host: np.ndarray, pinned: bool) -> np.ndarray:
        return host

    def _empty_like(self, a: np.ndarray) -> np.ndarray:
        return np.empty_like(a)

    def _index(self, permutation: np.ndarray, on_device: bool) -> np.ndarray:
        return permutation

    def _gather(self, src: np.ndarray, index: np.ndarray, out: np.ndarray) -> None:
        # mode="clip" skips the bounds-checking buffer (the permutation is valid by construction)
        np.take(src, index, axis=0, out=out, mode="clip")

    def _copy_h2d(self, dst: Any, src: Any) -> None:
        dst[...] = src

    def _step(self, X: np.ndarray, y: np.ndarray) -> None:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            super()._step(X, y)

    def begin_epoch(self, permutation: np.ndarray | None) -> None:
        self._order = permutation
        if self.batch_size != 1:
            return super().begin_epoch(permutation)
        self._epoch = self._data["train"]
        return None

    def train_batches(self, start: int, stop: int) -> None:
        if self.batch_size != 1:
            return super().train_batches(start, stop)
        X, y = self._epoch
        order = self._order
        W, b = self.W, self.b
        WT = W.T                                   # Fortran-ordered view: ger updates it in place
        ger = get_blas_funcs("ger", (WT,))
        lr, l1, l2 = self.learning_rate, self.l1, self.l2
        z = np.empty(W.shape[1], dtype=W.dtype)
        cost = 0.0
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for k in range(start, stop):
                i = k if order is None else order[k]
                x, yk = X[i], y[i]
                np.dot(x, W, out=z)                # z = x W + b, shifted by its max
                z += b
                z -= z.max()
                zy = z[yk]
                np.exp(z, out=z)
                s = z.sum()
                cost += math.log(s) - zy           # -log p(y | x)
                z /= s
                z[yk] -= 1.0                       # g = p - onehot(y)
                if l1:
                    sign = np.sign(W)
                if l2:
                    W *= 1.0 - 2.0 * lr * l2
                if l1:
                    W -= (lr * l1) * sign
                ger(-lr, z, x, a=WT, overwrite_a=1)
                z *= lr
                b -= z
        self._cost += cost
        self._n_cost += stop - start
        return None
