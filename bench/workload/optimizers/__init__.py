"""Optimizers: state + update over any parameter collection, written once for every framework.

An update is a few in-place array operations (``*=``, ``+=``, ``-=``, ``[...] =``) that NumPy,
CuPy and PyTorch arrays all support, so each rule is one module here and runs unchanged on
every backend; applied to float64 NumPy arrays it is its own reference. A new optimizer is one
module plus one line in ``OPTIMIZERS``.
"""

from __future__ import annotations

import importlib
from typing import Any

from bench.workload.optimizers.base import Optimizer

__all__ = ["OPTIMIZERS", "Optimizer", "make_optimizer"]

#: optimizer name -> "module:class".
OPTIMIZERS: dict[str, str] = {
    "sgd": "bench.workload.optimizers.sgd:SGD",
    "momentum": "bench.workload.optimizers.momentum:Momentum",
    "nesterov": "bench.workload.optimizers.momentum:Nesterov",
    "asgd": "bench.workload.optimizers.averaged:AveragedSGD",
}


def make_optimizer(name: str, learning_rate: float, **hyper: Any) -> Optimizer:
    """A fresh optimizer ``name`` with its hyperparameters (``momentum`` for the momentum
    rules; others ignore what they do not use)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)} "
                         "(check the spelling).")
    module, _, cls = OPTIMIZERS[name].partition(":")
    return getattr(importlib.import_module(module), cls)(learning_rate, **hyper)
