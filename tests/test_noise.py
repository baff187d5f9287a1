"""The noise scales along trajectories chosen by rule: the rule, the records, the analysis at
first passage against the fitted B_crit, the figure and the study page's table (issue 21)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from bench.analysis.noise import noise_table
from bench.study.config import StudyConfig
from bench.study.noise import (
    MAX_STEP_DOWNS,
    _run,
    checkpoint_steps,
    noise_trajectories,
    steady_rate,
    trajectories,
)
from bench.study.search import HALF_DECADE, SearchOutcome
from bench.study.storage import StudyStore, load_study
from bench.workload.noise_scale import b_noise, noise_scale

TARGET = 0.08
STEADY = [(10, 0.3), (20, 0.1), (30, 0.07), (40, 0.06), (50, 0.05)]
OSCILLATING = [(10, 0.3), (20, 0.07), (30, 0.2), (40, 0.07), (50, 0.06)]

# ---------------------------------------------------------------- the rule


def test_an_oscillating_full_batch_run_is_stepped_down_to_a_steady_rate():
    """Checks above the target after first passage send the rate down a half-decade; the
    first steady rate is kept, with each step's reason."""
    tried = []

    def checks_of(units):
        tried.append(units)
        return OSCILLATING if units > 0 else STEADY

    units, why = steady_rate(8, checks_of, TARGET)
    assert (units, tried) == (0, [8, 8 - HALF_DECADE, 0])
    assert why.count("33% of the 3 checks after first passage above the target") == 2
    assert why.endswith("lr 1: none of the 2 checks after first passage above the target")


def test_the_step_down_stops_after_its_limit_and_at_a_run_that_misses_the_target():
    units, why = steady_rate(8, lambda u: OSCILLATING, TARGET)
    assert units == 8 - MAX_STEP_DOWNS * HALF_DECADE
    assert why.endswith(f"kept after {MAX_STEP_DOWNS} steps down")
    units, why = steady_rate(8, lambda u: OSCILLATING if u == 8 else [(10, 0.5)], TARGET)
    assert units == 4 and why.endswith("lr 3.16: never reached the target")


def test_trajectories_by_rule_smallest_near_the_prior_crit_steady_full_batch_and_the_rest():
    cfg = StudyConfig(noise_batch_sizes=(4, 64, 256, 1024, "full"))   # prior B_crit = 400
    outcomes = {B: SearchOutcome(B, best_units=u, best_steps=100)
                for B, u in ((4, -10), (64, -2), (256, 0), (1024, 8), (50_000, 8))}
    outcomes[16] = SearchOutcome(16, best_units=-6, best_steps=100)   # not a noise B
    runs = []

    def checks_of(B, units):
        runs.append((B, units))
        return OSCILLATING if units > 4 else STEADY

    got = trajectories(cfg, outcomes, checks_of)
    assert [(t.batch_size, t.lr_units) for t in got] == [
        (4, -10), (256, 0), (50_000, 4), (64, -2), (1024, 8), (50_000, 8)]
    assert runs == [(50_000, 8), (50_000, 4)]
    assert got[0].rule == "smallest B, chosen rate"
    assert "nearest the prior's B_crit = 400" in got[1].rule
    assert got[2].rule.startswith("full batch, steady rate (lr 10: 33% of the 3 checks")
    assert len({t.label for t in got}) == len(got)


def test_checkpoints_hold_the_first_passage_and_spread_over_the_run():
    checks = [(s, 0.5 if s < 70 else 0.07) for s in range(10, 310, 10)]
    marks = checkpoint_steps(checks, TARGET, 5)
    assert len(marks) == 5 and 70 in marks and marks == sorted(marks)
    assert marks[0] == 10 and marks[-1] == 300
    assert checkpoint_steps(checks[:2], TARGET, 5) == [10, 20]


# ---------------------------------------------------------------- the records (digits: fast)


@pytest.fixture(scope="module")
def digits_noise(tmp_path_factory):
    from bench.workload.datasets import load

    cfg = StudyConfig(dataset="digits", name="noise", noise_points=3, prior_s_min=20,
                      prior_e_min=2000, noise_batch_sizes=(4, 64, "full"))
    data = load("digits")
    outcomes = {B: SearchOutcome(B, best_units=u, best_steps=50)
                for B, u in ((4, -8), (64, 0), (cfg.n_train, 8))}
    store = StudyStore(tmp_path_factory.mktemp("study"), cfg.name)
    recs = noise_trajectories(cfg, store, data, outcomes, dict.fromkeys(outcomes, "numpy"))
    return cfg, data, store, recs


def test_noise_records_carry_both_scales_and_their_trajectory(digits_noise):
    cfg, _, store, recs = digits_noise
    assert {r["trajectory"] for r in recs} >= {"B = 4, lr 0.1", "B = 64, lr 1"}
    by = pd.DataFrame(recs).groupby("trajectory")
    assert (by.size() <= cfg.noise_points).all() and (by.size() >= 2).all()
    for field in ("b_simple", "b_noise", "grad_sq_norm", "trace_cov", "grad_hess_grad",
                  "trace_hess_cov"):
        assert all(r[field] > 0 and math.isfinite(r[field]) for r in recs), field
    df = load_study(store.path.parent)
    assert set(df[df["record"] == "noise"]["trajectory"]) == {r["trajectory"] for r in recs}
    again = noise_trajectories(cfg, store, None, {}, {})          # nothing left to compute
    assert again == []


def test_b_noise_of_a_record_is_b_noise_at_that_checkpoints_parameters(digits_noise):
    cfg, data, _, recs = digits_noise
    rec = next(r for r in recs if r["batch_size"] == 64)
    checks, params = _run(cfg, data, 64, rec["lr_units"], "numpy")
    W, b = params[rec["steps"]]
    x, y = data.train.x, data.train.y
    assert rec["valid_error"] == dict(checks)[rec["steps"]]
    assert rec["b_noise"] == pytest.approx(b_noise(x, y, W, b).b_noise, rel=1e-9)
    assert rec["b_simple"] == pytest.approx(noise_scale(x, y, W, b).b_simple, rel=1e-9)


# ---------------------------------------------------------------- the analysis (synthetic)


def _synthetic_study(b_noise_measured: bool = True) -> pd.DataFrame:
    """A race with S(B) = 150 + 60,000 / B on 5 held-out seeds (B_crit 400) and two noise
    trajectories whose first passage is known."""
    rows = [{"record": "context", "study": "s", "started_utc": "2026-12-05T08:00:00",
             "study_config": json.dumps({"seeds": [1234, 1, 2], "target_error": TARGET,
                                         "held_out_seeds": list(range(11, 16))})}]
    for B in (16, 64, 256, 1024, 4096):
        S = 150 + 60_000 / B
        for seed, k in [(1234, 1.0), (1, 1.02), (2, 0.98)] + [(s, 1 + (s - 13) / 100)
                                                                for s in range(11, 16)]:
            rows.append({"record": "trial", "study": "s", "batch_size": B, "learning_rate": 0.1,
                         "seed": seed, "steps_to_target": round(S * k), "budget": 10**6,
                         "max_steps": 10**6, "target_error": TARGET, "status": "reached",
                         "variant": "minibatch", "backend": "numpy", "lr_units": -8,
                         "validation_interval": 1,
                         "phase": "held-out" if seed > 10 else "coarse"})
    for key, B, curve in (("a", 4, [(10, 0.5, 100.0), (20, 0.079, 380.0), (30, 0.07, 900.0)]),
                          ("b", 50_000, [(5, 0.3, 1e4), (9, 0.2, 5e4)])):
        for step, err, v in curve:
            rows.append({"record": "noise", "study": "s", "key": key, "batch_size": B,
                         "learning_rate": 1.0, "trajectory": f"traj {key}", "trajectory_rule": "r",
                         "steps": step, "valid_error": err, "b_simple": v, "grad_sq_norm": 1.0,
                         "trace_cov": v, "b_noise": 2 * v if b_noise_measured else np.nan,
                         "grad_hess_grad": 1.0, "trace_hess_cov": 2 * v})
    return pd.DataFrame(rows)


def test_the_table_gives_each_trajectory_and_quantity_at_first_passage_against_b_crit():
    t = noise_table(_synthetic_study()).set_index(["trajectory", "quantity"])
    assert len(t) == 4
    a = t.loc[("traj a", "B_simple")]
    assert (a["step"], a["value"]) == (20, 380.0)
    b_crit = a["b_crit"]
    assert 300 < b_crit < 500 and a["b_crit_low"] < b_crit < a["b_crit_high"]
    assert a["ratio"] == pytest.approx(380.0 / b_crit)
    assert t.loc[("traj a", "B_noise"), "value"] == 760.0
    assert a["within"] == (a["b_crit_low"] <= 380.0 <= a["b_crit_high"])
    assert not t.loc[("traj a", "B_noise"), "within"]
    never = t.loc[("traj b", "B_noise")]
    assert math.isnan(never["value"]) and pd.isna(never["step"]) and never["within"] is None


def test_a_study_without_b_noise_says_so_on_its_page():
    from reports.noise import lines

    text = "\n".join(lines(_synthetic_study(b_noise_measured=False)))
    assert "B_noise not measured in this study" in text
    assert "| traj a " in text and "B_noise  " not in text
    assert lines(pd.DataFrame()) == []


def test_the_figure_draws_one_series_per_trajectory_and_quantity(tmp_path, monkeypatch):
    import reports.study_figures as sf

    drawn = {}

    def keep(fig, path):
        drawn["fig"] = fig
        return path

    monkeypatch.setattr(sf, "_save", keep)
    assert sf._noise_figure(_synthetic_study(), tmp_path) == tmp_path / "study_noise_scale.png"
    ax = drawn["fig"].axes[0]
    series = [ln for ln in ax.get_lines() if ln.get_label().startswith(("B_simple", "B_noise"))]
    assert sorted(ln.get_label() for ln in series) == [
        "B_noise: traj a", "B_noise: traj b", "B_simple: traj a", "B_simple: traj b"]
    for ln in series:
        assert np.isfinite(np.asarray(ln.get_xydata(), float)).all()
    assert {ln.get_linestyle() for ln in series} == {"-", "--"}
    assert sf._noise_figure(pd.DataFrame(), tmp_path) is None


def test_a_study_of_another_model_has_no_noise_trajectories(tmp_path):
    cfg = StudyConfig(extra_config=(("model", "mlp"),))
    outcomes = {4: SearchOutcome(4, best_units=-8, best_steps=50)}
    assert noise_trajectories(cfg, StudyStore(tmp_path, "mlp"), None, outcomes, {4: "numpy"}) == []
