"""PyTorch on the CPU or a CUDA GPU, with hand-written gradients (``impls/pytorch/``).

Fast paths (``Specialisation``s; elsewhere the generic step runs):

* ``softmax-sgd-transposed``: softmax regression with plain SGD as fused, in-place calls on the
  transposed weights ``Wt`` (see ``impls.pytorch.softmax`` for why transposed)::

      G = softmax(addmm(b, X, Wt^T)) - onehot(y)
      Wt <- (1 - 2 lr l2) Wt - lr l1 sign(Wt_old);  Wt.addmm_(G^T, X, alpha=-lr/B)
      b.add_(sum_i G_i, alpha=-lr/B)

* ``cpu-columns-loop`` (CPU, B <= ``COLUMNS_MAX_B``): the same step in the classes x examples
  layout with the range's minibatches cut by one ``split`` (``_cpu_batches``).
* ``cuda-graph`` (``kernel="cuda-graph"``, CUDA, resident data, any model, optimizers whose
  update is the same every step): each requested range of steps is captured once as a CUDA
  graph (in pieces of at most ``GRAPH_STEPS`` steps) and replayed in later epochs, so the
  per-step cost is the kernels' own, not Python's and the launch queue's. A graph records
  addresses, so parameters, optimizer state, the cost accumulator and the epoch buffers are
  updated in place and never reallocated; a graph is keyed by its epoch buffer, first step,
  length and hyperparameters. With ``gather='batch'`` the graph also holds each minibatch's
  gather through the epoch's permutation, whose device buffer is overwritten in place per
  epoch: no separate gather of the whole training set runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from bench.workload.models import Params, model_spec
from impls.base import Specialisation, Trainer
from impls.pytorch.softmax import softmax_delta

__all__ = ["CPU_COLUMNS", "CUDA_GRAPH", "SOFTMAX_SGD_TRANSPOSED", "TorchTrainer"]


GRAPH_STEPS = 1000
#: Largest B for the CPU's columns-layout loop; above it the rows layout's forward product
#: is the faster one with MKL here (an epoch of forward products, rows vs columns layout:
#: B = 600 31 vs 26 ms, B = 5,000 24 vs 34 ms).
COLUMNS_MAX_B = 1000
#: Up to this much work per step the CPU loops (the columns loop and the generic step) run on
#: one intra-op thread: the steps' products are too small to split. Softmax regression: one
#: thread was 7-12 % faster per epoch at B = 1 to 200 on the 2-core CI machine (13-14 % slower
#: at 600 and 1,000), hence B = 200 of its steps. The MLP's step is 8.4x the work per
#: example: at B = 20 one and two threads were even (475 vs 335-520 us per step), at B = 100
#: two threads were 29 % faster (1.33 vs 1.87 ms), so it keeps both. The thread count is
#: restored when the range ends.
ONE_THREAD_MAX_B = 200
#: ... as work per step: a B = 200 step of MNIST's softmax regression, where it was measured.
ONE_THREAD_MAX_FLOP = ONE_THREAD_MAX_B * model_spec("softmax", "mnist").flops_per_example()

CPU_COLUMNS = Specialisation("cpu-columns-loop", "_cpu_batches", kind="batches",
                             devices=("cpu",), max_batch=COLUMNS_MAX_B,
                             gathers=("epoch", "batch"))
CUDA_GRAPH = Specialisation("cuda-graph", "_graph_batches", kind="batches", devices=("cuda",),
                            kernel="cuda-graph", models=("softmax", "mlp"),
                            optimizers=("sgd", "momentum", "nesterov"),
                            gathers=("epoch", "batch"))
SOFTMAX_SGD_TRANSPOSED = Specialisation("softmax-sgd-transposed", "_softmax_sgd_step")


class TorchTrainer(Trainer):
    backend = "torch"
    devices = ("cpu", "cuda")
    kernels = ("eager", "cuda-graph")
    ops_module = "impls.pytorch"
    specialisations = (CPU_COLUMNS, CUDA_GRAPH, SOFTMAX_SGD_TRANSPOSED)

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

    # ------------------------------------------------------------------ parameters and cost
    def _param(self, host: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(host), dtype=self._tdtype).to(self._dev).clone()

    def _to_numpy(self, a: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(a.detach().cpu().double().numpy())

    def load(self, data: Any) -> float | None:
        """Place the data; graphs captured on data placed before are dropped (they hold the
        old buffers' addresses)."""
        self._graphs.clear()
        return super().load(data)

    def set_params(self, params: Params) -> None:
        """In place when the shapes match: captured graphs hold the parameters' addresses."""
        if not self.params:
            super().set_params(params)
            if self.model == "softmax":
                self._Wt = self.params["W"].t()  # contiguous (10, 784), made once
            return None
        for k, v in self.ops.to_device(params).items():
            self.params[k].copy_(v)
        self.optimizer.init_state(self.params)
        return None

    def configure(self, **kwargs: Any) -> None:
        B = int(kwargs["batch_size"])
        if B not in self._minus_ones:
            self._minus_ones[B] = torch.full((B, 1), -1.0, dtype=self._tdtype, device=self._dev)
        self._minus_one = self._minus_ones[B]
        old = getattr(self, "optimizer", None)
        super().configure(**kwargs)
        if old is not None and self.optimizer is not old and old.state_arrays():
            self._graphs.clear()  # captured with the replaced optimizer's state addresses

    def _reset_cost(self) -> None:
        if getattr(self, "_cost", None) is None:
            self._cost = torch.zeros((), dtype=torch.float64, device=self._dev)
        else:
            self._cost.zero_()

    def _cost_sum(self) -> float:
        return float(self._cost)

    # ------------------------------------------------------------------ memory primitives
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

    # ------------------------------------------------------------------ fast paths
    def _softmax_sgd_step(self, X: torch.Tensor, y: torch.Tensor) -> None:
        # No autograd context needed: no tensor here requires a gradient.
        W, b = self.params["W"], self.params["b"]
        B = y.shape[0]
        lr = self.learning_rate
        G, log_likelihood = softmax_delta(self, torch.addmm(b, X, W), y)
        self._cost.sub_(log_likelihood, alpha=1.0 / B)
        self._penalize()
        self._Wt.addmm_(G.t(), X, alpha=-lr / B)
        b.add_(G.sum(0), alpha=-lr / B)

    def _penalize(self) -> None:
        """``Wt <- (1 - 2 lr l2) Wt - lr l1 sign(Wt)`` (the gradient's share comes after)."""
        Wt, lr = self._Wt, self.learning_rate
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
        about 20 % faster per epoch than the rows layout with the same buffers. With
        ``gather='batch'`` each minibatch is gathered through the permutation into the reused
        batch buffer instead, and its transpose is a view of it.
        """
        with self._small_batch_threads():
            self._cpu_batches_(start, stop)

    def _cpu_batches_(self, start: int, stop: int) -> None:
        X, y = self._epoch
        B = self.batch_size
        if self._order is not None and self.gathers_batches:
            batches = ((Xb, Xb.t(), yb.view(1, -1)) for Xb, yb in self.minibatches(start, stop))
        else:
            lo, hi = start * B, min(stop * B, self._n_train)
            X, y = X[lo:hi], y[lo:hi]
            batches = zip(X.split(B), X.t().split(B, dim=1), y.view(1, -1).split(B, dim=1),
                          strict=True)
        Wt, b, lr = self._Wt, self.params["b"], self.learning_rate
        b_col = b.view(-1, 1)
        Z = torch.empty(Wt.shape[0], B, dtype=self._tdtype)
        minus_one = self._minus_one.view(1, B)
        total = torch.zeros((), dtype=self._tdtype)  # sum of log p(y | x), full batches
        for Xb, XbT, yb in batches:
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

    def _loop(self, start: int, stop: int) -> None:
        with self._small_batch_threads():
            super()._loop(start, stop)

    @contextmanager
    def _small_batch_threads(self) -> Iterator[None]:
        """One intra-op thread on the CPU up to ``ONE_THREAD_MAX_B``, restored afterwards."""
        threads = torch.get_num_threads()
        work = self.batch_size * self.spec.flops_per_example()
        if self.is_gpu or work > ONE_THREAD_MAX_FLOP or threads == 1:
            yield
            return
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)

    def _graph_batches(self, start: int, stop: int) -> None:
        B = self.batch_size
        full = min(stop, self._n_train // B)  # a partial last batch runs eagerly
        k = start
        while k < full:
            length = min(GRAPH_STEPS, full - k)
            self._graph(k, length).replay()
            k += length
        if k < stop:
            self._loop(k, stop)

    def _graph(self, first: int, length: int) -> torch.cuda.CUDAGraph:
        X, y = self._epoch
        key = (X.data_ptr(), self._order is None, first, length, self.batch_size,
               self.learning_rate, self.l1, self.l2, self.model, self.optimizer_name,
               self.momentum, self.step_path)
        graph = self._graphs.get(key)
        if graph is None:
            if self._pool is None:
                self._warm_up(X, y)
                self._pool = torch.cuda.graph_pool_handle()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):  # gathers too, with gather='batch'
                for Xb, yb in self.minibatches(first, first + length):
                    self._step(Xb, yb)
            self._graphs[key] = graph
        return graph

    def _warm_up(self, X: torch.Tensor, y: torch.Tensor) -> None:
        """Run a few steps on a side stream before the first capture (library handles,
        workspaces), then restore the parameters, the optimizer's state and the cost."""
        tensors = [*self.params.values(), *self.optimizer.state_arrays(), self._cost]
        saved = [t.clone() for t in tensors]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self._step(X[: self.batch_size], y[: self.batch_size])
        torch.cuda.current_stream().wait_stream(side)
        for t, s in zip(tensors, saved, strict=True):
            t.copy_(s)
