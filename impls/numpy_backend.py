"""NumPy on the CPU: the shared array code with ``xp = numpy``; data stays where it is.

Per-sample SGD (B = 1) has its own loop: the step is dominated by fixed per-call costs, so it
works on 1-d vectors in a preallocated buffer, calls BLAS directly where that is cheaper than
the NumPy call (``asum`` for the sum of the positive exponentials) and updates W with one
in-place rank-1 call (``ger``: ``W <- W - lr x g^T``) instead of forming the 784 x 10 outer
product. The logits are shifted by the true class's logit, so ``s = sum_k exp(z_k - z_y) >= 1``
and the cost is simply ``log s``; only when that overflows is the max shift used. It reads each
example where it lies, through the epoch's permutation, so it needs no gather.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np
from scipy.linalg.blas import get_blas_funcs

from impls.array_backend import SOFTMAX_SGD_FUSED, ArrayTrainer
from impls.base import Specialisation

__all__ = ["PER_SAMPLE", "NumpyTrainer"]

PER_SAMPLE = Specialisation("per-sample-blas", "_per_sample_batches", kind="batches",
                            devices=("cpu",), max_batch=1, reads_order=True)


@cache
def _blas(dtype: str) -> tuple[Any, ...]:
    """The BLAS routines of the per-sample loop for ``dtype``: ger, axpy, asum."""
    return tuple(get_blas_funcs(("ger", "axpy", "asum"), dtype=np.dtype(dtype)))


class NumpyTrainer(ArrayTrainer):
    backend = "numpy"
    devices = ("cpu",)
    xp = np
    specialisations = (PER_SAMPLE, SOFTMAX_SGD_FUSED)

    def _param(self, host: np.ndarray) -> np.ndarray:
        return np.array(host, dtype=self.dtype, order="C")

    def _to_numpy(self, a: np.ndarray) -> np.ndarray:
        return np.array(a, np.float64, order="C")

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

    # NumPy reduces along a short (10-wide) axis one row at a time: at B = 600 these three
    # took 20-33, 15-20 and 15-16 us a step; as products with a vector of ones (BLAS gemv)
    # and a max over a transposed copy, 6-9, 3-6 and 2-3 us. Per epoch, paired A/B on the
    # 2-core CI machine: 2-7 % faster at B = 100-5,000, no change measurable at B = 20.
    def configure(self, **kwargs: Any) -> None:
        super().configure(**kwargs)
        self._ones_k = np.ones(self.spec.n_out, self.dtype)
        self._ones_b = np.ones(self.batch_size, self.dtype)

    def _row_max(self, Z: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(Z.T).max(axis=0)[:, None]

    def _row_sum(self, Z: np.ndarray) -> np.ndarray:
        return (Z @ self._ones_k)[:, None]

    def _column_sum(self, Z: np.ndarray) -> np.ndarray:
        return self._ones_b[: len(Z)] @ Z

    def _loop(self, start: int, stop: int) -> None:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            super()._loop(start, stop)

    def begin_epoch(self, permutation: np.ndarray | None) -> None:
        super().begin_epoch(permutation)
        if self.batches_path == PER_SAMPLE.name:
            self._labels = self._epoch[1].tolist()  # Python ints index and compare fastest

    def _per_sample_batches(self, start: int, stop: int) -> None:
        X = self._epoch[0]
        order = range(start, stop) if self._order is None else self._order[start:stop].tolist()
        labels = self._labels
        if not self.params["W"].flags.f_contiguous:
            # column-major while per-sample: ger then updates 10 contiguous columns of 784,
            # 4x faster here than 784 rows of 10 (set_params makes it row-major again)
            self.params["W"] = np.asfortranarray(self.params["W"])
        W, b = self.params["W"], self.params["b"]
        ger, axpy, asum = _blas(self.dtype)
        dot, exp, log, inf = np.dot, np.exp, math.log, math.inf
        lr, l1, l2 = self.learning_rate, self.l1, self.l2
        z = np.empty(W.shape[1], dtype=W.dtype)
        cost = 0.0
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for i in order:
                x, yk = X[i], labels[i]
                dot(x, W, out=z)
                z += b
                shift = float(z[yk])               # logits relative to the true class
                z -= shift
                exp(z, out=z)
                s = asum(z)                        # sum_k exp(z_k - z_y) >= 1
                if s < inf:
                    cost += log(s)                 # -log p(y | x) = log s
                    z[yk] = 1.0 - s                # s (p - onehot(y)), as exp(0) = 1
                else:                              # overflow (or NaN): shift by the max
                    s, ey, zy = self._shifted_exp(x, yk, W, z)
                    cost += log(s) - zy
                    z[yk] = ey - s
                if l1:
                    sign = np.sign(W)
                if l2:
                    W *= 1.0 - 2.0 * lr * l2
                if l1:
                    W -= (lr * l1) * sign
                a = -lr / s
                ger(a, x, z, a=W, overwrite_a=1)   # W <- W - lr x (p - onehot(y))^T
                axpy(z, b, a=a)                    # b <- b - lr (p - onehot(y))
        self._cost += cost

    def _shifted_exp(self, x: np.ndarray, yk: int, W: np.ndarray,
                     z: np.ndarray) -> tuple[float, float, float]:
        """The stable form for large logits: ``z <- exp(z - max z)``; returns the sum, the true
        class's entry and its shifted logit."""
        np.dot(x, W, out=z)
        z += self.params["b"]
        z -= z.max()
        zy = float(z[yk])
        np.exp(z, out=z)
        return float(z.sum()), float(z[yk]), zy
