"""The model and the losses every implementation must reproduce, with the float64 reference.

Softmax (multinomial logistic) regression, as in the Deep Learning Tutorials' ``logistic_sgd.py``:

    p(y = k | x) = softmax(x W + b)_k = exp(z_k) / sum_j exp(z_j),   z = x W + b,
    W: (D, K) weights, b: (K,) bias (D pixels, K classes: MNIST's 784 and 10).

The cost of a batch of B examples is the **mean** negative log-likelihood plus penalties on the
weights (not the bias):

    cost = -(1/B) sum_i log p(y_i | x_i) + l1 * sum |W| + l2 * sum W**2

(mean, not sum, so that the learning rate depends less on the batch size). Its gradient:

    dcost/dW = (1/B) X^T (P - Y) + l1 * sign(W) + 2 * l2 * W,
    dcost/db = (1/B) sum_i (P - Y)_i,

where P holds the probabilities and Y the one-hot labels. One SGD step is
``W <- W - lr * dcost/dW``, ``b <- b - lr * dcost/db``. The error is the mean zero-one loss,
``mean(argmax_k p(k | x_i) != y_i)``.

Everything here is float64 NumPy written for clarity, not speed: it is the judge every backend
is tested against.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from bench.workload.datasets import DEFAULT, get_dataset
from bench.workload.models.base import ModelSpec, Params, log_softmax, softmax
from bench.workload.models.base import penalty as _penalty

__all__ = [
    "N_IN",
    "N_OUT",
    "SoftmaxRegression",
    "cost",
    "error",
    "gradient",
    "init_params",
    "log_softmax",
    "negative_log_likelihood",
    "penalty",
    "reference_step",
    "softmax",
]

#: D and K of the default dataset (MNIST: 784 pixels, 10 classes).
N_IN = get_dataset(DEFAULT).n_features
N_OUT = get_dataset(DEFAULT).n_classes
Init = Literal["zeros", "random"]


def _logits(x: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float64) @ np.asarray(W, np.float64) + np.asarray(b, np.float64)


def negative_log_likelihood(x: np.ndarray, y: np.ndarray, W: np.ndarray, b: np.ndarray) -> float:
    """``-(1/B) sum_i log p(y_i | x_i)``: the mean NLL of the batch (nats per example)."""
    logp = log_softmax(_logits(x, W, b))
    return float(-logp[np.arange(len(y)), y].mean())


def penalty(W: np.ndarray, l1: float = 0.0, l2: float = 0.0) -> float:
    """``l1 * sum |W| + l2 * sum W**2`` (weights only, never the bias)."""
    return _penalty([W], l1, l2)


def cost(x: np.ndarray, y: np.ndarray, W: np.ndarray, b: np.ndarray,
         l1: float = 0.0, l2: float = 0.0) -> float:
    """Mean NLL of the batch plus the L1 and L2 penalties on ``W``."""
    return negative_log_likelihood(x, y, W, b) + penalty(W, l1, l2)


def error(x: np.ndarray, y: np.ndarray, W: np.ndarray, b: np.ndarray) -> float:
    """Mean zero-one loss: the fraction of examples whose most probable class is not ``y``."""
    return float(np.mean(np.argmax(_logits(x, W, b), axis=1) != y))


def gradient(x: np.ndarray, y: np.ndarray, W: np.ndarray, b: np.ndarray,
             l1: float = 0.0, l2: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``(dcost/dW, dcost/db)`` = ``((1/B) X^T (P - Y) + l1 sign(W) + 2 l2 W, (1/B) sum (P - Y))``.

    ``sign(0) = 0`` is the subgradient used for the L1 term.
    """
    x = np.asarray(x, np.float64)
    W = np.asarray(W, np.float64)
    B = len(y)
    delta = softmax(_logits(x, W, b))           # P
    delta[np.arange(B), y] -= 1.0               # P - Y
    gW = x.T @ delta / B + l1 * np.sign(W) + 2.0 * l2 * W
    gb = delta.sum(axis=0) / B
    return gW, gb


def reference_step(x: np.ndarray, y: np.ndarray, W: np.ndarray, b: np.ndarray, lr: float,
                   l1: float = 0.0, l2: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """One gradient step in float64: ``(W - lr dcost/dW, b - lr dcost/db)``."""
    gW, gb = gradient(x, y, W, b, l1, l2)
    return np.asarray(W, np.float64) - lr * gW, np.asarray(b, np.float64) - lr * gb


def init_params(init: Init = "zeros", seed: int = 0, n_in: int = N_IN,
                n_out: int = N_OUT) -> tuple[np.ndarray, np.ndarray]:
    """Initial ``(W, b)`` in float64.

    ``"zeros"`` is the tutorial's choice (a convex problem needs no symmetry breaking);
    ``"random"`` draws ``W ~ N(0, 0.01**2)`` from ``numpy.random.default_rng(seed)``, ``b = 0``.
    """
    if init == "zeros":
        return np.zeros((n_in, n_out)), np.zeros(n_out)
    if init == "random":
        return np.random.default_rng(seed).normal(0.0, 0.01, (n_in, n_out)), np.zeros(n_out)
    raise ValueError(f"The 'init' parameter must be one of 'zeros', 'random'. "
                     f"Got {init!r} instead.")


class SoftmaxRegression(ModelSpec):
    """The functions above as a ``ModelSpec``: parameters ``W`` (n_in, n_out), ``b`` (n_out,)."""

    name = "softmax"
    param_names = ("W", "b")
    weight_names = ("W",)

    def __init__(self, n_in: int = N_IN, n_out: int = N_OUT) -> None:
        self.n_in, self.n_out = n_in, n_out

    def init(self, init: str = "zeros", seed: int = 0) -> Params:
        W, b = init_params(init, seed, self.n_in, self.n_out)
        return {"W": W, "b": b}

    def logits(self, params: Params, x: np.ndarray) -> np.ndarray:
        return _logits(x, params["W"], params["b"])

    def gradient(self, params: Params, x: np.ndarray, y: np.ndarray, l1: float = 0.0,
                 l2: float = 0.0) -> Params:
        gW, gb = gradient(x, y, params["W"], params["b"], l1, l2)
        return {"W": gW, "b": gb}
