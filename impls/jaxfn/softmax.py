"""Softmax regression in JAX; see ``bench.workload.models.softmax``: ``Z = X W + b``, W (784, 10)
in the spec's layout, b (10,)."""

from __future__ import annotations

import jax

from impls.jaxfn.base import FunctionalOps

__all__ = ["SoftmaxOps"]


class SoftmaxOps(FunctionalOps):
    names = ("W", "b")
    weight_names = ("W",)

    @staticmethod
    def logits(params: dict[str, jax.Array], X: jax.Array) -> jax.Array:
        return X @ params["W"] + params["b"]
