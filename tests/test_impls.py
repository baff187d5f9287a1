"""Every (backend, variant) against the float64 reference, and the backends against each other."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bench.harness import prepare, run, train
from bench.workload.config import RunConfig
from bench.workload.models import softmax as L
from impls.registry import make_trainer, unavailable_reason
from tests.conftest import random_mnist, target_params

DATA = random_mnist()


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _check_one_step(trainer, batch_size, lr, l1, l2, tol, scale=1.0):
    """One step from random (W, b) against ``reference_step``: the update, not just W."""
    W0, _ = L.init_params("random", seed=5)
    W0 = W0 * scale
    b0 = np.random.default_rng(6).normal(0, 0.01, 10)
    trainer.configure(batch_size=batch_size, learning_rate=lr, l1=l1, l2=l2)
    trainer.load(DATA)
    trainer.set_params({"W": W0, "b": b0})
    trainer.begin_epoch(None)
    trainer.train_batches(0, 1)
    W1, b1 = trainer.get_params().values()
    x, y = DATA.train.x[:batch_size], DATA.train.y[:batch_size]
    Wr, br = L.reference_step(x, y, W0, b0, lr, l1, l2)
    assert _rel(W1 - W0, Wr - W0) < tol
    assert _rel(b1 - b0, br - b0) < tol
    assert trainer.read_cost() == pytest.approx(L.cost(x, y, W0, b0), rel=tol * 10)


@pytest.mark.parametrize("backend, device", target_params())
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_size", [1, 7, 256], ids=["sgd", "minibatch", "full"])
def test_one_step_matches_the_reference(backend, device, dtype, batch_size):
    _check_one_step(make_trainer(backend, device, dtype=dtype), batch_size, 0.2, 1e-3, 2e-3,
                    tol=1e-4 if dtype == "float32" else 1e-10)


@pytest.mark.parametrize("backend, device", target_params())
@pytest.mark.parametrize("batch_size", [1, 7], ids=["sgd", "minibatch"])
def test_one_step_with_huge_logits_matches_the_reference(backend, device, batch_size):
    """Logits of about +-1e3 (exp overflows float32 past 88): the stable paths must take over."""
    _check_one_step(make_trainer(backend, device), batch_size, 0.2, 0.0, 0.0, tol=1e-4,
                    scale=2e3)


@pytest.mark.parametrize("backend, device", target_params())
def test_error_matches_the_reference(backend, device):
    W, b = L.init_params("random", seed=1)
    trainer = make_trainer(backend, device)
    trainer.load(DATA)
    trainer.set_params({"W": W, "b": b})
    assert trainer.error("valid", 10) == pytest.approx(L.error(DATA.valid.x, DATA.valid.y, W, b))
    # the tutorial scores whole batches only
    assert trainer.error("valid", 10, drop_last=True) == pytest.approx(
        L.error(DATA.valid.x[:60], DATA.valid.y[:60], W, b))


def _config(**kw):
    base = RunConfig(batch_size=32, learning_rate=0.1, max_epochs=3, eval_batch_size=16,
                     l1=1e-4, l2=1e-4, seed=7)
    return replace(base, **kw)


@pytest.mark.parametrize("backend, device", target_params())
def test_variants_are_points_on_one_batch_size_axis(backend, device):
    n = len(DATA.train)
    full = run(_config(backend=backend, device=device, variant="full", batch_size=None), DATA)
    mb_n = run(_config(backend=backend, device=device, batch_size=n), DATA)
    sgd = run(_config(backend=backend, device=device, variant="sgd", batch_size=None), DATA)
    mb_1 = run(_config(backend=backend, device=device, batch_size=1), DATA)
    assert full.steps == 3 and sgd.steps == 3 * n
    for a, b in ((full, mb_n), (sgd, mb_1)):
        assert [p.valid_error for p in a.curve] == [p.valid_error for p in b.curve]
        assert [p.train_nll for p in a.curve] == pytest.approx([p.train_nll for p in b.curve],
                                                               rel=1e-6)


@pytest.mark.parametrize("order", ["in-order", "shuffle"])
@pytest.mark.parametrize("variant, B", [("full", None), ("sgd", None), ("minibatch", 20)])
def test_numpy_and_torch_cpu_trajectories_agree(variant, B, order):
    if unavailable_reason("torch", "cpu"):
        pytest.skip(unavailable_reason("torch", "cpu"))
    cfg = _config(variant=variant, batch_size=B, order=order, dtype="float64")
    a = run(cfg, DATA)
    b = run(replace(cfg, backend="torch"), DATA)
    assert len(a.curve) == len(b.curve) == 3
    assert [p.valid_error for p in a.curve] == [p.valid_error for p in b.curve]
    np.testing.assert_allclose([p.train_nll for p in a.curve],
                               [p.train_nll for p in b.curve], rtol=1e-9)


@pytest.mark.realdata
@pytest.mark.parametrize("variant, B", [("full", None), ("sgd", None), ("minibatch", 100)])
def test_real_mnist_trajectories_numpy_vs_torch_cpu(real_mnist, variant, B):
    if unavailable_reason("torch", "cpu"):
        pytest.skip(unavailable_reason("torch", "cpu"))
    # Per-sample steps at the tutorial's lr 0.13 move an example's logits by lr |x|^2 ~ 13:
    # chaotic, so rounding differences grow (measured: float64 runs part after 5,000 steps).
    # At lr 0.01 the dynamics are stable and the trajectories must agree.
    sgd = variant == "sgd"
    cfg = RunConfig(variant=variant, batch_size=B, max_epochs=1 if sgd else 3, dtype="float64",
                    learning_rate=0.01 if sgd else 0.13,
                    early_stopping=sgd)  # sgd: validation every 2,500 steps
    a = run(cfg, real_mnist)
    b = run(replace(cfg, backend="torch"), real_mnist)
    assert len(a.curve) == len(b.curve) >= 3
    assert [p.valid_error for p in a.curve] == [p.valid_error for p in b.curve]


def test_shuffle_order_is_seeded_and_shared():
    from bench.workload.data_order import epoch_permutation

    p1 = epoch_permutation(100, 1, "shuffle", 3)
    assert np.array_equal(p1, epoch_permutation(100, 1, "shuffle", 3))
    assert not np.array_equal(p1, epoch_permutation(100, 2, "shuffle", 3))
    assert sorted(p1) == list(range(100))
    assert epoch_permutation(100, 1, "in-order", 3) is None


@pytest.mark.parametrize("backend, device", target_params())
def test_partial_last_batch_dropped_or_kept(backend, device):
    dropped = run(_config(backend=backend, device=device, batch_size=100, max_epochs=1), DATA)
    kept = run(_config(backend=backend, device=device, batch_size=100, max_epochs=1,
                       drop_last=False), DATA)
    assert (dropped.steps, dropped.examples) == (2, 200)
    assert (kept.steps, kept.examples) == (3, 256)


@pytest.mark.parametrize("backend, device", target_params())
def test_divergence_is_recorded_not_raised(backend, device):
    r = run(_config(backend=backend, device=device, learning_rate=1e38, max_epochs=3), DATA)
    assert r.status == "diverged" and r.diverged
    assert r.diverged_epoch == 1
    assert "cost became" in r.message


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["torch", "cupy"])
def test_gpu_placements_give_identical_results(backend):
    reason = unavailable_reason(backend, "cuda")
    if reason:
        pytest.skip(reason)
    cfg = _config(backend=backend, device="cuda", batch_size=20)
    ref = run(cfg, DATA)
    for placement, pinned in (("streamed", False), ("streamed", True)):
        trainer, upload_s = prepare(replace(cfg, placement=placement, pinned=pinned), DATA)
        other = train(trainer, cfg, upload_s)
        assert [p.valid_error for p in other.curve] == [p.valid_error for p in ref.curve]
        assert other.times.h2d_s > 0
    numpy_run = run(replace(cfg, backend="numpy", device=None, dtype="float64"), DATA)
    gpu64 = run(replace(cfg, dtype="float64"), DATA)
    assert [p.valid_error for p in gpu64.curve] == [p.valid_error for p in numpy_run.curve]


FAST_PATHS = [pytest.param("torch", "cuda-graph", marks=pytest.mark.gpu, id="torch-cuda-graph"),
              pytest.param("cupy", "fused", marks=pytest.mark.gpu, id="cupy-fused"),
              pytest.param("cupy", "persistent", marks=pytest.mark.gpu, id="cupy-persistent")]


@pytest.mark.parametrize("backend, kernel", FAST_PATHS)
@pytest.mark.parametrize("batch_size", [1, 20])
def test_gpu_fast_paths_match_the_reference_and_eager(backend, kernel, batch_size):
    reason = unavailable_reason(backend, "cuda")
    if reason:
        pytest.skip(reason)
    if kernel in ("fused", "persistent"):
        with pytest.raises(ValueError, match="computes in float32"):
            make_trainer(backend, "cuda", kernel=kernel, dtype="float64")
        with pytest.raises(ValueError, match="batches of at most 32"):
            make_trainer(backend, "cuda", kernel=kernel).configure(batch_size=64,
                                                                   learning_rate=0.1)
    _check_one_step(make_trainer(backend, "cuda", kernel=kernel), batch_size, 0.05, 1e-4, 2e-4,
                    tol=1e-4)
    # whole runs: the same trajectory as the eager path (lr small enough to be stable)
    cfg = _config(backend=backend, device="cuda", batch_size=batch_size, learning_rate=0.01,
                  max_epochs=3, drop_last=False, validations_per_epoch=2)
    eager = run(cfg, DATA)
    fast = run(replace(cfg, kernel=kernel), DATA)
    assert fast.steps == eager.steps
    e1 = np.array([p.valid_error for p in eager.curve])
    e2 = np.array([p.valid_error for p in fast.curve])
    if kernel == "cuda-graph":   # the same kernels replayed: bit for bit
        assert e1.tolist() == e2.tolist()
        assert [p.train_nll for p in eager.curve] == [p.train_nll for p in fast.curve]
    else:                        # another summation order: float32 rounding only
        assert np.abs(e1 - e2).max() <= 2 / len(DATA.valid)
        np.testing.assert_allclose([p.train_nll for p in eager.curve],
                                   [p.train_nll for p in fast.curve], rtol=1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("order", ["shuffle", "in-order"])
@pytest.mark.parametrize("batch_size", [1, 5, 32])
def test_gpu_persistent_kernel_follows_the_fused_kernel(batch_size, order):
    """The persistent kernel reads rows through the permutation (no gather) and its steps
    equal the fused kernel's on the gathered epoch, to float32 rounding; the partial last
    batch (256 = 7 x 32 + 32, 51 x 5 + 1) runs eagerly through the permutation."""
    reason = unavailable_reason("cupy", "cuda")
    if reason:
        pytest.skip(reason)
    cfg = _config(backend="cupy", device="cuda", batch_size=batch_size, learning_rate=0.01,
                  max_epochs=3, drop_last=False, order=order, validations_per_epoch=2)
    fused = run(replace(cfg, kernel="fused"), DATA)
    persistent = run(replace(cfg, kernel="persistent"), DATA)
    assert persistent.steps == fused.steps
    e1 = np.array([p.valid_error for p in fused.curve])
    e2 = np.array([p.valid_error for p in persistent.curve])
    assert np.abs(e1 - e2).max() <= 2 / len(DATA.valid)
    np.testing.assert_allclose([p.train_nll for p in fused.curve],
                               [p.train_nll for p in persistent.curve], rtol=1e-4)
    trainer, _ = prepare(replace(cfg, kernel="persistent"), DATA)
    trainer.begin_epoch(np.arange(len(DATA.train))[::-1].copy())
    assert trainer._shuffled is None and trainer._order is not None   # nothing gathered
    buffer = trainer._order
    trainer.begin_epoch(np.arange(len(DATA.train)))
    assert trainer._order is buffer                                    # allocated once
    trainer.begin_epoch(None)
    assert trainer._order is None


@pytest.mark.gpu
@pytest.mark.realdata
@pytest.mark.parametrize("batch_size", [1, 20])
def test_gpu_persistent_kernel_on_real_mnist_follows_the_fused_kernel(real_mnist, batch_size):
    """One shuffled epoch of the real (sparse) training set: the persistent kernel's pipelined
    sparse rows against the fused kernel's dense gathered ones."""
    reason = unavailable_reason("cupy", "cuda")
    if reason:
        pytest.skip(reason)
    cfg = RunConfig(backend="cupy", device="cuda", batch_size=batch_size, learning_rate=0.01,
                    max_epochs=1, l1=1e-5, l2=1e-4, validations_per_epoch=4)
    fused = run(replace(cfg, kernel="fused"), real_mnist)
    persistent = run(replace(cfg, kernel="persistent"), real_mnist)
    e1 = np.array([p.valid_error for p in fused.curve])
    e2 = np.array([p.valid_error for p in persistent.curve])
    assert np.abs(e1 - e2).max() <= 5 / len(real_mnist.valid.y)
    np.testing.assert_allclose([p.train_nll for p in fused.curve],
                               [p.train_nll for p in persistent.curve], rtol=1e-3)


def test_fast_paths_are_refused_where_they_cannot_run():
    with pytest.raises(ValueError, match="no kernel 'fused'; choose one of eager"):
        make_trainer("numpy", "cpu", kernel="fused")
    if not unavailable_reason("torch", "cpu"):
        with pytest.raises(ValueError, match="runs only on a GPU with placement='resident'"):
            make_trainer("torch", "cpu", kernel="cuda-graph")


def test_torch_cpu_small_batches_leave_the_thread_count_as_they_found_it():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    from impls.torch_backend import ONE_THREAD_MAX_B

    before = torch.get_num_threads()
    trainer = make_trainer("torch", "cpu")
    trainer.load(DATA)
    W, b = L.init_params("random", seed=1)
    for B in (ONE_THREAD_MAX_B, ONE_THREAD_MAX_B + 1):
        trainer.configure(batch_size=B, learning_rate=0.1)
        trainer.set_params({"W": W, "b": b})
        trainer.begin_epoch(None)
        trainer.train_batches(0, 1)
        assert torch.get_num_threads() == before
