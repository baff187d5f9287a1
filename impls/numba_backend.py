"""Numba on the CPU: the same steps as compiled loops, a reference for what the algorithm costs
without Python's per-step overhead.

The training images are kept once as a sparse row list (CSR: MNIST pixels are ~80 % zero), and
an epoch's order is followed through its permutation instead of gathering the data: a step
reads its rows where they lie. One compiled call runs a whole range of steps; per step, for the
B rows of the minibatch::

    z_r = b + sum_{d: x_rd != 0} x_rd W_d
    g_r = softmax(z_r) - onehot(y_r);  cost += log sum exp(z_r) - z_r[y_r]
    W <- (1 - 2 lr l2) W - lr l1 sign(W) - (lr / B) sum_r x_r g_r^T;  b <- b - (lr / B) sum_r g_r

The tutorial's MLP with plain SGD has its own compiled loop (``numba-mlp-loop``), the same
sparse reads through the permutation; per step, for the B rows (``D = (P - Y) / B``)::

    h_r = tanh(b1 + sum_{d: x_rd != 0} x_rd W1_d);  z_r = b2 + W2^T h_r
    D_r = (softmax(z_r) - onehot(y_r)) / B;  E_r = (W2 D_r) * (1 - h_r**2)
    W2 <- (1 - 2 lr l2) W2 - lr l1 sign(W2) - lr sum_r h_r D_r^T;  b2 <- b2 - lr sum_r D_r
    W1 <- (1 - 2 lr l2) W1 - lr l1 sign(W1) - lr sum_r x_r E_r^T;  b1 <- b1 - lr sum_r E_r

so the first layer's products touch only the ~150 non-zero pixels of a row (a fifth of the
dense 784). What made it fast, measured one change at a time (the shared 2-core EPYC, B = 10
... 600): W1's rows are added four at a time into a row of H, and each of W1's rows takes the
minibatch's updates four at a time (one load and store of the 500 sums per four products, not
per product); W2 is kept transposed for the call (``W2T``, 10 x 500), so the output layer's
products run along the 500 hidden units and not along 10 classes; and in float32 tanh is the
rational approximation Eigen and XLA use (``_tanh32``, within 6 ulp of tanh), which the
compiler vectorizes where ``math.tanh`` is one library call per unit. Together 1.7-2.4x the
earlier loop's speed, on one core.

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

__all__ = ["COMPILED", "MLP_LOOP", "NumbaTrainer"]

#: The compiled loops, plain SGD at any B: softmax regression, and the MLP. Numba is a reference
#: for what those cost without Python's per-step overhead, not a general backend, so other
#: optimizers are refused with the reason (``optimizers``).
COMPILED = Specialisation("numba-compiled-loop", "_compiled_batches", kind="batches",
                          devices=("cpu",), reads_order=True)
MLP_LOOP = Specialisation("numba-mlp-loop", "_mlp_batches", kind="batches", models=("mlp",),
                          devices=("cpu",), reads_order=True)
#: LLVM may reassociate float sums and fuse multiply-adds (vectorized reductions over the 500
#: hidden units); no flag that assumes finite values: a diverging run must still show its NaN.
_REASSOC = {"reassoc", "contract"}


@numba.njit(cache=True, nogil=True)
def _shrink(W, lr, l1, l2):  # pragma: no cover (compiled)
    """``W <- (1 - 2 lr l2) W - lr l1 sign(W)``: the penalties' share of a step."""
    shrink = 1.0 - 2.0 * lr * l2
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            w = W[i, j]
            W[i, j] = w * shrink - lr * l1 * ((w > 0) - (w < 0))


@numba.njit(cache=True, nogil=True, inline="always")
def _tanh32(x):  # pragma: no cover (compiled)
    """tanh in float32 as a [13/6] odd rational function, clamped where tanh rounds to +-1
    (the coefficients of Eigen's ``generic_fast_tanh_float``; arithmetic only, so it
    vectorizes)."""
    x = min(max(x, np.float32(-7.90531110763549805)), np.float32(7.90531110763549805))
    x2 = x * x
    p = np.float32(-2.76076847742355e-16)
    p = p * x2 + np.float32(2.00018790482477e-13)
    p = p * x2 + np.float32(-8.60467152213735e-11)
    p = p * x2 + np.float32(5.12229709037114e-08)
    p = p * x2 + np.float32(1.48572235717979e-05)
    p = p * x2 + np.float32(6.37261928875436e-04)
    p = p * x2 + np.float32(4.89352455891786e-03)
    q = np.float32(1.19825839466702e-06)
    q = q * x2 + np.float32(1.18534705686654e-04)
    q = q * x2 + np.float32(2.26843463243900e-03)
    q = q * x2 + np.float32(4.89352518554385e-03)
    return p * x / q


@numba.njit(cache=True, nogil=True, fastmath=_REASSOC)
def _mlp_sgd_steps(indptr, indices, values, y, order, W1, b1, W2T, b2, first_row, n_steps, B,
                   lr, l1, l2, tanh32):  # pragma: no cover (compiled)
    """The MLP's steps (module docstring), W2 transposed; ``tanh32``: tanh by ``_tanh32``."""
    # lr, l1, l2 come in W's dtype and every inner loop runs over a whole row of 500: a
    # float64 factor or a loop over part of a row kept LLVM from vectorizing the sparse
    # update of W1 (measured 5-7x slower per row).
    n_rows = order.shape[0]
    D, M = W1.shape
    K = W2T.shape[0]
    H = np.empty((B, M), dtype=W1.dtype)
    E = np.empty((B, M), dtype=W1.dtype)
    G = np.empty((B, K), dtype=W1.dtype)
    colptr = np.empty(D + 1, dtype=np.int64)
    most = 0
    for s in range(n_steps):  # the largest minibatch's non-zeros
        r0 = first_row + s * B
        most = max(most, indptr[order[r0:r0 + min(B, n_rows - r0)] + 1].sum()
                   - indptr[order[r0:r0 + min(B, n_rows - r0)]].sum())
    rows = np.empty(most, dtype=np.int64)
    vals = np.empty(most, dtype=values.dtype)
    one, zero = W1.dtype.type(1.0), W1.dtype.type(0.0)
    cost = 0.0
    for s in range(n_steps):
        r0 = first_row + s * B
        nb = min(B, n_rows - r0)
        inv_nb = one / nb
        for r in range(nb):
            row = order[r0 + r]
            h = H[r]
            h[:] = b1
            j, stop = indptr[row], indptr[row + 1]
            while j + 4 <= stop:                           # four of W1's rows at a time
                x0, x1, x2, x3 = values[j], values[j + 1], values[j + 2], values[j + 3]
                w0, w1 = W1[indices[j]], W1[indices[j + 1]]
                w2, w3 = W1[indices[j + 2]], W1[indices[j + 3]]
                for m in range(M):
                    h[m] += (x0 * w0[m] + x1 * w1[m]) + (x2 * w2[m] + x3 * w3[m])
                j += 4
            for i in range(j, stop):
                x0, w0 = values[i], W1[indices[i]]
                for m in range(M):
                    h[m] += x0 * w0[m]
            if tanh32:
                for m in range(M):
                    h[m] = _tanh32(h[m])
            else:
                for m in range(M):
                    h[m] = math.tanh(h[m])
            g = G[r]
            for k in range(K):
                w2 = W2T[k]
                acc = zero
                for m in range(M):
                    acc += h[m] * w2[m]
                g[k] = b2[k] + acc
            top = g[0]
            for k in range(1, K):
                top = max(top, g[k])
            yr = y[row]
            zy = g[yr] - top
            total = 0.0
            for k in range(K):
                g[k] = math.exp(g[k] - top)
                total += g[k]
            cost += (math.log(total) - zy) / nb            # stable: no log of an underflow
            scale = one / (total * nb)
            for k in range(K):
                g[k] *= scale
            g[yr] -= inv_nb                                # D_r = (p - onehot(y)) / B
            e = E[r]
            e[:] = zero
            for k in range(K):
                gk, w2 = g[k], W2T[k]
                for m in range(M):
                    e[m] += gk * w2[m]
            for m in range(M):
                e[m] *= one - h[m] * h[m]
        if l1 != 0.0 or l2 != 0.0:
            _shrink(W1, lr, l1, l2)
            _shrink(W2T, lr, l1, l2)
        for k in range(K):
            w2 = W2T[k]
            for r in range(nb):
                a, h = lr * G[r, k], H[r]
                for m in range(M):
                    w2[m] -= a * h[m]
                b2[k] -= lr * G[r, k]
        for r in range(nb):
            for m in range(M):
                b1[m] -= lr * E[r, m]
        _batch_columns(indptr, indices, values, order, r0, nb, colptr, rows, vals)
        for d in range(D):                                 # four updates of a row at a time
            w = W1[d]
            j, stop = colptr[d], colptr[d + 1]
            while j + 4 <= stop:
                a0, a1, a2, a3 = lr * vals[j], lr * vals[j + 1], lr * vals[j + 2], lr * vals[j + 3]
                e0, e1, e2, e3 = E[rows[j]], E[rows[j + 1]], E[rows[j + 2]], E[rows[j + 3]]
                for m in range(M):
                    w[m] -= (a0 * e0[m] + a1 * e1[m]) + (a2 * e2[m] + a3 * e3[m])
                j += 4
            for i in range(j, stop):
                a0, e0 = lr * vals[i], E[rows[i]]
                for m in range(M):
                    w[m] -= a0 * e0[m]
    return cost


@numba.njit(cache=True, nogil=True)
def _batch_columns(indptr, indices, values, order, r0, nb, colptr, rows,
                   vals):  # pragma: no cover (compiled)
    """The minibatch ``order[r0:r0 + nb]`` as sparse columns: pixel d's non-zeros are
    ``vals[colptr[d]:colptr[d + 1]]``, in the minibatch's rows ``rows[...]`` (ascending)."""
    colptr[:] = 0
    for r in range(nb):
        row = order[r0 + r]
        for j in range(indptr[row], indptr[row + 1]):
            colptr[indices[j] + 1] += 1
    for d in range(colptr.shape[0] - 1):
        colptr[d + 1] += colptr[d]
    for r in range(nb):
        row = order[r0 + r]
        for j in range(indptr[row], indptr[row + 1]):
            at = colptr[indices[j]]
            rows[at] = r
            vals[at] = values[j]
            colptr[indices[j]] = at + 1
    for d in range(colptr.shape[0] - 1, 0, -1):  # the fill moved each start to the next's
        colptr[d] = colptr[d - 1]
    colptr[0] = 0


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
    specialisations = (COMPILED, MLP_LOOP)
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


    def _mlp_batches(self, start: int, stop: int) -> None:
        """The MLP's steps, reading sparse rows through the permutation (W2 transposed for the
        call, and back)."""
        B, p = self.batch_size, self.params
        dt = p["W1"].dtype.type
        W2T = np.ascontiguousarray(p["W2"].T)
        self._cost += _mlp_sgd_steps(self._indptr, self._indices, self._values,
                                     self._data["train"][1], self._order_or_identity(),
                                     p["W1"], p["b1"], W2T, p["b2"], start * B, stop - start,
                                     B, dt(self.learning_rate), dt(self.l1), dt(self.l2),
                                     dt is np.float32)
        p["W2"][...] = W2T.T
