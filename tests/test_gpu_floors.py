"""The card's floors: event times into GB/s, FLOP/s and seconds per launch, the per-epoch
floors derived from them, the TF32 switch, the round timer, and the skip without a GPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import gpu_floors as gf
from bench import record
from bench.floors import epoch_flop

ROOT = Path(__file__).resolve().parents[1]
TRAIN_BYTES = 50_000 * 784 * 4


def test_per_call_seconds_divides_each_round_and_refuses_bad_rounds():
    assert gf.per_call_seconds([2e-3, 4e-3], calls=1000).tolist() == pytest.approx([2e-6, 4e-6])
    for bad in ([], [1e-3, 0.0], [1e-3, -1.0], [float("nan")]):
        with pytest.raises(ValueError, match="round"):
            gf.per_call_seconds(bad)
    with pytest.raises(ValueError, match="at least 1"):
        gf.per_call_seconds([1e-3], calls=0)


def test_rates_and_times_take_the_best_round_with_median_and_iqr():
    rounds = [4.0, 1.0, 2.0, 8.0, 2.0]          # seconds per round, 2 calls each
    t = gf.time_spread(rounds, calls=2)
    assert (t.best, t.median) == (0.5, 1.0)
    q1, q3 = np.percentile(np.array(rounds) / 2, [25, 75])
    assert t.iqr == pytest.approx(q3 - q1)
    r = gf.rate_spread(10.0, rounds, calls=2)    # 10 units per call
    assert r.best == 20.0 and r.median == 10.0   # the fastest round's rate; rate of the median
    rates = 10.0 / (np.array(rounds) / 2)
    assert r.iqr == pytest.approx(np.subtract(*np.percentile(rates, [75, 25])))


def test_read_floor_fields_turn_event_times_into_gb_per_s_and_the_epoch_floor():
    # 50 reads of the training set per round, the fastest round 2 ms: 40 us per read
    rounds = [2.2e-3, 2.0e-3, 2.1e-3, 2.4e-3]
    f = gf.floor_fields("read_bandwidth", rounds, 50, bytes_moved=TRAIN_BYTES)
    assert f["event_times_s"] == rounds and f["calls_per_round"] == 50
    assert f["event_best_s"] == pytest.approx(40e-6)
    assert f["gb_per_s"] == pytest.approx(TRAIN_BYTES / 40e-6 / 1e9)      # 3,920 GB/s
    assert f["gb_per_s_median"] == pytest.approx(
        np.median(TRAIN_BYTES / (np.array(rounds) / 50)) / 1e9)
    assert f["gb_per_s_iqr"] > 0 and f["event_iqr_s"] > 0
    assert f["read_floor_epoch_s"] == pytest.approx(40e-6) and f["bytes"] == TRAIN_BYTES
    large = gf.floor_fields("read_bandwidth_large", rounds, 5, bytes_moved=gf.LARGE_BYTES)
    assert "read_floor_epoch_s" not in large        # only the training set's read sets it


def test_peak_matmul_fields_give_gflop_per_s_and_the_flop_floor():
    flop = 2.0 * gf.MATMUL_N**3
    f = gf.floor_fields("peak_matmul", [0.05, 0.044, 0.06], 2, flop=flop)
    assert f["gflop_per_s"] == pytest.approx(flop / 0.022 / 1e9)          # ~50,000 GFLOP/s
    assert f["gflop_per_s_median"] == pytest.approx(flop / 0.025 / 1e9)
    assert f["flop_floor_epoch_s"] == pytest.approx(epoch_flop() / (flop / 0.022))
    assert f["epoch_flop"] == epoch_flop() and "gb_per_s" not in f
    with pytest.raises(ValueError, match="FLOP"):
        gf.floor_fields("peak_matmul", [0.05])


def test_launch_and_transfer_floors_give_per_launch_seconds_and_epoch_floors():
    f = gf.floor_fields("launch_graph", [2.5e-3, 3.0e-3, 2.6e-3], 1000)
    assert f["event_best_s"] == pytest.approx(2.5e-6)                       # per replay
    assert f["event_median_s"] == pytest.approx(2.6e-6)
    assert f["launch_floor_epoch_s"] == pytest.approx(50_000 * 2.5e-6)      # 125 ms
    assert "gb_per_s" not in f and "gflop_per_s" not in f
    h2d = gf.floor_fields("h2d_pinned", [3e-3, 2.9e-3], 1, bytes_moved=TRAIN_BYTES)
    assert h2d["transfer_floor_epoch_s"] == pytest.approx(2.9e-3)
    assert h2d["gb_per_s"] == pytest.approx(TRAIN_BYTES / 2.9e-3 / 1e9)
    assert "transfer_floor_epoch_s" not in gf.floor_fields("d2h_pinned", [3e-3], 1,
                                                           bytes_moved=TRAIN_BYTES)
    with pytest.raises(ValueError, match="unknown GPU floor 'launch_fast'"):
        gf.floor_fields("launch_fast", [1e-3])


def test_every_field_a_floor_writes_is_declared():
    from types import SimpleNamespace

    for floor in gf.FLOORS:
        fields = gf.floor_fields(floor, [1e-3, 2e-3], 10, flop=1e9 if "matmul" in floor else None,
                                 bytes_moved=None if "matmul" in floor or "launch" in floor
                                 else 1e6)
        bench = SimpleNamespace(extra_info={})
        out = record.write(bench, kind="floor", profile="gpu", backend="torch", device="cuda",
                           floor=floor, tf32=False, note="x", **fields)
        assert out["floor"] == floor and out["device"] == "cuda"


def test_the_round_timer_counts_calls_and_converts_milliseconds(monkeypatch):
    torch = pytest.importorskip("torch")
    clock = {"ms": 0.0}

    class FakeEvent:   # a device clock that advances 0.5 ms per call
        def __init__(self, enable_timing=False):
            assert enable_timing
            self.at = None

        def record(self):
            self.at = clock["ms"]

        def synchronize(self):
            assert self.at is not None

        def elapsed_time(self, end):
            return end.at - self.at

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    calls = []

    def call():
        calls.append(1)
        clock["ms"] += 0.5

    one_round = gf.event_round(call, calls=8)
    assert one_round() == pytest.approx(4e-3) and len(calls) == 8
    with pytest.raises(ValueError, match="at least 1"):
        gf.event_round(call, calls=0)


def test_tf32_switch_restores_the_flags_even_after_an_error():
    torch = pytest.importorskip("torch")
    m = torch.backends.cuda.matmul
    before = (m.allow_tf32, getattr(m, "fp32_precision", None))
    with gf.tf32_matmul(True):
        assert m.allow_tf32 is True
    assert (m.allow_tf32, getattr(m, "fp32_precision", None)) == before
    with pytest.raises(RuntimeError, match="boom"), gf.tf32_matmul(not before[0]):
        assert m.allow_tf32 is (not before[0])
        raise RuntimeError("boom")
    assert (m.allow_tf32, getattr(m, "fp32_precision", None)) == before
    with gf.tf32_matmul(False):
        assert m.allow_tf32 is False


def test_the_skip_reason_is_the_torch_cuda_one():
    from impls.registry import unavailable_reason

    reason = gf.unavailable_reason()
    assert reason == unavailable_reason("torch", "cuda")
    try:
        import torch
    except ImportError:
        assert reason and "not installed" in reason
        return
    if torch.cuda.is_available():
        assert reason is None
    else:
        assert reason == "torch: no CUDA device (torch.cuda.is_available() is False)"


def test_the_gpu_floor_benchmarks_skip_with_the_reason_without_a_gpu():
    reason = gf.unavailable_reason()
    if reason is None:
        pytest.skip("a CUDA device is present: the GPU floors are measured, not skipped")
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
           "--gdbench-profile", "quick", "--benchmark-only",
           "bench/benchmarks/bench_gpu_floors.py"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "13 skipped" in out and "passed" not in out and "failed" not in out, out
    assert reason in out, out
