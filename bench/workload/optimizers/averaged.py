"""Averaged SGD (Polyak-Ruppert): plain SGD steps, evaluated on the running mean of the iterates,

    p_t = p_{t-1} - lr g_t,    a_t = a_{t-1} + (p_t - a_{t-1}) / t    (a_t = mean of p_1..p_t)

as scikit-learn's ``SGDClassifier(average=True)`` averages from the first step. Training
continues from ``p``; validation and test errors are scored with ``a``.
"""

from __future__ import annotations

from typing import Any

from bench.workload.optimizers.base import zeroed_state
from bench.workload.optimizers.sgd import SGD

__all__ = ["AveragedSGD"]


class AveragedSGD(SGD):
    name = "asgd"
    graph_safe = False  # 1 / t changes every step

    def __init__(self, learning_rate: float, **hyper: Any) -> None:
        super().__init__(learning_rate)
        self.average: dict[str, Any] = {}

    def init_state(self, params: dict[str, Any]) -> None:
        super().init_state(params)
        self.average = zeroed_state(self.average, params)

    def state_arrays(self) -> list[Any]:
        return list(self.average.values())

    def step(self, params: dict[str, Any], grads: dict[str, Any]) -> None:
        super().step(params, grads)
        inv_t = 1.0 / self.steps
        for k, p in params.items():
            a = self.average[k]
            a += (p - a) * inv_t

    def eval_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.average if self.steps else params
