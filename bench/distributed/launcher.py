"""Start P ranks on ``torch.distributed`` and collect what each returns; a rank that raises,
dies or hangs ends the launch with ``DistributedError`` (see ``bench.distributed``)."""

from __future__ import annotations

import os
import queue as queue_module
import socket
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

__all__ = ['DEFAULT_TIMEOUT_S', 'DistributedError', 'dist_backend', 'launch', 'unavailable_reason']


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
