"""The Deep Learning Tutorials' multilayer perceptron (``mlp.py``): D -> 500 (tanh) -> K
(MNIST: 784 -> 500 -> 10).

    h = tanh(x W1 + b1)                  W1: (D, 500), b1: (500,)
    z = h W2 + b2,  p = softmax(z)       W2: (500, K), b2: (K,)

Cost: the mean NLL plus ``l1 (|W1| + |W2|) + l2 (W1**2 + W2**2)`` summed over both weight
matrices (the tutorial's L1 and L2_sqr; never the biases). Backpropagation, with
``D = (P - Y) / B`` the gradient of the mean NLL with respect to ``z``::

    dW2 = h^T D + pen(W2)           db2 = sum_i D_i
    E = (D W2^T) * (1 - h**2)       (tanh' = 1 - tanh**2)
    dW1 = x^T E + pen(W1)           db1 = sum_i E_i

with ``pen(W) = l1 sign(W) + 2 l2 W``. Initialisation as in the tutorial: W1 uniform in
``+-sqrt(6 / (n_in + n_hidden))`` drawn by ``numpy.random.RandomState(seed).uniform(low, high,
size=(n_in, n_hidden))`` (seed 1234 in the tutorial), b1 = 0, and the output layer all zeros.
"""

from __future__ import annotations

import numpy as np

from bench.workload.models.base import ModelSpec, Params, softmax
from bench.workload.models.softmax import N_IN, N_OUT

__all__ = ["HIDDEN", "MLP"]

HIDDEN = 500


class MLP(ModelSpec):
    """One tanh hidden layer of ``n_hidden`` units, then softmax regression."""

    name = "mlp"
    param_names = ("W1", "b1", "W2", "b2")
    weight_names = ("W1", "W2")

    def __init__(self, n_in: int = N_IN, n_hidden: int = HIDDEN, n_out: int = N_OUT) -> None:
        self.n_in, self.n_hidden, self.n_out = n_in, n_hidden, n_out

    def init(self, init: str = "zeros", seed: int = 1234) -> Params:
        """The tutorial's initialisation. ``init`` names the output layer's: "zeros" (the
        tutorial's) or "random" (N(0, 0.01**2) from ``default_rng(seed)``); the hidden layer is
        always the tutorial's uniform draw, since zeros would never break its symmetry."""
        if init not in ("zeros", "random"):
            raise ValueError(f"The 'init' parameter must be one of 'zeros', 'random'. "
                             f"Got {init!r} instead.")
        bound = np.sqrt(6.0 / (self.n_in + self.n_hidden))
        W1 = np.random.RandomState(seed).uniform(low=-bound, high=bound,
                                                 size=(self.n_in, self.n_hidden))
        W2 = (np.zeros((self.n_hidden, self.n_out)) if init == "zeros" else
              np.random.default_rng(seed).normal(0.0, 0.01, (self.n_hidden, self.n_out)))
        return {"W1": W1.astype(np.float64), "b1": np.zeros(self.n_hidden), "W2": W2,
                "b2": np.zeros(self.n_out)}

    def hidden(self, params: Params, x: np.ndarray) -> np.ndarray:
        """``h = tanh(x W1 + b1)``."""
        return np.tanh(np.asarray(x, np.float64) @ params["W1"] + params["b1"])

    def logits(self, params: Params, x: np.ndarray) -> np.ndarray:
        return self.hidden(params, x) @ params["W2"] + params["b2"]

    def gradient(self, params: Params, x: np.ndarray, y: np.ndarray, l1: float = 0.0,
                 l2: float = 0.0) -> Params:
        x = np.asarray(x, np.float64)
        B = len(y)
        h = self.hidden(params, x)
        D = softmax(h @ params["W2"] + params["b2"])
        D[np.arange(B), y] -= 1.0
        D /= B                                        # (P - Y) / B
        E = (D @ params["W2"].T) * (1.0 - h * h)
        g = {"W1": x.T @ E, "b1": E.sum(axis=0), "W2": h.T @ D, "b2": D.sum(axis=0)}
        for name in self.weight_names:
            g[name] += self.penalty_gradient(name, params[name], l1, l2)
        return g
