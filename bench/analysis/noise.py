"""The noise scales against the fitted critical batch: per trajectory and quantity, the value at
first passage, its ratio to the fitted B_crit and whether it lies within the fit's interval
(issue 21: a table, no single "agreement" number chosen after the fact).

"At the target" has one definition for every trajectory and quantity: the first checkpoint
whose validation error is at or below the target (``bench.analysis.race.noise_at_first_passage``,
the first passage, as steps-to-target). The fitted B_crit is the race's (the held-out medians'
fit, with its bootstrap interval, ``bench.analysis.race.fit_with_intervals``) where the study has
held-out seeds, else the old scheme's fit of the search minima (``fit_study``; no interval).
Studies before the trajectory rule have B_simple only, along their best runs: their rows say
``B_noise`` is not measured.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from bench.analysis.race import noise_at_first_passage
from bench.analysis.study import fit_study, per_batch_size, race_fit, records, study_config
from bench.workload.noise_scale import NoiseCheckpoint

__all__ = ["QUANTITIES", "fitted_b_crit", "noise_table", "trajectory_points"]

#: The quantities, by record field: display name.
QUANTITIES = {"b_simple": "B_simple", "b_noise": "B_noise"}


def fitted_b_crit(df: pd.DataFrame, study: str) -> tuple[float, tuple[float, float] | None]:
    """The fitted B_crit of ``study`` and its 95 % interval (None: an old-scheme study, a fit
    without seeds to resample); ``(nan, None)`` with too few B for a fit. A B none of whose
    rates reached the target on half its search seeds has no S(B) and is left out of the fit."""
    per_b = per_batch_size(df[df["study"] == study]) if "study" in df else pd.DataFrame()
    ci = race_fit(per_b)
    if ci is not None:
        return ci.fit.b_crit, ci.b_crit
    fit = fit_study(per_b) if not per_b.empty else None
    return (fit.b_crit if fit is not None else math.nan), None


def _label(g: pd.DataFrame) -> tuple[str, str]:
    first = g.iloc[0]
    if "trajectory" in g and pd.notna(first.get("trajectory")):
        return str(first["trajectory"]), str(first.get("trajectory_rule") or "")
    return (f"B = {int(first['batch_size']):,}, lr {float(first['learning_rate']):.3g}",
            "the search's best run (a study before the trajectory rule)")


def trajectory_points(df: pd.DataFrame, study: str) -> dict[str, tuple[str, list[NoiseCheckpoint]]]:
    """``{trajectory: (rule, checkpoints in step order)}`` of ``study``'s noise records, by B
    and rate (``b_noise`` and its parts NaN where a study did not measure them)."""
    noise = records(df, "noise")
    noise = noise[noise["study"] == study] if not noise.empty else noise
    out = {}
    groups = sorted(noise.groupby("key"), key=lambda kg: (int(kg[1]["batch_size"].iloc[0]),
                                                          float(kg[1]["learning_rate"].iloc[0])))
    for _, g in groups:
        label, rule = _label(g)
        g = g.sort_values("steps")
        pts = [NoiseCheckpoint(step=int(r["steps"]), valid_error=float(r["valid_error"]),
                               **{f: float(r.get(f, math.nan)) if pd.notna(r.get(f)) else math.nan
                                  for f in ("b_simple", "b_noise", "grad_sq_norm", "trace_cov",
                                            "grad_hess_grad", "trace_hess_cov")})
               for _, r in g.iterrows()]
        out[label] = (rule, pts)
    return out


def _target(df: pd.DataFrame, study: str) -> float:
    cfg = study_config(df, study)
    if "target_error" in cfg:
        return float(cfg["target_error"])
    trials = records(df, "trial")
    return float(trials[trials["study"] == study]["target_error"].dropna().iloc[0])


def noise_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (study, trajectory, quantity): ``step`` and ``valid_error`` of the first
    passage checkpoint, the quantity's ``value`` there (NaN: the trajectory never reached the
    target, or the quantity was not measured: ``measured`` False), the study's fitted
    ``b_crit`` with ``b_crit_low`` / ``b_crit_high`` (NaN: no interval), ``ratio`` = value /
    b_crit and ``within`` (the value inside the interval; None without one)."""
    rows: list[dict[str, Any]] = []
    noise = records(df, "noise")
    for study in sorted(noise["study"].unique()) if not noise.empty else ():
        b_crit, interval = fitted_b_crit(df, study)
        low, high = interval if interval is not None else (math.nan, math.nan)
        target = _target(df, study)
        for label, (rule, pts) in trajectory_points(df, study).items():
            hit = noise_at_first_passage(pts, target)
            for field, name in QUANTITIES.items():
                measured = any(not math.isnan(getattr(p, field)) for p in pts)
                value = getattr(hit, field) if hit is not None and measured else math.nan
                rows.append({"study": study, "trajectory": label, "rule": rule,
                             "quantity": name, "measured": measured,
                             "step": hit.step if hit is not None else None,
                             "valid_error": hit.valid_error if hit is not None else math.nan,
                             "value": value, "b_crit": b_crit, "b_crit_low": low,
                             "b_crit_high": high, "ratio": value / b_crit,
                             "within": (bool(low <= value <= high) if interval is not None
                                        and not math.isnan(value) else None)})
    return pd.DataFrame(rows)
