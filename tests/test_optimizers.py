"""The optimizers: PyTorch's own ``torch.optim.SGD`` as the oracle for momentum and Nesterov,
the Polyak-Ruppert mean for averaged SGD, and every backend running each of them."""

from __future__ import annotations

import numpy as np
import pytest

from bench.workload.models import model_spec
from bench.workload.optimizers import OPTIMIZERS, make_optimizer
from impls.registry import make_trainer, unavailable_reason
from tests.conftest import random_mnist, target_params

DATA = random_mnist()
SPEC = model_spec("softmax")


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(0, 0.05, v.shape) for k, v in SPEC.init().items()}


def _batches(n_steps, B=8):
    return [(DATA.train.x[k * B:(k + 1) * B].astype(np.float64), DATA.train.y[k * B:(k + 1) * B])
            for k in range(n_steps)]


def _ours(name, params, batches, lr, l1=0.0, l2=0.0, momentum=0.9):
    """The optimizer on float64 NumPy arrays: its own reference."""
    opt = make_optimizer(name, lr, momentum=momentum)
    p = {k: v.copy() for k, v in params.items()}
    opt.init_state(p)
    for x, y in batches:
        opt.step(p, SPEC.gradient(p, x, y, l1, l2))
    return p, opt


@pytest.mark.parametrize("name, nesterov", [("momentum", False), ("nesterov", True)])
@pytest.mark.parametrize("l2", [0.0, 1e-3])
def test_momentum_equals_torch_optim_sgd(name, nesterov, l2):
    torch = pytest.importorskip("torch", reason="the oracle is torch.optim.SGD: torch is not "
                                "installed (pip install 'gdbench[torch]')")
    params, batches, lr, mu = _params(), _batches(6), 0.3, 0.8
    ours, _ = _ours(name, params, batches, lr, l2=l2, momentum=mu)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = torch.optim.SGD(tp.values(), lr=lr, momentum=mu, nesterov=nesterov)
    for x, y in batches:
        opt.zero_grad()
        logits = torch.from_numpy(x) @ tp["W"] + tp["b"]
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y))
        (loss + l2 * (tp["W"] ** 2).sum()).backward()
        opt.step()
    for k in params:
        np.testing.assert_allclose(ours[k], tp[k].detach().numpy(), rtol=1e-12, atol=1e-14)


def test_averaged_sgd_evaluates_the_mean_of_the_iterates():
    params, batches, lr = _params(1), _batches(5), 0.4
    iterates, p = [], {k: v.copy() for k, v in params.items()}
    for x, y in batches:
        g = SPEC.gradient(p, x, y)
        p = {k: p[k] - lr * g[k] for k in p}
        iterates.append(p)
    ours, opt = _ours("asgd", params, batches, lr)
    for k in params:
        np.testing.assert_allclose(ours[k], p[k], rtol=1e-13)  # training goes on from p
        mean = np.mean([it[k] for it in iterates], axis=0)
        np.testing.assert_allclose(opt.eval_params(ours)[k], mean, rtol=1e-12)


def test_sgd_is_one_plain_step_and_names_are_checked():
    params, batches = _params(2), _batches(1)
    ours, _ = _ours("sgd", params, batches, 0.5)
    expected = SPEC.reference_step(params, *batches[0], 0.5)
    for k in params:
        np.testing.assert_allclose(ours[k], expected[k], rtol=1e-14)
    with pytest.raises(ValueError, match="Unknown optimizer 'adam'; choose one of sgd"):
        make_optimizer("adam", 0.1)
    with pytest.raises(ValueError, match="'momentum' parameter of Momentum must be a float"):
        make_optimizer("momentum", 0.1, momentum=1.5)


@pytest.mark.parametrize("backend, device", target_params())
@pytest.mark.parametrize("model", ["softmax", "mlp"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_backend_runs_every_optimizer_like_the_reference(backend, device, model,
                                                               optimizer, dtype):
    """Four steps of B = 8 on each backend (its fast paths where they apply) against the same
    optimizer on float64 NumPy arrays; the error is scored with the evaluated parameters."""
    reason = unavailable_reason(backend, device, model, optimizer)
    if reason:
        pytest.skip(reason)
    spec = model_spec(model)
    rng = np.random.default_rng(4)
    params = {k: v + rng.normal(0, 0.05, v.shape) for k, v in spec.init("random", 4).items()}
    lr, l1, l2, B, n = 0.1, 1e-4, 1e-3, 8, 4
    trainer = make_trainer(backend, device, dtype=dtype, model=model, optimizer=optimizer,
                           momentum=0.7)
    trainer.load(DATA)
    trainer.configure(batch_size=B, learning_rate=lr, l1=l1, l2=l2)
    trainer.set_params(params)
    trainer.begin_epoch(None)
    trainer.train_batches(0, n)
    opt = make_optimizer(optimizer, lr, momentum=0.7)
    p = {k: v.copy() for k, v in params.items()}
    opt.init_state(p)
    for k in range(n):
        x, y = DATA.train.x[k * B:(k + 1) * B], DATA.train.y[k * B:(k + 1) * B]
        opt.step(p, spec.gradient(p, x, y, l1, l2))
    tol = 2e-4 if dtype == "float32" else 1e-10
    got, got_eval = trainer.get_params(), trainer.get_params(evaluated=True)
    for k in spec.param_names:
        np.testing.assert_allclose(got[k], p[k], rtol=tol, atol=tol * np.abs(p[k]).max())
        expected_eval = opt.eval_params(p)[k]
        np.testing.assert_allclose(got_eval[k], expected_eval, rtol=tol,
                                   atol=tol * np.abs(expected_eval).max())
