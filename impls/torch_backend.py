"""PyTorch on the CPU or a CUDA GPU, with hand-written gradients (no autograd on the hot path).

``kernel="cuda-graph"`` (CUDA, resident data): each requested range of steps is captured once
as a CUDA graph (in pieces of at most ``GRAPH_STEPS`` steps) and replayed in later epochs, so
the per-step cost is the kernels' own, not Python's and the launch queue's. A graph records
addresses, so parameters, the cost accumulator and the epoch buffers are updated in place and
never reallocated; a graph is keyed by its epoch buffer, first step, length and hyperparameters.

The step is the one of ``bench.spec.models.softmax`` in fused, in-place torch calls, with the
weights kept transposed, ``Wt = W^T`` (10 x 784)::

    log P = log_softmax(addmm(b, X, Wt^T))  cost = -(1/B) sum_i log P[i, y_i]
    G = P - onehot(y)                       (exp in place, then scatter -1)
    Wt <- (1 - 2 lr l2) Wt - lr l1 sign(Wt_old);  Wt.addmm_(G^T, X, alpha=-lr/B)
    b.add_(sum_i G_i, alpha=-lr/B)

Why transposed: with the CPU build's MKL on this project's CI machines (AMD EPYC, AVX2 path),
``Wt.addmm_(G^T, X)`` ran 4x faster than ``W.addmm_(X^T, G)`` at B = 600 and 50,000, and the
forward product 2x faster (measured side by side; cuBLAS is indifferent). On the CPU, up to
``COLUMNS_MAX_B`` the same step runs in the classes x examples layout (``_cpu_batches``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from impls.base import Trainer

__all__ = ["TorchTrainer"]


GRAPH_STEPS = 1000
#: Largest B for the CPU's columns-layout loop; above it the rows layout's forward product
#: is the faster one with MKL here (an epoch of forward products, rows vs columns layout:
#: B = 600 31 vs 26 ms, B = 5,000 24 vs 34 ms).
COLUMNS_MAX_B = 1000
#: Up to this B the CPU loop runs on one intra-op thread: the steps' products are too small to
#: split, and one thread was 7-12 % faster per epoch at B = 1 to 200 on the 2-core CI machine
#: (13-14 % slower at 600 and 1,000). The thread count is restored when the range ends.
ONE_THREAD_MAX_B = 200


class TorchTrainer(Trainer):
    backend = "torch"
    devices = ("cpu", "cuda")
    kernels = ("eager", "cuda-graph")

    def __init__(self, **kwargs: Any) -> None:
        self._dev = torch.device(kwargs.get("device", "cpu"))
        self._tdtype = getattr(torch, kwargs.get("dtype", "float32"))
        self._marks: list[tuple[Any, Any]] = []
        self._minus_ones: dict[int, torch.Tensor] = {}
        self._graphs: dict[tuple, torch.cuda.CUDAGraph] = {}
        self._pool = None
        super().__init__(**kwargs)

    @classmethod
    def unavailable_reason(cls, device: str) -> str | None:
        if device == "cuda" and not torch.cuda.is_available():
            return "torch: no CUDA device (torch.cuda.is_available() is False)"
        return None


    def set_params(self, W: np.ndarray, b: np.ndarray) -> None:
        Wt = torch.as_tensor(W, dtype=self._tdtype).T.contiguous().to(self._dev)
        b = torch.as_tensor(b, dtype=self._tdtype).to(self._dev)
        if getattr(self, "Wt", None) is not None and self.Wt.shape == Wt.shape:
            self.Wt.copy_(Wt)  # in place: captured graphs hold these addresses
            self.b.copy_(b)
        else:
            self.Wt, self.b = Wt.clone(), b.clone()
            self._W = self.Wt.t()  # a (784, 10) view of Wt, made once

    def get_params(self) -> tuple[np.ndarray, np.ndarray]:
        return (self.Wt.detach().cpu().double().T.numpy().copy(),
                self.b.detach().cpu().double().numpy())

    def configure(self, **kwargs: Any) -> None:
        super().configure(**kwargs)
        B = self.batch_size
        if B not in self._minus_ones:
            self._minus_ones[B] = torch.full((B, 1), -1.0, dtype=self._tdtype, device=self._dev)
        self._minus_one = self._minus_ones[B]

    def _reset_cost(self) -> None:
        if getattr(self, "_cost", None) is None:
            self._cost = torch.zeros((), dtype=torch.float64, device=self._dev)
        else:
            self._cost.zero_()

    def _cost_sum(self) -> float:
        return float(self._cost)

    def _to_device(self, host: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(host if host.flags.writeable else host.copy())
        return t.to(self._dev) if self.is_gpu else t

    def _host(self, host: np.ndarray, pinned: bool) -> torch.Tensor:
        t = torch.from_numpy(host if host.flags.writeable else host.copy())
        return t.pin_memory() if pinned else t

    def _empty_like(self, a: torch.Tensor) -> torch.Tensor:
        pin = a.device.type == "cpu" and self.pinned
        return torch.empty(a.shape, dtype=a.dtype, device=a.device, pin_memory=pin)

    def _index(self, permutation: np.ndarray, on_device: bool) -> torch.Tensor:
        t = torch.from_numpy(permutation)
        return t.to(self._dev) if on_device and self.is_gpu else t

    def _gather(self, src: torch.Tensor, index: torch.Tensor, out: torch.Tensor) -> None:
        torch.index_select(src, 0, index, out=out)

    def _copy_h2d(self, dst: torch.Tensor, src: torch.Tensor) -> None:
        dst.copy_(src, non_blocking=True)

    def _step(self, X: torch.Tensor, y: torch.Tensor) -> None:
        # No autograd context needed: no tensor here requires a gradient. Per-call costs
        # dominate small B, so views of the parameters are made once (set_params).
        B = y.shape[0]
        lr = self.learning_rate
        logp = torch.log_softmax(torch.addmm(self.b, X, self._W), dim=1)
        yi = y.view(B, 1)
        self._cost.sub_(logp.gather(1, yi).sum(), alpha=1.0 / B)
        G = logp.exp_()
        G.scatter_add_(1, yi, self._minus_one if B == self.batch_size else self._minus_one[:B])
        self._penalize()
        self.Wt.addmm_(G.t(), X, alpha=-lr / B)
        self.b.add_(G.sum(0), alpha=-lr / B)

    def _penalize(self) -> None:
        """``Wt <- (1 - 2 lr l2) Wt - lr l1 sign(Wt)`` (the gradient's share comes after)."""
        Wt, lr = self.Wt, self.learning_rate
        if self.l1:
            sign = Wt.sign()
        if self.l2:
            Wt.mul_(1.0 - 2.0 * lr * self.l2)
        if self.l1:
            Wt.add_(sign, alpha=-lr * self.l1)

    def _cpu_batches(self, start: int, stop: int) -> None:
        """The CPU loop up to ``COLUMNS_MAX_B``, in the classes x examples layout
        ``Z^T = Wt X^T + b`` (10 x B).

        At small B the per-call costs are the step's cost: the range's minibatches (and their
        transposes and label rows) are cut in one ``split`` each, the logits reuse one
        buffer and the full batches' costs are summed unscaled, so no transpose, slice or
        scaled add runs per step. Measured side by side at B = 20 on the 2-core CI machine:
        about 20 % faster per epoch than the rows layout with the same buffers.
        """
        if self.batch_size <= ONE_THREAD_MAX_B and (threads := torch.get_num_threads()) > 1:
            torch.set_num_threads(1)
            try:
                return self._cpu_batches(start, stop)
            finally:
                torch.set_num_threads(threads)
        X, y = self._epoch
        B = self.batch_size
        lo, hi = start * B, min(stop * B, self._n_train)
        X, y = X[lo:hi], y[lo:hi]
        Wt, b, lr = self.Wt, self.b, self.learning_rate
        b_col = b.view(-1, 1)
        Z = torch.empty(Wt.shape[0], B, dtype=self._tdtype)
        minus_one = self._minus_one.view(1, B)
        total = torch.zeros((), dtype=self._tdtype)  # sum of log p(y | x), full batches
        for Xb, XbT, yb in zip(X.split(B), X.t().split(B, dim=1),
                               y.view(1, -1).split(B, dim=1), strict=True):
            m = yb.shape[1]
            logp = torch.log_softmax(torch.addmm(b_col, Wt, XbT, out=Z if m == B else None),
                                     dim=0)
            if m == B:
                total.add_(logp.gather(0, yb).sum())
            else:
                self._cost.sub_(logp.gather(0, yb).sum(), alpha=1.0 / m)
            G = logp.exp_()
            G.scatter_add_(0, yb, minus_one[:, :m])
            self._penalize()
            Wt.addmm_(G, Xb, alpha=-lr / m)
            b.add_(G.sum(1), alpha=-lr / m)
        self._cost.sub_(total, alpha=1.0 / B)
        self._n_cost += stop - start

    @torch.no_grad()
    def _count_errors(self, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (torch.addmm(self.b, X, self._W).argmax(1) != y).sum()

    def synchronize(self) -> None:
        if self.is_gpu:
            torch.cuda.synchronize(self._dev)

    def _h2d_start(self) -> Any:
        if not self.is_gpu:
            return None
        start = torch.cuda.Event(enable_timing=True)
        start.record()
        return start

    def _h2d_stop(self, mark: Any) -> None:
        if mark is not None:
            stop = torch.cuda.Event(enable_timing=True)
            stop.record()
            self._marks.append((mark, stop))

    def take_h2d_seconds(self) -> float | None:
        if not self.is_gpu:
            return None
        self.synchronize()
        ms = sum(a.elapsed_time(b) for a, b in self._marks)
        self._marks.clear()
        return ms / 1e3

    # ------------------------------------------------------------------ CUDA graphs
    def train_batches(self, start: int, stop: int) -> None:
        if not self.is_gpu and self.batch_size <= COLUMNS_MAX_B:
            return self._cpu_batches(start, stop)
        if self.kernel != "cuda-graph":
            return super().train_batches(start, stop)
        B = self.batch_size
        full = min(stop, self._n_train // B)  # a partial last batch runs eagerly
        k = start
        while k < full:
            length = min(GRAPH_STEPS, full - k)
            self._graph(k, length).replay()
            k += length
        self._n_cost += k - start
        if k < stop:
            super().train_batches(k, stop)
        self.synchronize()
        return None

    def _graph(self, first: int, length: int) -> torch.cuda.CUDAGraph:
        X, y = self._epoch
        key = (X.data_ptr(), first, length, self.batch_size, self.learning_rate, self.l1,
               self.l2)
        graph = self._graphs.get(key)
        if graph is None:
            if self._pool is None:
                self._warm_up(X, y)
                self._pool = torch.cuda.graph_pool_handle()
            graph = torch.cuda.CUDAGraph()
            B = self.batch_size
            with torch.cuda.graph(graph, pool=self._pool):
                for k in range(first, first + length):
                    self._step(X[k * B : (k + 1) * B], y[k * B : (k + 1) * B])
            self._graphs[key] = graph
        return graph

    def _warm_up(self, X: torch.Tensor, y: torch.Tensor) -> None:
        """Run a few steps on a side stream before the first capture (library handles,
        workspaces), then restore the parameters and the cost."""
        saved = [t.clone() for t in (self.Wt, self.b, self._cost)]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self._step(X[: self.batch_size], y[: self.batch_size])
        torch.cuda.current_stream().wait_stream(side)
        for t, s in zip((self.Wt, self.b, self._cost), saved, strict=True):
            t.copy_(s)
