"""The tutorial's MLP in JAX; see ``bench.workload.models.mlp``:
``Z = tanh(X W1 + b1) W2 + b2``, W1 (784, 500), b1 (500,), W2 (500, 10), b2 (10,)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from impls.jaxfn.base import FunctionalOps

__all__ = ["MLPOps"]


class MLPOps(FunctionalOps):
    names = ("W1", "b1", "W2", "b2")
    weight_names = ("W1", "W2")

    @staticmethod
    def logits(params: dict[str, jax.Array], X: jax.Array) -> jax.Array:
        return jnp.tanh(X @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]
