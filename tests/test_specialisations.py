"""Every fast path equals the generic step (model gradient, then the optimizer) on its domain,
and outside its domain the generic step runs."""

from __future__ import annotations

import numpy as np
import pytest

from bench.workload.data_order import epoch_permutation
from bench.workload.models import model_spec
from impls.base import Specialisation
from impls.registry import BACKENDS, make_trainer, trainer_class, unavailable_reason
from tests.conftest import random_mnist

DATA = random_mnist(n_train=2100)


def _cases():
    out = []
    for backend, (_, devices) in BACKENDS.items():
        for device in devices:
            reason = unavailable_reason(backend, device)
            if reason:
                out.append(pytest.param(backend, device, None, marks=pytest.mark.skip(
                    reason=reason), id=f"{backend}-{device}"))
                continue
            for spec in trainer_class(backend, device).specialisations:
                if device in spec.devices:
                    out.append(pytest.param(backend, device, spec,
                                            id=f"{backend}-{device}-{spec.name}"))
    return out


def _batch_size(spec: Specialisation) -> int:
    """A B inside the domain: the largest when bounded, else one the other paths leave out."""
    if spec.max_batch is not None:
        return min(spec.max_batch, 20)
    return 1050  # above the CPU columns loop (B <= 1000)


LR, L1 = 0.05, 1e-4


def _train(backend, device, spec, generic, dtype, B=None):
    B = _batch_size(spec) if B is None else B
    trainer = make_trainer(backend, device, dtype=dtype, model=spec.models[0],
                           kernel="eager" if generic else spec.kernel,
                           optimizer=spec.optimizers[0], generic=generic)
    trainer.load(DATA)
    trainer.configure(batch_size=B, learning_rate=LR, l1=L1, l2=1e-3, drop_last=False)
    trainer.set_params(model_spec(spec.models[0]).init("random", 2))
    for epoch in (1, 2):
        trainer.begin_epoch(epoch_permutation(len(DATA.train), epoch, "shuffle", 3))
        trainer.train_batches(0, min(trainer.n_batches(), 100))  # float32: rounding only
    return trainer


@pytest.mark.parametrize("backend, device, spec", _cases())
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fast_path_equals_the_generic_step(backend, device, spec, dtype):
    if dtype not in spec.dtypes:
        pytest.skip(f"{spec.name} runs {'/'.join(spec.dtypes)} only")
    fast = _train(backend, device, spec, False, dtype)
    assert spec.name in (fast.fast_path or ""), fast
    generic = _train(backend, device, spec, True, dtype)
    assert generic.fast_path is None
    tol = 1e-4 if dtype == "float32" else 1e-11
    a, b = fast.get_params(), generic.get_params()
    for k in a:  # a weight that rounding puts on the other side of 0 takes l1's step the other way
        np.testing.assert_allclose(a[k], b[k], rtol=tol,
                                   atol=max(tol * np.abs(b[k]).max(), 2 * LR * L1))
    assert fast.read_cost() == pytest.approx(generic.read_cost(), rel=tol)


@pytest.mark.parametrize("B", [1, 7])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_numba_mlp_loop_equals_the_generic_step_at_small_b(B, dtype):
    # rows with fewer than four non-zeros a column, and a last partial minibatch (2100 / 7)
    if reason := unavailable_reason("numba", "cpu", "mlp"):
        pytest.skip(reason)
    from impls.numba_backend import MLP_LOOP

    fast = _train("numba", "cpu", MLP_LOOP, False, dtype, B)
    assert fast.fast_path == MLP_LOOP.name
    generic = _train("numba", "cpu", MLP_LOOP, True, dtype, B)
    tol = 1e-4 if dtype == "float32" else 1e-11
    a, b = fast.get_params(), generic.get_params()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=tol,
                                   atol=max(tol * np.abs(b[k]).max(), 2 * LR * L1))


def test_the_float32_tanh_of_the_numba_mlp_is_within_6_ulp():
    if reason := unavailable_reason("numba", "cpu"):
        pytest.skip(reason)
    import numba

    from impls.numba_backend import _tanh32

    tanh = numba.njit(lambda x: np.array([_tanh32(v) for v in x], dtype=np.float32))
    x = np.concatenate([np.linspace(-12, 12, 200_001), -np.logspace(-30, 1, 2001),
                        np.logspace(-30, 1, 2001), [0.0, 7.9, 7.91, 1e30]]).astype(np.float32)
    exact = np.tanh(x.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert (np.abs(tanh(x) - exact) / ulp).max() <= 6
    assert (np.abs(tanh(x)) <= 1).all()


def test_the_generic_step_runs_where_no_fast_path_applies():
    trainer = make_trainer("numpy", "cpu", model="mlp", optimizer="momentum")
    trainer.configure(batch_size=20, learning_rate=0.1)
    assert trainer.fast_path is None
    trainer = make_trainer("numpy", "cpu")
    trainer.configure(batch_size=1, learning_rate=0.1)
    assert trainer.fast_path == "per-sample-blas+softmax-sgd-fused"
    trainer = make_trainer("numpy", "cpu", optimizer="nesterov")
    trainer.configure(batch_size=1, learning_rate=0.1)
    assert trainer.fast_path is None


def test_an_eager_step_path_also_runs_inside_a_batches_kernel():
    # a captured CUDA graph must replay the step eager runs (the two are compared bit for bit
    # on the card), and a one-block kernel's partial last batch runs it too
    from types import SimpleNamespace

    from impls.torch_backend import CUDA_GRAPH, SOFTMAX_SGD_TRANSPOSED

    t = SimpleNamespace(model="softmax", optimizer_name="sgd", device="cuda",
                        kernel="cuda-graph", dtype="float32", batch_size=20, streams=False,
                        gather="epoch")
    assert CUDA_GRAPH.covers(t) and SOFTMAX_SGD_TRANSPOSED.covers(t)
    batches_only = Specialisation("batches-eager", "_loop", kind="batches")
    assert not batches_only.covers(t)  # a batches path still needs its own kernel
