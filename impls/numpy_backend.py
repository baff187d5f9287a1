"""NumPy on the CPU: the shared array code with ``xp = numpy``; data stays where it is."""

from __future__ import annotations

from typing import Any

import numpy as np

from impls.array_backend import ArrayTrainer

__all__ = ["NumpyTrainer"]


class NumpyTrainer(ArrayTrainer):
    backend = "numpy"
    devices = ("cpu",)
    xp = np

    def get_params(self) -> tuple[np.ndarray, np.ndarray]:
        return self.W.astype(np.float64), self.b.astype(np.float64)

    def _to_device(self, host: np.ndarray) -> np.ndarray:
        return host

    def _host(self, host: np.ndarray, pinned: bool) -> np.ndarray:
        return host

    def _empty_like(self, a: np.ndarray) -> np.ndarray:
        return np.empty_like(a)

    def _index(self, permutation: np.ndarray, on_device: bool) -> np.ndarray:
        return permutation

    def _gather(self, src: np.ndarray, index: np.ndarray, out: np.ndarray) -> None:
        # mode="clip" skips the bounds-checking buffer (the permutation is valid by construction)
        np.take(src, index, axis=0, out=out, mode="clip")

    def _copy_h2d(self, dst: Any, src: Any) -> None:
        dst[...] = src

    def _step(self, X: np.ndarray, y: np.ndarray) -> None:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            super()._step(X, y)
