"""What the machine's floors measure, shared by the floor benchmarks and the epoch benchmarks
that time a floor next to each of their rounds (see ``bench.targets``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bench.spec.models.softmax import N_OUT

__all__ = ["EPOCH_FLOP", "products_only_epoch"]

#: FLOP of one epoch's products: forward + weight gradient, 2 FLOP per multiply-add.
EPOCH_FLOP = 2 * 2 * 50_000 * 784 * N_OUT


def products_only_epoch(X: np.ndarray, batch_size: int) -> Callable[[], None]:
    """An in-order epoch of only the step's two products at batch size B (NumPy's BLAS):
    ``(B x 784) @ (784 x 10)`` forward and ``(784 x B) @ (B x 10)`` weight gradient, over
    slices of ``X``; preallocated outputs, so nothing else is timed."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    B = batch_size
    W = np.random.default_rng(0).random((X.shape[1], N_OUT), np.float32)
    G = np.random.default_rng(1).random((B, N_OUT), np.float32)
    Z = np.empty((B, N_OUT), np.float32)
    gW = np.empty((X.shape[1], N_OUT), np.float32)
    n_batches = len(X) // B

    def epoch() -> None:
        for k in range(n_batches):
            Xb = X[k * B : (k + 1) * B]
            np.matmul(Xb, W, out=Z)
            np.matmul(Xb.T, G, out=gW)

    return epoch
