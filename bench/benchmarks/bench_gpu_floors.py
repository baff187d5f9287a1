"""The card's floors (PyTorch on CUDA, timed with device events; see ``bench.gpu_floors``), in
the ``floor`` group beside the CPU's (``bench_floors.py``).

Each floor: 3 warm-up rounds, then 10 timed rounds; the record keeps every round's event time
(``event_times_s``), the best round as the floor and the median and IQR beside it, and the
per-epoch floor it implies (``read_floor_epoch_s`` and the like, used by
``bench.analysis.targets``).
Each floor is its own benchmark, so one that fails leaves the others measured. Without a CUDA
device every case skips with the reason.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench import gpu_floors as gf
from bench import record

pytestmark = [pytest.mark.gpu, pytest.mark.measures("cuda")]

WARMUP_ROUNDS = 3
ROUNDS = 10
LAUNCHES = 1000


@pytest.fixture(scope="session")
def cuda() -> str:
    """The device, or a skip with the reason there is none."""
    reason = gf.unavailable_reason()
    if reason:
        pytest.skip(reason)
    return "cuda"


def _measure(benchmark, profile, floor: str, call, calls: int, *, flop: float | None = None,
             bytes_moved: float | None = None, **extra) -> dict:
    one_round = gf.event_round(call, calls)
    for _ in range(WARMUP_ROUNDS):
        one_round()
    rounds: list[float] = []
    benchmark.group = "floor"
    benchmark.pedantic(lambda: rounds.append(one_round()), rounds=ROUNDS, warmup_rounds=0,
                       iterations=1)
    fields = gf.floor_fields(floor, rounds, calls, flop=flop, bytes_moved=bytes_moved,
                             dataset=profile.dataset)
    record.write(benchmark, kind="floor", profile=profile.name, dataset=profile.dataset,
                 backend="torch", device="cuda",
                 floor=floor, **fields, **extra)
    assert len(rounds) == ROUNDS and fields["event_best_s"] > 0
    return fields


@pytest.mark.parametrize("tf32", [False, True], ids=["tf32-off", "tf32-on"])
def test_gpu_floor_peak_matmul(cuda, benchmark, profile, tf32):
    import torch

    call, flop = gf.matmul_call(gf.MATMUL_N, cuda)
    with gf.tf32_matmul(tf32):
        allowed = bool(torch.backends.cuda.matmul.allow_tf32)
        _measure(benchmark, profile, "peak_matmul_tf32" if tf32 else "peak_matmul", call,
                 5 if tf32 else 2, flop=flop, tf32=allowed)
    assert allowed == tf32


def _buffer(data, device: str, buffer: str):
    """The resident float32 training set (157 MB) or a 2 GiB buffer, on the device."""
    import torch

    if buffer == "train-set":
        return torch.from_numpy(np.ascontiguousarray(data.train.x, np.float32)).to(device)
    return torch.ones(gf.LARGE_BYTES // 4, dtype=torch.float32, device=device)


#: (floor, calls per round, how to make the call) per bandwidth kind and buffer.
BANDWIDTH = {("read", "train-set"): ("read_bandwidth", 50, gf.read_call),
             ("read", "2GiB"): ("read_bandwidth_large", 5, gf.read_call),
             ("copy", "train-set"): ("copy_bandwidth", 20, gf.copy_call),
             ("copy", "2GiB"): ("copy_bandwidth_large", 3, gf.copy_call)}


@pytest.mark.parametrize("kind, buffer", list(BANDWIDTH), ids=[f"{k}-{b}" for k, b in BANDWIDTH])
def test_gpu_floor_bandwidth(cuda, data, benchmark, profile, kind, buffer):
    """Device memory read (``torch.sum``) and copy (``copy_``, bytes read + written)."""
    floor, calls, make = BANDWIDTH[kind, buffer]
    call, nbytes = make(_buffer(data, cuda, buffer))
    _measure(benchmark, profile, floor, call, calls, bytes_moved=nbytes)


@pytest.mark.parametrize("what", ["empty-kernel", "torch-op", "graph-replay"])
def test_gpu_floor_launch(cuda, benchmark, profile, what):
    if what == "empty-kernel":
        call, note = gf.empty_kernel_call(cuda)
        _measure(benchmark, profile, "launch_empty", call, LAUNCHES, note=note)
    elif what == "torch-op":
        _measure(benchmark, profile, "launch_op", gf.op_launch_call(cuda), LAUNCHES,
                 note="a 1-element in-place add (Tensor.add_)")
    else:
        _measure(benchmark, profile, "launch_graph", gf.graph_replay_call(cuda), LAUNCHES,
                 note="CUDAGraph.replay of a graph of one 1-element in-place add")


@pytest.mark.parametrize("direction, pinned", [("h2d", False), ("h2d", True), ("d2h", False),
                                               ("d2h", True)],
                         ids=["h2d-pageable", "h2d-pinned", "d2h-pageable", "d2h-pinned"])
def test_gpu_floor_transfer(cuda, data, benchmark, profile, direction, pinned):
    call, nbytes = gf.transfer_call(data.train.x, direction, pinned, cuda)
    floor = f"{direction}_{'pinned' if pinned else 'pageable'}"
    _measure(benchmark, profile, floor, call, 1, bytes_moved=nbytes, rows=len(data.train.x))
