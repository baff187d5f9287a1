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


def _train(backend, device, spec, generic, dtype):
    B = _batch_size(spec)
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
