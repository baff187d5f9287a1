"""The tutorial's MLP in PyTorch; see ``bench.workload.models.mlp``.

    H = tanh(X W1 + b1);  Z = H W2 + b2;  D = (P - Y) / B
    dW2 = H^T D;  db2 = sum_i D_i;  E = (D W2^T) * (1 - H**2);  dW1 = X^T E;  db1 = sum_i E_i
    (+ l1 sign(W) + 2 l2 W on W1 and W2)
"""

from __future__ import annotations

from typing import Any

import torch

from impls.ops import ModelOps
from impls.pytorch.softmax import add_penalty, softmax_delta

__all__ = ["MLPOps"]


class MLPOps(ModelOps):
    """``W1`` (D, 500), ``b1``, ``W2`` (500, K), ``b2`` as tensors on the trainer's device."""

    names = ("W1", "b1", "W2", "b2")

    def gradient(self, params: dict[str, Any], X: torch.Tensor, y: torch.Tensor, l1: float,
                 l2: float, grads: dict[str, Any]) -> torch.Tensor:
        """Write every parameter's gradient into ``grads``; return the mean NLL."""
        W1, W2 = params["W1"], params["W2"]
        B = y.shape[0]
        H = torch.addmm(params["b1"], X, W1).tanh_()
        D, log_likelihood = softmax_delta(self.t, torch.addmm(params["b2"], H, W2), y)
        D.mul_(1.0 / B)
        torch.mm(H.t(), D, out=grads["W2"])
        torch.sum(D, 0, out=grads["b2"])
        E = torch.mm(D, W2.t())
        E.mul_(H.mul_(H).neg_().add_(1.0))            # 1 - tanh**2
        torch.mm(X.t(), E, out=grads["W1"])
        torch.sum(E, 0, out=grads["b1"])
        add_penalty(grads["W1"], W1, l1, l2)
        add_penalty(grads["W2"], W2, l1, l2)
        return log_likelihood.mul_(-1.0 / B)

    @torch.no_grad()
    def errors(self, params: dict[str, Any], X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        H = torch.addmm(params["b1"], X, params["W1"]).tanh_()
        return (torch.addmm(params["b2"], H, params["W2"]).argmax(1) != y).sum()
