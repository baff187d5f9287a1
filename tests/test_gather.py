"""``gather='batch'`` (each minibatch gathered through the epoch's permutation) trains exactly
what ``gather='epoch'`` (one gather of the training set per epoch) trains, on every backend and
fast path that runs it; paths that read through the permutation themselves gather nothing."""

from __future__ import annotations

import numpy as np
import pytest

from bench.workload.config import ConfigError, RunConfig
from bench.workload.data_order import epoch_permutation
from bench.workload.models import model_spec
from impls.registry import BACKENDS, make_trainer, unavailable_reason
from tests.conftest import random_mnist

DATA = random_mnist(n_train=2100)


def _cases():
    out = []
    for backend, (_, devices) in BACKENDS.items():
        for device in devices:
            kernels = ["eager"] + (["cuda-graph"] if (backend, device) == ("torch", "cuda")
                                   else [])
            for kernel in kernels:
                for model, optimizer in (("softmax", "sgd"), ("mlp", "momentum")):
                    reason = unavailable_reason(backend, device, model, optimizer)
                    marks = [pytest.mark.skip(reason=reason)] if reason else []
                    out.append(pytest.param(backend, device, kernel, model, optimizer,
                                            marks=marks,
                                            id=f"{backend}-{device}-{kernel}-{model}"))
    return out


def _train(backend, device, kernel, model, optimizer, B, gather, dtype):
    trainer = make_trainer(backend, device, dtype=dtype, model=model, optimizer=optimizer,
                           kernel=kernel, gather=gather)
    trainer.load(DATA)
    trainer.configure(batch_size=B, learning_rate=0.05, l1=1e-4, l2=1e-3, drop_last=False)
    trainer.set_params(model_spec(model).init("random", 2))
    for epoch, order in ((1, "shuffle"), (2, "in-order"), (3, "shuffle")):
        trainer.begin_epoch(epoch_permutation(len(DATA.train), epoch, order, 3))
        if gather == "batch" and order == "shuffle":
            assert trainer._shuffled is None, "gather='batch' must not gather the epoch"
        trainer.train_batches(0, min(trainer.n_batches(), 60))
    return trainer


@pytest.mark.parametrize("backend, device, kernel, model, optimizer", _cases())
@pytest.mark.parametrize("B", [1, 20, 1050])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batch_gather_trains_what_epoch_gather_trains(backend, device, kernel, model,
                                                       optimizer, B, dtype):
    if model == "mlp" and B == 1050:
        pytest.skip("MLP at B = 1050: covered at B = 1 and 20 (the same code path, slower)")
    if kernel == "cuda-graph" and dtype == "float64":
        pytest.skip("cuda-graph: float32 suffices (the graph replays the same kernels)")
    by_epoch = _train(backend, device, kernel, model, optimizer, B, "epoch", dtype)
    by_batch = _train(backend, device, kernel, model, optimizer, B, "batch", dtype)
    tol = 1e-4 if dtype == "float32" else 1e-11
    a, b = by_batch.get_params(), by_epoch.get_params()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=tol, atol=tol * np.abs(b[k]).max())
    assert by_batch.read_cost() == pytest.approx(by_epoch.read_cost(), rel=tol)


def test_paths_that_read_through_the_permutation_gather_nothing():
    for backend in ("numpy", "numba", "jax"):
        if unavailable_reason(backend, "cpu"):
            continue
        trainer = make_trainer(backend, "cpu", gather="epoch")
        trainer.load(DATA)
        trainer.configure(batch_size=1, learning_rate=0.1)
        assert trainer.reads_order, trainer
        perm = epoch_permutation(len(DATA.train), 1, "shuffle", 3)
        trainer.begin_epoch(perm)
        assert trainer._shuffled is None
        np.testing.assert_array_equal(np.asarray(trainer._order), perm)


def test_a_path_that_slices_the_gathered_epoch_is_not_chosen_for_batch_gather():
    from impls.base import Specialisation

    slices = Specialisation("slices-the-epoch", "_loop", kind="batches", devices=("cpu",))
    assert slices.gathers == ("epoch",)
    for gather, covered in (("epoch", True), ("batch", False)):
        trainer = make_trainer("numpy", "cpu", gather=gather)
        trainer.configure(batch_size=20, learning_rate=0.1)
        assert slices.covers(trainer) is covered
    # torch's CPU columns loop takes its minibatches from minibatches() with gather='batch':
    # in order and shuffled it is the same loop (the reshuffle target compares the two)
    trainer = make_trainer("torch", "cpu", gather="batch")
    trainer.configure(batch_size=20, learning_rate=0.1)
    assert "cpu-columns-loop" in trainer.fast_path


@pytest.mark.parametrize("kwargs, text", [
    ({"gather": "rows"}, "'gather' parameter of RunConfig must be one of"),
    ({"gather": "batch", "placement": "streamed"}, "unless placement='resident'"),
])
def test_bad_gather_is_refused_with_the_valid_choices(kwargs, text):
    with pytest.raises(ConfigError, match=text):
        RunConfig(backend="torch", batch_size=20, **kwargs)


def test_a_trainer_refuses_batch_gather_of_streamed_data_on_a_gpu():
    from impls.torch_backend import TorchTrainer

    with pytest.raises(ValueError, match="needs placement='resident'"):
        TorchTrainer(device="cuda", placement="streamed", gather="batch")


def test_batch_buffers_keep_their_addresses_across_configure():
    # a captured CUDA graph holds the buffers' addresses: reconfiguring (each benchmark round
    # does) must hand back the same buffers for the same B
    trainer = make_trainer("torch", "cpu", gather="batch")
    trainer.load(DATA)
    trainer.configure(batch_size=20, learning_rate=0.1)
    first = trainer._batch_buf
    trainer.configure(batch_size=30, learning_rate=0.1)
    assert trainer._batch_buf[0].shape[0] == 30
    trainer.configure(batch_size=20, learning_rate=0.2)
    assert trainer._batch_buf[0] is first[0] and trainer._batch_buf[1] is first[1]
