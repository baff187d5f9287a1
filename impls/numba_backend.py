"""Numba on the CPU: the same steps as compiled loops, a reference for what the algorithm costs
without Python's per-step overhead.

The training images are kept once as a sparse row list (CSR: MNIST pixels are ~80 % zero), and
an epoch's order is followed through its permutation instead of gathering the data: a step
reads its rows where they lie. One compiled call runs a whole range of steps; per step, for the
B rows of the minibatch::

    z_r = b + sum_{d: x_rd != 0} x_rd W_d
    g_r = softmax(z_r) - onehot(y_r);  cost += log sum exp(z_r) - z_r[y_r]
    W <- (1 - 2 lr l2) W - lr l1 sign(W) - (lr / B) sum_r x_r g_r^T;  b <- b - (lr / B) sum_r g_r

Skipping zero pixels is exact for finite W; the sums run in another order than BLAS's, so
results agree with the other backends to float32 rounding.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from bench.workload.datasets import Data
from impls.base import Specialisation
from impls.numpy_backend import NumpyTrainer

__all__ = ["COMPILED", "NumbaTrainer"]

#: The compiled loop: softmax regression with plain SGD, any B. Numba is a reference for what
#: that algorithm costs without Python's per-step overhead, not a general backend, so other
#: models and optimizers are refused with the reason (``models``, ``optimizers``).
COMPILED = Specialisation("numba-compiled-loop", "_compiled_batches", kind="batches",
                          devices=("cpu",), reads_order=True)


@numba.njit(cache=True, nogil=True)
def _sgd_steps(indptr, indices, values, y, order, W, b, first_row, n_steps, B, lr, l1,
               l2):  # pragma: no cover (compiled)
    n_rows = order.shape[0]
    D, K = W.shape
    z = np.empty((B, K), dtype=W.dtype)
    cost = 0.0
    for s in range(n_steps):
        r0 = first_row + s * B
        nb = min(B, n_rows - r0)
        for r in range(nb):
            row = order[r0 + r]
            for k in range(K):
                z[r, k] = b[k]
            for j in range(indptr[row], indptr[row + 1]):
                d = indices[j]
                xv = values[j]
                for k in range(K):
                    z[r, k] += xv * W[d, k]
            m = z[r, 0]
            for k in range(1, K):
                m = max(m, z[r, k])
            yr = y[row]
            zy = z[r, yr] - m
            total = 0.0
            for k in range(K):
                z[r, k] = math.exp(z[r, k] - m)
                total += z[r, k]
            cost += (math.log(total) - zy) / nb          # stable: no log of an underflow
            for k in range(K):
                z[r, k] = z[r, k] / total
            z[r, yr] -= 1.0
        if l1 != 0.0 or l2 != 0.0:
            shrink = 1.0 - 2.0 * lr * l2
            for d in range(D):
                for k in range(K):
                    w = W[d, k]
                    W[d, k] = w * shrink - lr * l1 * ((w > 0) - (w < 0))
        step = lr / nb
        for r in range(nb):
            row = order[r0 + r]
            for j in range(indptr[row], indptr[row + 1]):
                d = indices[j]
                a = step * values[j]
                for k in range(K):
                    W[d, k] -= a * z[r, k]
            for k in range(K):
                b[k] -= step * z[r, k]
    return cost


class NumbaTrainer(NumpyTrainer):
    backend = "numba"
    devices = ("cpu",)
    specialisations = (COMPILED,)
    models = ("softmax",)
    optimizers = ("sgd",)

    def load(self, data: Data) -> float | None:
        out = super().load(data)
        X = self._data["train"][0]
        nonzero = X != 0
        self._indptr = np.concatenate([[0], np.cumsum(nonzero.sum(axis=1))]).astype(np.int64)
        self._indices = np.nonzero(nonzero)[1].astype(np.int32)
        self._values = np.ascontiguousarray(X[nonzero])
        return out

    def _compiled_batches(self, start: int, stop: int) -> None:
        """No gather: the steps follow the permutation through the sparse rows."""
        B = self.batch_size
        order = self._order_or_identity()
        self._cost += _sgd_steps(self._indptr, self._indices, self._values,
                                 self._data["train"][1], order, self.params["W"],
                                 self.params["b"], start * B, stop - start, B,
                                 self.learning_rate, self.l1, self.l2)

