"""The one answer per machine: which batch size (variant) and backend reaches the target
validation error first, with its uncertainty.

Only a fair race answers (``bench.analysis.study.untuned_reason``): never the benchmarks'
time-to-target runs (one learning rate for every B), never a smoke study, never an old-scheme
study (one seed's minimum, biased low). Per B the time-to-target is composed from the held-out
seeds' steps and the timing repeats of its fastest spec, with its 95 % interval
(``bench.analysis.study.race_times``); on a GPU timing study from the card's timing and the S(B)
of the race it names. The verdict (``bench.analysis.race.winner_or_tie``) names one winner only
when its interval is clear of every other B's, else the tie.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from bench.analysis.machines import Machine, study_machine
from bench.analysis.names import n_train_of, variant_name
from bench.analysis.race import Interval, Verdict, winner_or_tie
from bench.analysis.study import context, race_times, records, studies, untuned_reason

__all__ = ["Contender", "FastestToTarget", "fastest_to_target"]


@dataclass(frozen=True)
class Contender:
    """One B's composed time-to-target on its fastest spec: median and 95 % interval (seconds)
    over its ``seeds`` held-out seeds and the timing repeats."""

    variant: str
    batch_size: int
    spec: str
    seconds: float
    low_s: float
    high_s: float
    seeds: int


@dataclass(frozen=True)
class FastestToTarget:
    """A machine's answer: every B's ``contenders`` (fastest first) and the ``verdict`` over
    them; ``how`` says where the time per step was measured; the race study, its commit and
    the target error; ``others``: the machine's other races (other models, optimizers or
    targets), each with its own verdict, never pooled with this one."""

    machine: Machine
    study: str
    commit: str
    target_error: float
    how: str
    contenders: tuple[Contender, ...]
    verdict: Verdict
    others: tuple[FastestToTarget, ...] = ()

    @property
    def winner(self) -> Contender:
        """The fastest contender (the winner only when not ``tied``)."""
        return self.contenders[0]

    @property
    def tied(self) -> bool:
        return self.verdict.winner is None


def _contenders(df: pd.DataFrame, race: str, timing_study: str, gpu: bool) -> list[Contender]:
    n_train = n_train_of(context(df, race).get("dataset"))
    times = race_times(df, race, timing_study, gpu=gpu)
    return sorted((Contender(variant_name(r.batch_size, n_train), int(r.batch_size), r.spec,
                             float(r.seconds), float(r.low_s), float(r.high_s), int(r.seeds))
                   for r in times.itertuples()), key=lambda c: (c.seconds, c.high_s))


def _target(df: pd.DataFrame, study: str) -> float:
    trials = records(df, "trial")
    t = trials[trials["study"] == study]["target_error"].dropna()
    return float(t.iloc[0]) if len(t) else float("nan")


def fastest_to_target(df: pd.DataFrame) -> tuple[dict[Machine, FastestToTarget],
                                                 list[tuple[str, str]]]:
    """``({machine: its answer}, [(study, why it does not answer)])`` from the study table.
    A machine with several races answers from the one with the fastest B and names the others
    with their own verdicts (races of different models or optimizers are not pooled)."""
    options: dict[Machine, list[FastestToTarget]] = {}
    passed_over: list[tuple[str, str]] = []
    timing = records(df, "timing")
    names = sorted(set(studies(df)) | (set(timing["study"]) if not timing.empty else set()))
    for name in names:
        ctx = context(df, name)
        source = ctx.get("steps_from") if isinstance(ctx.get("steps_from"), str) else None
        race = source or name
        reason = untuned_reason(df, race)
        if reason:
            passed_over.append((name, reason if not source else f"its S(B) study `{source}`: "
                                + reason))
            continue
        rows = _contenders(df, race, name, gpu=source is not None)
        if not rows:
            passed_over.append((name, "no B with both a held-out median and a time per step"))
            continue
        times = {c.batch_size: Interval(c.seconds, c.low_s, c.high_s, c.seeds) for c in rows}
        how = ("composed: the card's time per step x the held-out steps of the race" if source
               else "composed: held-out steps x the time per step")
        race_ctx = context(df, race)
        options.setdefault(study_machine(ctx), []).append(FastestToTarget(
            study_machine(ctx), race, str(race_ctx.get("commit") or "unknown")[:10],
            _target(df, race), how, tuple(rows), winner_or_tie(times)))
    answers = {}
    for m, o in options.items():
        best = min(o, key=lambda a: a.winner.seconds)
        answers[m] = replace(best, others=tuple(sorted((a for a in o if a is not best),
                                                      key=lambda a: a.study)))
    return answers, passed_over
