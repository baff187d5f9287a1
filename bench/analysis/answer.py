"""The one answer per machine: which variant, batch size and backend reaches the target
validation error first, with its uncertainty.

Only a tuned study answers (``bench.analysis.study.untuned_reason``): never the benchmarks'
time-to-target runs (one learning rate for every B), never a smoke or CI study. On a CPU study
the answer is the fastest direct measurement (median of its repeats, [fastest–slowest]); on a
GPU timing study it is the fastest time-to-target composed from the card's time per step and the
S(B) of the tuned study it names, over the card's specs only (never a CPU backend).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.analysis.composition import fastest_variant, project_time_to_target
from bench.analysis.machines import Machine, study_machine
from bench.analysis.names import n_train_of, spec_label, variant_name
from bench.analysis.study import context, records, steps_to_target, studies, untuned_reason

__all__ = ["Contender", "FastestToTarget", "fastest_to_target"]


@dataclass(frozen=True)
class Contender:
    """One configuration's time-to-target: median and range (seconds) over its ``repeats``
    (0 for a composed time, whose range comes from the time per step's repeats)."""

    variant: str
    batch_size: int
    spec: str
    seconds: float
    low_s: float
    high_s: float
    repeats: int


@dataclass(frozen=True)
class FastestToTarget:
    """A machine's answer: the ``winner``, the best of the other variants (``runner_up``, None
    if none) and whether their ranges overlap (``tied``); ``how``: "measured directly" or
    "composed" (S(B) x the time per step); the study, its commit and the target error."""

    machine: Machine
    study: str
    commit: str
    target_error: float
    how: str
    winner: Contender
    runner_up: Contender | None

    @property
    def tied(self) -> bool:
        return self.runner_up is not None and self.runner_up.low_s <= self.winner.high_s


def _direct(df: pd.DataFrame, study: str) -> list[Contender]:
    direct = records(df, "direct")
    direct = direct[direct["study"] == study].dropna(subset=["measured_s"])
    out = []
    for r in direct.itertuples():
        runs = r.measured_s_all if isinstance(r.measured_s_all, list) and r.measured_s_all \
            else [r.measured_s]
        device = r.device if isinstance(getattr(r, "device", None), str) else "cpu"
        out.append(Contender(variant_name(r.batch_size, n_train_of(getattr(r, "dataset", None))),
                             int(r.batch_size),
                             spec_label(r.backend, device), float(r.measured_s),
                             float(min(runs)), float(max(runs)), len(runs)))
    return out


def _composed(df: pd.DataFrame, card: str, source: str) -> list[Contender]:
    timing = records(df, "timing")
    timing = timing[timing["study"] == card]
    if "device" in timing:
        timing = timing[timing["device"].fillna("cpu") != "cpu"]
    fv = fastest_variant(project_time_to_target(timing, steps_to_target(df, source)))
    if fv is None:
        return []
    return [Contender(variant_name(r["batch_size"], n_train_of(r.get("dataset"))),
                      int(r["batch_size"]), r["spec"],
                      float(r["projected_s"]), float(r["projected_s_min"]),
                      float(r["projected_s_max"]), 0) for r in fv["by_variant"].values()]


def _target(df: pd.DataFrame, study: str) -> float:
    trials = records(df, "trial")
    t = trials[trials["study"] == study]["target_error"].dropna()
    return float(t.iloc[0]) if len(t) else float("nan")


def fastest_to_target(df: pd.DataFrame) -> tuple[dict[Machine, FastestToTarget],
                                                 list[tuple[str, str]]]:
    """``({machine: its answer}, [(study, why it does not answer)])`` from the study table.
    Per machine the fastest over its tuned studies (GPU timing studies: over their card's
    specs, with the S(B) of the tuned study named by ``steps_from``)."""
    candidates: dict[Machine, list[tuple[Contender, list[Contender], str, str]]] = {}
    passed_over: list[tuple[str, str]] = []
    timing = records(df, "timing")
    names = sorted(set(studies(df)) | (set(timing["study"]) if not timing.empty else set()))
    for name in names:
        ctx = context(df, name)
        source = ctx.get("steps_from") if isinstance(ctx.get("steps_from"), str) else None
        reason = untuned_reason(df, source or name)
        if reason:
            passed_over.append((name, reason if not source else f"its S(B) study `{source}`: "
                                + reason))
            continue
        if source:
            rows, how, about = _composed(df, name, source), "composed", source
        else:
            rows, how, about = _direct(df, name), "measured directly", name
        if rows:
            candidates.setdefault(study_machine(ctx), []).append(
                (min(rows, key=lambda c: c.seconds), rows, how, about))
    answers = {}
    for machine, options in candidates.items():
        winner, rows, how, study = min(options, key=lambda o: o[0].seconds)
        others = [c for c in rows if c.variant != winner.variant]
        ctx = context(df, study)
        answers[machine] = FastestToTarget(
            machine, study, str(ctx.get("commit") or "unknown")[:10], _target(df, study), how,
            winner, min(others, key=lambda c: c.seconds) if others else None)
    return answers, passed_over
