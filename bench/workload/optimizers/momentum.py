"""Heavy-ball and Nesterov momentum in ``torch.optim.SGD``'s formulation (dampening 0)::

    v <- mu v + g                          (v = 0 before the first step, so v_1 = g_1)
    heavy ball:  p <- p - lr v
    Nesterov:    p <- p - lr (g + mu v)

The penalty's gradient is part of ``g`` (as ``weight_decay`` is in PyTorch), so the momentum
carries it too.
"""

from __future__ import annotations

from typing import Any

from bench.workload.optimizers.base import Optimizer, zeroed_state

__all__ = ["Momentum", "Nesterov"]


class Momentum(Optimizer):
    name = "momentum"
    nesterov = False

    def __init__(self, learning_rate: float, momentum: float = 0.9, **hyper: Any) -> None:
        super().__init__(learning_rate)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"The 'momentum' parameter of {type(self).__name__} must be a "
                             f"float in [0, 1). Got {momentum!r} instead.")
        self.momentum = float(momentum)
        self.velocity: dict[str, Any] = {}

    def init_state(self, params: dict[str, Any]) -> None:
        super().init_state(params)
        self.velocity = zeroed_state(self.velocity, params)

    def state_arrays(self) -> list[Any]:
        return list(self.velocity.values())

    def step(self, params: dict[str, Any], grads: dict[str, Any]) -> None:
        lr, mu = self.learning_rate, self.momentum
        for k, p in params.items():
            g, v = grads[k], self.velocity[k]
            v *= mu
            v += g
            if self.nesterov:
                g += mu * v
                g *= lr
                p -= g
            else:
                p -= lr * v
        self.steps += 1

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.learning_rate}, momentum={self.momentum})"


class Nesterov(Momentum):
    name = "nesterov"
    nesterov = True
