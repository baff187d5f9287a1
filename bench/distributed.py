"""The data-parallel runner: P processes on ``torch.distributed`` (gloo on CPUs, NCCL on GPUs).

Two ways to start the ranks:

* ``launch(job, P, ...)``: spawned here with ``torch.multiprocessing`` (start method "spawn"),
  rendezvous on ``tcp://127.0.0.1:<free port>``; every rank runs ``job(rank, P, *args)`` and
  the parent collects what each returns. A rank that raises, dies or outlives ``timeout_s``
  ends the launch with ``DistributedError`` naming the rank and what happened; the other
  ranks are terminated (the parent never hangs). Collectives time out after ``timeout_s``.
* ``torchrun --nproc-per-node P -m bench.distributed ...``: ``main`` sees ``RANK`` /
  ``WORLD_SIZE`` in the environment and joins the ``env://`` rendezvous torchrun set up (one
  machine or several: ``--nnodes N --rdzv-backend c10d --rdzv-endpoint HOST:PORT``).

A data-parallel run is ``bench.harness.train`` on an ``impls.pytorch_dp.DataParallelTorchTrainer``
(see there for the sharding and the weighting of uneven shards); afterwards the steps'
all-reduce seconds are moved out of ``compute_s`` into ``allreduce_s`` (they were measured inside
the host-clock window around the steps, so ``compute_s - allreduce`` is the steps' own time).

The all-reduce micro-benchmark times one SUM all-reduce of n bytes (float32) and fits the ring
model (Patarasuk & Yuan 2009; NCCL's "bus bandwidth" uses the same factor)::

    T(n) = 2 (P - 1) alpha + 2 (P - 1) / P * n * beta        alpha: s, beta: s/byte

by least squares on relative residuals ``(T_model - T) / T``, so 4 B and 64 MB count alike.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue as queue_module
import socket
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import numpy as np

from bench.workload.config import RunConfig
from bench.workload.datasets import Data

__all__ = ["DEFAULT_MESSAGE_BYTES", "DistributedError", "DistributedRun", "allreduce_benchmark",
           "dist_backend", "fit_ring", "launch", "main", "ring_seconds", "run_data_parallel",
           "train_data_parallel", "unavailable_reason"]

#: 4 B .. 64 MB in factors of 4: the micro-benchmark's message sizes.
DEFAULT_MESSAGE_BYTES: tuple[int, ...] = tuple(4**k for k in range(1, 14))
#: Default seconds before a launch (or one collective) is declared hung.
DEFAULT_TIMEOUT_S = 120.0


class DistributedError(RuntimeError):
    """A data-parallel launch failed: a rank raised, died, or did not finish in time."""


def dist_backend(device: str) -> str:
    """The ``torch.distributed`` backend for a device kind: ``nccl`` on CUDA, else ``gloo``."""
    return "nccl" if device.startswith("cuda") else "gloo"


def unavailable_reason(device: str, world_size: int, threads_per_rank: int = 1, *,
                       check_cores: bool = True) -> str | None:
    """Why P = ``world_size`` ranks cannot run on ``device`` here (a skip reason), or None.

    ``check_cores``: on the CPU, also refuse more ranks x threads than cores (a benchmark
    would measure the oversubscription); correctness runs pass False.
    """
    try:
        import torch
        import torch.distributed as dist
    except ImportError:
        return "torch: not installed (pip install -e '.[torch]')"
    if not dist.is_available():
        return "torch.distributed is not available in this torch build"
    if device == "cpu":
        cores = os.cpu_count() or 1
        if check_cores and world_size * threads_per_rank > cores:
            return (f"P={world_size} ranks x {threads_per_rank} thread(s) need "
                    f"{world_size * threads_per_rank} cores; this machine has {cores}")
        if not dist.is_gloo_available():
            return "torch.distributed: gloo backend not built in"
        return None
    if device == "cuda":
        if not torch.cuda.is_available():
            return "torch: no CUDA device (torch.cuda.is_available() is False)"
        if not dist.is_nccl_available():
            return "torch.distributed: nccl backend not built in"
        found = torch.cuda.device_count()
        if found < world_size:
            return f"nccl at P={world_size} needs {world_size} CUDA devices; found {found}"
        return None
    return f"unknown device {device!r}; choose 'cpu' (gloo) or 'cuda' (nccl)"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------- launching
def _worker(rank: int, world_size: int, port: int, device: str, threads: int, timeout_s: float,
            job: Callable[..., Any], args: tuple, results: Any) -> None:
    """One spawned rank: join the group, run the job, report ``(rank, ok, value|traceback)``."""
    try:
        import torch
        import torch.distributed as dist

        torch.set_num_threads(threads)
        if device == "cuda":
            torch.cuda.set_device(rank)
        dist.init_process_group(dist_backend(device), init_method=f"tcp://127.0.0.1:{port}",
                                rank=rank, world_size=world_size,
                                timeout=timedelta(seconds=timeout_s))
        try:
            value = job(rank, world_size, *args)
        finally:
            dist.destroy_process_group()
        results.put((rank, True, value))
    except BaseException:  # reported to the parent, which raises
        results.put((rank, False, traceback.format_exc()))


def launch(job: Callable[..., Any], world_size: int, args: Sequence[Any] = (), *,
           device: str = "cpu", threads_per_rank: int = 1,
           timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Any]:
    """Run ``job(rank, world_size, *args)`` on ``world_size`` spawned ranks; their return values
    by rank.

    ``job`` must be importable by name (a module-level function) and its arguments and results
    picklable. Raises ``DistributedError`` when a rank raises (with its traceback), exits
    without a result, or the launch exceeds ``timeout_s`` seconds; the remaining ranks are
    terminated first.
    """
    import torch.multiprocessing as mp

    if not (isinstance(world_size, int) and world_size >= 1):
        raise ValueError(f"world_size must be an int >= 1. Got {world_size!r}.")
    reason = unavailable_reason(device, world_size, check_cores=False)
    if reason:
        raise DistributedError(f"cannot launch P={world_size} on {device!r}: {reason}")
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, world_size, port, device, threads_per_rank,
                                               timeout_s, job, tuple(args), results),
                         name=f"gdbench-rank{r}", daemon=True)
             for r in range(world_size)]
    for p in procs:
        p.start()
    values: dict[int, Any] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(values) < world_size:
            try:
                rank, ok, value = results.get(timeout=0.2)
            except queue_module.Empty:
                rank = None
            if rank is not None:
                if not ok:
                    raise DistributedError(_failure(job, world_size, device, procs, results,
                                                    values, {rank: value}))
                values[rank] = value
                continue
            if any(r not in values and p.exitcode is not None for r, p in enumerate(procs)):
                time.sleep(0.5)  # a result put just before exiting may still be in flight
                if results.empty():
                    raise DistributedError(_failure(job, world_size, device, procs, results,
                                                    values, {}))
            if time.monotonic() > deadline:
                waiting = sorted(set(range(world_size)) - set(values))
                raise DistributedError(f"{_where(job, world_size, device)}: timed out after "
                                       f"{timeout_s:g} s waiting for rank(s) {waiting} (hung "
                                       "in a collective or too slow); raise timeout_s if the "
                                       "work is simply long.")
    finally:
        _stop(procs, wait_s=5.0 if len(values) == world_size else 0.5)
    return [values[r] for r in range(world_size)]


#: Words of an error that a rank gets because *another* rank failed (its peer vanished).
_CONSEQUENCE = ("Connection reset", "Connection closed", "connection closed", "Timed out",
                "timed out", "Broken pipe", "NCCL communicator was aborted")
#: Seconds to wait, after the first failure, for the other ranks' reports.
_GRACE_S = 3.0


def _failure(job: Callable[..., Any], world_size: int, device: str, procs: list[Any],
             results: Any, values: dict[int, Any], raised: dict[int, str]) -> str:
    """The error message of a failed launch: every failed rank, the likely cause first (ranks
    that died, then errors that are not a lost peer), then the ranks that only lost a peer."""
    end = time.monotonic() + _GRACE_S
    while time.monotonic() < end and len(values) + len(raised) < world_size:
        try:
            rank, ok, value = results.get(timeout=0.1)
        except queue_module.Empty:
            if all(p.exitcode is not None for p in procs):
                break
            continue
        (values if ok else raised)[rank] = value
    died = [(r, p.exitcode) for r, p in enumerate(procs)
            if r not in values and r not in raised and p.exitcode not in (None, 0)]
    lines = [f"rank {r} exited with code {code} before returning a result (killed, out of "
             "memory, or a crash in native code)" for r, code in died]
    ordered = sorted(raised.items(), key=lambda kv: (any(w in kv[1] for w in _CONSEQUENCE),
                                                     kv[0]))
    lines += [f"rank {r} raised:\n{tb}" for r, tb in ordered]
    if not lines:
        lines = ["a rank exited without a result"]
    return f"{_where(job, world_size, device)}: " + "\n".join(lines)


def _where(job: Callable[..., Any], world_size: int, device: str) -> str:
    return f"data-parallel {getattr(job, '__name__', job)} (P={world_size}, {device})"


def _stop(procs: list[Any], wait_s: float) -> None:
    """Join the ranks (``wait_s`` each); terminate, then kill, those still running (ours
    only)."""
    for p in procs:
        p.join(timeout=wait_s)
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join(timeout=3.0)
        if p.is_alive():
            p.kill()
            p.join(timeout=3.0)


# ---------------------------------------------------------------------------- training
@dataclass
class DistributedRun:
    """One data-parallel configuration's rounds, as rank 0 saw them.

    ``rounds``: ``RunResult.to_dict()`` of each timed round (warm-up rounds dropped), with
    ``allreduce_s`` split out of ``compute_s``. ``params``: the final float64 parameters of the
    last round when asked for, per rank (to check that the ranks agree).
    """

    config: RunConfig
    world_size: int
    threads_per_rank: int
    device: str
    gradient_bytes: int
    rounds: list[dict[str, Any]]
    params: list[dict[str, np.ndarray]] = field(default_factory=list)


def train_data_parallel(trainer: Any, config: RunConfig) -> Any:
    """``bench.harness.train`` on a ``DataParallelTorchTrainer`` (``reset`` first), with the
    steps' all-reduce seconds moved from ``compute_s`` into ``allreduce_s``."""
    from bench.harness import reset, train

    reset(trainer, config)
    trainer.take_allreduce_seconds()
    result = train(trainer, config)
    allreduce = trainer.take_allreduce_seconds()
    result.times.compute_s -= allreduce
    result.times.allreduce_s = allreduce
    return result


def _train_job(rank: int, world_size: int, configs: Sequence[RunConfig], data: Data | None,
               rounds: int, warmup_rounds: int, return_params: bool) -> list[dict[str, Any]]:
    """A rank's share of ``run_data_parallel``: every config, ``warmup + rounds`` times."""
    import torch

    from bench.workload.datasets import load
    from impls.pytorch_dp import DataParallelTorchTrainer

    out = []
    for config in configs:
        trainer = DataParallelTorchTrainer(
            rank=rank, world_size=world_size, device=config.device or "cpu",
            dtype=config.dtype, dataset=config.dataset, model=config.model,
            optimizer=config.optimizer, momentum=config.momentum)
        trainer.load(data if data is not None else
                     load(config.dataset, pixel_scale=config.pixel_scale))
        results = [train_data_parallel(trainer, config).to_dict()
                   for _ in range(warmup_rounds + rounds)][warmup_rounds:]
        out.append({"rounds": results, "gradient_bytes": trainer.gradient_bytes,
                    "threads": torch.get_num_threads(),
                    "params": trainer.get_params() if return_params else None})
        del trainer
    return out


def run_data_parallel(configs: RunConfig | Sequence[RunConfig], world_size: int, *,
                      data: Data | None = None, threads_per_rank: int = 1, rounds: int = 1,
                      warmup_rounds: int = 0, return_params: bool = False,
                      timeout_s: float = DEFAULT_TIMEOUT_S) -> list[DistributedRun]:
    """Train each config data-parallel on ``world_size`` spawned ranks (one launch for all).

    Every config must be a torch config on one device kind (``cpu``: gloo, ``cuda``: NCCL, one
    GPU per rank) with resident data; ``data`` is sent to every rank (small data, tests), else
    each rank loads the configs' dataset itself (``bench.workload.datasets.load``).
    """
    configs = [configs] if isinstance(configs, RunConfig) else list(configs)
    devices = {c.device or "cpu" for c in configs}
    bad = [c for c in configs if c.backend != "torch" or c.placement != "resident"
           or c.kernel != "eager"]
    if bad or len(devices) != 1:
        raise ValueError("run_data_parallel runs backend='torch', placement='resident', "
                         "kernel='eager' configs on one device kind; got "
                         f"{[(c.backend, c.device, c.placement, c.kernel) for c in configs]}. "
                         "Set backend='torch' and device='cpu' (gloo) or 'cuda' (nccl).")
    configs = [replace(c, device=c.device or "cpu") for c in configs]
    device = devices.pop()
    per_rank = launch(_train_job, world_size,
                      (configs, data, rounds, warmup_rounds, return_params),
                      device=device, threads_per_rank=threads_per_rank, timeout_s=timeout_s)
    runs = []
    for i, config in enumerate(configs):
        first = per_rank[0][i]
        runs.append(DistributedRun(
            config=config, world_size=world_size, threads_per_rank=first["threads"],
            device=device, gradient_bytes=first["gradient_bytes"], rounds=first["rounds"],
            params=[r[i]["params"] for r in per_rank] if return_params else []))
    return runs


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


def _allreduce_job(rank: int, world_size: int, sizes: Sequence[int], min_repeats: int,
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
    out = launch(_allreduce_job, world_size,
                 (tuple(sizes), min_repeats, seconds_per_size, device), device=device,
                 threads_per_rank=threads_per_rank, timeout_s=timeout_s)[0]
    out.update(_fit(out, world_size))
    return out


def _fit(out: dict[str, Any], world_size: int) -> dict[str, Any]:
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


# ---------------------------------------------------------------------------- torchrun / CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.distributed",
        description="Data-parallel minibatch SGD on MNIST (torch.distributed). Under torchrun "
                    "each process is one rank; run directly, it spawns --world-size ranks.")
    p.add_argument("--world-size", type=int, default=2, help="ranks to spawn (not torchrun)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--model", default="softmax")
    p.add_argument("--optimizer", default="sgd")
    p.add_argument("--batch-size", type=int, default=600, help="global minibatch size B")
    p.add_argument("--learning-rate", type=float, default=0.13)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--max-epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--threads-per-rank", type=int, default=1)
    p.add_argument("--timeout-s", type=float, default=DEFAULT_TIMEOUT_S)
    p.add_argument("--allreduce", action="store_true",
                   help="run the all-reduce micro-benchmark instead of training")
    return p


def _summary(result: dict[str, Any], world_size: int) -> dict[str, Any]:
    keys = ("steps", "epochs", "final_valid_error", "compute_s", "allreduce_s", "eval_s",
            "total_s")
    return {"world_size": world_size, **{k: result.get(k) for k in keys}}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench.distributed`` and ``torchrun ... -m bench.distributed``;
    prints rank 0's summary as JSON."""
    args = _parser().parse_args(argv)
    config = RunConfig(backend="torch", device=args.device, model=args.model,
                       optimizer=args.optimizer, batch_size=args.batch_size,
                       learning_rate=args.learning_rate, dtype=args.dtype,
                       max_epochs=args.max_epochs, max_steps=args.max_steps,
                       init="random" if args.model == "mlp" else "zeros")
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # started by torchrun
        import torch
        import torch.distributed as dist

        torch.set_num_threads(args.threads_per_rank)
        rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        if args.device == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(dist_backend(args.device), init_method="env://",
                                timeout=timedelta(seconds=args.timeout_s))
        try:
            if args.allreduce:
                out = _allreduce_job(rank, world_size, DEFAULT_MESSAGE_BYTES, 5, 0.3,
                                     args.device)
                out.update(_fit(out, world_size))
            else:
                out = _summary(_train_job(rank, world_size, [config], None, 1, 0, False)[0]
                               ["rounds"][-1], world_size)
        finally:
            dist.destroy_process_group()
        if rank == 0:
            print(json.dumps(out))
        return 0
    if args.allreduce:
        out = allreduce_benchmark(args.world_size, device=args.device,
                                  threads_per_rank=args.threads_per_rank,
                                  timeout_s=args.timeout_s)
    else:
        run = run_data_parallel(config, args.world_size, threads_per_rank=args.threads_per_rank,
                                timeout_s=args.timeout_s)[0]
        out = _summary(run.rounds[-1], args.world_size)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
