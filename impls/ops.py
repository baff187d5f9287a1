"""The contract of a framework family's model operations, and the parts they share.

One class per (family, model): ``impls/xp/<model>.py`` (NumPy and CuPy) and
``impls/pytorch/<model>.py``. It computes; the trainer owns the arrays and the device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from bench.workload.models import Params

__all__ = ["ModelOps"]


class ModelOps(ABC):
    """A model's operations on one trainer's arrays: layout, gradient, errors."""

    #: the parameter names, in the spec's order
    names: tuple[str, ...]

    def __init__(self, trainer: Any) -> None:
        self.t = trainer

    def to_device(self, params: Params) -> dict[str, Any]:
        """The trainer's arrays (its dtype, device and layout) from float64 host arrays."""
        return {k: self.t._param(params[k]) for k in self.names}

    def to_host(self, params: dict[str, Any]) -> Params:
        """float64 host arrays in the spec's layout."""
        return {k: self.t._to_numpy(v) for k, v in params.items()}

    @abstractmethod
    def gradient(self, params: dict[str, Any], X: Any, y: Any, l1: float, l2: float,
                 grads: dict[str, Any]) -> Any:
        """Write ``dcost/dp`` (mean NLL + penalties) of every parameter into ``grads``, in the
        parameters' layout; return the batch's mean NLL as a device scalar."""

    @abstractmethod
    def errors(self, params: dict[str, Any], X: Any, y: Any) -> Any:
        """Misclassified rows of (X, y) with ``params``, as a device scalar."""
