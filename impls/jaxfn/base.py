"""What the JAX family's model operations share: the cost, its gradient and the error count as
pure functions of (params, X, y), traced once by ``jax.jit``.

The gradient of the mean NLL comes from ``jax.value_and_grad`` of the model's logits; the
penalties' share is added by hand, ``l1 sign(W) + 2 l2 W``, because the spec's L1 subgradient
is ``sign(0) = 0`` and JAX differentiates ``|w|`` at 0 as 1 (a zero-initialised W would move
under L1 alone). Which penalties are on is static (a compiled function per combination), their
strengths are traced values, so another lr, l1 or l2 needs no new compilation.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import jax
import jax.numpy as jnp

from bench.workload.models import Params
from impls.ops import ModelOps

__all__ = ["FunctionalOps", "mean_nll"]


def mean_nll(logits: jax.Array, y: jax.Array) -> jax.Array:
    """``-(1/B) sum_i log softmax(z_i)[y_i]`` (``jax.nn.log_softmax`` shifts by the row max)."""
    logp = jax.nn.log_softmax(logits, axis=1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


class FunctionalOps(ModelOps):
    """A model's operations as pure functions: ``value_and_grad`` returns new gradients instead
    of writing into buffers (``gradient``, the in-place contract, is not this family's)."""

    #: the penalised weight matrices (the spec's ``weight_names``)
    weight_names: tuple[str, ...]

    @staticmethod
    @abstractmethod
    def logits(params: dict[str, jax.Array], X: jax.Array) -> jax.Array:
        """``Z`` (B x classes) for the rows of ``X``."""

    def to_device(self, params: Params) -> dict[str, Any]:
        return {k: self.t._param(params[k]) for k in self.names}

    def value_and_grad(self, params: dict[str, jax.Array], X: jax.Array, y: jax.Array,
                       l1: jax.Array, l2: jax.Array,
                       penalties: tuple[bool, bool]) -> tuple[jax.Array, dict[str, jax.Array]]:
        """``(mean NLL, dcost/dparams)`` with cost = mean NLL + l1 |W| + l2 W**2 over the
        weight matrices; ``penalties`` says which of l1, l2 are non-zero (static)."""
        nll, grads = jax.value_and_grad(lambda p: mean_nll(self.logits(p, X), y))(params)
        for w in self.weight_names:
            if penalties[0]:
                grads[w] = grads[w] + l1 * jnp.sign(params[w])
            if penalties[1]:
                grads[w] = grads[w] + (2 * l2) * params[w]
        return nll, grads

    def gradient(self, params, X, y, l1, l2, grads):  # the in-place contract
        raise TypeError("The JAX family is functional: use value_and_grad, which returns the "
                        "gradients instead of writing them into buffers.")

    def errors(self, params: dict[str, jax.Array], X: jax.Array, y: jax.Array) -> jax.Array:
        """Misclassified rows of (X, y), as a device scalar."""
        return _errors(self.logits, params, X, y)


@jax.jit(static_argnums=0)
def _errors(logits: Any, params: dict[str, jax.Array], X: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.sum(jnp.argmax(logits(params, X), axis=1) != y)
