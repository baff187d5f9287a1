"""CuPy on a CUDA GPU: the shared array code with ``xp = cupy``, plus placement and events.

``kernel="fused"`` (resident float32 data, B <= 32): one CUDA kernel of one thread block runs
a whole range of SGD steps, so a step costs no kernel launch at all. Per-sample and small-batch
SGD are sequential (each step reads the W the previous one wrote), so one block, looping,
is the natural shape; it cannot help large B, where the eager matrix products fill the GPU.
Inside, per step: logits (one warp per output, lanes split the 784 pixels), softmax and
``G = P - Y`` (one thread per row), then the W and b updates (threads split W's entries).

``kernel="rows"`` (resident float32 data, any B; meant for large B): each step is two kernels
(``impls/cuda/sgd_rows.cu``) that read every example of the minibatch once, through the epoch's
permutation, so no copy of the training set is gathered: blocks of 256 threads take chunks of
rows into shared memory, compute ``G = softmax(x W + b) - onehot(y)`` one warp per row and add
``x^T G`` into per-thread registers; a second kernel sums the blocks' partials and updates W
and b with the penalties.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Any

import cupy
import cupyx
import numpy as np

from impls.array_backend import SOFTMAX_SGD_FUSED, ArrayTrainer
from impls.base import Specialisation

__all__ = ["FUSED_KERNEL", "FUSED_MAX_BATCH", "ROWS_KERNEL", "CupyTrainer"]

FUSED_MAX_BATCH = 32
ROWS_KERNEL = Specialisation("cupy-rows-kernel", "_rows_batches", kind="batches",
                             devices=("cuda",), kernel="rows", dtypes=("float32",),
                             reads_order=True)
#: ``sgd_rows.cu``'s launch shape: threads per block, rows per chunk, parameters (784 x 10 + 10).
ROWS_THREADS, ROWS_CHUNK, N_PARAMS = 256, 8, 7850
#: Blocks per multiprocessor of the rows kernel (80 registers x 256 threads: 3 fit in 64 K).
ROWS_BLOCKS_PER_SM = 3


@cache
def _cuda_source(name: str) -> str:
    return (Path(__file__).with_name("cuda") / name).read_text()
FUSED_KERNEL = Specialisation("cupy-fused-kernel", "_fused_batches", kind="batches",
                              devices=("cuda",), kernel="fused", max_batch=FUSED_MAX_BATCH,
                              dtypes=("float32",))
_FUSED_SOURCE = r"""
#define D 784
#define K 10
#define MAXB 32
extern "C" __global__ void sgd_steps(
        const float* __restrict__ X, const long long* __restrict__ y, float* W, float* b,
        double* cost, const long long first_row, const int n_steps, const int B,
        const float lr, const float l1, const float l2) {
    __shared__ float z[MAXB * K];
    __shared__ float g[MAXB * K];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, n_warps = blockDim.x >> 5;
    const float scale = lr / B;
    for (int s = 0; s < n_steps; ++s) {
        const float* x = X + (first_row + (long long)s * B) * D;
        const long long* ys = y + first_row + (long long)s * B;
        for (int o = warp; o < B * K; o += n_warps) {          // z = x W + b
            const int r = o / K, k = o % K;
            float acc = 0.f;
            for (int d = lane; d < D; d += 32) acc += x[r * D + d] * W[d * K + k];
            for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
            if (lane == 0) z[o] = acc + b[k];
        }
        __syncthreads();
        if (tid < B) {                                          // G = softmax(z) - onehot(y)
            const float* zr = z + tid * K;
            float* gr = g + tid * K;
            float m = zr[0];
            for (int k = 1; k < K; ++k) m = fmaxf(m, zr[k]);
            float sum = 0.f;
            for (int k = 0; k < K; ++k) { gr[k] = expf(zr[k] - m); sum += gr[k]; }
            const int yi = (int)ys[tid];
            atomicAdd(cost, (double)((logf(sum) - (zr[yi] - m)) / B));
            const float inv = 1.f / sum;
            for (int k = 0; k < K; ++k) gr[k] = gr[k] * inv - (k == yi ? 1.f : 0.f);
        }
        __syncthreads();
        for (int i = tid; i < D * K; i += blockDim.x) {         // W -= lr dcost/dW
            const int d = i / K, k = i % K;
            float acc = 0.f;
            for (int r = 0; r < B; ++r) acc += x[r * D + d] * g[r * K + k];
            const float w = W[i];
            const float sgn = (float)((w > 0.f) - (w < 0.f));
            W[i] = w - scale * acc - lr * (l1 * sgn + 2.f * l2 * w);
        }
        if (tid < K) {                                          // b -= lr dcost/db
            float acc = 0.f;
            for (int r = 0; r < B; ++r) acc += g[r * K + tid];
            b[tid] -= scale * acc;
        }
        __syncthreads();
    }
}
"""


class CupyTrainer(ArrayTrainer):
    backend = "cupy"
    devices = ("cuda",)
    kernels = ("eager", "fused", "rows")
    xp = cupy
    specialisations = (FUSED_KERNEL, ROWS_KERNEL, SOFTMAX_SGD_FUSED)

    def __init__(self, **kwargs: Any) -> None:
        kernel = kwargs.get("kernel")
        if kernel in ("fused", "rows") and kwargs.get("dtype", "float32") != "float32":
            raise ValueError(f"kernel={kernel!r} computes in float32; got dtype="
                             f"{kwargs['dtype']!r}. Use dtype='float32' or kernel='eager'.")
        self._marks: list[tuple[Any, Any]] = []
        super().__init__(**kwargs)
        if self.kernel == "fused":
            self._fused = cupy.RawKernel(_FUSED_SOURCE, "sgd_steps")
        if self.kernel == "rows":
            module = cupy.RawModule(code=_cuda_source("sgd_rows.cu"))
            self._rows_grad = module.get_function("softmax_rows_grad")
            self._rows_update = module.get_function("softmax_rows_update")
            sms = cupy.cuda.Device().attributes["MultiProcessorCount"]
            self._rows_max_blocks = ROWS_BLOCKS_PER_SM * sms
            self._rows_partial = cupy.empty(self._rows_max_blocks * N_PARAMS, np.float32)

    def configure(self, **kwargs: Any) -> None:
        if self.kernel == "fused" and int(kwargs["batch_size"]) > FUSED_MAX_BATCH:
            raise ValueError(f"kernel='fused' runs batches of at most {FUSED_MAX_BATCH} "
                             f"examples; got batch_size={kwargs['batch_size']}. Use "
                             "kernel='eager'.")
        super().configure(**kwargs)

    def _fused_batches(self, start: int, stop: int) -> None:
        B = self.batch_size
        full = min(stop, self._n_train // B)  # a partial last batch runs eagerly
        if full > start:
            X, y = self._epoch
            self._fused((1,), (256,), (X, y, self.params["W"], self.params["b"], self._cost,
                                       np.int64(start * B),
                                       np.int32(full - start), np.int32(B),
                                       np.float32(self.learning_rate), np.float32(self.l1),
                                       np.float32(self.l2)))
        if max(full, start) < stop:
            self._loop(max(full, start), stop)

    def _rows_batches(self, start: int, stop: int) -> None:
        """Steps ``start .. stop - 1``, two kernels each, reading the rows through the order."""
        X, y = self._epoch                       # unshuffled: the kernel follows the order
        if self._order is None:
            if getattr(self, "_identity", None) is None or len(self._identity) != len(y):
                self._identity = cupy.arange(len(y), dtype=np.int64)
            order = self._identity
        else:
            order = self._order
        W, b = self.params["W"], self.params["b"]
        B, n = self.batch_size, self._n_train
        lr, l1, l2 = np.float32(self.learning_rate), np.float32(self.l1), np.float32(self.l2)
        update_grid = (math.ceil(N_PARAMS / ROWS_THREADS),)
        for k in range(start, stop):
            lo = k * B
            rows = min(B, n - lo)
            blocks = min(math.ceil(rows / ROWS_CHUNK), self._rows_max_blocks)
            self._rows_grad((blocks,), (ROWS_THREADS,),
                            (X, y, order, W, b, np.int64(lo), np.int32(rows),
                             self._rows_partial, self._cost))
            self._rows_update(update_grid, (ROWS_THREADS,),
                              (self._rows_partial, np.int32(blocks), W, b, np.int32(rows),
                               lr, l1, l2))

    @classmethod
    def unavailable_reason(cls, device: str) -> str | None:
        try:
            n = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDARuntimeError without a driver or device
            return f"cupy: no CUDA device ({type(exc).__name__}: {exc})"
        return None if n > 0 else "cupy: no CUDA device"

    def _to_numpy(self, a: Any) -> np.ndarray:
        return np.ascontiguousarray(cupy.asnumpy(a), dtype=np.float64)

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
