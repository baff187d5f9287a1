"""The performance targets: which references are timed side by side, and how ratios are made."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.harness import run, summarize_rounds
from bench.results import epoch_seconds
from bench.spec.config import RunConfig
from bench.targets import (
    T_DATALOADER,
    T_MATMUL,
    T_SHUFFLE,
    T_SKLEARN,
    evaluate,
    paired_ratio,
    side_reference,
)
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
    from bench.targets import verdict

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
