"""The optimizer contract: ``init_state`` once per parameter set, ``step`` per minibatch."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

__all__ = ["Optimizer"]


class Optimizer(ABC):
    """Updates a dict of arrays in place from a dict of gradients of the same layout.

    ``step`` may overwrite ``grads`` (they are scratch, recomputed every step). ``graph_safe``:
    the update is the same sequence of array operations at every step (no Python-side value
    that changes with the step count), so a CUDA graph may capture and replay it.
    """

    name: ClassVar[str]
    graph_safe: ClassVar[bool] = True

    def __init__(self, learning_rate: float, **hyper: Any) -> None:
        self.learning_rate = float(learning_rate)
        self.steps = 0

    def init_state(self, params: dict[str, Any]) -> None:
        """Allocate the state for ``params`` (zeros shaped like them) and reset the count."""
        self.steps = 0

    @abstractmethod
    def step(self, params: dict[str, Any], grads: dict[str, Any]) -> None:
        """One update of ``params`` in place."""

    def eval_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """The parameters to evaluate (the iterate itself, or an average of iterates)."""
        return params

    def state_arrays(self) -> list[Any]:
        """The state's arrays (to save and restore around a CUDA graph's warm-up)."""
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.learning_rate})"


def zeros_like(a: Any) -> Any:
    """Zeros of ``a``'s shape, type, dtype and device, for any of the array libraries."""
    out = a * 0
    out[...] = 0  # also clears NaN * 0
    return out


def zeroed_state(state: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """State arrays shaped like ``params``, all zero: ``state``'s own arrays zeroed in place when
    they fit (a captured CUDA graph holds their addresses), fresh ones otherwise."""
    if state.keys() == params.keys() and all(state[k].shape == p.shape
                                             for k, p in params.items()):
        for a in state.values():
            a[...] = 0
        return state
    return {k: zeros_like(p) for k, p in params.items()}
