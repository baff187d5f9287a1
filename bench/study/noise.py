"""The noise scales along trajectories chosen by rule (step 3 of ``bench.study.core``; issue 21).

B_simple = tr S / |G|^2 and McCandlish et al.'s B_noise = tr(H S) / (G^T H G), both exact over
the training set (``bench.workload.noise_scale``), at checkpoints of every trajectory below,
against its validation error. The trajectories are fixed by rule before any noise scale is
seen, so no run or window is picked after the fact:

* **smallest B**: the smallest B of ``noise_batch_sizes`` at its chosen rate (small-B SGD);
* **near B_crit**: the ``noise_batch_sizes`` B nearest (in log B) to the *prior's* critical
  batch ``prior_e_min / prior_s_min``: fixed before the searches run, so it cannot follow the
  fit (the fit of S(B) is what the noise scale is compared with);
* **full batch, steady**: full-batch GD from its chosen rate down by half-decades on the lattice
  while the run's checks after first passage include one above the target, at most
  ``MAX_STEP_DOWNS`` times (``steady_rate``; the rule's reason is recorded);
* every other ``noise_batch_sizes`` B at its chosen rate.

Each run: the B's chosen lattice point (``SearchOutcome.best_units``), the first search seed,
one thread, validation at the trials' cadence; it goes on past first passage to
``(1 + after_target)`` x its own steps-to-target (or to the budget when it never gets there).
Checkpoints: ``noise_points`` validation checks per trajectory, always its first passage, the
others spaced geometrically in steps (``checkpoint_steps``).

Cost (``bench.workload.noise_scale.b_noise_many``, CPU seconds on one thread of the shared
2-core AMD EPYC): one pass over the 50,000 x 50,000 example pairs (the Gram part, shared by up
to 48 checkpoints) about 57 s, and each checkpoint about 9 s more; the default 6 trajectories
(7 when full-batch GD is stepped down) x ``noise_points`` = 6 checkpoints: about 57 + 42 x 9 =
435 s, under 10 minutes on one core, plus the runs themselves (full-batch GD: up to
four runs of a few hundred steps).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.analysis.race import oscillation_share
from bench.study.config import StudyConfig, base_kw, extra_tag
from bench.study.progress import progress
from bench.study.search import HALF_DECADE, SearchOutcome
from bench.study.storage import StudyStore
from bench.study.trial import lr_from_units, thread_limit
from bench.workload.config import RunConfig

__all__ = ["MAX_STEP_DOWNS", "Trajectory", "checkpoint_steps", "noise_trajectories",
           "steady_rate", "trajectories"]

#: At most this many half-decade steps down from full-batch GD's chosen rate.
MAX_STEP_DOWNS = 3
#: (step, validation error) of each validation check of a run.
Checks = Sequence[tuple[int, float]]


@dataclass(frozen=True)
class Trajectory:
    """One run the noise scales are measured along: its ``label`` (unique in a study), the
    ``rule`` that put it there (with its rate's reason), its B and lattice rate."""

    label: str
    rule: str
    batch_size: int
    lr_units: int


def _first_passage(checks: Checks, target: float) -> int | None:
    return next((s for s, e in checks if e <= target), None)


def steady_rate(units: int, checks_of: Callable[[int], Checks],
                target: float) -> tuple[int, str]:
    """Full-batch GD's steady rate by rule: from ``units``, down a half-decade while the run's
    checks after first passage include one above ``target`` (at most ``MAX_STEP_DOWNS``
    times). ``checks_of(units)`` gives a run's checks. Returns the lattice point and why."""
    why = []
    for down in range(MAX_STEP_DOWNS + 1):
        errors = [e for _, e in checks_of(units)]
        first = next((i for i, e in enumerate(errors) if e <= target), None)
        head = f"lr {lr_from_units(units):.3g}"
        if first is None:
            why.append(f"{head}: never reached the target")
            break
        share, later = oscillation_share(errors, target), len(errors) - first - 1
        if not share > 0:                                   # 0, or NaN: no later check
            why.append(f"{head}: none of the {later} checks after first passage above the "
                       f"target")
            break
        why.append(f"{head}: {share:.0%} of the {later} checks after first passage above the "
                   f"target" + (f"; kept after {down} steps down" if down == MAX_STEP_DOWNS
                                else ""))
        if down < MAX_STEP_DOWNS:
            units -= HALF_DECADE
    return units, "; ".join(why)


def trajectories(cfg: StudyConfig, outcomes: dict[int, SearchOutcome],
                 checks_of: Callable[[int, int], Checks]) -> list[Trajectory]:
    """The study's trajectories by the module's rule, from the searches' chosen points
    (``outcomes``; a B whose search found none is left out). ``checks_of(B, units)``: a run's
    validation checks (for the full-batch rule)."""
    chosen = {B: o.best_units for B, o in outcomes.items()
              if B in cfg.noise_batch_sizes and o.best_units is not None}
    if not chosen:
        return []
    n = cfg.n_train
    prior_crit = cfg.prior_e_min / cfg.prior_s_min
    smallest = min(chosen)
    near = min(chosen, key=lambda B: (abs(math.log(B / prior_crit)), B))
    out: list[Trajectory] = []

    def add(B: int, units: int, rule: str) -> None:
        if all((t.batch_size, t.lr_units) != (B, units) for t in out):
            out.append(Trajectory(f"B = {B:,}, lr {lr_from_units(units):.3g}", rule, B, units))

    add(smallest, chosen[smallest], "smallest B, chosen rate")
    add(near, chosen[near], f"the B nearest the prior's B_crit = {prior_crit:,.0f}, chosen rate")
    if n in chosen:
        units, why = steady_rate(chosen[n], lambda u: checks_of(n, u), cfg.target_error)
        add(n, units, f"full batch, steady rate ({why})")
    for B in sorted(chosen):
        add(B, chosen[B], "chosen rate")
    return out


def checkpoint_steps(checks: Checks, target: float, count: int) -> list[int]:
    """``count`` check steps of a run (fewer when it has fewer checks), in order: its first
    passage (when it has one), and for the others the checks nearest as many geometrically
    spaced steps from its first check to its last."""
    steps = [s for s, _ in checks]
    if not steps or count < 1:
        return []
    first = _first_passage(checks, target)
    picked = {first} if first is not None else set()
    for mark in np.geomspace(steps[0], steps[-1], count - len(picked)):
        picked.add(min((s for s in steps if s not in picked), key=lambda s: abs(s - mark),
                       default=steps[-1]))
    return sorted(picked)


def _run(cfg: StudyConfig, data: Any, B: int, units: int,
         backend: str) -> tuple[list[tuple[int, float]], dict[int, tuple[Any, Any]]]:
    """One trajectory on one thread: its checks (step, validation error) at the trials'
    cadence up to ``(1 + after_target)`` x its first passage (or the budget), and the
    parameters (W, b) at each check."""
    from bench.harness import prepare
    from bench.workload.data_order import epoch_permutation
    from bench.workload.early_stopping import EarlyStopping

    rc = RunConfig(backend=backend, learning_rate=lr_from_units(units), seed=cfg.seeds[0],
                   **base_kw(cfg, B))
    after = cfg.after_target
    checks: list[tuple[int, float]] = []
    params: dict[int, tuple[Any, Any]] = {}
    with thread_limit(1):
        trainer, _ = prepare(rc, data)
        nb, n = trainer.n_batches(), trainer.n_train
        every = EarlyStopping(n_train_batches=nb, validations_per_epoch=cfg.validations_per_epoch(
            B)).validation_frequency
        steps, epoch, end, first = 0, 0, cfg.budget(B), None
        while steps < end:
            mark = min(end, steps + every)
            while steps < mark:
                k = steps % nb
                if k == 0:
                    epoch += 1
                    trainer.begin_epoch(epoch_permutation(n, epoch, rc.order, rc.seed))
                stop = min(nb, k + mark - steps)
                trainer.train_batches(k, stop)
                steps += stop - k
            p = trainer.get_params()
            params[steps] = (np.array(p["W"], np.float64), np.array(p["b"], np.float64))
            checks.append((steps, float(trainer.error("valid", rc.eval_batch_size,
                                                      rc.eval_drop_last))))
            if not math.isfinite(checks[-1][1]):
                break
            if first is None and checks[-1][1] <= cfg.target_error:
                first = steps
                end = min(end, math.ceil((1 + after) * steps))
    return checks, params


def noise_trajectories(cfg: StudyConfig, store: StudyStore, data: Any,
                       outcomes: dict[int, SearchOutcome],
                       backends: dict[int, str]) -> list[dict[str, Any]]:
    """Both noise scales at ``noise_points`` checkpoints of every trajectory (``trajectories``),
    one record each (kind ``noise``); a trajectory already stored is read back."""
    from bench.workload.noise_scale import noise_along

    model = dict(cfg.extra_config).get("model", "softmax")
    if model != "softmax":
        progress(f"noise: skipped, the exact noise scales are softmax regression's (model "
                 f"{model!r})")
        return []
    runs: dict[tuple[int, int], Any] = {}

    def run(B: int, units: int) -> Any:
        if (B, units) not in runs:
            runs[B, units] = _run(cfg, data, B, units, backends[B])
        return runs[B, units]

    chosen = trajectories(cfg, outcomes, lambda B, u: run(B, u)[0])
    out, todo, points = [], [], []
    for t in chosen:
        key = (f"B{t.batch_size}_u{t.lr_units}_s{cfg.seeds[0]}_{backends[t.batch_size]}"
               f"_p{cfg.noise_points}_both_{cfg.target_error}_{extra_tag(cfg)}")
        found = store.get("noise", key)
        if found:
            out.extend(found)
            continue
        checks, params = run(t.batch_size, t.lr_units)
        marks = checkpoint_steps(checks, cfg.target_error, cfg.noise_points)
        errors = dict(checks)
        todo.append((t, key, marks))
        points += [(s, errors[s], *params[s]) for s in marks]
    with thread_limit(1):
        noise = iter(noise_along(points, data.train.x, data.train.y) if points else ())
    for t, key, marks in todo:
        first = _first_passage(runs[t.batch_size, t.lr_units][0], cfg.target_error)
        recs = [{"key": key, "trajectory": t.label, "trajectory_rule": t.rule,
                 "batch_size": t.batch_size, "learning_rate": lr_from_units(t.lr_units),
                 "lr_units": t.lr_units, "backend": backends[t.batch_size],
                 "seed": cfg.seeds[0], "target_error": cfg.target_error,
                 "steps_to_target": first, "steps": p.step, "valid_error": p.valid_error,
                 "grad_sq_norm": p.grad_sq_norm, "trace_cov": p.trace_cov,
                 "b_simple": p.b_simple, "grad_hess_grad": p.grad_hess_grad,
                 "trace_hess_cov": p.trace_hess_cov, "b_noise": p.b_noise}
                for p in (next(noise) for _ in marks)]
        store.put("noise", key, recs)
        out.extend(recs)
        progress(f"noise {t.label} ({t.rule}): " + ", ".join(
            f"step {r['steps']}: B_simple {r['b_simple']:,.0f}, B_noise {r['b_noise']:,.0f}"
            for r in recs))
    return out
