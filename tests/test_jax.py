"""The JAX backend beyond what the registry-wide tests check (``test_impls``, ``test_models``,
``test_optimizers``, ``test_specialisations`` run it like every backend): compilation kept out
of the timed steps, float64 without a global switch, its trajectory against NumPy's, the skip
reason without JAX, and JAX's place in the grid, the targets and the study."""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from bench.harness import prepare, run, train
from bench.profiles import PROFILES
from bench.workload.config import RunConfig
from impls import registry
from tests.conftest import random_mnist

DATA = random_mnist()
REASON = registry.unavailable_reason("jax", "cpu")
needs_jax = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def _config(**kw) -> RunConfig:
    return replace(RunConfig(backend="jax", batch_size=20, learning_rate=0.1, max_epochs=2,
                             eval_batch_size=16, l1=1e-4, l2=1e-4, seed=7,
                             validations_per_epoch=3, drop_last=False), **kw)


def test_without_jax_the_backend_skips_with_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)          # import jax raises ImportError
    monkeypatch.delitem(sys.modules, "impls.jax_backend", raising=False)
    registry._import.cache_clear()
    try:
        reason = registry.unavailable_reason("jax", "cpu")
    finally:
        registry._import.cache_clear()
    assert reason is not None and reason.startswith("jax: not installed")
    assert "pip install 'gdbench[jax]'" in reason


@needs_jax
def test_compilation_is_warm_up_outside_the_timed_steps():
    """``prepare`` compiles (``compile_s`` > 0); a run with validations inside epochs (ranges
    of several lengths) and a partial last batch compiles nothing more."""
    config = _config(model="mlp", optimizer="asgd")
    trainer, upload_s = prepare(config, DATA)
    assert trainer.fast_path == "jax-compiled-range"
    assert trainer.compile_s is not None and trainer.compile_s > 0
    sizes = {key: fn._cache_size() for key, fn in trainer._compiled.items()}
    assert all(n == 1 for n in sizes.values()), sizes
    result = train(trainer, config, upload_s)
    assert result.status == "ok" and len(result.curve) == 6
    assert {key: fn._cache_size() for key, fn in trainer._compiled.items()} == sizes


@needs_jax
def test_float64_does_not_switch_jax_to_64_bit_globally():
    import jax
    import jax.numpy as jnp

    before = jax.config.jax_enable_x64
    result = run(_config(dtype="float64"), DATA)
    assert result.status == "ok"
    assert jax.config.jax_enable_x64 == before
    if not before:
        assert jnp.zeros(1).dtype == jnp.float32
    trainer, _ = prepare(_config(dtype="float64"), DATA)
    assert all(p.dtype == jnp.float64 for p in trainer.params.values())


@needs_jax
@pytest.mark.parametrize("order", ["shuffle", "in-order"])
@pytest.mark.parametrize("model, optimizer", [("softmax", "sgd"), ("mlp", "nesterov")])
def test_compiled_ranges_follow_the_numpy_trajectory(order, model, optimizer):
    """float64, whole runs with validations inside epochs and a partial last batch: the same
    trajectory as NumPy's generic step (float64 rounding apart)."""
    cfg = _config(order=order, model=model, optimizer=optimizer, dtype="float64",
                  learning_rate=0.05)
    a, b = run(cfg, DATA), run(replace(cfg, backend="numpy"), DATA)
    assert a.steps == b.steps == 2 * 13
    assert [p.valid_error for p in a.curve] == [p.valid_error for p in b.curve]
    np.testing.assert_allclose([p.train_nll for p in a.curve], [p.train_nll for p in b.curve],
                               rtol=1e-9)


@needs_jax
def test_the_batch_gather_and_the_epoch_gather_agree():
    """The generic step (fast paths off) with the epoch gathered once, or each minibatch
    gathered through the permutation, equals the compiled range."""
    cfg = _config(dtype="float64")
    compiled = run(cfg, DATA)
    for gather in ("epoch", "batch"):
        trainer, upload_s = prepare(replace(cfg, gather=gather), DATA)
        trainer.generic = True
        trainer.configure(batch_size=20, learning_rate=0.1, l1=1e-4, l2=1e-4, drop_last=False)
        assert trainer.fast_path is None
        trainer.set_params(trainer.spec.init(cfg.init, cfg.seed))
        generic = train(trainer, cfg, upload_s)
        np.testing.assert_allclose([p.train_nll for p in generic.curve],
                                   [p.train_nll for p in compiled.curve], rtol=1e-12)


def test_every_profile_grid_has_jax_rows_and_targets_for_them():
    from bench.analysis.targets import PEER_BACKEND, T_JAX, evaluate, side_reference
    from bench.grid import cases
    from bench.workload.config import batch_sizes_for

    assert PEER_BACKEND == "jax"
    for profile in PROFILES.values():
        if "cpu" not in profile.devices:
            continue
        jax_cases = {(c.model, c.batch_size)
                     for c in cases(profile, profile.batch_sizes,
                                    model_batch_sizes=profile.model_batch_sizes)
                     if c.backend == "jax" and c.order == "shuffle"}
        sizes = batch_sizes_for(profile.batch_sizes, 50_000)
        assert {("softmax", B) for B in sizes} <= jax_cases, profile.name
        if profile.name in ("standard", "full"):  # issue 23: the MLP at every B too
            assert {("mlp", B) for B in sizes} <= jax_cases, profile.name
    for B in batch_sizes_for(PROFILES["standard"].batch_sizes, 50_000):
        assert side_reference("jax", "cpu", B, "shuffle") == "fastest-own"
    assert side_reference("jax", "cpu", 600, "in-order") is None
    row = {"kind": "epoch", "device": "cpu", "backend": "jax", "model": "mlp",
           "batch_size": 20, "cfg_order": "shuffle", "median_compute_s": 0.10,
           "median_h2d_s": None, "median_d2h_s": 0.0, "median_data_move_s": 0.0,
           "median_eval_s": 0.01, "median_other_s": 0.0, "steps": 2500,
           "batches_per_epoch": 2500, "epochs": 1, "side_reference": "fastest-own",
           "side_reference_s": 0.13, "side_ratio": 0.10 / 0.13, "note": "numba"}
    t = evaluate(pd.DataFrame([row])).set_index("target")
    assert t.loc[T_JAX, "ratio"] == pytest.approx(1.3)
    assert t.loc[T_JAX, "subject"] == "mlp B=20: numba vs jax"
    assert not t.loc[T_JAX, "holds"] and t.loc[T_JAX, "paired"]


def test_a_profile_budget_caps_the_mlp_alike_at_every_b():
    standard, quick = PROFILES["standard"], PROFILES["quick"]
    assert standard.budget("softmax") == (standard.epochs, None)
    epochs, cap = standard.budget("mlp")
    assert epochs == 1 and cap is not None and cap >= 50_000 // 10  # B >= 10 runs a whole epoch
    assert quick.budget("mlp")[1] == min(quick.max_steps, quick.model_max_steps["mlp"])
    assert replace(standard, model_max_steps={}).budget("mlp") == (1, None)
    from bench.grid import cases
    steps = {c.batch_size for c in cases(standard, standard.step_batch_sizes,
                                         model_batch_sizes=standard.model_step_batch_sizes)
             if c.model == "mlp"}
    assert steps == {20, 600, 50_000}  # the MLP's single steps stay off B = 1


def test_the_study_times_jax_specs():
    from bench.study.timing import parse_spec

    spec = parse_spec("jax")
    assert (spec.backend, spec.device, spec.kernel) == ("jax", "cpu", "eager")
    assert parse_spec("jax:cuda").label == "jax:cuda"


@needs_jax
def test_the_race_pairs_the_named_backends_round_by_round():
    from bench.tools.jax_race import race

    out = race("mlp", 20, rounds=2, max_steps=3, data=DATA, backends=["numba", "jax"])
    assert set(out["seconds"]) == {"numba", "jax"}
    assert out["iqr"][0] <= out["ratio"] <= out["iqr"][1]
    assert out["ratio"] > 0 and out["compile_s"] > 0
