"""Numba on the CPU: the same steps as compiled loops, a reference for what the algorithm costs
without Python's per-step overhead (the data and memory handling are NumPy's).

One compiled call runs a whole range of steps. Per step, for the B rows of the minibatch::

    z_r = b + sum_d x_rd W_d          (pixels that are 0 are skipped: exact for finite W;
                                       the nonzero ones are listed for the update below)
    g_r = softmax(z_r) - onehot(y_r); cost += log sum exp(z_r) - z_r[y_r]
    W <- (1 - 2 lr l2) W - lr l1 sign(W) - (lr / B) sum_r x_r g_r^T;  b <- b - (lr / B) sum_r g_r
"""

from __future__ import annotations

import math

import numba
import numpy as np

from impls.numpy_backend import NumpyTrainer

__all__ = ["NumbaTrainer"]


@numba.njit(cache=True, nogil=True)
def _sgd_steps(X, y, W, b, first_row, n_steps, B, lr, l1, l2):  # pragma: no cover (compiled)
    n_rows, D = X.shape
    K = W.shape[1]
    z = np.empty((B, K), dtype=W.dtype)
    nz = np.empty((B, D), dtype=np.int64)     # each row's nonzero pixels, found once per step
    n_nz = np.empty(B, dtype=np.int64)
    cost = 0.0
    for s in range(n_steps):
        r0 = first_row + s * B
        nb = min(B, n_rows - r0)
        for r in range(nb):
            for k in range(K):
                z[r, k] = b[k]
            c = 0
            for d in range(D):
                xv = X[r0 + r, d]
                if xv != 0:
                    nz[r, c] = d
                    c += 1
                    for k in range(K):
                        z[r, k] += xv * W[d, k]
            n_nz[r] = c
            m = z[r, 0]
            for k in range(1, K):
                m = max(m, z[r, k])
            yr = y[r0 + r]
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
            for j in range(n_nz[r]):
                d = nz[r, j]
                a = step * X[r0 + r, d]
                for k in range(K):
                    W[d, k] -= a * z[r, k]
            for k in range(K):
                b[k] -= step * z[r, k]
    return cost


class NumbaTrainer(NumpyTrainer):
    backend = "numba"
    devices = ("cpu",)


    def train_batches(self, start: int, stop: int) -> None:
        X, y = self._epoch
        B = self.batch_size
        self._cost += _sgd_steps(X, y, self.W, self.b, start * B, stop - start, B,
                                 self.learning_rate, self.l1, self.l2)
        self._n_cost += stop - start
        return None
