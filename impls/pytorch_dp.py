"""Data-parallel minibatch SGD with PyTorch and ``torch.distributed``: P ranks, one trajectory.

Global minibatch k of the one data order (``bench.workload.data_order``) holds the m = B examples
at positions ``[k B, (k + 1) B)`` (m < B only for a kept partial last batch). Rank r of P takes
the contiguous shard ``[lo_r, hi_r)`` of it, ``n_r = hi_r - lo_r`` = ``m // P`` or
``m // P + 1`` (the first ``m % P`` ranks take one more), and each step is::

    g_r   = (1 / n_r) sum_{i in shard r} d nll_i / d p      (local mean; 0 when n_r = 0)
    g     = sum_r (n_r / m) g_r                            one all-reduce (SUM) of one flat buffer
          = (1 / m) sum_{i in batch} d nll_i / d p          the single-process mean gradient
    g    += l1 sign(W) + 2 l2 W                             penalties once, after the all-reduce
    p    <- optimizer.step(p, g)                            the same update on every rank

so a global B that P does not divide is handled by weighting, not refused: the result is the
single-process gradient at the same global B up to rounding. (With B < P some ranks hold no
example; they contribute zeros.) Every parameter's gradient is a view into one contiguous
buffer, so the all-reduce is one call on it with no packing copy.

All ranks hold the whole (resident) training set and run the same reshuffle; a rank slices
its shard from the global minibatch. The all-reduced gradient, and hence the parameters, are
identical on every rank, so evaluation is **replicated**: every rank scores the validation set
itself and early-stopping decisions agree without communication; rank 0 reports. The mean
training NLL is accumulated per rank as ``(n_r / m) nll_r`` and summed over ranks with one
scalar all-reduce when the cost is read (once per validation, counted in ``d2h_s``).

The all-reduce of each step is timed apart (``take_allreduce_seconds``): host clock around the
blocking gloo call on a CPU, CUDA events around the NCCL call on a GPU. Either includes any
wait for the slowest rank (load imbalance shows up as all-reduce time).

Fast paths are off (``specialisations = ()``): they fuse gradient and update, leaving no point
for the all-reduce between them.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.distributed as dist

from bench.workload.models import Params
from impls.pytorch.softmax import add_penalty
from impls.torch_backend import TorchTrainer

__all__ = ["DataParallelTorchTrainer", "shard_bounds"]


def shard_bounds(m: int, world_size: int, rank: int) -> tuple[int, int]:
    """``[lo, hi)`` of rank ``rank``'s contiguous shard of a global minibatch of ``m`` examples:
    sizes ``m // P + 1`` for the first ``m % P`` ranks, ``m // P`` for the rest."""
    base, extra = divmod(m, world_size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def _dense(t: torch.Tensor) -> bool:
    """Whether ``t`` covers ``numel`` consecutive elements in some order of its dimensions (a
    permuted contiguous tensor, e.g. a transpose), so a flat buffer can hold a view like it."""
    expected = 1
    for size, stride in sorted(zip(t.shape, t.stride(), strict=True), key=lambda d: d[1]):
        if size != 1 and stride != expected:
            return False
        expected *= size
    return True


class DataParallelTorchTrainer(TorchTrainer):
    """A ``TorchTrainer`` whose step all-reduces the gradient across the default process group.

    ``rank`` / ``world_size`` default to the initialised process group's; with ``world_size``
    1 no collective is called (``allreduce`` time 0).
    """

    kernels = ("eager",)
    specialisations = ()

    def __init__(self, *, rank: int | None = None, world_size: int | None = None,
                 **kwargs: Any) -> None:
        if kwargs.get("placement", "resident") != "resident":
            raise ValueError("DataParallelTorchTrainer runs placement='resident' only (each rank "
                             "slices its shard from the resident epoch); got placement="
                             f"{kwargs['placement']!r}.")
        if world_size is None:
            world_size = dist.get_world_size() if dist.is_initialized() else 1
        if rank is None:
            rank = dist.get_rank() if dist.is_initialized() else 0
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}) for world_size={world_size}. "
                             f"Got {rank}.")
        if world_size > 1 and not dist.is_initialized():
            raise RuntimeError(f"world_size={world_size} needs an initialised process group: "
                               "call torch.distributed.init_process_group first (or start the "
                               "run with bench.distributed.launch or torchrun).")
        self.rank = int(rank)
        self.world_size = int(world_size)
        self._flat: torch.Tensor | None = None
        self._allreduce_s = 0.0
        self._allreduce_marks: list[tuple[Any, Any]] = []
        super().__init__(**kwargs)

    def __repr__(self) -> str:
        return (f"{super().__repr__()[:-1]}, rank={self.rank}, "
                f"world_size={self.world_size})")

    # ------------------------------------------------------------------ the flat gradient buffer
    @property
    def gradient_bytes(self) -> int:
        """Bytes all-reduced per step: every parameter's gradient, in this trainer's dtype."""
        return 0 if self._flat is None else self._flat.numel() * self._flat.element_size()

    def set_params(self, params: Params) -> None:
        """As ``TorchTrainer``'s, then (once) the gradients become views into one flat buffer,
        each with its parameter's strides (softmax's ``W`` is a transposed view)."""
        super().set_params(params)
        if self._flat is not None and all(
                g.shape == self.params[k].shape for k, g in self.grads.items()):
            return
        total = sum(p.numel() for p in self.params.values())
        self._flat = torch.zeros(total, dtype=self._tdtype, device=self._dev)
        grads, offset = {}, 0
        for k, p in self.params.items():
            if not _dense(p):
                raise ValueError(f"parameter {k!r} is not a dense tensor (strides "
                                 f"{p.stride()}); a flat-buffer view cannot match it.")
            grads[k] = self._flat.as_strided(p.shape, p.stride(), offset)
            offset += p.numel()
        self.grads = grads

    # ------------------------------------------------------------------ the step
    def _generic_step(self, X: torch.Tensor, y: torch.Tensor) -> None:
        m = y.shape[0]
        lo, hi = shard_bounds(m, self.world_size, self.rank)
        if hi > lo:
            nll = self.ops.gradient(self.params, X[lo:hi], y[lo:hi], 0.0, 0.0, self.grads)
            weight = (hi - lo) / m
            if weight != 1.0:
                self._flat.mul_(weight)
            self._cost.add_(nll, alpha=weight)
        else:  # B < P: this rank holds no example of the batch
            self._flat.zero_()
        if self.world_size > 1:
            self._allreduce(self._flat)
        if self.l1 or self.l2:
            for name in self.spec.weight_names:
                add_penalty(self.grads[name], self.params[name], self.l1, self.l2)
        self.optimizer.step(self.params, self.grads)

    def _allreduce(self, buf: torch.Tensor) -> None:
        """SUM-all-reduce ``buf`` in place, timed (host clock / CUDA events)."""
        if self.is_gpu:
            start = torch.cuda.Event(enable_timing=True)
            stop = torch.cuda.Event(enable_timing=True)
            start.record()
            dist.all_reduce(buf)
            stop.record()
            self._allreduce_marks.append((start, stop))
        else:
            t0 = time.perf_counter()
            dist.all_reduce(buf)  # gloo: returns when the reduced buffer is in place
            self._allreduce_s += time.perf_counter() - t0

    def take_allreduce_seconds(self) -> float:
        """Seconds spent in the steps' all-reduces since the last call (0 at world_size 1)."""
        if self._allreduce_marks:
            self.synchronize()
            self._allreduce_s += sum(a.elapsed_time(b) for a, b in self._allreduce_marks) / 1e3
            self._allreduce_marks.clear()
        seconds, self._allreduce_s = self._allreduce_s, 0.0
        return seconds

    def _cost_sum(self) -> float:
        """The batch-weighted NLL summed over ranks: one scalar all-reduce (every rank)."""
        if self.world_size == 1:
            return float(self._cost)
        total = self._cost.clone()
        dist.all_reduce(total)
        return float(total)
