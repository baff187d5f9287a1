"""The all-reduce micro-benchmark and its ring-model fit (see ``bench.distributed``)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.distributed.launcher import DEFAULT_TIMEOUT_S, launch

__all__ = ['DEFAULT_MESSAGE_BYTES', 'allreduce_benchmark', 'fit_ring', 'ring_seconds']


#: 4 B .. 64 MB in factors of 4: the micro-benchmark's message sizes.
DEFAULT_MESSAGE_BYTES: tuple[int, ...] = tuple(4**k for k in range(1, 14))


# ---------------------------------------------------------------------------- the all-reduce
def ring_seconds(n_bytes: Any, world_size: int, alpha_s: float, beta_s_per_byte: float) -> Any:
    """The ring all-reduce model ``2 (P-1) alpha + 2 (P-1)/P n beta`` (seconds; 0 at P = 1)."""
    P = np.asarray(world_size, dtype=float)
    return 2 * (P - 1) * alpha_s + 2 * (P - 1) / P * np.asarray(n_bytes, float) * beta_s_per_byte


def fit_ring(n_bytes: Sequence[float], seconds: Sequence[float],
             world_size: int) -> tuple[float, float, float]:
    """``(alpha_s, beta_s_per_byte, rms_relative_residual)`` of the ring model fitted to
    measured all-reduce times, least squares on relative residuals, alpha and beta >= 0."""
    if world_size < 2:
        raise ValueError(f"fit_ring needs world_size >= 2 (the model is 0 at P = 1). "
                         f"Got {world_size}.")
    n = np.asarray(n_bytes, float)
    t = np.asarray(seconds, float)
    if n.shape != t.shape or n.size < 2 or not np.all(t > 0):
        raise ValueError(f"fit_ring needs >= 2 (bytes, seconds) pairs with seconds > 0; got "
                         f"{n.size} sizes and {t.size} times (min {t.min() if t.size else None}).")
    a_coef, b_coef = 2.0 * (world_size - 1), 2.0 * (world_size - 1) / world_size
    A = np.column_stack([np.full_like(n, a_coef), b_coef * n]) / t[:, None]
    ones = np.ones_like(t)
    coef, *_ = np.linalg.lstsq(A, ones, rcond=None)
    if coef[0] < 0 or coef[1] < 0:  # refit with the negative term held at zero
        j = 1 if coef[0] < 0 else 0
        c, *_ = np.linalg.lstsq(A[:, [j]], ones, rcond=None)
        coef = np.zeros(2)
        coef[j] = max(float(c[0]), 0.0)
    rms = float(np.sqrt(np.mean((A @ coef - 1.0) ** 2)))
    return float(coef[0]), float(coef[1]), rms


def allreduce_job(rank: int, world_size: int, sizes: Sequence[int], min_repeats: int,
                   seconds_per_size: float, device: str) -> dict[str, Any]:
    """Median seconds of one SUM all-reduce per message size (float32 buffer of n bytes)."""
    import torch
    import torch.distributed as dist

    dev = torch.device("cuda" if device == "cuda" else "cpu")
    medians, repeats_used = [], []
    for n in sizes:
        buf = torch.ones(max(1, n // 4), dtype=torch.float32, device=dev)
        for _ in range(2):  # warm-up: connections, buffers
            dist.all_reduce(buf)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times: list[float] = []
        spent = 0.0
        while True:
            # rank 0 decides whether to go on and tells the others, so all ranks make the same
            # number of calls (a rank deciding alone would pair its calls with the wrong ones)
            more = len(times) < min_repeats or (spent < seconds_per_size and len(times) < 1000)
            go = torch.tensor([1.0 if more else 0.0], device=dev)
            dist.broadcast(go, 0)
            if float(go) == 0.0:
                break
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(buf)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            times.append(dt)
            spent += dt
        medians.append(float(np.median(times)))
        repeats_used.append(len(times))
    return {"message_bytes": [int(max(4, n - n % 4)) for n in sizes], "seconds": medians,
            "repeats": repeats_used}


def allreduce_benchmark(world_size: int, sizes: Sequence[int] = DEFAULT_MESSAGE_BYTES, *,
                        device: str = "cpu", threads_per_rank: int = 1, min_repeats: int = 5,
                        seconds_per_size: float = 0.3,
                        timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Time a SUM all-reduce over message sizes at P = ``world_size``; rank 0's medians and
    the fitted ring model: ``message_bytes``, ``seconds``, ``repeats``, ``alpha_s``,
    ``beta_s_per_byte``, ``bandwidth_GBps`` (= 1e-9 / beta), ``fit_rms_relative``,
    ``fit_min_bytes`` (smaller sizes are measured but left out of the fit)."""
    out = launch(allreduce_job, world_size,
                 (tuple(sizes), min_repeats, seconds_per_size, device), device=device,
                 threads_per_rank=threads_per_rank, timeout_s=timeout_s)[0]
    out.update(ring_fit_fields(out, world_size))
    return out


def ring_fit_fields(out: dict[str, Any], world_size: int) -> dict[str, Any]:
    """The ring fit over the sizes of at least one float32 element per rank (smaller messages
    leave ring chunks empty, which the model does not describe: measured, 4 B took half the
    time of 16 B at P = 2)."""
    min_bytes = 4 * world_size
    keep = [i for i, n in enumerate(out["message_bytes"]) if n >= min_bytes]
    alpha, beta, rms = fit_ring([out["message_bytes"][i] for i in keep],
                                [out["seconds"][i] for i in keep], world_size)
    return {"alpha_s": alpha, "beta_s_per_byte": beta,
            "bandwidth_GBps": (1e-9 / beta) if beta > 0 else math.inf,
            "fit_rms_relative": rms, "fit_min_bytes": min_bytes}
