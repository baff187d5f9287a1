"""CuPy on a CUDA GPU: the shared array code with ``xp = cupy``, plus placement and events."""

from __future__ import annotations

from typing import Any

import cupy
import cupyx
import numpy as np

from impls.array_backend import ArrayTrainer

__all__ = ["CupyTrainer"]


class CupyTrainer(ArrayTrainer):
    backend = "cupy"
    devices = ("cuda",)
    xp = cupy

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._marks: list[tuple[Any, Any]] = []

    @classmethod
    def unavailable_reason(cls, device: str) -> str | None:
        try:
            n = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDARuntimeError without a driver or device
            return f"cupy: no CUDA device ({type(exc).__name__}: {exc})"
        return None if n > 0 else "cupy: no CUDA device"

    @classmethod
    def framework_versions(cls) -> dict[str, str]:
        return {**super().framework_versions(), "cupy": cupy.__version__,
                "cuda_runtime": str(cupy.cuda.runtime.runtimeGetVersion())}

    def get_params(self) -> tuple[np.ndarray, np.ndarray]:
        return cupy.asnumpy(self.W).astype(np.float64), cupy.asnumpy(self.b).astype(np.float64)

    def _to_device(self, host: np.ndarray) -> Any:
        return cupy.asarray(host)

    def _host(self, host: np.ndarray, pinned: bool) -> np.ndarray:
        if not pinned:
            return host
        buf = cupyx.empty_pinned(host.shape, host.dtype)
        buf[...] = host
        return buf

    def _empty_like(self, a: Any) -> Any:
        if isinstance(a, cupy.ndarray):
            return cupy.empty_like(a)
        return cupyx.empty_like_pinned(a) if self.pinned else np.empty_like(a)

    def _index(self, permutation: np.ndarray, on_device: bool) -> Any:
        return cupy.asarray(permutation) if on_device else permutation

    def _gather(self, src: Any, index: Any, out: Any) -> None:
        if isinstance(src, cupy.ndarray):
            cupy.take(src, index, axis=0, out=out)
        else:
            np.take(src, index, axis=0, out=out, mode="clip")

    def _copy_h2d(self, dst: Any, src: Any) -> None:
        if isinstance(src, cupy.ndarray):
            cupy.copyto(dst, src)
        else:
            dst.set(src)  # asynchronous on the current stream when src is pinned

    def synchronize(self) -> None:
        cupy.cuda.get_current_stream().synchronize()

    def _h2d_start(self) -> Any:
        start = cupy.cuda.Event()
        start.record()
        return start

    def _h2d_stop(self, mark: Any) -> None:
        stop = cupy.cuda.Event()
        stop.record()
        self._marks.append((mark, stop))

    def take_h2d_seconds(self) -> float | None:
        self.synchronize()
        ms = sum(cupy.cuda.get_elapsed_time(a, b) for a, b in self._marks)
        self._marks.clear()
        return ms / 1e3
