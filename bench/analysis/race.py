"""A fair race between batch sizes: the rate chosen on search seeds, steps-to-target measured on
held-out seeds, the S(B) fit and the time-to-target with bootstrap intervals, and the winner
named only when its interval is clear of every other (issue 21).

Definitions, one place each:

* **steps-to-target** of a run is its first passage: the step of the first validation check
  with ``valid_error <= target`` (what early stopping keeps as the best checkpoint). A run that
  diverged or did not reach the target within the budget has steps ``+inf`` (it is slower than
  any run that did); a run stopped *below* the budget is not a held-out measurement at all.
* **search seeds** choose the learning rate of each B; **held-out seeds** (disjoint from them)
  measure S(B) at that rate. Choosing and measuring on the same seeds keeps the luckiest seed's
  rate and reports its own luck: the minimum over correlated trials is biased low.
* intervals are 95 % **percentile bootstrap** intervals (``scipy.stats.bootstrap``, fixed
  ``random_state``). Percentile, not BCa: BCa's acceleration is a jackknife of the median, which
  is unstable at the 5-10 seeds a study affords and undefined with not-reached runs. The
  percentile interval of a median spans order statistics of the seeds: at n = 5 it is their
  [min, max], which covers the true median with probability ``1 - 2^(1-5)`` = 94 %.

Every function here is pure (arrays, mappings or a records table in; frozen results or a table
out): NumPy, SciPy and pandas only.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import bootstrap

from bench.analysis.fit import StepsFit, fit_steps
from bench.workload.noise_scale import NoiseCheckpoint

__all__ = [
    "CONFIDENCE",
    "MIN_HELD_OUT_SEEDS",
    "MIN_SEARCH_SEEDS",
    "RANDOM_STATE",
    "BatchSizeRace",
    "FitIntervals",
    "Interval",
    "LearningRateChoice",
    "Verdict",
    "choose_learning_rate",
    "fit_with_intervals",
    "held_out_steps",
    "noise_at_first_passage",
    "oscillation_share",
    "race_batch_size",
    "race_table",
    "time_to_target",
    "winner_or_tie",
]

#: The confidence level of every interval here.
CONFIDENCE = 0.95
#: The fewest search seeds per learning rate: the median of 3 ignores one unlucky seed.
MIN_SEARCH_SEEDS = 3
#: The fewest held-out seeds per batch size (issue 21).
MIN_HELD_OUT_SEEDS = 5
#: The bootstrap's seed: the same records give the same intervals.
RANDOM_STATE = 0
#: A finite stand-in for a not-reached run inside the bootstrap (scipy's standard error needs
#: finite values); it orders after any real step count, and a statistic above the budget is
#: read back as +inf.
_NOT_REACHED = 2.0**100


@dataclass(frozen=True)
class Interval:
    """A point estimate and its 95 % bootstrap interval ``[low, high]``, from ``n`` values.

    ``inf`` in ``point`` or ``high`` means "not reached within the budget" for that share of
    the resamples.
    """

    point: float
    low: float
    high: float
    n: int

    def clear_below(self, other: Interval) -> bool:
        """True when this interval lies entirely below ``other``'s (no overlap)."""
        return self.high < other.low


def _as_steps(steps: Sequence[float]) -> np.ndarray:
    """Steps as float64 with NaN (not reached) and inf both as ``+inf``."""
    s = np.asarray(steps, dtype=np.float64)
    return np.where(np.isnan(s), np.inf, s)


def _median_steps(steps: np.ndarray) -> float:
    """The median, ``+inf`` when not-reached runs fill its middle."""
    return float(np.median(steps))


@dataclass(frozen=True)
class LearningRateChoice:
    """The chosen rate of one B and the search medians it was chosen from (steps, +inf where
    half or more of the seeds missed the target)."""

    learning_rate: float
    median_steps: float
    medians: Mapping[float, float]


def choose_learning_rate(search: Mapping[float, Sequence[float]],
                         min_seeds: int = MIN_SEARCH_SEEDS) -> LearningRateChoice:
    """The learning rate with the fewest median steps-to-target over its search seeds.

    ``search`` maps each tried rate to the steps of its search seeds (NaN or inf: diverged or
    over budget). The median of >= ``min_seeds`` seeds is the statistic: unlike the minimum it
    does not reward the rate whose one seed got lucky, and unlike the mean it is finite while
    fewer than half the seeds fail — a rate that diverges on half its seeds or more gets +inf
    and cannot win. Ties go to the smaller rate (farther from the stability edge, where runs
    oscillate less after first passage).
    """
    if not search:
        raise ValueError("choose_learning_rate needs at least one learning rate; got none.")
    short = {lr: len(s) for lr, s in search.items() if len(s) < min_seeds}
    if short:
        raise ValueError(f"choose_learning_rate needs >= {min_seeds} search seeds per learning "
                         f"rate; got {short} (rate: seeds). Run more search seeds.")
    medians = {float(lr): _median_steps(_as_steps(s)) for lr, s in search.items()}
    lr = min(medians, key=lambda r: (medians[r], r))
    if math.isinf(medians[lr]):
        raise ValueError(f"No learning rate reached the target on half of its search seeds "
                         f"(rates tried: {sorted(medians)}); widen the rate grid or the budget.")
    return LearningRateChoice(learning_rate=lr, median_steps=medians[lr], medians=medians)


def held_out_steps(steps: Sequence[float], seeds: Sequence[int], *, search_seeds: Sequence[int],
                   max_steps: Sequence[int], budget: int, min_seeds: int = MIN_HELD_OUT_SEEDS,
                   n_resamples: int = 9999) -> Interval:
    """The median steps-to-target of the held-out seeds at the chosen rate, with its 95 %
    percentile-bootstrap interval (``+inf`` for a run that missed the target).

    Checks what makes the measurement unbiased: the seeds are distinct, at least
    ``min_seeds``, none of them a search seed, and every run was allowed the full ``budget``
    (``max_steps >= budget``: a run capped at the best-so-far cannot be slower than it).
    """
    s = _as_steps(steps)
    seeds = [int(x) for x in seeds]
    if len(seeds) != len(s) or len(set(seeds)) != len(seeds):
        raise ValueError(f"held_out_steps needs one distinct seed per run; got {len(s)} runs "
                         f"and seeds {seeds}.")
    if len(seeds) < min_seeds:
        raise ValueError(f"held_out_steps needs >= {min_seeds} held-out seeds; got "
                         f"{len(seeds)} ({seeds}). Run more held-out seeds.")
    shared = sorted(set(seeds) & {int(x) for x in search_seeds})
    if shared:
        raise ValueError(f"Seeds {shared} are both search and held-out seeds: the held-out "
                         f"seeds must not take part in choosing the learning rate.")
    capped = [(seed, int(m)) for seed, m in zip(seeds, max_steps, strict=True) if m < budget]
    if capped:
        raise ValueError(f"Held-out runs must be allowed the full budget of {budget} steps; "
                         f"(seed, max_steps) {capped} were capped below it. Rerun them uncapped.")
    return _bootstrap_median(s, budget, n_resamples)


def _bootstrap_median(steps: np.ndarray, budget: float, n_resamples: int) -> Interval:
    point = _median_steps(steps)
    if len(steps) < 2:
        return Interval(point, point, point, len(steps))
    data = np.where(np.isinf(steps), _NOT_REACHED, steps)
    ci = bootstrap((data,), np.median, confidence_level=CONFIDENCE, method="percentile",
                   n_resamples=n_resamples, random_state=RANDOM_STATE).confidence_interval
    low, high = (float(v) if v <= budget else math.inf for v in (ci.low, ci.high))
    return Interval(point, low, high, len(steps))


@dataclass(frozen=True)
class BatchSizeRace:
    """One B's entry in the race: the rate chosen on the search seeds, and the held-out seeds'
    steps at that rate (``steps``, by ``seeds``) with their median and interval."""

    choice: LearningRateChoice
    seeds: tuple[int, ...]
    steps: tuple[float, ...]
    steps_to_target: Interval


def race_batch_size(trials: Sequence[Mapping[str, object]], *, search_seeds: Sequence[int],
                    budget: int, n_resamples: int = 9999, min_search_seeds: int = MIN_SEARCH_SEEDS,
                    min_held_out_seeds: int = MIN_HELD_OUT_SEEDS) -> BatchSizeRace:
    """One B's trial records -> the rate chosen on ``search_seeds``, measured on the others
    (at least ``min_search_seeds`` and ``min_held_out_seeds`` of them: lower them only for a
    smoke study, which may not answer).

    Each record has ``learning_rate``, ``seed``, ``steps_to_target`` (None/NaN: not reached)
    and ``max_steps``. The choice sees only the search seeds' records; the held-out records
    are the other seeds' at the chosen rate (records of other rates on held-out seeds are
    ignored, so a held-out seed can never sway the choice).
    """
    search = {int(s) for s in search_seeds}
    by_lr: dict[float, list[float]] = {}
    for t in trials:
        if int(t["seed"]) in search:
            by_lr.setdefault(float(t["learning_rate"]), []).append(_steps_of(t))
    choice = choose_learning_rate(by_lr, min_seeds=min_search_seeds)
    held = [t for t in trials
            if int(t["seed"]) not in search and float(t["learning_rate"]) == choice.learning_rate]
    seeds = tuple(int(t["seed"]) for t in held)
    steps = tuple(_steps_of(t) for t in held)
    interval = held_out_steps(steps, seeds, search_seeds=sorted(search),
                              max_steps=[int(t["max_steps"]) for t in held], budget=budget,
                              min_seeds=min_held_out_seeds, n_resamples=n_resamples)
    return BatchSizeRace(choice=choice, seeds=seeds, steps=steps, steps_to_target=interval)


def race_table(trials: pd.DataFrame, *, search_seeds: Sequence[int],
               n_resamples: int = 9999) -> pd.DataFrame:
    """``race_batch_size`` for every B of a study's trial records (the columns it reads, plus
    ``batch_size`` and ``budget``): one row per B with the chosen ``learning_rate``, its
    ``search_median_steps``, the held-out ``steps_median`` / ``steps_low`` / ``steps_high``
    (95 %), the ``held_out_seeds`` and their ``held_out_steps`` (tuples: what
    ``fit_with_intervals`` and ``time_to_target`` take)."""
    rows = []
    for B, g in trials.groupby("batch_size", sort=True):
        r = race_batch_size(g.to_dict("records"), search_seeds=search_seeds,
                            budget=int(g["budget"].max()), n_resamples=n_resamples)
        iv = r.steps_to_target
        rows.append({"batch_size": int(B), "learning_rate": r.choice.learning_rate,
                     "search_median_steps": r.choice.median_steps, "steps_median": iv.point,
                     "steps_low": iv.low, "steps_high": iv.high, "held_out_seeds": r.seeds,
                     "held_out_steps": r.steps})
    return pd.DataFrame(rows)


def _steps_of(trial: Mapping[str, object]) -> float:
    steps = trial.get("steps_to_target")
    return math.inf if steps is None or math.isnan(float(steps)) else float(steps)


@dataclass(frozen=True)
class FitIntervals:
    """The fit of S(B) = S_min + E_min / B to the held-out medians, and each parameter's 95 %
    interval from refitting resampled seeds: ``(low, high)`` in steps, examples, examples."""

    fit: StepsFit
    s_min: tuple[float, float]
    e_min: tuple[float, float]
    b_crit: tuple[float, float]


def fit_with_intervals(held_out: Mapping[int, Sequence[float]],
                       n_resamples: int = 999) -> FitIntervals:
    """Fit ``S(B)`` (``bench.analysis.fit.fit_steps``) to each B's held-out median, and bootstrap
    the fit: every resample draws each B's seeds with replacement, independently across B
    (the seeds of different B are different runs), takes the medians and refits.

    ``held_out`` maps B to the held-out steps (NaN/inf: missed). A B whose median is not
    reached drops out of that fit, as ``fit_steps`` drops non-finite points.
    """
    bs = sorted(held_out)
    samples = [_as_steps(held_out[B]) for B in bs]

    def refit(*resampled: np.ndarray) -> np.ndarray:
        medians = np.array([np.median(r) for r in resampled])
        medians[medians >= _NOT_REACHED / 4] = np.nan
        try:
            f = fit_steps(np.array(bs, dtype=np.float64), medians)
        except ValueError:                          # fewer than two B reached: no curve
            return np.full(3, np.nan)
        return np.array([f.s_min, f.e_min, f.b_crit])

    fit = fit_steps(np.array(bs, dtype=np.float64), [_median_steps(s) for s in samples])
    data = tuple(np.where(np.isinf(s), _NOT_REACHED, s) for s in samples)
    ci = bootstrap(data, refit, confidence_level=CONFIDENCE, method="percentile",
                   n_resamples=n_resamples, random_state=RANDOM_STATE, paired=False,
                   vectorized=False).confidence_interval
    (s_lo, e_lo, b_lo), (s_hi, e_hi, b_hi) = ci.low, ci.high
    return FitIntervals(fit=fit, s_min=(float(s_lo), float(s_hi)),
                        e_min=(float(e_lo), float(e_hi)), b_crit=(float(b_lo), float(b_hi)))


def oscillation_share(valid_errors: Sequence[float], target: float) -> float:
    """Of a run's validation checks *after* its first passage (the first ``error <= target``),
    the share above the target: 0 for a run that stays below, near 1 for one that only touched
    it. NaN when the run never reached the target or its first passage was its last check.
    """
    e = np.asarray(valid_errors, dtype=np.float64)
    reached = np.flatnonzero(e <= target)
    later = e[reached[0] + 1:] if len(reached) else e[:0]
    return float(np.mean(later > target)) if len(later) else math.nan


def noise_at_first_passage(points: Sequence[NoiseCheckpoint],
                           target: float) -> NoiseCheckpoint | None:
    """The noise scales "near the target" of one trajectory, one definition for every
    trajectory and quantity: at its first checkpoint with ``valid_error <= target`` (the
    first passage, as steps-to-target); None when it never gets there."""
    return next((p for p in points if p.valid_error <= target), None)


def time_to_target(steps: Sequence[float], step_seconds: Sequence[float], *,
                   steps_per_epoch: int, reshuffle_seconds: Sequence[float] = (0.0,),
                   n_resamples: int = 9999) -> Interval:
    """``T = S * t_step + ceil(S / steps_per_epoch) * t_reshuffle`` in seconds, with its 95 %
    interval.

    ``S``: the median of the held-out seeds' steps; ``t_step`` and ``t_reshuffle``: the medians
    of the timing repeats (seconds per step; seconds per epoch's permutation and gather, one per
    epoch begun). The bootstrap resamples the seeds and each timing's repeats independently, so
    the interval carries the seeds' spread and the timing noise together. ``+inf`` where the
    median seed missed the target.
    """
    if steps_per_epoch < 1:
        raise ValueError(f"The 'steps_per_epoch' parameter of time_to_target must be an int "
                         f">= 1. Got {steps_per_epoch!r} instead.")
    s = _as_steps(steps)
    t_step = np.asarray(step_seconds, dtype=np.float64)
    t_shuffle = np.asarray(reshuffle_seconds, dtype=np.float64)
    if np.any(t_step <= 0) or np.any(t_shuffle < 0):
        raise ValueError(f"time_to_target needs step timings > 0 and reshuffle timings >= 0 "
                         f"(seconds); got step {t_step.tolist()}, reshuffle "
                         f"{t_shuffle.tolist()}.")
    if not (len(s) and len(t_step) and len(t_shuffle)):
        raise ValueError(f"time_to_target needs at least one seed and one timing repeat of "
                         f"each kind; got {len(s)} seeds, {len(t_step)} step timings and "
                         f"{len(t_shuffle)} reshuffle timings.")

    def compose(S: np.ndarray, ts: np.ndarray, tr: np.ndarray, axis: int = -1) -> np.ndarray:
        S = np.median(S, axis=axis)
        return S * np.median(ts, axis=axis) + np.ceil(S / steps_per_epoch) * np.median(tr,
                                                                                     axis=axis)

    # a single timing is held fixed (its two copies resample to itself): scipy needs two
    data = tuple(np.repeat(x, 2) if len(x) == 1 else x
                 for x in (np.where(np.isinf(s), _NOT_REACHED, s), t_step, t_shuffle))
    missed = _NOT_REACHED * float(np.min(t_step)) / 4          # the median seed missed

    def seconds(v: float) -> float:
        return float(v) if v < missed else math.inf

    point = seconds(compose(*data))
    if max(len(s), len(t_step), len(t_shuffle)) < 2:
        return Interval(point, point, point, len(s))
    ci = bootstrap(data, compose, confidence_level=CONFIDENCE, method="percentile",
                   n_resamples=n_resamples, random_state=RANDOM_STATE,
                   paired=False).confidence_interval
    return Interval(point, seconds(ci.low), seconds(ci.high), len(s))


@dataclass(frozen=True)
class Verdict:
    """The race's outcome: ``winner`` (None when tied) and ``tied``, the candidates whose
    interval reaches the fastest one's (the winner alone when there is one), fastest first;
    ``statement`` says it in a sentence."""

    winner: Hashable | None
    tied: tuple[Hashable, ...]
    statement: str


def winner_or_tie(times: Mapping[Hashable, Interval], *, name: str = "B",
                  unit: str = "s") -> Verdict:
    """A single winner only when its interval lies clear below every other candidate's;
    otherwise the tie: the fastest (lowest point) and every candidate whose interval overlaps
    it (``low <= fastest.high``).

    The statement names a tie of sorted numeric labels as a range ("B = 1 … 32 tied within the
    seeds' spread") when they are consecutive among the candidates, else lists them.
    """
    if not times:
        raise ValueError("winner_or_tie needs at least one candidate; got none.")
    order = sorted(times, key=lambda k: (times[k].point, times[k].high))
    best = times[order[0]]
    others = order[1:]
    if all(best.clear_below(times[k]) for k in others):
        runner = (f", clear of the runner-up {name} = {others[0]} ({_fmt(times[others[0]], unit)})"
                  if others else "")
        return Verdict(order[0], (order[0],),
                       f"Fastest: {name} = {order[0]} ({_fmt(best, unit)}){runner}.")
    tied = tuple(k for k in order if times[k].low <= best.high)
    return Verdict(None, tied, f"{name} = {_labels(tied, list(times))} tied within the seeds' "
                               f"spread (fastest {name} = {order[0]}: {_fmt(best, unit)}).")


def _fmt(iv: Interval, unit: str) -> str:
    lo, hi = (f"{v:.3g} {unit}" if math.isfinite(v) else "not reached" for v in (iv.low, iv.high))
    return f"{iv.point:.3g} {unit}, 95 % interval {lo}–{hi}"


def _labels(tied: Sequence[Hashable], candidates: Sequence[Hashable]) -> str:
    try:
        ordered = sorted(candidates)                           # type: ignore[type-var]
        ranks = sorted(ordered.index(k) for k in tied)
    except TypeError:
        return ", ".join(map(str, tied))
    if len(ranks) >= 3 and ranks[-1] - ranks[0] == len(ranks) - 1:
        return f"{ordered[ranks[0]]} … {ordered[ranks[-1]]}"
    return ", ".join(str(ordered[r]) for r in ranks)
