"""Data-parallel SGD (``impls.pytorch_dp``, ``bench.distributed``): the P = 2 trajectory equals
the single-process one at the same global B, and a failing rank ends a launch cleanly."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bench.distributed import (  # noqa: E402
    DistributedError,
    allreduce_benchmark,
    fit_ring,
    launch,
    ring_seconds,
    run_data_parallel,
    unavailable_reason,
)
from bench.harness import reset, train  # noqa: E402
from bench.workload.config import RunConfig  # noqa: E402
from impls.pytorch_dp import DataParallelTorchTrainer, shard_bounds  # noqa: E402
from impls.torch_backend import TorchTrainer  # noqa: E402
from tests.conftest import random_mnist  # noqa: E402

P = 2
TIMEOUT_S = 60.0

# (id, config): every model and optimizer, penalties, a B that P divides and two it does not
# (B = 1: rank 1 holds no example of any batch).
CASES = {
    "softmax-f64-sgd-B64-penalties": dict(model="softmax", dtype="float64", optimizer="sgd",
                                         batch_size=64, l1=1e-3, l2=1e-2),
    "softmax-f64-momentum-B63": dict(model="softmax", dtype="float64", optimizer="momentum",
                                     batch_size=63),
    "softmax-f64-nesterov-B1": dict(model="softmax", dtype="float64", optimizer="nesterov",
                                    batch_size=1, max_steps=6),
    "softmax-f64-asgd-B63-l2": dict(model="softmax", dtype="float64", optimizer="asgd",
                                    batch_size=63, l2=1e-2),
    "mlp-f64-asgd-B63-penalties": dict(model="mlp", dtype="float64", optimizer="asgd",
                                       batch_size=63, l1=1e-4, l2=1e-3),
    "mlp-f64-nesterov-B64": dict(model="mlp", dtype="float64", optimizer="nesterov",
                                 batch_size=64),
    "softmax-f32-sgd-B63": dict(model="softmax", dtype="float32", optimizer="sgd",
                                batch_size=63),
    "mlp-f32-momentum-B63": dict(model="mlp", dtype="float32", optimizer="momentum",
                                 batch_size=63, l2=1e-3),
}


def _config(spec: dict) -> RunConfig:
    spec = dict(spec)
    return RunConfig(backend="torch", device="cpu", max_epochs=2, learning_rate=0.1,
                     init="random", seed=7, **spec)


@pytest.fixture(scope="module")
def data():
    return random_mnist(n_train=256, n_valid=64, n_test=64, seed=3)


@pytest.fixture(scope="module")
def dp_runs(data):
    """All cases in one P = 2 launch (one process start for the module)."""
    reason = unavailable_reason("cpu", P, check_cores=False)
    if reason:
        pytest.skip(reason)
    configs = [_config(s) for s in CASES.values()]
    runs = run_data_parallel(configs, P, data=data, return_params=True, timeout_s=TIMEOUT_S)
    return dict(zip(CASES, runs, strict=True))


def _single_process(config: RunConfig, data):
    trainer = TorchTrainer(device="cpu", dtype=config.dtype, model=config.model,
                           optimizer=config.optimizer, momentum=config.momentum, generic=True)
    trainer.load(data)
    reset(trainer, config)
    return train(trainer, config), trainer.get_params()


@pytest.mark.parametrize("case", list(CASES))
def test_trajectory_equals_single_process(case, dp_runs, data):
    run = dp_runs[case]
    single, params = _single_process(run.config, data)
    rtol, atol = (1e-10, 1e-13) if run.config.dtype == "float64" else (1e-4, 1e-6)
    dp = run.rounds[-1]
    assert dp["steps"] == single.steps > 1
    for k, v in params.items():
        for rank in range(P):
            np.testing.assert_allclose(run.params[rank][k], v, rtol=rtol, atol=atol,
                                       err_msg=f"{case}: parameter {k} on rank {rank}")
        # one all-reduced gradient, one update: the ranks agree exactly
        np.testing.assert_array_equal(run.params[1][k], run.params[0][k])
    np.testing.assert_allclose(dp["curve_train_nll"], [p.train_nll for p in single.curve],
                               rtol=rtol * 10)
    assert dp["curve_valid_error"] == [p.valid_error for p in single.curve]


def test_allreduce_time_is_split_from_compute(dp_runs):
    run = dp_runs["mlp-f64-nesterov-B64"]
    r = run.rounds[-1]
    assert r["allreduce_s"] > 0 and r["compute_s"] > 0
    assert run.gradient_bytes == 8 * (784 * 500 + 500 + 500 * 10 + 10)
    parts = sum(r[k] for k in ("compute_s", "d2h_s", "eval_s", "data_move_s", "other_s",
                               "allreduce_s"))
    assert parts == pytest.approx(r["total_s"], rel=1e-9, abs=1e-9)


def test_world_size_one_is_the_generic_step(data):
    """Without a process group (P = 1) the data-parallel step is the generic one, exactly."""
    config = _config(CASES["mlp-f64-asgd-B63-penalties"])
    trainer = DataParallelTorchTrainer(device="cpu", dtype="float64", model="mlp",
                                       optimizer="asgd", world_size=1, rank=0)
    trainer.load(data)
    reset(trainer, config)
    result = train(trainer, config)
    assert trainer.take_allreduce_seconds() == 0.0
    single, params = _single_process(config, data)
    for k, v in params.items():
        np.testing.assert_array_equal(trainer.get_params()[k], v)
    assert [p.train_nll for p in result.curve] == [p.train_nll for p in single.curve]


@pytest.mark.parametrize("m", [1, 2, 3, 63, 64, 600])
@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
def test_shard_bounds_partition_the_batch(m, world_size):
    bounds = [shard_bounds(m, world_size, r) for r in range(world_size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == m
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1


def test_gradients_are_views_of_one_flat_buffer(data):
    trainer = DataParallelTorchTrainer(device="cpu", dtype="float32", model="softmax",
                                       world_size=1, rank=0)
    trainer.load(data)
    reset(trainer, _config(CASES["softmax-f32-sgd-B63"]))
    assert trainer.gradient_bytes == 4 * (784 * 10 + 10)
    for k, g in trainer.grads.items():
        assert g.untyped_storage().data_ptr() == trainer._flat.untyped_storage().data_ptr(), k
        assert g.stride() == trainer.params[k].stride(), k


def test_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="placement='resident' only"):
        DataParallelTorchTrainer(device="cpu", placement="streamed", world_size=1, rank=0)
    with pytest.raises(RuntimeError, match="init_process_group"):
        DataParallelTorchTrainer(device="cpu", world_size=2, rank=0)
    with pytest.raises(ValueError, match="backend='torch'"):
        run_data_parallel(RunConfig(backend="numpy", batch_size=10), 2)


def test_fit_ring_recovers_alpha_and_beta():
    sizes = np.array([4.0 * 4**k for k in range(13)])
    alpha, beta = 40e-6, 1 / 5e9
    times = ring_seconds(sizes, 4, alpha, beta)
    a, b, rms = fit_ring(sizes, times, 4)
    assert a == pytest.approx(alpha, rel=1e-9) and b == pytest.approx(beta, rel=1e-9)
    assert rms < 1e-9
    with pytest.raises(ValueError, match="world_size >= 2"):
        fit_ring(sizes, times, 1)


# ---------------------------------------------------------------------------- failing ranks
def _raising_job(rank: int, world_size: int) -> int:
    if rank == 1:
        raise ValueError("injected failure on rank 1")
    torch.distributed.barrier()
    return rank


def _dying_job(rank: int, world_size: int) -> int:
    if rank == 1:
        os._exit(3)
    torch.distributed.barrier()
    return rank


def _hanging_job(rank: int, world_size: int) -> int:
    if rank == 1:
        time.sleep(600)
    return rank


@pytest.mark.parametrize("job, timeout_s, message", [
    (_raising_job, TIMEOUT_S, "rank 1 raised.*injected failure on rank 1"),
    (_dying_job, TIMEOUT_S, "rank 1 exited with code 3"),
    # the launch's deadline includes the ranks' start (import torch: seconds on a busy machine)
    (_hanging_job, 15.0, r"timed out after 15 s waiting for rank\(s\) \[1\]"),
], ids=["raises", "dies", "hangs"])
def test_a_failing_rank_ends_the_launch_with_a_clear_error(job, timeout_s, message):
    t0 = time.monotonic()
    with pytest.raises(DistributedError, match=f"(?s){message}"):
        launch(job, P, timeout_s=timeout_s)
    assert time.monotonic() - t0 < timeout_s + 20  # and the ranks are stopped
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("gdbench")]


def test_allreduce_benchmark_fits_the_ring_model():
    out = allreduce_benchmark(P, (4, 4096, 1 << 20), min_repeats=3, seconds_per_size=0.02,
                              timeout_s=TIMEOUT_S)
    assert out["message_bytes"] == [4, 4096, 1 << 20]
    assert all(s > 0 for s in out["seconds"]) and min(out["repeats"]) >= 3
    assert out["alpha_s"] >= 0 and out["beta_s_per_byte"] >= 0
    assert out["alpha_s"] + out["beta_s_per_byte"] > 0
