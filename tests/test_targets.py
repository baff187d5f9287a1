"""The performance targets: which references are timed side by side, and how ratios are made."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.analysis.targets import (
    T_DATALOADER,
    T_MATMUL,
    T_SHUFFLE,
    T_SKLEARN,
    evaluate,
    paired_ratio,
    side_reference,
)
from bench.analysis.views import epoch_seconds
from bench.harness import run, summarize_rounds
from bench.workload.config import RunConfig
from tests.conftest import random_mnist


def test_side_reference_covers_exactly_what_the_targets_compare():
    assert side_reference("numpy", "cpu", 600, "in-order") == "products"
    assert side_reference("torch", "cpu", 50_000, "in-order") == "products"
    assert side_reference("numba", "cpu", 600, "in-order") is None    # no products target
    assert side_reference("torch", "cpu", 200, "in-order") is None
    for backend in ("numpy", "torch", "numba"):
        assert side_reference(backend, "cpu", 600, "shuffle") == "in-order"
    assert side_reference("numpy", "cpu", 1000, "shuffle") is None
    assert side_reference("torch", "cuda", 600, "shuffle") is None
    assert side_reference("numpy", "cpu", 1, "shuffle") == "sklearn"
    assert side_reference("torch", "cpu", 20, "shuffle") == "dataloader"
    assert side_reference("torch", "cpu", 1, "shuffle") is None
    assert side_reference("numpy", "cpu", 20, "shuffle") is None


def test_paired_ratio_is_the_median_of_per_round_ratios():
    # drift: the machine got 2x slower between rounds; each round's pair still says 1.5
    assert paired_ratio([0.15, 0.30, 0.60], [0.10, 0.20, 0.40]) == pytest.approx(1.5)
    assert paired_ratio([3.0, 1.0, 2.0], [1.0, 1.0, 1.0]) == 2.0
    with pytest.raises(ValueError, match="one reference per round: 2 measured, 3 reference"):
        paired_ratio([1.0, 1.0], [1.0, 1.0, 1.0])


def _epoch_row(order, batch_size=600, backend="numpy", **side):
    return {"kind": "epoch", "device": "cpu", "backend": backend, "batch_size": batch_size,
            "cfg_order": order, "median_compute_s": 0.04, "median_h2d_s": None,
            "median_d2h_s": 0.0, "median_data_move_s": 0.02 if order == "shuffle" else 0.0,
            "median_eval_s": 0.01, "median_other_s": 0.0, "steps": 83,
            "batches_per_epoch": 83, "epochs": 1, **side}


def test_targets_use_the_side_by_side_references_when_a_file_has_them():
    floor = {"kind": "floor", "floor": "matmul_epoch", "batch_size": 600, "mm_epoch_s": 0.02,
             "device": "cpu", "backend": "numpy"}
    separate = pd.DataFrame([_epoch_row("in-order"), _epoch_row("shuffle"), floor])
    t = evaluate(separate).set_index("target")
    assert t.loc[T_MATMUL, "ratio"] == pytest.approx(0.04 / 0.02)      # vs the floor benchmark
    assert t.loc[T_SHUFFLE, "ratio"] == pytest.approx(0.06 / 0.04)     # vs the in-order one
    assert not t["paired"].any()

    paired = pd.DataFrame([
        _epoch_row("in-order", side_reference="products", side_reference_s=0.03,
                   side_ratio=1.3),
        _epoch_row("shuffle", side_reference="in-order", side_reference_s=0.05,
                   side_ratio=1.1),
        floor])
    t = evaluate(paired).set_index("target")
    assert t.loc[T_MATMUL, "ratio"] == 1.3 and t.loc[T_MATMUL, "reference_s"] == 0.03
    assert t.loc[T_SHUFFLE, "ratio"] == 1.1 and bool(t.loc[T_SHUFFLE, "holds"])
    assert t["paired"].all()


def test_noisy_rows_and_epochs_below_their_floor_get_no_verdict():
    from bench.analysis.targets import verdict

    floor = {"kind": "floor", "floor": "matmul_epoch", "batch_size": 600, "mm_epoch_s": 0.02,
             "device": "cpu", "backend": "numpy"}
    noisy = pd.DataFrame([_epoch_row("in-order"), {**_epoch_row("shuffle"), "noisy": True},
                          floor])
    t = evaluate(noisy).set_index("target")
    assert bool(t.loc[T_SHUFFLE, "noisy"]) and verdict(t.loc[T_SHUFFLE]) == "too noisy"
    assert not bool(t.loc[T_MATMUL, "noisy"]) and verdict(t.loc[T_MATMUL]) == "MISSED"
    # a products-only reference that ran slower than the epoch it bounds: disturbed, no verdict
    slow_floor = pd.DataFrame([_epoch_row("in-order"), {**floor, "mm_epoch_s": 0.08}])
    t = evaluate(slow_floor).set_index("target")
    assert t.loc[T_MATMUL, "ratio"] == pytest.approx(0.5) and bool(t.loc[T_MATMUL, "noisy"])


def test_peer_targets_use_peers_timed_next_to_each_round():
    sk = {"kind": "peer", "peer": "sklearn-sgdclassifier", "batch_size": 1,
          "seconds_per_epoch": 2.0, "device": "cpu"}
    dl = {"kind": "peer", "peer": "torch-dataloader", "batch_size": 20,
          "seconds_per_epoch": 1.0, "device": "cpu"}
    ours = [_epoch_row("shuffle", 1, "numpy"), _epoch_row("shuffle", 20, "torch")]
    t = evaluate(pd.DataFrame([*ours, sk, dl])).set_index("target")
    assert t.loc[T_SKLEARN, "ratio"] == pytest.approx(0.06 / 2.0)
    assert t.loc[T_DATALOADER, "ratio"] == pytest.approx(1.0 / 0.06)   # "times faster"
    assert not t["paired"].any()

    ours = [_epoch_row("shuffle", 1, "numpy", side_reference="sklearn", side_reference_s=1.5,
                       side_ratio=0.4),
            _epoch_row("shuffle", 20, "torch", side_reference="dataloader",
                       side_reference_s=1.2, side_ratio=0.25)]
    t = evaluate(pd.DataFrame([*ours, sk, dl])).set_index("target")
    assert t.loc[T_SKLEARN, "ratio"] == 0.4 and t.loc[T_SKLEARN, "reference_s"] == 1.5
    assert t.loc[T_DATALOADER, "ratio"] == pytest.approx(4.0)          # 1 / median(ours/theirs)
    assert not bool(t.loc[T_DATALOADER, "holds"])
    assert t["paired"].all()


def test_run_result_epoch_time_agrees_with_the_result_table():
    """RunResult.train_epoch_s (per round, for paired ratios) and epoch_seconds (from the
    stored medians) are one formula."""
    config = RunConfig(batch_size=32, learning_rate=0.1, max_epochs=2, max_steps=11)
    r = run(config, random_mnist())
    row = pd.DataFrame([{**r.to_dict(), **summarize_rounds([r])}])
    assert float(epoch_seconds(row, evaluation=False).iloc[0]) == pytest.approx(
        r.train_epoch_s, rel=1e-12)
    assert r.times.data_move_s > 0          # the shuffle's gather is in it, once per epoch


def test_the_reshuffle_target_judges_epoch_and_batch_gather_apart():
    rows = [_epoch_row("in-order"),
            {**_epoch_row("shuffle"), "gather": "epoch", "median_data_move_s": 0.03},
            {**_epoch_row("shuffle"), "gather": "batch", "median_data_move_s": 0.005}]
    t = evaluate(pd.DataFrame(rows))
    t = t[t["target"] == T_SHUFFLE].set_index("subject")
    assert t.loc["numpy-cpu B=600", "ratio"] == pytest.approx(0.07 / 0.04)
    assert t.loc["numpy-cpu B=600 batch-gather", "ratio"] == pytest.approx(0.045 / 0.04)
    assert bool(t.loc["numpy-cpu B=600 batch-gather", "holds"])
    assert not bool(t.loc["numpy-cpu B=600", "holds"])


def _gpu_epoch(B, backend="torch", kernel="eager", placement="resident", compute_s=0.01,
               steps=None, batches=None, **extra):
    batches = batches or max(1, 50_000 // B)
    return {"kind": "epoch", "device": "cuda", "backend": backend, "batch_size": B,
            "placement": placement, "pinned": False, "kernel": kernel, "cfg_order": "shuffle",
            "model": "softmax", "median_compute_s": compute_s, "median_h2d_s": 0.0,
            "median_d2h_s": 0.0, "median_data_move_s": 0.001, "median_eval_s": 0.5,
            "median_other_s": 0.0, "steps": steps or batches, "batches_per_epoch": batches,
            "epochs": 1, **extra}


GPU_READ_FLOOR = {"kind": "floor", "floor": "read_bandwidth", "device": "cuda",
                  "backend": "torch", "read_floor_epoch_s": 40e-6}


def test_gpu_read_floor_target_judges_every_resident_kernel_at_b5000_and_50000():
    from bench.analysis.targets import T_GPU_READ

    rows = [_gpu_epoch(5000, compute_s=0.0009), _gpu_epoch(50_000, compute_s=0.0001),
            _gpu_epoch(50_000, kernel="persistent", compute_s=0.0),   # a kernel new to us
            _gpu_epoch(50_000, backend="cupy", kernel="rows", compute_s=0.00002),
            _gpu_epoch(50_000, placement="streamed"),                # not resident: no target
            _gpu_epoch(600), {**_gpu_epoch(5000), "cfg_order": "in-order"},
            {**_gpu_epoch(5000), "model": "mlp"},
            {**GPU_READ_FLOOR, "read_floor_epoch_s": 99.0, "device": "cpu"},  # the CPU's
            GPU_READ_FLOOR]
    t = evaluate(pd.DataFrame(rows))
    t = t[t["target"] == T_GPU_READ].set_index("subject")
    assert sorted(t.index) == ["cupy-cuda resident rows B=50000",
                               "torch-cuda resident B=5000", "torch-cuda resident B=50000",
                               "torch-cuda resident persistent B=50000"]
    # training seconds per epoch (compute + the reshuffle's 1 ms; evaluation left out) / one
    # read of the training set
    assert t.loc["torch-cuda resident B=5000", "ratio"] == pytest.approx(0.0019 / 40e-6)
    assert t.loc["torch-cuda resident B=5000", "reference_s"] == 40e-6
    assert t.loc["cupy-cuda resident rows B=50000", "ratio"] == pytest.approx(0.00102 / 40e-6)
    assert t.loc["torch-cuda resident persistent B=50000", "ratio"] == pytest.approx(25.0)
    assert not t["holds"].any() and (t["limit"] == 5.0).all() and not t["paired"].any()
    fast = evaluate(pd.DataFrame([{**_gpu_epoch(50_000, compute_s=0.0002),
                                   "median_data_move_s": 0.0}, GPU_READ_FLOOR]))
    row = fast[fast["target"] == T_GPU_READ].iloc[0]
    assert row["ratio"] == pytest.approx(0.0002 / 40e-6) and bool(row["holds"])
    # no read floor in the file: the epochs have no reference, so no row (not a failure)
    assert T_GPU_READ not in set(evaluate(pd.DataFrame(rows[:-1]))["target"])


def test_gpu_budget_targets_are_the_issue_fixed_budgets():
    from bench.analysis.targets import (
        GPU_B20_EPOCH_BUDGET_S,
        GPU_SGD_STEP_BUDGET_S,
        T_GPU_B20,
        T_GPU_SGD,
    )

    assert (GPU_SGD_STEP_BUDGET_S, GPU_B20_EPOCH_BUDGET_S) == (3e-6, 0.040)
    # B = 1 cut short by a step budget: 5,000 of 50,000 steps in 0.02 s = 4 us per step
    sgd = _gpu_epoch(1, kernel="cuda-graph", compute_s=0.02, steps=5000, batches=50_000)
    sgd["median_data_move_s"] = 0.0
    b20 = _gpu_epoch(20, backend="cupy", kernel="fused", compute_s=0.029)
    b20_eager = _gpu_epoch(20, compute_s=0.2, noisy=True)
    t = evaluate(pd.DataFrame([sgd, b20, b20_eager, _gpu_epoch(1, placement="streamed")]))
    s = t[t["target"] == T_GPU_SGD].set_index("subject")
    assert list(s.index) == ["torch-cuda resident cuda-graph B=1"]     # resident rows only
    assert s["ratio"].iloc[0] == pytest.approx(4e-6 / 3e-6)            # per step / 3 us
    assert s["reference_s"].iloc[0] == pytest.approx(0.150)            # 3 us x 50,000 steps
    assert not s["holds"].iloc[0]
    b = t[t["target"] == T_GPU_B20].set_index("subject")
    assert b.loc["cupy-cuda resident fused B=20", "ratio"] == pytest.approx(0.030 / 0.040)
    assert bool(b.loc["cupy-cuda resident fused B=20", "holds"])
    assert b.loc["torch-cuda resident B=20", "ratio"] == pytest.approx(0.201 / 0.040)
    assert bool(b.loc["torch-cuda resident B=20", "noisy"])           # no verdict


def test_a_file_without_gpu_rows_gets_no_gpu_targets_and_cpu_floors_stay_cpu():
    from bench.analysis.targets import T_GPU_B20, T_GPU_READ, T_GPU_SGD, T_NUMBA

    cpu = [_epoch_row("shuffle", 1, "numba"),
           {"kind": "floor", "floor": "peak_matmul", "device": "cpu", "backend": "numpy",
            "flop_floor_epoch_s": 0.01}]
    t = evaluate(pd.DataFrame([*cpu, GPU_READ_FLOOR]))
    assert not {T_GPU_READ, T_GPU_SGD, T_GPU_B20} & set(t["target"])
    assert t.set_index("target").loc[T_NUMBA, "reference_s"] == 0.01
    # the card's own peak product does not stand in for the CPU's FLOP floor
    gpu_peak = {"kind": "floor", "floor": "peak_matmul", "device": "cuda", "backend": "torch",
                "flop_floor_epoch_s": 3e-5}
    t = evaluate(pd.DataFrame([gpu_peak, *cpu]))
    assert t.set_index("target").loc[T_NUMBA, "reference_s"] == 0.01


def test_an_epoch_faster_than_the_read_floor_gets_no_verdict():
    from bench.analysis.targets import T_GPU_READ, verdict

    fast = _gpu_epoch(50_000, compute_s=0.0)
    fast["median_data_move_s"] = 20e-6      # one read of the set cannot take under 40 us
    t = evaluate(pd.DataFrame([fast, GPU_READ_FLOOR])).set_index("target")
    assert t.loc[T_GPU_READ, "ratio"] == pytest.approx(0.5)
    assert verdict(t.loc[T_GPU_READ]) == "too noisy"
    noisy_floor = {**GPU_READ_FLOOR, "noisy": True}
    t = evaluate(pd.DataFrame([_gpu_epoch(5000), noisy_floor])).set_index("target")
    assert verdict(t.loc[T_GPU_READ]) == "too noisy"


def test_gpu_subjects_keep_batch_gather_apart():
    from bench.analysis.targets import gpu_subject

    row = pd.Series(_gpu_epoch(5000, kernel="cuda-graph", gather="batch"))
    assert gpu_subject(row) == "torch-cuda resident batch-gather cuda-graph B=5000"
    assert gpu_subject(pd.Series(_gpu_epoch(5000))) == "torch-cuda resident B=5000"


def test_the_fastest_own_path_is_picked_by_its_median_epoch_not_one_lucky_epoch(monkeypatch):
    """T_JAX's reference: each own backend's epochs are timed SELECTION_EPOCHS times and the
    lowest median wins (one epoch would have picked Numba's lucky first epoch)."""
    from types import SimpleNamespace

    import bench.benchmarks.bench_training as bt
    import impls.registry as registry
    from bench.workload.config import RunConfig

    epochs = {"numpy": [1.0, 1.0, 1.0, 1.0], "numba": [0.5, 2.0, 2.0, 2.0],
              "torch": [0.9, 0.9, 0.9, 0.7]}
    usable = set(epochs) | {"jax"}
    monkeypatch.setattr(registry, "unavailable_reason",
                        lambda b, *a, **k: None if b in usable else "not here")
    monkeypatch.setattr(bt, "prepare", lambda cfg, data: (
        SimpleNamespace(b=cfg.backend, fast_path=None), 0.0))
    monkeypatch.setattr(bt, "reset", lambda trainer, cfg: None)

    def train(trainer, cfg, upload_s):
        if cfg.max_steps == 50:                                    # the warm-up
            return SimpleNamespace(train_epoch_s=0.01)
        return SimpleNamespace(train_epoch_s=epochs[trainer.b].pop(0))

    monkeypatch.setattr(bt, "train", train)
    monkeypatch.setattr(bt, "SETTLE_S", 0.0)
    monkeypatch.setattr(bt.time, "sleep", lambda s: None)
    epoch = bt.fastest_own_epoch(RunConfig(backend="jax", batch_size=200), data=None)
    assert bt.SELECTION_EPOCHS == 3 and epoch.backend == "torch"
    assert epoch() == 0.7                                          # then timed each round
