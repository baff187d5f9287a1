"""What the machine's floors measure, shared by the floor benchmarks and the epoch benchmarks
that time a floor next to each of their rounds (see ``bench.analysis.targets``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bench.workload.datasets import DEFAULT, get_dataset
from bench.workload.models.softmax import N_OUT

__all__ = ["epoch_flop", "mlp_products_only_epoch", "products_only_epoch"]


def epoch_flop(dataset: str = DEFAULT) -> int:
    """FLOP of one softmax-regression epoch's products on ``dataset``: forward + weight
    gradient, ``2 x 2 n D K`` (2 FLOP per multiply-add; MNIST: 1.57 GFLOP)."""
    d = get_dataset(dataset)
    return 2 * 2 * d.n_train * d.n_features * d.n_classes


def products_only_epoch(X: np.ndarray, batch_size: int, model: str = "softmax",
                        n_classes: int = N_OUT) -> Callable[[], None]:
    """An in-order epoch of only the step's matrix products at batch size B (NumPy's BLAS),
    over slices of ``X`` with preallocated outputs, so nothing else is timed.

    Softmax regression: ``(B x D) @ (D x K)`` forward and ``(D x B) @ (B x K)`` weight
    gradient (K = ``n_classes``). The MLP (``mlp_products_only_epoch``): its five products per
    step.
    """
    if model == "mlp":
        return mlp_products_only_epoch(X, batch_size, n_classes=n_classes)
    if model != "softmax":
        raise ValueError(f"products_only_epoch: no floor for model {model!r}; choose softmax "
                         "or mlp.")
    X = np.ascontiguousarray(X, dtype=np.float32)
    B = batch_size
    W = np.random.default_rng(0).random((X.shape[1], n_classes), np.float32)
    G = np.random.default_rng(1).random((B, n_classes), np.float32)
    Z = np.empty((B, n_classes), np.float32)
    gW = np.empty((X.shape[1], n_classes), np.float32)
    n_batches = len(X) // B

    def epoch() -> None:
        for k in range(n_batches):
            Xb = X[k * B : (k + 1) * B]
            np.matmul(Xb, W, out=Z)
            np.matmul(Xb.T, G, out=gW)

    return epoch


def mlp_products_only_epoch(X: np.ndarray, batch_size: int, hidden: int = 500,
                            n_classes: int = N_OUT) -> Callable[[], None]:
    """The MLP's products per step: ``X W1`` (B x D x 500), ``H W2`` (B x 500 x K),
    ``H^T D`` (500 x B x K), ``D W2^T`` (B x K x 500) and ``X^T E`` (D x B x 500)."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    B, D_in = batch_size, X.shape[1]
    rng = np.random.default_rng(0)
    W1 = rng.random((D_in, hidden), np.float32)
    W2 = rng.random((hidden, n_classes), np.float32)
    D = rng.random((B, n_classes), np.float32)
    H = np.empty((B, hidden), np.float32)
    E = np.empty((B, hidden), np.float32)
    Z = np.empty((B, n_classes), np.float32)
    gW1 = np.empty((D_in, hidden), np.float32)
    gW2 = np.empty((hidden, n_classes), np.float32)
    n_batches = len(X) // B

    def epoch() -> None:
        for k in range(n_batches):
            Xb = X[k * B : (k + 1) * B]
            np.matmul(Xb, W1, out=H)
            np.matmul(H, W2, out=Z)
            np.matmul(H.T, D, out=gW2)
            np.matmul(D, W2.T, out=E)
            np.matmul(Xb.T, E, out=gW1)

    return epoch
