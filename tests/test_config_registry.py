"""Run configuration validation and the backend registry."""

from __future__ import annotations

import pytest

from bench.workload.config import ConfigError, RunConfig
from impls.registry import BackendError, make_trainer, targets, unavailable_reason


@pytest.mark.parametrize("kwargs, text", [
    ({"variant": "minibatch", "batch_size": 0},
     "The 'batch_size' parameter of RunConfig must be an int >= 1 for the minibatch variant. "
     "Got 0 instead."),
    ({"variant": "stochastic"}, "The 'variant' parameter of RunConfig must be one of"),
    ({"variant": "sgd", "batch_size": 5}, "None or 1 for the sgd"),
    ({"variant": "full", "batch_size": 5}, "None or n_train for the full variant"),
    ({"variant": "full", "learning_rate": -1}, "'learning_rate' parameter of RunConfig"),
    ({"variant": "full", "l2": float("nan")}, "'l2' parameter"),
    ({"variant": "full", "dtype": "float16"}, "'dtype' parameter of RunConfig must be one of"),
    ({"variant": "full", "placement": "remote"}, "'placement'"),
    ({"variant": "full", "pinned": True}, "'pinned' parameter"),
    ({"variant": "full", "order": "random"}, "'order' parameter"),
    ({"variant": "full", "max_epochs": 0}, "'max_epochs' parameter"),
    ({"variant": "full", "target_error": 2.0}, "'target_error'"),
    ({"variant": "full", "backend": "mxnet"},
     "The 'backend' parameter of RunConfig must be one of ('numpy', 'torch', 'cupy', 'numba', "
     "'jax') (check the spelling). Got 'mxnet' instead."),
    ({"variant": "full", "device": "tpu"}, "'device' parameter of RunConfig must be None or one "
     "of ('cpu',) for backend 'numpy'. Got 'tpu' instead."),
    ({"variant": "full", "model": "cnn"}, "'model' parameter of RunConfig must be one of "
     "('softmax', 'mlp')"),
    ({"variant": "full", "optimizer": "adam"}, "'optimizer' parameter of RunConfig must be one"),
    ({"variant": "full", "momentum": 1.0}, "'momentum' parameter of RunConfig must be a float"),
])
def test_bad_config_names_parameter_value_and_valid_set(kwargs, text):
    with pytest.raises(ConfigError) as info:
        RunConfig(**kwargs)
    assert text in str(info.value)


def test_effective_batch_size():
    assert RunConfig(variant="full").effective_batch_size(50_000) == 50_000
    assert RunConfig(variant="sgd").effective_batch_size(50_000) == 1
    assert RunConfig(batch_size=600).effective_batch_size(50_000) == 600
    with pytest.raises(ConfigError, match=r"must be an int in \[1, 100\]. Got 600 instead"):
        RunConfig(batch_size=600).effective_batch_size(100)


def test_registry_errors_list_the_choices():
    with pytest.raises(BackendError, match=r"Unknown backend 'tensorflow'; choose one of numpy, "
                                           "torch, cupy, numba"):
        unavailable_reason("tensorflow")
    with pytest.raises(BackendError, match=r"does not run on device 'cuda'; choose one of cpu"):
        make_trainer("numpy", "cuda")


def test_every_target_is_listed_with_a_reason_or_usable():
    found = {(b, d): r for b, d, r in targets()}
    assert set(found) == {("numpy", "cpu"), ("torch", "cpu"), ("torch", "cuda"),
                          ("cupy", "cuda"), ("numba", "cpu"), ("jax", "cpu"), ("jax", "cuda")}
    assert found[("numpy", "cpu")] is None
    for key, reason in found.items():
        if reason is not None:
            assert reason.startswith(key[0] + ":")
            if key[0] == "cupy":
                assert "not installed" in reason or "no CUDA device" in reason


def test_unusable_backend_is_a_clear_error():
    reason = unavailable_reason("cupy", "cuda")
    if reason is None:
        pytest.skip("cupy is usable on this machine")
    with pytest.raises(BackendError, match=r"not usable here: cupy: "):
        make_trainer("cupy", "cuda")


def test_numpy_integers_are_ints():
    import numpy as np

    cfg = RunConfig(batch_size=np.int64(100), max_steps=np.int32(5), seed=np.uint8(3))
    assert (cfg.batch_size, cfg.max_steps, cfg.seed) == (100, 5, 3)
    assert type(cfg.batch_size) is int
    with pytest.raises(ConfigError, match="'batch_size'"):
        RunConfig(batch_size=True)


def test_a_backend_that_cannot_run_is_refused_before_any_data_is_loaded(monkeypatch):
    from bench import harness

    def no_loading(*args, **kwargs):
        raise AssertionError("the data was loaded before the configuration was refused")

    monkeypatch.setattr(harness, "load", no_loading)
    with pytest.raises(BackendError, match=r"optimizer='momentum'.*numba: runs optimizer sgd "
                       "only"):
        harness.run(RunConfig(backend="numba", model="mlp", optimizer="momentum",
                              batch_size=20))


def test_a_diverged_run_says_which_steps_it_checked():
    from bench.harness import run
    from tests.conftest import random_mnist

    r = run(RunConfig(batch_size=32, learning_rate=1e38, max_epochs=2,
                      validations_per_epoch=2), random_mnist())
    assert r.status == "diverged" and r.steps == 4
    assert "mean NLL of steps 1 to 4" in r.message and "lower the learning rate" in r.message
