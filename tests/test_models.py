"""The model specs prove themselves (central differences), and every backend's model
operations agree with them: one generic step against the float64 reference step."""

from __future__ import annotations

import numpy as np
import pytest

from bench.workload.models import MODELS, model_spec
from bench.workload.models.mlp import MLP
from impls.registry import make_trainer, unavailable_reason
from tests.conftest import random_mnist, target_params

DATA = random_mnist()


def _small(name: str):
    return MLP(n_in=12, n_hidden=6, n_out=4) if name == "mlp" else model_spec(name)


def _problem(spec, seed: int, B: int = 7):
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(v.shape) * 0.5 for k, v in spec.init().items()}
    n_in = params[spec.weight_names[0]].shape[0]
    n_out = params[spec.param_names[-1]].shape[0]
    return params, rng.standard_normal((B, n_in)), rng.integers(0, n_out, B)


@pytest.mark.parametrize("model", ["mlp"])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("l1, l2", [(0.0, 0.0), (1e-2, 0.0), (0.0, 3e-2), (2e-2, 5e-2)])
def test_gradient_matches_central_differences(model, seed, l1, l2):
    spec = _small(model)
    params, x, y = _problem(spec, seed)
    grad = spec.gradient(params, x, y, l1, l2)
    h = 1e-6
    for name, p in params.items():
        numeric = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            plus = {k: v.copy() for k, v in params.items()}
            minus = {k: v.copy() for k, v in params.items()}
            plus[name][idx] += h
            minus[name][idx] -= h
            numeric[idx] = (spec.cost(plus, x, y, l1, l2)
                            - spec.cost(minus, x, y, l1, l2)) / (2 * h)
        np.testing.assert_allclose(grad[name], numeric, rtol=1e-6, atol=1e-8, err_msg=name)


def test_mlp_init_is_the_tutorials():
    p = MLP().init()
    bound = np.sqrt(6.0 / (784 + 500))
    expected = np.random.RandomState(1234).uniform(low=-bound, high=bound, size=(784, 500))
    np.testing.assert_array_equal(p["W1"], expected)
    assert not p["b1"].any() and not p["W2"].any() and not p["b2"].any()
    assert list(p) == ["W1", "b1", "W2", "b2"]
    assert model_spec("mlp").weight_names == ("W1", "W2")
    with pytest.raises(ValueError, match="Unknown model 'cnn'; choose one of softmax, mlp"):
        model_spec("cnn")


def _rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


@pytest.mark.parametrize("backend, device", target_params())
@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_size", [1, 7])
def test_generic_step_matches_the_reference(backend, device, model, dtype, batch_size):
    """One generic step (fast paths off) from random parameters against the float64 spec."""
    reason = unavailable_reason(backend, device, model)
    if reason:
        pytest.skip(reason)
    spec = model_spec(model)
    rng = np.random.default_rng(3)
    params = {k: v + rng.normal(0, 0.05, v.shape) for k, v in spec.init("random", 3).items()}
    trainer = make_trainer(backend, device, dtype=dtype, model=model, generic=True)
    trainer.load(DATA)
    lr, l1, l2 = 0.2, 1e-3, 2e-3
    trainer.configure(batch_size=batch_size, learning_rate=lr, l1=l1, l2=l2)
    assert trainer.fast_path is None
    trainer.set_params(params)
    trainer.begin_epoch(None)
    trainer.train_batches(0, 1)
    x, y = DATA.train.x[:batch_size], DATA.train.y[:batch_size]
    expected = spec.reference_step(params, x, y, lr, l1, l2)
    got = trainer.get_params()
    tol = 1e-4 if dtype == "float32" else 1e-10
    for k in spec.param_names:
        assert _rel(got[k] - params[k], expected[k] - params[k]) < tol, k
    assert trainer.read_cost() == pytest.approx(spec.nll(params, x, y), rel=10 * tol)
    assert trainer.error("valid", 16) == pytest.approx(
        spec.error(got, DATA.valid.x, DATA.valid.y), abs=1.5 / len(DATA.valid))


def test_numba_refuses_what_it_does_not_compile():
    reason = unavailable_reason("numba", "cpu", "mlp", "momentum")
    assert reason and "numba" in reason and "sgd" in reason
    if not unavailable_reason("numba", "cpu"):
        with pytest.raises(ValueError, match="runs optimizer sgd only"):
            make_trainer("numba", "cpu", optimizer="momentum")
