"""The fair race: the fit, the learning-rate search, resuming, determinism across runners, and
a small study on the real data (the CI's version of the complete study)."""

from __future__ import annotations

import dataclasses
import json
import math
from concurrent.futures import Future
from dataclasses import asdict

import numpy as np
import pytest

from bench.study.core import StudyConfig, run_study
from bench.study.fit import fit_steps, regime
from bench.study.runners import InProcessRunner, PoolRunner
from bench.study.search import lr_search
from bench.study.storage import StudyStore, load_study
from bench.study.summary import fit_study, per_batch_size
from bench.study.trial import TrialSpec, run_trial

# ---------------------------------------------------------------- the fit


def test_fit_recovers_known_s_min_and_e_min_exactly():
    B = 2.0 ** np.arange(0, 16)
    fit = fit_steps(B, 120.0 + 40_000.0 / B)
    assert fit.s_min == pytest.approx(120.0, rel=1e-6)
    assert fit.e_min == pytest.approx(40_000.0, rel=1e-6)
    assert fit.b_crit == pytest.approx(40_000 / 120, rel=1e-6)
    assert regime(fit, 1) == "perfect scaling"
    assert regime(fit, 1000) == "diminishing returns"
    assert regime(fit, 50_000) == "maximal data parallelism"


def test_fit_recovers_known_parameters_from_noisy_points():
    B = np.repeat(2.0 ** np.arange(0, 16), 3)
    rng = np.random.default_rng(0)
    S = (200.0 + 60_000.0 / B) * np.exp(rng.normal(0, 0.05, len(B)))   # 5 % relative noise
    fit = fit_steps(B, S)
    assert fit.s_min == pytest.approx(200.0, rel=0.1)
    assert fit.e_min == pytest.approx(60_000.0, rel=0.1)
    assert fit.rms_log_residual == pytest.approx(0.05, rel=0.3)


def test_fit_refuses_a_single_batch_size():
    with pytest.raises(ValueError, match="two or more distinct batch sizes"):
        fit_steps(np.array([8, 8]), np.array([100, 110]))


# ---------------------------------------------------------------- the search (synthetic)


def _synthetic_steps(B: int, units: int, seed: int) -> int | None:
    """Unimodal in log lr with its minimum at u*(B); diverges 9 units above it."""
    u_opt = round(8 * math.log10(0.01 * B**0.75))
    if units > u_opt + 9:
        return None
    return int((150 + 60_000 / B) * (1 + 0.05 * (units - u_opt) ** 2) * (1 + 0.01 * (seed % 3)))


def _fake_record(spec: TrialSpec) -> dict:
    s = _synthetic_steps(spec.batch_size, spec.lr_units, spec.seed)
    if s is None:
        status, steps, to_target = "diverged", 3, None
    elif s <= spec.max_steps:
        status, steps, to_target = "reached", s, s
    else:
        status, steps, to_target = ("capped" if spec.max_steps < spec.budget else "budget",
                                    spec.max_steps, None)
    return {"record": "trial", "key": spec.key(), **asdict(spec), "extra_config": "{}",
            "learning_rate": spec.learning_rate, "variant": spec.variant, "status": status,
            "steps_to_target": to_target, "steps": steps, "validation_interval": 1,
            "wall_s": 0.0}


@pytest.mark.parametrize("B", [1, 64, 4096, 50_000])
def test_search_finds_the_synthetic_optimum_and_caps_losers(B):
    cfg = StudyConfig(batch_sizes=(B,))
    u_opt = round(8 * math.log10(0.01 * B**0.75))

    def make(units, max_steps, phase, seed):
        return TrialSpec(batch_size=B, lr_units=units, seed=seed, backend="numpy",
                         max_steps=max_steps, budget=cfg.budget(B), validations_per_epoch=1,
                         phase=phase)

    gen = lr_search(B, cfg.start_units(B), cfg.budget(B), make, (1234, 1, 2))
    seen, send = [], None
    try:
        while True:
            specs = gen.send(send) if send is not None else next(gen)
            send = [_fake_record(s) for s in specs]
            seen.extend(send)
    except StopIteration as stop:
        outcome = stop.value
    assert outcome.best_units == u_opt
    assert outcome.best_steps == _synthetic_steps(B, u_opt, 1234)
    assert len(seen) <= 16, f"{len(seen)} trials: the search should need about 8-12"
    seeds = [r for r in seen if r["phase"] == "seed"]
    assert sorted(r["seed"] for r in seeds) == [1, 2]
    assert all(r["status"] == "reached" for r in seeds)
    # every trial after the first batch is capped at the best steps found before it
    later = [r for r in seen if r["phase"] in ("coarse", "refine")][3:]
    assert all(r["max_steps"] < cfg.budget(B) for r in later)


# ---------------------------------------------------------------- resuming


class _FakeRunner:
    """Answers trials from the synthetic objective; raises after ``fail_after`` submissions."""

    workers = 1

    def __init__(self, fail_after: int | None = None) -> None:
        self.submitted = 0
        self.fail_after = fail_after

    def submit(self, spec: TrialSpec) -> Future:
        if self.fail_after is not None and self.submitted >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.submitted += 1
        fut: Future = Future()
        fut.set_result(_fake_record(spec))
        return fut

    def close(self) -> None:
        pass


def test_an_interrupted_study_resumes_computing_only_what_is_missing(tmp_path):
    cfg = StudyConfig(name="resume", batch_sizes=(1, 256, 50_000), timing=False)
    full = _FakeRunner()
    run_study(cfg, full, tmp_path / "complete", noise=False, direct=False)
    total = full.submitted
    assert total >= 3 * 8

    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, _FakeRunner(fail_after=11), tmp_path, noise=False, direct=False)
    kept = StudyStore(tmp_path, "resume")
    assert len([r for r in kept.records() if r["record"] == "trial"]) == 11

    rerun = _FakeRunner()
    run_study(cfg, rerun, tmp_path, noise=False, direct=False)
    assert rerun.submitted == total - 11
    df = load_study(tmp_path)
    assert (df["record"] == "trial").sum() == total
    per_b = per_batch_size(df)
    assert per_b["steps_to_target"].notna().all()
    assert (tmp_path / "resume" / "study.csv").exists()
    assert not list(tmp_path.glob("resume/**/*.json")), "the report's loader globs *.json"


# ---------------------------------------------------------------- determinism (real data)

_SPEC = TrialSpec(batch_size=2048, lr_units=4, seed=7, backend="numpy", max_steps=400,
                  budget=400, validations_per_epoch=24, target_error=0.08)


def _outcome(rec: dict) -> tuple:
    return (rec["status"], rec["steps_to_target"], rec["steps"], rec["best_valid_error"])


@pytest.fixture(scope="module")
def in_process_record(real_mnist):
    return run_trial(_SPEC, noise=False)


@pytest.mark.realdata
def test_a_trial_gives_the_same_steps_in_process_and_in_the_pool(in_process_record):
    assert in_process_record["status"] == "reached"
    pool = PoolRunner(workers=2)
    try:
        recs = [f.result() for f in [pool.submit(_SPEC), pool.submit(_SPEC)]]
    finally:
        pool.close()
    assert {_outcome(r) for r in recs} == {_outcome(in_process_record)}
    assert InProcessRunner().submit(_SPEC).result()["steps_to_target"] == \
        in_process_record["steps_to_target"]


@pytest.mark.realdata
def test_a_trial_gives_the_same_steps_on_a_local_ray_instance(in_process_record):
    pytest.importorskip("ray", reason="the 'ray' extra is not installed: pip install -e '.[ray]'")
    from bench.study.runners import RayRunner

    runner = RayRunner("local", num_cpus=2)
    try:
        assert runner.workers == 2
        rec = runner.submit(_SPEC).result(timeout=300)
    finally:
        runner.close()
    assert _outcome(rec) == _outcome(in_process_record)


# ---------------------------------------------------------------- the CI's small study


@pytest.mark.realdata
def test_small_study_on_real_data(real_mnist, tmp_path):
    """3 batch sizes x 3 learning rates (a half-decade apart), one seed, on the real data:
    every B reaches 8 %, fewer steps at larger B, a fit, timings and one direct run."""
    cfg = StudyConfig(name="small", batch_sizes=(32, 256, 2048), seeds=(1234,),
                      grid=(-4, 0, 4), backends=("numpy",), timing_repeats=1,
                      validations_per_prior=20,
                      timing_examples=20_000, direct_top=1, direct_repeats=1,
                      noise_batch_sizes=(256,), noise_points=2, noise_dense=2)
    runner = PoolRunner(workers=2)
    try:
        run_study(cfg, runner, tmp_path)
    finally:
        runner.close()
    df = load_study(tmp_path)
    per_b = per_batch_size(df).set_index("batch_size")
    assert (per_b["trials"] == 3).all()
    assert per_b["steps_to_target"].notna().all(), per_b.get("why_not")
    steps = per_b["steps_to_target"]
    assert steps[32] > steps[256] > steps[2048]
    assert (per_b["b_simple_at_target"] > 0).all()
    fit = fit_study(per_batch_size(df))
    assert fit is not None and fit.s_min > 0 and fit.e_min > 0
    timing = df[df["record"] == "timing"]
    assert set(timing["batch_size"]) == {32, 256, 2048}
    direct = df[df["record"] == "direct"]
    assert len(direct) >= 1 and direct["measured_s"].notna().all()
    noise = df[df["record"] == "noise"]
    assert len(noise) >= 3 and (noise["b_simple"] > 0).all()


# ---------------------------------------------------------------- the optimizer axis


def test_an_unknown_extra_config_field_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"names a field RunConfig does not have"):
        StudyConfig(extra_config=(("no_such_field", 1),))


@pytest.mark.realdata
def test_momentum_is_an_axis_where_the_tree_has_it(real_mnist):
    from dataclasses import fields

    from bench.spec.config import RunConfig

    if "optimizer" not in {f.name for f in fields(RunConfig)}:
        pytest.skip("RunConfig has no 'optimizer' field in this tree (the architecture issue "
                    "adds momentum/Nesterov); the study passes it through extra_config")
    spec = dataclasses.replace(_SPEC, extra_config=(("momentum", 0.9),
                                                    ("optimizer", "momentum")),
                               lr_units=-4)
    rec = run_trial(spec, noise=False)
    assert rec["status"] in ("reached", "budget", "capped", "diverged")
    assert json.loads(rec["extra_config"]) == {"momentum": 0.9, "optimizer": "momentum"}


# ---------------------------------------------------------------- the report


def test_report_section_and_figures_from_a_stored_study(tmp_path):
    from reports.study import answer, figures, section

    cfg = StudyConfig(name="report", batch_sizes=(1, 16, 256, 4096, 50_000), timing=False)
    run_study(cfg, _FakeRunner(), tmp_path, noise=False, direct=False)
    df = load_study(tmp_path)
    text = section(df)
    fit = fit_study(per_batch_size(df))
    assert f"S_min = {fit.s_min:,.0f} steps" in text
    assert f"B_crit = E_min/S_min = {fit.b_crit:,.0f}" in text
    assert "| 50,000 | full-batch GD" in text
    made = figures(df, tmp_path / "figs")
    assert [p.name for _, p in made] == ["study_steps_to_target.png", "study_best_lr.png"]
    assert all(p.stat().st_size > 10_000 for _, p in made)
    assert "No study results found" in section(load_study(tmp_path / "nothing"))
    assert "No direct time-to-target" in answer(df)     # direct=False above
    assert answer(load_study(tmp_path / "nothing")) == ""
