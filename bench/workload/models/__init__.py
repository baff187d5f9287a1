"""Model specifications: parameters as an ordered collection of named float64 arrays, the
forward pass, the loss and its gradient, written for clarity in float64 NumPy. They are the
judge every implementation is tested against.

A model is one spec module here (a ``ModelSpec`` subclass) plus, per framework family, one
module of operations in ``impls/`` (``impls/xp/`` for NumPy and CuPy, ``impls/pytorch/``), and
one line in ``MODELS`` below.
"""

from __future__ import annotations

import importlib

from bench.workload.datasets import DEFAULT, get_dataset
from bench.workload.models.base import ModelSpec, Params

__all__ = ["MODELS", "ModelSpec", "Params", "model_spec"]

#: model name -> "module:class" of its spec.
MODELS: dict[str, str] = {
    "softmax": "bench.workload.models.softmax:SoftmaxRegression",
    "mlp": "bench.workload.models.mlp:MLP",
}


def model_spec(name: str, dataset: str | None = None) -> ModelSpec:
    """The spec of model ``name`` for ``dataset``'s width D and class count K (None: the
    default dataset's); a ValueError naming the choices otherwise."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; choose one of {', '.join(MODELS)} "
                         "(check the spelling).")
    data = get_dataset(DEFAULT if dataset is None else dataset)
    module, _, cls = MODELS[name].partition(":")
    return getattr(importlib.import_module(module), cls)(n_in=data.n_features,
                                                         n_out=data.n_classes)
