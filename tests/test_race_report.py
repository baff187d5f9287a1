"""A synthetic fair race (records as the study writes them, bench/study's interface) through the
analysis and the report: held-out medians and intervals, the fit on them, the verdict (a tie
stated as a tie, a clear winner as a winner) and an old-scheme study that names no winner."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from bench.analysis.answer import fastest_to_target
from bench.analysis.composition import project_time_to_target
from bench.analysis.fit import fit_steps
from bench.analysis.names import variant_name
from bench.analysis.study import (
    NOT_A_RACE,
    fit_study,
    per_batch_size,
    race_fit,
    race_times,
    steps_curve,
    steps_to_target,
    untuned_reason,
)
from reports import pages, study

SEARCH, HELD_OUT = (1234, 1, 2), (11, 12, 13, 14, 15)
BATCH_SIZES = (1, 8, 64, 512, 50_000)
RATES = (0.5, 1.0, 2.0)
N_TRAIN = 50_000


def _curve(B: int) -> float:
    """The true S(B) of the synthetic study: S_min 150, E_min 20,000 (B_crit 133)."""
    return 150 + 20_000 / B


def _trial(name: str, B: int, lr: float, seed: int, steps: float | None, phase: str,
           budget: int = 100_000) -> dict:
    held = phase == "held-out"
    return {"study": name, "record": "trial", "batch_size": B, "learning_rate": lr,
            "lr_units": round(8 * math.log10(lr)), "seed": seed, "phase": phase,
            "status": "reached" if steps is not None else "budget" if held else "diverged",
            "steps_to_target": steps, "steps": (steps or 10) * (1.5 if held else 1),
            "max_steps": budget, "budget": budget, "backend": "numpy",
            "validation_interval": 1, "target_error": 0.08,
            "variant": variant_name(B, N_TRAIN), "after_target": 0.5 if held else 0.0,
            "oscillation_share": (0.1 * seed % 0.5) if held else None,
            "post_passage_checks": 10 if held else 0, "key": f"{name}-{B}-{lr}-{seed}"}


def race_study(name: str, *, spread: float, step_s: dict[int, float] | None = None,
               cpu: str = "Xeon", held_out: bool = True,
               missed: dict[int, int] | None = None) -> list[dict]:
    """A race over ``BATCH_SIZES``: lr 1 is the best rate (lr 2 diverges on two search seeds,
    lr 0.5 needs twice the steps); the held-out seeds' steps spread by ``spread`` (relative)
    around ``_curve``; timings of one backend with ``step_s[B]`` seconds per step (default
    1e-4 x B^0.5); ``missed[B]`` of B's held-out seeds (the slowest) miss the target.
    ``held_out`` False: an old-scheme study (phases coarse/refine/seed)."""
    rng = np.random.default_rng(7)
    cfg = {"name": name, "batch_sizes": list(BATCH_SIZES), "seeds": list(SEARCH),
           "timing_repeats": 3, "target_error": 0.08, "extra_config": []}
    if held_out:
        cfg |= {"held_out_seeds": list(HELD_OUT), "after_target": 0.5}
    rows = [{"study": name, "record": "context", "started_utc": "2026-12-05T00:00:00",
             "commit": "c0ffee1234abcdef", "study_config": json.dumps(cfg), "purpose": "full",
             "machine_json": json.dumps({"cpu_model": cpu, "cpu_count": 2})}]
    for B in BATCH_SIZES:
        S = _curve(B)
        for seed in SEARCH if held_out else SEARCH[:1]:
            rows.append(_trial(name, B, 1.0, seed, round(S * rng.uniform(0.9, 1.1)), "coarse"))
            rows.append(_trial(name, B, 0.5, seed, round(2 * S), "coarse"))
            rows.append(_trial(name, B, 2.0, seed, round(0.5 * S) if seed == 2 else None,
                               "refine"))
        if held_out:
            for k, seed in enumerate(HELD_OUT):
                miss = k >= len(HELD_OUT) - (missed or {}).get(B, 0)
                rows.append(_trial(name, B, 1.0, seed, None if miss else
                                   round(S * (1 + spread * (k - 2))), "held-out"))
        else:
            rows += [_trial(name, B, 1.0, seed, round(S * 1.2), "seed") for seed in SEARCH[1:]]
        t = (step_s or {}).get(B, 1e-4 * B**0.5)
        rows.append({"study": name, "record": "timing", "batch_size": B, "backend": "numpy",
                     "device": "cpu", "kernel": "eager", "batches_per_epoch": N_TRAIN // B,
                     "step_s": t, "step_s_min": 0.99 * t, "step_s_max": 1.01 * t,
                     "step_s_all": [0.99 * t, t, 1.01 * t], "epoch_move_s": 1e-3,
                     "epoch_move_s_all": [1e-3, 1e-3, 1e-3]})
    return rows


def test_s_of_b_is_the_held_out_median_everywhere():
    df = pd.DataFrame(race_study("race", spread=0.05))
    per_b = per_batch_size(df).set_index("batch_size")
    held = {B: sorted(round(_curve(B) * (1 + 0.05 * (k - 2))) for k in range(5))
            for B in BATCH_SIZES}
    assert per_b["race"].all() and (per_b["best_lr"] == 1.0).all()
    for B in BATCH_SIZES:
        assert per_b.at[B, "steps_to_target"] == held[B][2]           # the median of five
        assert per_b.at[B, "steps_low"] == held[B][0] and per_b.at[B, "steps_high"] == held[B][4]
        assert per_b.at[B, "held_out_seeds"] == HELD_OUT
        assert per_b.at[B, "old_min_steps"] < per_b.at[B, "steps_to_target"]  # lr 2's lucky seed
    medians = {B: float(held[B][2]) for B in BATCH_SIZES}
    assert steps_to_target(df, "race") == medians
    expected = fit_steps(np.array(BATCH_SIZES, float), np.array(list(medians.values())))
    for fit in (fit_study(per_batch_size(df)), steps_curve(df)["softmax"][0],
                race_fit(per_batch_size(df), n_resamples=99).fit):
        assert (fit.s_min, fit.e_min) == pytest.approx((expected.s_min, expected.e_min))
    proj = project_time_to_target(df[df["record"] == "timing"], steps_to_target(df, "race"))
    assert dict(zip(proj["batch_size"], proj["steps"], strict=True)) == medians


def test_fit_intervals_bracket_the_fit():
    fi = race_fit(per_batch_size(pd.DataFrame(race_study("race", spread=0.1))), n_resamples=199)
    for (lo, hi), v in ((fi.s_min, fi.fit.s_min), (fi.e_min, fi.fit.e_min),
                        (fi.b_crit, fi.fit.b_crit)):
        assert lo <= v <= hi and lo < hi


def test_a_clear_winner_is_named_as_the_winner():
    # B = 64 is 100x cheaper per step than anything else: its interval clears every other
    slow = {B: 1e-2 for B in BATCH_SIZES} | {64: 1e-6}
    df = pd.DataFrame(race_study("race", spread=0.05, step_s=slow))
    answers, passed_over = fastest_to_target(df)
    (a,) = answers.values()
    assert passed_over == [] and not a.tied and a.verdict.winner == 64
    assert a.winner.batch_size == 64 and a.winner.low_s <= a.winner.seconds <= a.winner.high_s
    line = pages.answer_line(pages.MachinePage(next(iter(answers)), pd.DataFrame(),
                                               ["race"], a))
    assert "minibatch SGD (B = 64, `numpy:cpu`)" in line and "clear of every other B" in line
    assert "first passage" in line and "tied" not in line


def test_a_tie_is_stated_as_a_tie():
    # the same time per step x steps at B = 1, 8, 64 (steps ∝ 1/B there) and wide seeds
    tie = {1: 1e-4 * 150 / _curve(1) * 64, 8: 1e-4 * 150 / _curve(8) * 8 * 8,
           64: 1e-4 * 150 / _curve(64) * 64, 512: 1.0, 50_000: 1.0}
    df = pd.DataFrame(race_study("race", spread=0.2, step_s=tie))
    (a,) = fastest_to_target(df)[0].values()
    assert a.tied and a.verdict.winner is None and set(a.verdict.tied) >= {1, 8, 64}
    line = pages.answer_line(pages.MachinePage(next(iter(fastest_to_target(df)[0])),
                                               pd.DataFrame(), ["race"], a))
    assert "no single winner" in line and "tied within the seeds' spread" in line


def test_an_old_scheme_study_names_no_winner():
    df = pd.DataFrame(race_study("old", spread=0.05, held_out=False))
    assert untuned_reason(df, "old") == NOT_A_RACE
    answers, passed_over = fastest_to_target(df)
    assert answers == {} and passed_over == [("old", NOT_A_RACE)]
    per_b = per_batch_size(df)
    assert not per_b["race"].any() and "held_out_steps" not in per_b
    assert race_times(df, "old").empty and race_fit(per_b) is None
    page = study.section(df)
    assert NOT_A_RACE.capitalize() in page and "Fastest" not in page and "fastest to" not in page


def test_the_study_page_shows_the_race():
    df = pd.DataFrame(race_study("race", spread=0.05) + race_study("old", spread=0.05,
                                                                   cpu="EPYC", held_out=False))
    page = study.section(df[df["study"] == "race"])
    assert "#### The fair race (3 search seeds, 5 held-out seeds)" in page
    assert "first passage" in page and "S_min = " in page and "B_crit = " in page
    per_b = per_batch_size(df[df["study"] == "race"]).set_index("batch_size")
    row = next(line for line in page.splitlines() if line.startswith("| 64 "))
    cells = [c.strip() for c in row.split("|")]
    S = per_b.loc[64]
    assert f"{S.steps_to_target:,.0f} [{S.steps_low:,.0f}–{S.steps_high:,.0f}]" in cells
    assert f"{S.old_min_steps:,.0f}" in cells
    assert "nan" not in page.lower().replace("nanosecond", "")
    assert "nan" not in study.section(df[df["study"] == "old"]).lower()


def test_race_times_compose_the_held_out_steps():
    df = pd.DataFrame(race_study("race", spread=0.05))
    t = race_times(df, "race").set_index("batch_size")
    per_b = per_batch_size(df).set_index("batch_size")
    for B in BATCH_SIZES:
        S, step = per_b.at[B, "steps_to_target"], 1e-4 * B**0.5
        assert t.at[B, "seconds"] == pytest.approx(S * step + math.ceil(S / (N_TRAIN // B))
                                                   * 1e-3)
        assert t.at[B, "low_s"] <= t.at[B, "seconds"] <= t.at[B, "high_s"]


def test_the_card_composes_the_race_and_names_its_verdict():
    card = [{"study": "h200", "record": "context", "started_utc": "2026-12-05T00:00:00",
             "commit": "abc1234def", "gpu_name": "NVIDIA H200", "timing_only": True,
             "purpose": "timing-only", "steps_from": "race",
             "study_config": json.dumps({"target_error": 0.08}),
             "machine_json": json.dumps({"cpu_model": "Xeon", "cpu_count": 16})}]
    for B in BATCH_SIZES:
        t = 1e-6 if B == 512 else 1e-2              # B = 512 clear of every other on the card
        card.append({"study": "h200", "record": "timing", "batch_size": B, "backend": "torch",
                     "device": "cuda", "kernel": "eager", "batches_per_epoch": N_TRAIN // B,
                     "step_s": t, "step_s_all": [t, t, t], "epoch_move_s": 0.0,
                     "epoch_move_s_all": [0.0, 0.0, 0.0], "spec": "torch:cuda"})
    df = pd.DataFrame(race_study("race", spread=0.05) + card)
    answers, _ = fastest_to_target(df)
    on_card = next(a for m, a in answers.items() if m.gpu)
    assert on_card.study == "race" and on_card.verdict.winner == 512
    assert (on_card.winner.spec, on_card.winner.seeds) == ("torch:cuda", 5)
    text = study.section(df).split("### On the card")[1]
    assert "**On the card: Fastest: B = 512 (" in text and "clear of the runner-up" in text
    assert "On the CPU (study `race`): B = 64, 512 tied within the seeds' spread" in text


def test_missed_seeds_read_not_reached_never_nan_or_inf():
    df = pd.DataFrame(race_study("race", spread=0.05, missed={512: 2, 50_000: 3}))
    per_b = per_batch_size(df).set_index("batch_size")
    assert per_b.at[512, "steps_high"] == math.inf and math.isfinite(per_b.at[512,
                                                                          "steps_to_target"])
    assert math.isnan(per_b.at[50_000, "steps_to_target"])
    assert "held-out median did not reach the target" in per_b.at[50_000, "why_not"]
    assert 50_000 not in steps_to_target(df, "race")
    page = study.section(df)
    row = next(line for line in page.splitlines() if line.startswith("| 512 "))
    assert "not reached]" in row
    assert not re.search(r"\b(nan|inf)\b", page, flags=re.I)
