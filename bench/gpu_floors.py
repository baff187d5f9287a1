"""The card's own floors, measured with PyTorch on CUDA and timed with device events.

Each floor is a *round*: a start event, ``calls`` calls of one operation, an end event, a
wait for the end event; the round's time is the events' elapsed time (``event_round``).
Several calls per round keep the device's queue full, so the host's cost of issuing the first
call is spread over the round (launch floors make 1,000 calls and measure exactly that cost).

* ``peak_matmul``: an 8192 x 8192 x 8192 float32 product (2 n^3 FLOP), TF32 off;
  ``peak_matmul_tf32`` the same with TF32 allowed (a separate figure, not a float32 floor);
* ``read_bandwidth``: ``torch.sum`` over the resident float32 training set (MNIST: 50,000 x
  784, 157 MB, more than the L2 cache); ``read_bandwidth_large``: over a 2 GiB buffer;
* ``copy_bandwidth`` / ``copy_bandwidth_large``: ``Tensor.copy_`` device to device of the
  training set / of 2 GiB, bytes read + written;
* ``launch_empty``: ``torch.cuda._sleep(0)``, a one-thread spin kernel told to spin for zero
  cycles, the most nearly empty kernel torch launches (a 1-element in-place add where torch
  lacks ``_sleep``; ``note`` says which); ``launch_op``: a 1-element in-place add, i.e. the
  same plus torch's dispatcher; ``launch_graph``: the replay of a CUDA graph of one 1-element
  add (``torch.cuda.CUDAGraph.replay``); each the mean over 1,000 back-to-back calls;
* ``h2d_pageable`` / ``h2d_pinned`` / ``d2h_pageable`` / ``d2h_pinned``: one copy of the
  training set between host memory (pageable, or page-locked by ``Tensor.pin_memory``) and
  the device.

A floor is the best the card showed (the fastest round, as for the CPU's floors); the median
and interquartile range over the rounds are kept beside it. ``floor_fields`` turns the rounds'
event times into the record's fields, and derives the per-epoch floors the targets use.

The arithmetic here imports nothing from torch; the measuring functions import it when called.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.floors import epoch_flop
from bench.workload.datasets import DEFAULT, get_dataset

__all__ = ["FLOORS", "LARGE_BYTES", "MATMUL_N", "Spread", "copy_call",
           "empty_kernel_call", "event_round", "floor_fields", "graph_replay_call",
           "matmul_call", "op_launch_call", "per_call_seconds", "rate_spread", "read_call",
           "tf32_matmul", "time_spread", "transfer_call", "unavailable_reason"]

#: Side of the square product of the peak-rate floor.
MATMUL_N = 8192
#: Bytes of the large buffer of the ``*_large`` bandwidth floors (well above a 60 MB L2).
LARGE_BYTES = 2 * 2**30

#: Every floor measured here (the ``floor`` field).
FLOORS = ("peak_matmul", "peak_matmul_tf32", "read_bandwidth", "read_bandwidth_large",
          "copy_bandwidth", "copy_bandwidth_large", "launch_empty", "launch_op",
          "launch_graph", "h2d_pageable", "h2d_pinned", "d2h_pageable", "d2h_pinned")


# --------------------------------------------------------------------------- arithmetic


@dataclass(frozen=True)
class Spread:
    """The best, median and interquartile range of one quantity over the rounds (its unit)."""

    best: float
    median: float
    iqr: float


def per_call_seconds(round_s: Sequence[float], calls: int = 1) -> np.ndarray:
    """Seconds per call of each round: the round's event seconds / ``calls``."""
    t = np.asarray(round_s, dtype=float)
    if t.ndim != 1 or t.size == 0:
        raise ValueError("per_call_seconds needs the seconds of at least one round.")
    if calls < 1:
        raise ValueError(f"calls per round must be at least 1, got {calls}.")
    if not np.all(np.isfinite(t)) or np.any(t <= 0):
        raise ValueError(f"round times must be positive seconds, got {t.tolist()}.")
    return t / calls


def _spread(values: np.ndarray, best: float) -> Spread:
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return Spread(best=float(best), median=float(median), iqr=float(q3 - q1))


def time_spread(round_s: Sequence[float], calls: int = 1) -> Spread:
    """Seconds per call: the fastest round's, the median and IQR over the rounds."""
    t = per_call_seconds(round_s, calls)
    return _spread(t, t.min())


def rate_spread(work: float, round_s: Sequence[float], calls: int = 1) -> Spread:
    """Work per second (``work`` per call: FLOP, bytes): each round's rate, the best (the
    fastest round's), the median and IQR over the rounds."""
    rates = work / per_call_seconds(round_s, calls)
    return _spread(rates, rates.max())


def floor_fields(floor: str, round_s: Sequence[float], calls: int = 1, *,
                 flop: float | None = None, bytes_moved: float | None = None,
                 dataset: str = DEFAULT) -> dict[str, Any]:
    """The record's fields of one floor from its rounds' event seconds.

    Always: ``event_times_s`` (each round), ``calls_per_round``, ``event_best_s`` /
    ``event_median_s`` / ``event_iqr_s`` (seconds per call). With ``flop``: ``gflop_per_s``
    (best) and its ``_median`` / ``_iqr``; with ``bytes_moved``: ``gb_per_s`` likewise. And the
    per-epoch floor the floor implies: ``flop_floor_epoch_s`` (peak_matmul: one epoch's
    products at the best rate), ``read_floor_epoch_s`` (read_bandwidth: the best read of the
    training set), ``copy_floor_epoch_s`` (copy_bandwidth: the best copy of it),
    ``launch_floor_epoch_s`` (launch floors: n_train launches, one per step of a per-sample
    epoch of ``dataset``, at the best per-launch time),
    ``transfer_floor_epoch_s`` (h2d floors: the best host-to-device copy of it).
    """
    if floor not in FLOORS:
        raise ValueError(f"unknown GPU floor {floor!r}; choose one of {', '.join(FLOORS)}.")
    t = time_spread(round_s, calls)
    out: dict[str, Any] = {"event_times_s": [float(x) for x in round_s],
                           "calls_per_round": int(calls), "event_best_s": t.best,
                           "event_median_s": t.median, "event_iqr_s": t.iqr}
    if flop is not None:
        r = rate_spread(flop, round_s, calls)
        out.update(flop=flop, gflop_per_s=r.best / 1e9, gflop_per_s_median=r.median / 1e9,
                   gflop_per_s_iqr=r.iqr / 1e9)
    if bytes_moved is not None:
        r = rate_spread(bytes_moved, round_s, calls)
        out.update(bytes=bytes_moved, gb_per_s=r.best / 1e9, gb_per_s_median=r.median / 1e9,
                   gb_per_s_iqr=r.iqr / 1e9)
    if floor == "peak_matmul":
        if flop is None:
            raise ValueError("peak_matmul needs the FLOP of one call.")
        flop_epoch = epoch_flop(dataset)
        out.update(epoch_flop=flop_epoch,
                   flop_floor_epoch_s=flop_epoch / (out["gflop_per_s"] * 1e9))
    elif floor == "read_bandwidth":
        out["read_floor_epoch_s"] = t.best
    elif floor == "copy_bandwidth":
        out["copy_floor_epoch_s"] = t.best
    elif floor.startswith("launch_"):
        out["launch_floor_epoch_s"] = get_dataset(dataset).n_train * t.best
    elif floor.startswith("h2d_"):
        out["transfer_floor_epoch_s"] = t.best
    return out


# --------------------------------------------------------------------------- measuring (torch)


def unavailable_reason() -> str | None:
    """Why the card's floors cannot be measured here (torch missing, no CUDA device), in the
    words the torch-CUDA benchmarks skip with; None when they can."""
    from impls.registry import unavailable_reason as reason

    return reason("torch", "cuda")


def event_round(call: Callable[[], Any], calls: int = 1) -> Callable[[], float]:
    """A function that times one round: start event, ``calls`` calls, end event, wait for the
    end event; it returns the elapsed device time in seconds."""
    import torch

    if calls < 1:
        raise ValueError(f"calls per round must be at least 1, got {calls}.")
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)

    def one_round() -> float:
        start.record()
        for _ in range(calls):
            call()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3  # elapsed_time is in milliseconds

    return one_round


@contextlib.contextmanager
def tf32_matmul(allowed: bool) -> Iterator[None]:
    """Allow (or forbid) TF32 in cuBLAS float32 products for the block, then put back what was
    set before (``allow_tf32``, and ``fp32_precision`` where torch has it)."""
    import torch

    m = torch.backends.cuda.matmul
    old = m.allow_tf32
    try:
        old_precision = m.fp32_precision  # torch >= 2.9
    except AttributeError:
        old_precision = None
    m.allow_tf32 = allowed
    try:
        yield
    finally:
        m.allow_tf32 = old
        if old_precision is not None and m.fp32_precision != old_precision:
            m.fp32_precision = old_precision


def matmul_call(n: int = MATMUL_N, device: str = "cuda") -> tuple[Callable[[], Any], float]:
    """An ``n x n @ n x n`` float32 product into a preallocated output, and its FLOP."""
    import torch

    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, generator=gen)
    b = torch.randn(n, n, device=device, generator=gen)
    out = torch.empty(n, n, device=device)
    return (lambda: torch.matmul(a, b, out=out)), 2.0 * n**3


def read_call(x: Any) -> tuple[Callable[[], Any], float]:
    """``torch.sum`` over a device tensor (reads every byte once), and the bytes read."""
    import torch

    return (lambda: torch.sum(x)), float(x.numel() * x.element_size())


def copy_call(x: Any) -> tuple[Callable[[], Any], float]:
    """A device-to-device ``copy_`` of ``x`` into a buffer like it, and the bytes read +
    written."""
    import torch

    dst = torch.zeros_like(x)
    return (lambda: dst.copy_(x)), 2.0 * x.numel() * x.element_size()


def empty_kernel_call(device: str = "cuda") -> tuple[Callable[[], Any], str]:
    """The most nearly empty kernel torch launches, and a note saying which it is."""
    import torch

    if hasattr(torch.cuda, "_sleep"):
        return (lambda: torch.cuda._sleep(0)), "torch.cuda._sleep(0): a one-thread kernel " \
            "that spins for zero cycles"
    x = torch.zeros(1, device=device)
    return (lambda: x.add_(1.0)), "a 1-element in-place add (torch.cuda._sleep is missing)"


def op_launch_call(device: str = "cuda") -> Callable[[], Any]:
    """A 1-element in-place add: one launch through torch's dispatcher."""
    import torch

    x = torch.zeros(1, device=device)
    return lambda: x.add_(1.0)


def graph_replay_call(device: str = "cuda") -> Callable[[], Any]:
    """``replay`` of a CUDA graph holding one 1-element in-place add (captured after a warm-up
    on a side stream, as torch's documentation shows)."""
    import torch

    x = torch.zeros(1, device=device)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            x.add_(1.0)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        x.add_(1.0)
    torch.cuda.synchronize()

    def replay(graph: Any = graph, x: Any = x) -> None:  # x: the graph writes to it
        graph.replay()

    return replay


def transfer_call(host: np.ndarray, direction: str, pinned: bool,
                  device: str = "cuda") -> tuple[Callable[[], Any], float]:
    """One copy of ``host`` host-to-device (``"h2d"``) or device-to-host (``"d2h"``), from or
    into pageable memory or memory page-locked by ``pin_memory``; and the bytes copied.
    Pinned copies are issued ``non_blocking`` (the end event waits for them)."""
    import torch

    if direction not in ("h2d", "d2h"):
        raise ValueError(f"direction must be 'h2d' or 'd2h', got {direction!r}.")
    src = torch.from_numpy(np.ascontiguousarray(host))
    if pinned:
        src = src.pin_memory()
    dev = torch.empty(src.shape, dtype=src.dtype, device=device)
    dev.copy_(src)
    nbytes = float(src.numel() * src.element_size())
    if direction == "h2d":
        return (lambda: dev.copy_(src, non_blocking=pinned)), nbytes
    dst = torch.empty(src.shape, dtype=src.dtype, pin_memory=pinned)
    dst.zero_()  # first touch of the pages outside the timing
    return (lambda: dst.copy_(dev, non_blocking=pinned)), nbytes
