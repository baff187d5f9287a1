"""The fair race's statistics (bench.analysis.race) on synthetic trials with a known answer."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.analysis.fit import fit_steps
from bench.analysis.race import (
    Interval,
    choose_learning_rate,
    fit_with_intervals,
    held_out_steps,
    noise_at_first_passage,
    oscillation_share,
    race_batch_size,
    race_table,
    time_to_target,
    winner_or_tie,
)
from bench.workload.noise_scale import NoiseCheckpoint

S_MIN, E_MIN = 160.0, 48_000.0                 # the truth: B_crit = 300
BATCH_SIZES = [1, 4, 16, 64, 128, 256, 512, 1024, 4096]


def _steps(B: float, n: int, rng: np.random.Generator, sigma: float = 0.2) -> np.ndarray:
    """Steps whose median is S(B) exactly: log-normal around the true curve, rounded up."""
    return np.ceil((S_MIN + E_MIN / B) * np.exp(rng.normal(0.0, sigma, n)))


def test_the_median_not_the_minimum_chooses_the_rate():
    search = {1.0: [100, 100, 10],              # one lucky seed: the minimum would take it
              2.0: [60, 70, 80],
              4.0: [50, math.inf, math.nan]}    # diverged / over budget on two of three
    choice = choose_learning_rate(search)
    assert choice.learning_rate == 2.0 and choice.median_steps == 70
    assert choice.medians[4.0] == math.inf
    assert choose_learning_rate({3.0: [5, 6, 7], 1.0: [7, 6, 5]}).learning_rate == 1.0   # tie
    with pytest.raises(ValueError, match=r">= 3 search seeds per learning rate; got \{2.0: 2\}"):
        choose_learning_rate({1.0: [1, 2, 3], 2.0: [1, 2]})
    with pytest.raises(ValueError, match="No learning rate reached the target on half"):
        choose_learning_rate({1.0: [math.inf, math.inf, 3]})


def test_held_out_seeds_are_disjoint_numerous_and_uncapped():
    ok = dict(search_seeds=[0, 1, 2], max_steps=[1000] * 5, budget=1000)
    iv = held_out_steps([10, 20, 30, 40, 50], [3, 4, 5, 6, 7], **ok)
    assert iv.point == 30 and iv.low <= 30 <= iv.high and iv.n == 5
    with pytest.raises(ValueError, match=r"Seeds \[2\] are both search and held-out seeds"):
        held_out_steps([10, 20, 30, 40, 50], [2, 4, 5, 6, 7], **ok)
    with pytest.raises(ValueError, match=">= 5 held-out seeds; got 4"):
        held_out_steps([10, 20, 30, 40], [3, 4, 5, 6], **{**ok, "max_steps": [1000] * 4})
    with pytest.raises(ValueError, match=r"\(seed, max_steps\) \[\(5, 30\)\] were capped below it"):
        held_out_steps([10, 20, 30, 40, 50], [3, 4, 5, 6, 7],
                       **{**ok, "max_steps": [1000, 1000, 30, 1000, 1000]})
    missed = held_out_steps([10, 20, math.nan, math.inf, math.inf], [3, 4, 5, 6, 7], **ok)
    assert missed.point == math.inf and missed.high == math.inf and missed.low < math.inf


def test_held_out_interval_covers_the_true_median():
    """200 synthetic studies of 9 seeds around a known median: the 95 % interval covers it in
    about 95 % of them (the percentile interval of a median of 9 covers with prob. ~ 0.96)."""
    rng = np.random.default_rng(1)
    truth = S_MIN + E_MIN / 64
    covered = [iv.low <= truth <= iv.high for iv in
               (held_out_steps(_steps(64, 9, rng), range(10, 19), search_seeds=[0, 1, 2],
                               max_steps=[10**6] * 9, budget=10**6, n_resamples=999)
                for _ in range(200))]
    assert 0.88 <= np.mean(covered) <= 1.0


def test_held_out_seeds_never_sway_the_choice():
    """The held-out seeds' records at other rates are far better; the choice ignores them,
    and the held-out median is measured at the search seeds' rate only."""
    rng = np.random.default_rng(2)
    trials = [{"learning_rate": lr, "seed": s, "max_steps": 5000,
               "steps_to_target": float(base + rng.integers(0, 5))}
              for lr, base in ((0.5, 400), (1.0, 300)) for s in (0, 1, 2)]
    trials += [{"learning_rate": 1.0, "seed": s, "max_steps": 5000,
                "steps_to_target": float(310 + s)} for s in range(10, 16)]
    lucky = [{"learning_rate": 0.5, "seed": s, "max_steps": 5000, "steps_to_target": 3.0}
             for s in range(10, 16)]
    plain = race_batch_size(trials, search_seeds=[0, 1, 2], budget=5000, n_resamples=999)
    swayed = race_batch_size(trials + lucky, search_seeds=[0, 1, 2], budget=5000,
                             n_resamples=999)
    assert plain == swayed
    assert plain.choice.learning_rate == 1.0 and plain.seeds == tuple(range(10, 16))
    assert plain.steps_to_target.point == 322.5           # seeds 10..15: 320..325


def test_fit_intervals_cover_the_true_curve():
    """20 synthetic studies (7 held-out seeds per B around S(B) = 160 + 48,000 / B): the
    bootstrap intervals of S_min, E_min and B_crit cover the truth in most of them, and the
    point fit is ``fit_steps`` of the medians."""
    rng = np.random.default_rng(3)
    hits = []
    for _ in range(20):
        held = {B: _steps(B, 7, rng) for B in BATCH_SIZES}
        fi = fit_with_intervals(held, n_resamples=199)
        assert fi.fit == fit_steps(np.array(BATCH_SIZES, float),
                                   [np.median(held[B]) for B in BATCH_SIZES])
        hits.append([lo <= truth <= hi for (lo, hi), truth in
                     ((fi.s_min, S_MIN), (fi.e_min, E_MIN), (fi.b_crit, E_MIN / S_MIN))])
        assert fi.b_crit[1] < 3 * E_MIN / S_MIN            # informative, not (0, inf)
    assert np.all(np.mean(hits, axis=0) >= 0.8), np.mean(hits, axis=0)


def test_fit_drops_a_batch_size_that_missed():
    rng = np.random.default_rng(4)
    held = {B: _steps(B, 5, rng) for B in BATCH_SIZES}
    held[8192] = np.array([math.inf] * 5)
    fi = fit_with_intervals(held, n_resamples=99)
    assert fi.fit.n_points == len(BATCH_SIZES)
    assert all(np.isfinite(fi.b_crit))


def test_oscillation_share_counts_checks_after_first_passage():
    errors = [0.20, 0.10, 0.07, 0.09, 0.07, 0.12]
    assert oscillation_share(errors, 0.08) == pytest.approx(2 / 3)
    assert oscillation_share([0.2, 0.08, 0.05, 0.06], 0.08) == 0.0   # <= target reaches it
    assert math.isnan(oscillation_share([0.2, 0.1], 0.08))           # never reached
    assert math.isnan(oscillation_share([0.2, 0.07], 0.08))          # no later check


def test_time_to_target_composes_steps_step_time_and_reshuffles():
    iv = time_to_target([100] * 5, [0.01] * 3, steps_per_epoch=30, reshuffle_seconds=[0.5] * 3)
    assert iv.point == pytest.approx(100 * 0.01 + 4 * 0.5) and iv.low == iv.high == iv.point
    rng = np.random.default_rng(5)
    spread = time_to_target(_steps(64, 7, rng), 0.01 * (1 + 0.1 * rng.random(5)),
                            steps_per_epoch=10**6, n_resamples=999)
    assert spread.low < spread.point < spread.high
    missed = time_to_target([1, 2, math.inf, math.inf, math.inf], [0.01, 0.02],
                            steps_per_epoch=10)
    assert missed.point == missed.high == math.inf
    with pytest.raises(ValueError, match="'steps_per_epoch' parameter of time_to_target"):
        time_to_target([1], [0.1], steps_per_epoch=0)
    with pytest.raises(ValueError, match="step timings > 0"):
        time_to_target([1], [0.0], steps_per_epoch=1)


def test_a_winner_only_when_clear_of_every_other():
    clear = {1: Interval(0.30, 0.25, 0.35, 5), 32: Interval(0.11, 0.10, 0.12, 5),
             256: Interval(0.20, 0.18, 0.24, 5)}
    v = winner_or_tie(clear)
    assert v.winner == 32 and v.tied == (32,)
    assert v.statement.startswith("Fastest: B = 32 (0.11 s") and "runner-up B = 256" in v.statement
    # the runner-up by point is clear, but a wide interval further back still overlaps
    wide = {**clear, 1: Interval(0.30, 0.09, 0.60, 5)}
    assert winner_or_tie(wide).winner is None and winner_or_tie(wide).tied == (32, 1)


def test_a_tie_when_intervals_overlap():
    times = {1: Interval(0.088, 0.07, 0.15, 5), 4: Interval(0.10, 0.08, 0.13, 5),
             32: Interval(0.111, 0.10, 0.12, 5), 1024: Interval(0.5, 0.4, 0.6, 5)}
    v = winner_or_tie(times)
    assert v.winner is None and v.tied == (1, 4, 32)
    assert v.statement.startswith("B = 1 … 32 tied within the seeds' spread")
    gap = {**times, 4: Interval(0.3, 0.2, 0.35, 5)}
    assert winner_or_tie(gap).statement.startswith("B = 1, 32 tied")
    assert winner_or_tie({"a": Interval(1, 1, 1, 1)}).winner == "a"
    with pytest.raises(ValueError, match="at least one candidate"):
        winner_or_tie({})


def test_race_table_over_study_records_feeds_the_fit():
    """Trial records as the study writes them (None: not reached): per B the search seeds
    choose between a good and a diverging rate; the held-out rows feed the fit."""
    rng = np.random.default_rng(6)
    rows = []
    for B in BATCH_SIZES:
        for seed in (1234, 1, 2, *range(100, 105)):
            good = _steps(B, 1, rng)[0]
            rows.append({"batch_size": B, "learning_rate": 1.0, "seed": seed, "budget": 10**6,
                         "max_steps": 10**6, "steps_to_target": good})
            if seed in (1234, 1, 2):
                rows.append({"batch_size": B, "learning_rate": 4.0, "seed": seed,
                             "budget": 10**6, "max_steps": 10**6,
                             "steps_to_target": None if seed != 2 else 1.0})
    table = race_table(pd.DataFrame(rows), search_seeds=[1234, 1, 2], n_resamples=999)
    assert table["batch_size"].tolist() == BATCH_SIZES
    assert (table["learning_rate"] == 1.0).all()
    assert all(s == tuple(range(100, 105)) for s in table["held_out_seeds"])
    assert ((table["steps_low"] <= table["steps_median"])
            & (table["steps_median"] <= table["steps_high"])).all()
    fi = fit_with_intervals(dict(zip(table["batch_size"], table["held_out_steps"],
                                     strict=True)), n_resamples=99)
    assert fi.b_crit[0] < fi.fit.b_crit < fi.b_crit[1]


def test_noise_near_target_is_at_first_passage():
    def point(step: int, err: float) -> NoiseCheckpoint:
        return NoiseCheckpoint(step=step, valid_error=err, b_simple=step * 10.0,
                               b_noise=step * 20.0, grad_sq_norm=1.0, trace_cov=1.0,
                               grad_hess_grad=1.0, trace_hess_cov=1.0)

    points = [point(0, 0.9), point(10, 0.09), point(20, 0.08), point(30, 0.07)]
    assert noise_at_first_passage(points, 0.08).step == 20
    assert noise_at_first_passage(points, 0.01) is None
