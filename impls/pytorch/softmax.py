"""Softmax regression in PyTorch; see ``bench.workload.models.softmax``.

W is kept transposed, ``Wt = W^T`` (K x D), and ``params["W"]`` is its (D, K) view: with
the CPU build's MKL on this project's CI machines, ``Wt.addmm_(G^T, X)`` ran 4x faster than
``W.addmm_(X^T, G)`` at B = 600 and 50,000 and the forward product 2x faster (measured side by
side; cuBLAS is indifferent). The logits' gradient, shared with every model ending in a
softmax::

    log P = log_softmax(Z);  nll = -(1/B) sum_i log P[i, y_i];  G = exp(log P) - onehot(y)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bench.workload.models import Params
from impls.ops import ModelOps

__all__ = ["SoftmaxOps", "add_penalty", "softmax_delta"]


def softmax_delta(t: Any, Z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, Any]:
    """``(P - Y, sum_i log P[i, y_i])`` from logits ``Z`` (B x 10): the mean NLL is the second
    times ``-1/B``. ``t`` is the trainer (its column of -1)."""
    B = y.shape[0]
    logp = torch.log_softmax(Z, dim=1)
    yi = y.view(B, 1)
    log_likelihood = logp.gather(1, yi).sum()
    G = logp.exp_()
    G.scatter_add_(1, yi, t._minus_one if B == t.batch_size else t._minus_one[:B])
    return G, log_likelihood


def add_penalty(g: torch.Tensor, W: torch.Tensor, l1: float, l2: float) -> None:
    """``g += l1 sign(W) + 2 l2 W`` in place."""
    if l1:
        g.add_(W.sign(), alpha=l1)
    if l2:
        g.add_(W, alpha=2.0 * l2)


class SoftmaxOps(ModelOps):
    """``W`` as a (D, K) view of the contiguous ``Wt`` (K, D), and ``b`` (K,)."""

    names = ("W", "b")

    def to_device(self, params: Params) -> dict[str, Any]:
        Wt = self.t._param(np.ascontiguousarray(np.asarray(params["W"]).T))
        return {"W": Wt.t(), "b": self.t._param(params["b"])}

    def gradient(self, params: dict[str, Any], X: torch.Tensor, y: torch.Tensor, l1: float,
                 l2: float, grads: dict[str, Any]) -> torch.Tensor:
        """Write ``dcost/dW``, ``dcost/db`` into ``grads``; return the mean NLL."""
        W, b = params["W"], params["b"]
        B = y.shape[0]
        G, log_likelihood = softmax_delta(self.t, torch.addmm(b, X, W), y)
        gWt = grads["W"].t()                       # contiguous, like Wt
        torch.addmm(gWt, G.t(), X, beta=0.0, alpha=1.0 / B, out=gWt)
        torch.sum(G, 0, out=grads["b"])
        grads["b"].mul_(1.0 / B)
        add_penalty(grads["W"], W, l1, l2)
        return log_likelihood.mul_(-1.0 / B)

    @torch.no_grad()
    def errors(self, params: dict[str, Any], X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (torch.addmm(params["b"], X, params["W"]).argmax(1) != y).sum()
