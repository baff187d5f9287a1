"""What every model spec provides, and the parts they share: the NLL, the penalties, the error.

For a batch of B examples with logits Z (B x K, K classes) the cost is the **mean** negative
log-likelihood plus penalties on the weight matrices (never the biases)::

    cost = -(1/B) sum_i log softmax(Z_i)[y_i] + l1 sum_{W in weights} |W| + l2 sum W**2

(mean, not sum, so that the learning rate depends less on the batch size); the error is the
mean zero-one loss ``mean(argmax_k Z_ik != y_i)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

__all__ = ["ModelSpec", "Params", "log_softmax", "penalty", "softmax"]

#: Parameters: an ordered mapping of names to float64 arrays (insertion order is the order).
Params = dict[str, np.ndarray]


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise ``log softmax(z) = z - max z - log sum exp(z - max z)``: stable for large z."""
    z = np.asarray(z, dtype=np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise ``exp(z_k) / sum_j exp(z_j)``, computed as ``exp(log_softmax(z))``."""
    return np.exp(log_softmax(z))


def penalty(weights: list[np.ndarray], l1: float = 0.0, l2: float = 0.0) -> float:
    """``l1 * sum |W| + l2 * sum W**2`` over the weight matrices."""
    return float(sum(l1 * np.abs(np.asarray(W, np.float64)).sum()
                     + l2 * np.square(np.asarray(W, np.float64)).sum() for W in weights))


class ModelSpec(ABC):
    """A model: named parameters, logits, and the gradient of the cost (float64)."""

    name: ClassVar[str]
    #: parameter names in order, and which of them are penalised weight matrices
    param_names: ClassVar[tuple[str, ...]]
    weight_names: ClassVar[tuple[str, ...]]
    #: input width D and classes K (set by each spec's constructor)
    n_in: int
    n_out: int

    @abstractmethod
    def init(self, init: str = "zeros", seed: int = 0) -> Params:
        """Initial parameters (float64), deterministic given ``(init, seed)``."""

    @abstractmethod
    def logits(self, params: Params, x: np.ndarray) -> np.ndarray:
        """``Z`` (B x K) for the rows of ``x``."""

    @abstractmethod
    def gradient(self, params: Params, x: np.ndarray, y: np.ndarray, l1: float = 0.0,
                 l2: float = 0.0) -> Params:
        """``dcost/dp`` for every parameter, penalties included."""

    def flops_per_example(self) -> int:
        """Multiply-adds x 2 of one example's forward and backward pass (for floors)."""
        return 3 * 2 * sum(int(np.prod(self.shapes()[w])) for w in self.weight_names)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: v.shape for k, v in self.init().items()}

    def nll(self, params: Params, x: np.ndarray, y: np.ndarray) -> float:
        """``-(1/B) sum_i log p(y_i | x_i)``: the mean NLL of the batch (nats per example)."""
        logp = log_softmax(self.logits(params, x))
        return float(-logp[np.arange(len(y)), y].mean())

    def cost(self, params: Params, x: np.ndarray, y: np.ndarray, l1: float = 0.0,
             l2: float = 0.0) -> float:
        """Mean NLL plus the L1 and L2 penalties on the weight matrices."""
        return self.nll(params, x, y) + penalty([params[w] for w in self.weight_names], l1, l2)

    def error(self, params: Params, x: np.ndarray, y: np.ndarray) -> float:
        """Mean zero-one loss: the fraction of examples whose most probable class is not y."""
        return float(np.mean(np.argmax(self.logits(params, x), axis=1) != y))

    def penalty_gradient(self, name: str, W: np.ndarray, l1: float, l2: float) -> np.ndarray:
        """``l1 sign(W) + 2 l2 W`` for a weight matrix (``sign(0) = 0``, the subgradient used),
        zero for a bias."""
        if name not in self.weight_names:
            return np.zeros_like(W)
        return l1 * np.sign(W) + 2.0 * l2 * W

    def reference_step(self, params: Params, x: np.ndarray, y: np.ndarray, lr: float,
                       l1: float = 0.0, l2: float = 0.0) -> Params:
        """One plain gradient step in float64: ``p - lr dcost/dp`` for every parameter."""
        g = self.gradient(params, x, y, l1, l2)
        return {k: np.asarray(v, np.float64) - lr * g[k] for k, v in params.items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self.param_names)})"
