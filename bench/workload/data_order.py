"""The one place that defines which examples each minibatch holds.

Epoch ``e`` (1-based) visits the training set either in its stored order (``"in-order"``, the
tutorial's sweep) or in ``numpy.random.default_rng([seed, e]).permutation(n)`` (``"shuffle"``).
Minibatch ``k`` of the epoch holds positions ``[k B, min((k + 1) B, n))`` of that order; a partial
last minibatch is dropped (the tutorial) or kept. Every backend receives the same permutation,
so all of them see the same examples in the same order.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["ORDERS", "epoch_permutation", "n_batches"]

Order = Literal["in-order", "shuffle"]
ORDERS: tuple[str, ...] = ("in-order", "shuffle")


def epoch_permutation(n: int, epoch: int, order: Order, seed: int) -> np.ndarray | None:
    """The visiting order of epoch ``epoch`` (1-based): None for in-order, else int64 indices."""
    if order == "in-order":
        return None
    if order == "shuffle":
        return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int64)
    raise ValueError(f"The 'order' parameter must be one of {ORDERS}. Got {order!r} instead.")


def n_batches(n: int, batch_size: int, drop_last: bool) -> int:
    """Minibatches per epoch: ``n // B`` when the partial one is dropped, else ``ceil(n / B)``."""
    return n // batch_size if drop_last else -(-n // batch_size)
