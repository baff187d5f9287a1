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

    h_r = tanh(b1 + sum_{d: x_rd != 0} x_rd W1_d);  z_r = b2 + h_r W2
    D_r = (softmax(z_r) - onehot(y_r)) / B;  E_r = (D_r W2^T) * (1 - h_r**2)
    W2 <- (1 - 2 lr l2) W2 - lr l1 sign(W2) - lr sum_r h_r^T D_r;  b2 <- b2 - lr sum_r D_r
    W1 <- (1 - 2 lr l2) W1 - lr l1 sign(W1) - lr sum_r x_r^T E_r;  b1 <- b1 - lr sum_r E_r

so the first layer's products touch only the ~150 non-zero pixels of a row (a fifth of the
dense 784), which is what keeps small-B epochs ahead of a compiled JAX epoch. From
``MLP_PARALLEL_FROM`` on (``numba-mlp-parallel``) the same loop runs on every core, as JAX's
and the BLAS libraries' products do.

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

__all__ = ["COMPILED", "MLP_LOOP", "MLP_PARALLEL", "NumbaTrainer"]

#: The compiled loops, plain SGD at any B: softmax regression, and the MLP. Numba is a reference
#: for what those cost without Python's per-step overhead, not a general backend, so other
#: optimizers are refused with the reason (``optimizers``).
COMPILED = Specialisation("numba-compiled-loop", "_compiled_batches", kind="batches",
                          devices=("cpu",), reads_order=True)
#: From this B on, the MLP's loop runs its rows, W2's rows and W1's rows on every core
#: (``numba.get_num_threads()``): a step's work (B x ~150 x 500 x 2 multiply-adds) then
#: outweighs starting the threads three times a step. Below it, where one core already beat
#: JAX's epoch (B = 20: 0.86x in the 22ec28b standard run), the loop stays on one: three
#: barriers a step are fragile on a shared machine (one loaded race measured 10x slower).
MLP_PARALLEL_FROM = 50
MLP_PARALLEL = Specialisation("numba-mlp-parallel", "_mlp_parallel_batches", kind="batches",
                              models=("mlp",), devices=("cpu",), reads_order=True,
                              min_batch=MLP_PARALLEL_FROM)
MLP_LOOP = Specialisation("numba-mlp-loop", "_mlp_batches", kind="batches", models=("mlp",),
                          devices=("cpu",), reads_order=True, max_batch=MLP_PARALLEL_FROM - 1)


@numba.njit(cache=True, nogil=True)
def _shrink(W, lr, l1, l2):  # pragma: no cover (compiled)
    """``W <- (1 - 2 lr l2) W - lr l1 sign(W)``: the penalties' share of a step."""
    shrink = 1.0 - 2.0 * lr * l2
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            w = W[i, j]
            W[i, j] = w * shrink - lr * l1 * ((w > 0) - (w < 0))


def _mlp_steps(indptr, indices, values, y, order, W1, b1, W2, b2, first_row, n_steps, B, lr,
               l1, l2):  # pragma: no cover (compiled)
    """The MLP's steps; compiled twice (``_mlp_sgd_steps``, ``_mlp_parallel_steps``)."""
    # lr, l1, l2 come in W's dtype and every inner loop runs over a whole row of 500 (or 10):
    # a float64 factor or a loop over part of a row kept LLVM from vectorizing the sparse
    # update of W1 (measured 5-7x slower per row). Each prange writes disjoint rows (of H,
    # G, E; of W2; of W1, read pixel by pixel from the minibatch's columns), each element in
    # the same order as one thread would: both compilations give the same numbers.
    n_rows = order.shape[0]
    D, M = W1.shape
    K = W2.shape[1]
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
    one = W1.dtype.type(1.0)
    cost = 0.0
    for s in range(n_steps):
        r0 = first_row + s * B
        nb = min(B, n_rows - r0)
        inv_nb = one / nb
        for r in numba.prange(nb):
            row = order[r0 + r]
            h = H[r]
            h[:] = b1
            for j in range(indptr[row], indptr[row + 1]):
                xv = values[j]
                w = W1[indices[j]]
                for m in range(M):
                    h[m] += xv * w[m]
            for m in range(M):
                h[m] = math.tanh(h[m])
            g = G[r]
            g[:] = b2
            for m in range(M):
                hm = h[m]
                w2 = W2[m]
                for k in range(K):
                    g[k] += hm * w2[k]
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
            for m in range(M):
                acc = W1.dtype.type(0.0)
                w2 = W2[m]
                for k in range(K):
                    acc += g[k] * w2[k]
                e[m] = acc * (one - h[m] * h[m])
        if l1 != 0.0 or l2 != 0.0:
            _shrink(W1, lr, l1, l2)
            _shrink(W2, lr, l1, l2)
        for m in numba.prange(M):
            w2 = W2[m]
            for r in range(nb):
                a = lr * H[r, m]
                g = G[r]
                for k in range(K):
                    w2[k] -= a * g[k]
        for r in range(nb):
            for k in range(K):
                b2[k] -= lr * G[r, k]
            for m in range(M):
                b1[m] -= lr * E[r, m]
        _batch_columns(indptr, indices, values, order, r0, nb, colptr, rows, vals)
        for d in numba.prange(D):
            w = W1[d]
            for j in range(colptr[d], colptr[d + 1]):
                a = lr * vals[j]
                e = E[rows[j]]
                for m in range(M):
                    w[m] -= a * e[m]
    return cost


_mlp_sgd_steps = numba.njit(cache=True, nogil=True)(_mlp_steps)
_mlp_parallel_steps = numba.njit(cache=True, nogil=True, parallel=True)(_mlp_steps)


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
    specialisations = (COMPILED, MLP_PARALLEL, MLP_LOOP)
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


    def _mlp_batches(self, start: int, stop: int, steps=_mlp_sgd_steps) -> None:
        """The MLP's steps, reading sparse rows through the permutation."""
        B, p = self.batch_size, self.params
        dt = p["W1"].dtype.type
        self._cost += steps(self._indptr, self._indices, self._values,
                            self._data["train"][1], self._order_or_identity(), p["W1"],
                            p["b1"], p["W2"], p["b2"], start * B, stop - start, B,
                            dt(self.learning_rate), dt(self.l1), dt(self.l2))

    def _mlp_parallel_batches(self, start: int, stop: int) -> None:
        """The same steps on every core (``MLP_PARALLEL_FROM``)."""
        self._mlp_batches(start, stop, _mlp_parallel_steps)
