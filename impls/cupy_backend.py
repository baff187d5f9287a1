"""CuPy on a CUDA GPU: the shared array code with ``xp = cupy``, plus placement and events.

Three fast paths for plain SGD on softmax regression with resident float32 data, whose CUDA C
sources are ``impls/cuda/*.cu`` (their comments give the maths and the reasoning;
``tests/test_cuda_kernels.py`` runs them on a CPU emulator):

* ``kernel="fused"`` (``sgd_fused.cu``, B <= 32): one CUDA kernel of one thread block runs a
  whole range of SGD steps, so a step costs no kernel launch at all. Per-sample and
  small-batch SGD are sequential (each step reads the W the previous one wrote), so one block,
  looping, is the natural shape; it cannot help large B, where the eager matrix products fill
  the GPU. Per step: logits (one warp per output, lanes split the D pixels of the gathered
  epoch), softmax and ``G = P - Y`` (one thread per row), then the dense W and b updates
  (threads split W's entries), W and b in global memory.
* ``kernel="persistent"`` (``sgd_persistent.cu``, B <= 32): the same one-block shape with W and
  b in shared memory for the whole launch; the training set is kept as sparse rows (CSR, built
  once per ``load``) and each step reads its rows through the epoch's permutation
  (``reads_order``: no gather), the dependent loads pipelined a few steps ahead.
* ``kernel="rows"`` (``sgd_rows.cu``, any B; meant for large B): each step is two kernels that
  read every example of the minibatch once, through the epoch's permutation, so no copy of the
  training set is gathered: blocks of 256 threads take chunks of rows into shared memory,
  compute ``G = softmax(x W + b) - onehot(y)`` one warp per row and add ``x^T G`` into
  per-thread registers; a second kernel sums the blocks' partials and updates W and b with the
  penalties.

A partial last batch of the one-block kernels runs eagerly.
"""

from __future__ import annotations

import math
from typing import Any

import cupy
import cupyx
import numpy as np

from bench.workload.datasets import Data
from impls.array_backend import SOFTMAX_SGD_FUSED, ArrayTrainer
from impls.base import Specialisation
from impls.cuda import csr_rows, kernel_options, kernel_source

__all__ = ["FUSED_KERNEL", "FUSED_MAX_BATCH", "PERSISTENT_KERNEL", "PERSISTENT_THREADS",
           "ROWS_KERNEL", "CupyTrainer"]

FUSED_MAX_BATCH = 32
ROWS_KERNEL = Specialisation("cupy-rows-kernel", "_rows_batches", kind="batches",
                             devices=("cuda",), kernel="rows", dtypes=("float32",),
                             reads_order=True)
#: ``sgd_rows.cu``'s launch shape: threads per block, rows per chunk.
ROWS_THREADS, ROWS_CHUNK = 256, 8
#: Blocks per multiprocessor of the rows kernel (80 registers x 256 threads: 3 fit in 64 K).
ROWS_BLOCKS_PER_SM = 3
FUSED_KERNEL = Specialisation("cupy-fused-kernel", "_fused_batches", kind="batches",
                              devices=("cuda",), kernel="fused", max_batch=FUSED_MAX_BATCH,
                              dtypes=("float32",))
PERSISTENT_KERNEL = Specialisation("cupy-persistent-kernel", "_persistent_batches",
                                   kind="batches", devices=("cuda",), kernel="persistent",
                                   max_batch=FUSED_MAX_BATCH, dtypes=("float32",),
                                   reads_order=True)
#: The persistent kernel's block: NT in sgd_persistent.cu (a launch with another size only
#: sets the cost to NaN).
PERSISTENT_THREADS = 256
_ONE_BLOCK_KERNELS = ("fused", "persistent")


class CupyTrainer(ArrayTrainer):
    backend = "cupy"
    devices = ("cuda",)
    kernels = ("eager", "fused", "rows", "persistent")
    xp = cupy
    specialisations = (FUSED_KERNEL, ROWS_KERNEL, PERSISTENT_KERNEL, SOFTMAX_SGD_FUSED)

    def __init__(self, **kwargs: Any) -> None:
        kernel = kwargs.get("kernel")
        dtype = kwargs.get("dtype", "float32")
        if kernel in (*_ONE_BLOCK_KERNELS, "rows") and dtype != "float32":
            raise ValueError(f"kernel={kernel!r} computes in float32; got dtype="
                             f"{kwargs['dtype']!r}. Use dtype='float32' or kernel='eager'.")
        self._marks: list[tuple[Any, Any]] = []
        self._csr: tuple[Any, Any, Any] | None = None
        super().__init__(**kwargs)
        sizes = kernel_options(self.spec.n_in, self.spec.n_out)   # D and K of the dataset
        self._n_params = (self.spec.n_in + 1) * self.spec.n_out    # W and b
        if self.kernel == "fused":
            self._fused = cupy.RawKernel(kernel_source("sgd_fused"), "sgd_steps", options=sizes)
        if self.kernel == "rows":
            module = cupy.RawModule(code=kernel_source("sgd_rows"), options=sizes)
            self._rows_grad = module.get_function("softmax_rows_grad")
            self._rows_update = module.get_function("softmax_rows_update")
            sms = cupy.cuda.Device().attributes["MultiProcessorCount"]
            self._rows_max_blocks = ROWS_BLOCKS_PER_SM * sms
            self._rows_partial = cupy.empty(self._rows_max_blocks * self._n_params, np.float32)
        if self.kernel == "persistent":
            self._persistent = cupy.RawKernel(kernel_source("sgd_persistent"), "sgd_persistent",
                                              options=sizes)
            self._no_order = cupy.zeros(1, dtype=cupy.int64)  # has_order = 0: never read

    def configure(self, **kwargs: Any) -> None:
        if self.kernel in _ONE_BLOCK_KERNELS and int(kwargs["batch_size"]) > FUSED_MAX_BATCH:
            raise ValueError(f"kernel={self.kernel!r} runs batches of at most "
                             f"{FUSED_MAX_BATCH} examples; got batch_size="
                             f"{kwargs['batch_size']}. Use kernel='eager'.")
        super().configure(**kwargs)

    def load(self, data: Data) -> float | None:
        """Place the data; for ``kernel="persistent"`` also the training set's sparse rows
        (CSR, built on the host once per load, outside the timed steps)."""
        seconds = super().load(data)
        if self.kernel == "persistent":
            self._csr = tuple(cupy.asarray(a) for a in csr_rows(self._host_train[0]))
            self.synchronize()
        return seconds

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
        order = self._order_or_identity()
        W, b = self.params["W"], self.params["b"]
        B, n = self.batch_size, self._n_train
        lr, l1, l2 = np.float32(self.learning_rate), np.float32(self.l1), np.float32(self.l2)
        update_grid = (math.ceil(self._n_params / ROWS_THREADS),)
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

    def _persistent_batches(self, start: int, stop: int) -> None:
        """Steps ``start .. stop - 1``: the whole ones in one launch of the persistent kernel,
        reading rows ``order[k B + r]`` (``_order``; in order when None) of the sparse rows."""
        B = self.batch_size
        X, y = self._data["train"]            # as stored: the rows the CSR arrays hold
        full = min(stop, self._n_train // B)  # a partial last batch runs eagerly
        order = self._order
        if full > start:
            self._persistent((1,), (PERSISTENT_THREADS,), (
                *self._csr, y, self._no_order if order is None else order,
                np.int32(order is not None), self.params["W"], self.params["b"], self._cost,
                np.int64(start * B), np.int32(full - start), np.int32(B),
                np.float32(self.learning_rate), np.float32(self.l1), np.float32(self.l2)))
        for k in range(max(full, start), stop):
            lo, hi = k * B, min(k * B + B, self._n_train)
            rows = slice(lo, hi) if order is None else order[lo:hi]
            self._step(X[rows], y[rows])

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
