"""Plain SGD: ``p <- p - lr g``."""

from __future__ import annotations

from typing import Any

from bench.workload.optimizers.base import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    name = "sgd"

    def step(self, params: dict[str, Any], grads: dict[str, Any]) -> None:
        lr = self.learning_rate
        for k, p in params.items():
            g = grads[k]
            g *= lr
            p -= g
        self.steps += 1
