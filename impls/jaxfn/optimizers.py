"""The optimizers of ``bench.workload.optimizers`` as pure rules over pytrees: the same maths
(see each rule's module there), written without in-place updates so that XLA can compile them
into a loop of steps. A rule is ``init(params) -> state``, ``update(params, grads, state, lr,
mu) -> (params, state)`` and ``evaluate(params, state) -> params`` (what the errors are scored
with); ``tests/test_optimizers.py`` checks each against the workload's float64 rule.

    sgd:       p <- p - lr g
    momentum:  v <- mu v + g;  p <- p - lr v                     (torch.optim.SGD, dampening 0)
    nesterov:  v <- mu v + g;  p <- p - lr (g + mu v)
    asgd:      p <- p - lr g;  t <- t + 1;  a <- a + (p - a) / t  (scored with a once t > 0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["RULES", "FunctionalOptimizer", "Rule"]

Tree = dict[str, jax.Array]
_map = jax.tree.map


class Rule(NamedTuple):
    init: Callable[[Tree], Any]
    update: Callable[[Tree, Tree, Any, jax.Array, jax.Array], tuple[Tree, Any]]
    evaluate: Callable[[Tree, Any], Tree]


def _zeros(params: Tree) -> Tree:
    return _map(jnp.zeros_like, params)


def _sgd(params: Tree, grads: Tree, state: Any, lr: jax.Array, mu: jax.Array):
    return _map(lambda p, g: p - lr * g, params, grads), state


def _momentum(nesterov: bool):
    def update(params: Tree, grads: Tree, velocity: Tree, lr: jax.Array, mu: jax.Array):
        velocity = _map(lambda v, g: mu * v + g, velocity, grads)
        step = _map(lambda v, g: g + mu * v, velocity, grads) if nesterov else velocity
        return _map(lambda p, s: p - lr * s, params, step), velocity
    return update


def _asgd_init(params: Tree) -> tuple[Tree, jax.Array]:
    return _zeros(params), jnp.zeros((), jnp.int32)


def _asgd(params: Tree, grads: Tree, state: tuple[Tree, jax.Array], lr: jax.Array,
          mu: jax.Array):
    average, t = state
    params, _ = _sgd(params, grads, None, lr, mu)
    t = t + 1
    inv_t = 1 / t.astype(lr.dtype)
    return params, (_map(lambda a, p: a + (p - a) * inv_t, average, params), t)


def _asgd_evaluate(params: Tree, state: tuple[Tree, jax.Array]) -> Tree:
    average, t = state
    return _map(lambda a, p: jnp.where(t > 0, a, p), average, params)


def _iterate(params: Tree, state: Any) -> Tree:
    return params


#: optimizer name (as in ``bench.workload.optimizers.OPTIMIZERS``) -> its pure rule
RULES: dict[str, Rule] = {
    "sgd": Rule(lambda params: (), _sgd, _iterate),
    "momentum": Rule(_zeros, _momentum(nesterov=False), _iterate),
    "nesterov": Rule(_zeros, _momentum(nesterov=True), _iterate),
    "asgd": Rule(_asgd_init, _asgd, _asgd_evaluate),
}


class FunctionalOptimizer:
    """The trainer-facing side of a rule (``init_state``, ``eval_params`` as the workload's
    optimizers have them): it holds the current state, which each compiled range of steps
    replaces with a new one."""

    def __init__(self, name: str, learning_rate: float, momentum: float = 0.9) -> None:
        self.name = name
        self.rule = RULES[name]
        self.learning_rate = float(learning_rate)
        self.momentum = float(momentum)
        self.state: Any = ()

    def init_state(self, params: Tree) -> None:
        self.state = self.rule.init(params)

    def eval_params(self, params: Tree) -> Tree:
        return self.rule.evaluate(params, self.state)

    def state_arrays(self) -> list[jax.Array]:
        return jax.tree.leaves(self.state)

    def __repr__(self) -> str:
        return f"FunctionalOptimizer({self.name!r}, lr={self.learning_rate})"
