"""Where a GPU epoch's time goes, for the anomalies a GPU result shows (``python -m
bench.tools.gpu_probe --out probe.json``; needs a CUDA device).

* ``copies``: one minibatch's host-to-device copy, pageable against pinned source memory, per
  framework (CuPy ``ndarray.set``, torch ``copy_(non_blocking=True)``), at 1 and 20 rows:
  the host's seconds per call (N calls back to back, one synchronisation at the end; for CuPy
  also the bare ``cudaMemcpyAsync`` that ``set`` makes), the same
  with the two device events the harness records around each copy, the device's seconds per
  copy (events), and what CUDA says the source memory is (``cudaPointerGetAttributes``:
  0 unregistered, 1 host/pinned, 2 device, 3 managed). The committed H200 result had CuPy
  streamed epochs *slower* from pinned memory (B = 1: 38.5 s against 29.0 s per epoch) while
  torch's were faster; these numbers say whether the copy call, the events or the queue is
  where the difference lives.
* ``streamed_steps``: the trainers' own streamed steps (B = 1 and 20), pageable against
  pinned: host seconds per step, and the copies' event time.
* ``epoch_profile``: torch's profiler over one resident epoch at B = 5,000 and 50,000 (eager,
  gather per epoch and per minibatch): the kernels that take the time, as text tables.

Every figure is a median over repeats with its min and max. Nothing here is a benchmark the
report judges; it is evidence for the report's notes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["main", "summarise"]

ROWS = (1, 20)
CALLS = 2000
REPEATS = 5


def summarise(values: list[float]) -> dict[str, float]:
    """Median, min and max of ``values`` (seconds)."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _per_call(fn: Callable[[], None], sync: Callable[[], None], calls: int = CALLS,
              repeats: int = REPEATS) -> dict[str, float]:
    """Host seconds per call of ``fn`` over ``calls`` back-to-back calls (synchronised once at
    the end), after one warm-up repeat."""
    out = []
    for rep in range(repeats + 1):
        sync()
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        sync()
        if rep:
            out.append((time.perf_counter() - t0) / calls)
    return summarise(out)


def _cupy_copies(X: np.ndarray) -> list[dict[str, Any]]:
    import cupy
    import cupyx

    sync = cupy.cuda.get_current_stream().synchronize
    out = []
    for rows in ROWS:
        pageable = np.ascontiguousarray(X[:rows])
        pinned = cupyx.empty_pinned(pageable.shape, pageable.dtype)
        pinned[...] = pageable
        big = cupyx.empty_pinned(X[: 10 * rows].shape, X.dtype)   # a view, as the trainer
        big[...] = X[: 10 * rows]                                   # slices its pinned set
        dst = cupy.empty(pageable.shape, pageable.dtype)
        for kind, src in (("pageable", pageable), ("pinned", pinned),
                          ("pinned-view", big[rows : 2 * rows])):
            marks: list[Any] = []

            def with_events(src=src, dst=dst, marks=marks) -> None:
                a = cupy.cuda.Event()
                a.record()
                dst.set(src)
                b = cupy.cuda.Event()
                b.record()
                marks.append((a, b))

            device = []
            for _ in range(200):
                a, b = cupy.cuda.Event(), cupy.cuda.Event()
                a.record()
                dst.set(src)
                b.record()
                b.synchronize()
                device.append(cupy.cuda.get_elapsed_time(a, b) / 1e3)
            def raw(src=src, dst=dst) -> None:   # the runtime call that set() makes, alone
                cupy.cuda.runtime.memcpyAsync(dst.data.ptr, src.ctypes.data, src.nbytes,
                                              cupy.cuda.runtime.memcpyHostToDevice,
                                              cupy.cuda.get_current_stream().ptr)

            attrs = cupy.cuda.runtime.pointerGetAttributes(src.ctypes.data)
            out.append({"framework": "cupy", "rows": rows, "memory": kind,
                        "cuda_memory_type": int(attrs.type),
                        "host_s_per_raw_memcpy_async": _per_call(raw, sync),
                        "host_s_per_call": _per_call(lambda src=src, dst=dst: dst.set(src), sync),
                        "host_s_per_call_with_events": _per_call(with_events, sync),
                        "device_s_per_copy": summarise(device)})
            marks.clear()
    return out


def _torch_copies(X: np.ndarray) -> list[dict[str, Any]]:
    import torch

    sync = torch.cuda.synchronize
    out = []
    for rows in ROWS:
        pageable = torch.from_numpy(np.ascontiguousarray(X[:rows]))
        pinned = pageable.pin_memory()
        dst = torch.empty(pageable.shape, dtype=pageable.dtype, device="cuda")
        for kind, src in (("pageable", pageable), ("pinned", pinned)):
            marks: list[Any] = []

            def with_events(src=src, dst=dst, marks=marks) -> None:
                a = torch.cuda.Event(enable_timing=True)
                a.record()
                dst.copy_(src, non_blocking=True)
                b = torch.cuda.Event(enable_timing=True)
                b.record()
                marks.append((a, b))

            device = []
            for _ in range(200):
                a = torch.cuda.Event(enable_timing=True)
                b = torch.cuda.Event(enable_timing=True)
                a.record()
                dst.copy_(src, non_blocking=True)
                b.record()
                b.synchronize()
                device.append(a.elapsed_time(b) / 1e3)
            out.append({"framework": "torch", "rows": rows, "memory": kind,
                        "pinned_by_torch": bool(src.is_pinned()),
                        "host_s_per_call": _per_call(
                            lambda src=src, dst=dst: dst.copy_(src, non_blocking=True), sync),
                        "host_s_per_call_with_events": _per_call(with_events, sync),
                        "device_s_per_copy": summarise(device)})
            marks.clear()
    return out


def _streamed_steps(data: Any) -> list[dict[str, Any]]:
    """Host seconds per streamed step of the real trainers, pageable against pinned."""
    from bench.workload.data_order import epoch_permutation
    from impls.registry import make_trainer, unavailable_reason

    out = []
    for backend in ("cupy", "torch"):
        reason = unavailable_reason(backend, "cuda")
        if reason:
            out.append({"framework": backend, "skipped": reason})
            continue
        for pinned in (False, True):
            trainer = make_trainer(backend, "cuda", placement="streamed", pinned=pinned)
            trainer.load(data)
            for B in ROWS:
                trainer.configure(batch_size=B, learning_rate=0.01)
                trainer.set_params(trainer.spec.init("zeros", 0))
                trainer.begin_epoch(epoch_permutation(trainer.n_train, 1, "shuffle", 1234))
                n = 2000 if B == 1 else 400   # (REPEATS + 1) n batches fit one epoch
                runs = []
                for rep in range(REPEATS + 1):
                    trainer.synchronize()
                    t0 = time.perf_counter()
                    trainer.train_batches(rep * n, (rep + 1) * n)
                    if rep:
                        runs.append((time.perf_counter() - t0) / n)
                h2d = trainer.take_h2d_seconds()
                out.append({"framework": backend, "pinned": pinned, "batch_size": B,
                            "host_s_per_step": summarise(runs),
                            "h2d_event_s_total": h2d})
            del trainer
    return out


def _epoch_profile(data: Any) -> dict[str, str]:
    """torch.profiler tables of one resident epoch (torch, eager) at B = 5,000 and 50,000."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from bench.workload.data_order import epoch_permutation
    from impls.registry import make_trainer

    tables = {}
    for gather in ("epoch", "batch"):
        trainer = make_trainer("torch", "cuda", gather=gather)
        trainer.load(data)
        for B in (5000, 50_000):
            trainer.configure(batch_size=B, learning_rate=0.01)
            trainer.set_params(trainer.spec.init("zeros", 0))
            for epoch in (1, 2):                                # the first is a warm-up
                perm = epoch_permutation(trainer.n_train, epoch, "shuffle", 1234)
                if epoch == 2:
                    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
                        trainer.begin_epoch(perm)
                        trainer.train_batches(0, trainer.n_batches())
                        torch.cuda.synchronize()
                else:
                    trainer.begin_epoch(perm)
                    trainer.train_batches(0, trainer.n_batches())
            table = None
            for key in ("device_time_total", "cuda_time_total"):
                try:
                    table = p.key_averages().table(sort_by=key, row_limit=15)
                    break
                except (AttributeError, KeyError, ValueError):
                    continue
            tables[f"torch-cuda B={B} gather={gather}"] = table or "profiler table unavailable"
    return tables


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tools.gpu_probe", description=__doc__)
    p.add_argument("--out", required=True, help="JSON file to write")
    a = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("bench.tools.gpu_probe: no CUDA device (torch.cuda.is_available() is False); nothing "
              "to probe. Run it on a machine with an NVIDIA GPU.", file=sys.stderr)
        return 2
    from bench.workload.datasets.mnist import load_mnist
    from impls.registry import unavailable_reason

    data = load_mnist()
    X = np.ascontiguousarray(data.train.x[:1000], dtype=np.float32)
    report: dict[str, Any] = {"gpu": torch.cuda.get_device_name(0)}
    parts: list[tuple[str, Callable[[], Any]]] = [
        ("torch_copies", lambda: _torch_copies(X)),
        ("streamed_steps", lambda: _streamed_steps(data)),
        ("epoch_profile", lambda: _epoch_profile(data)),
    ]
    if unavailable_reason("cupy", "cuda") is None:
        parts.insert(0, ("cupy_copies", lambda: _cupy_copies(X)))
    for name, part in parts:   # one failing part does not lose the others
        t0 = time.perf_counter()
        try:
            report[name] = part()
        except Exception as exc:  # recorded; the probe goes on
            report[name] = {"error": f"{type(exc).__name__}: {exc}"}
        report[f"{name}_wall_s"] = time.perf_counter() - t0
        print(f"gpu_probe: {name} done in {report[f'{name}_wall_s']:.1f} s", flush=True)
    with open(a.out, "w") as f:
        json.dump(report, f, indent=1, default=str)
    print(json.dumps({k: v for k, v in report.items() if k != "epoch_profile"}, indent=1,
                     default=str)[:6000])
    for name, table in (report.get("epoch_profile") or {}).items():
        if isinstance(table, str):
            print(f"--- {name}\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
