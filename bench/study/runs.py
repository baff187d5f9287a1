"""The study's runs in the driver after the searches: the direct time-to-target (step 4 of
``bench.study.core``)."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from bench.analysis import composed_seconds
from bench.study.config import StudyConfig, base_kw, extra_tag
from bench.study.measure import cached_trainer, step_and_move, timing_config
from bench.study.progress import progress
from bench.study.search import SearchOutcome
from bench.study.storage import StudyStore
from bench.study.timing import BackendSpec
from bench.study.trial import thread_limit
from bench.workload.config import RunConfig

__all__ = ["composed_times", "direct_candidates", "measure_direct"]


def composed_times(timing: list[dict[str, Any]],
                   outcomes: dict[int, SearchOutcome]) -> list[dict[str, Any]]:
    """``S(B) * step_s + ceil(S(B) / n_batches) * epoch_move_s`` for every timed (B, backend),
    S(B) the held-out median (``SearchOutcome.race_steps``), with the median run to follow."""
    out = []
    for rec in timing:
        o = outcomes.get(rec["batch_size"])
        run = o.median_run() if o is not None else None
        if run is None or not math.isfinite(o.race_steps):
            continue
        S = o.race_steps
        t = composed_seconds(S, rec["step_s"], rec["batches_per_epoch"], rec["epoch_move_s"])
        out.append({"batch_size": rec["batch_size"], "backend": rec["backend"],
                    "device": rec.get("device", "cpu"), "kernel": rec.get("kernel", "eager"),
                    "steps": S, "composed_s": t, "lr_units": o.best_units,
                    "seed": int(run["seed"]), "run_steps": int(run["steps_to_target"]),
                    "step_move": (rec["step_s"], rec["batches_per_epoch"], rec["epoch_move_s"])})
    return sorted(out, key=lambda r: r["composed_s"])


def measure_direct(cfg: StudyConfig, store: StudyStore, data: Any,
                   candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Time-to-target measured at the chosen rate, ``direct_repeats`` times after one warm-up
    run, for each candidate (one thread by default, in this process), on the seed of the median
    run (``SearchOutcome.median_run``): the direct run follows that trial's trajectory, and a
    row whose runs did not reach the target at exactly the trial's step says so
    (``steps_match`` False) and is not composed.

    Each round first times the step as the timing phase does, then runs to the target: the
    paired composition error is the median over rounds of ``composed_round / measured_round
    - 1`` (machine drift between the timing phase and this one cancels, as in the suite's
    performance targets); ``composition_error`` uses the timing phase's figures.
    """
    from bench.harness import train
    from bench.study.trial import lr_from_units

    out = []
    cache: dict[str, Any] = {}
    for c in candidates:
        B, backend = c["batch_size"], c["backend"]
        spec = BackendSpec(backend, c.get("device", "cpu"), c.get("kernel", "eager"))
        key = (f"{spec.key_prefix}_B{B}_u{c['lr_units']}_s{c['seed']}_t{cfg.timing_threads}"
               f"_w1p_r{cfg.direct_repeats}_{cfg.target_error}_{extra_tag(cfg)}")
        found = store.get("direct", key)
        if found:
            out.extend(found)
            continue
        rc = RunConfig(backend=backend, device=spec.device, kernel=spec.kernel,
                       learning_rate=lr_from_units(c["lr_units"]),
                       seed=c["seed"], target_error=cfg.target_error,
                       max_steps=cfg.budget(B),
                       max_epochs=math.ceil(cfg.budget(B) / max(1, cfg.n_train // B)) + 1,
                       validations_per_epoch=cfg.validations_per_epoch(B), **base_kw(cfg, B))
        times, steps, paired = [], [], []
        tc = timing_config(cfg, spec, B)
        S, nb = c["run_steps"], max(1, cfg.n_train // B)
        with thread_limit(cfg.timing_threads):
            for rep in range(cfg.direct_repeats + 1):      # the first is a warm-up
                step, move = step_and_move(train(cached_trainer(cache, spec.label, tc, data), tc))
                r = train(cached_trainer(cache, spec.label, rc, data), rc)
                if rep and r.target_reached:
                    times.append(r.time_to_target_s)
                    steps.append(r.steps_to_target)
                    paired.append(composed_seconds(S, step, nb, move) / r.time_to_target_s - 1)
        match = bool(steps) and all(s == S for s in steps)
        composed = composed_seconds(S, *c["step_move"])      # the followed run's own steps
        rec = {"key": key, "dataset": cfg.dataset, "batch_size": B, "backend": backend,
               "device": spec.device,
               "kernel": spec.kernel, "variant": rc.variant,
               "learning_rate": rc.learning_rate, "threads": cfg.timing_threads,
               "composed_s": composed, "study_steps": c["steps"], "seed": c["seed"],
               "run_steps": S, "steps_match": match,
               "measured_s": float(np.median(times)) if times else None,
               "measured_s_all": times, "measured_steps_all": steps,
               "composition_error": (composed / float(np.median(times)) - 1
                                     if match else None),
               "paired_composition_error": float(np.median(paired)) if match else None,
               "paired_composition_error_all": paired,
               "load_average": os.getloadavg()[0]}
        store.put("direct", key, [rec])
        out.append(rec)
        progress(f"direct {backend} B={B}: composed {c['composed_s']:.3f} s, measured "
                  f"{rec['measured_s']} s, paired composition error "
                  f"{rec['paired_composition_error']}")
    return out


def direct_candidates(cfg: StudyConfig, composed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    picks = composed[:cfg.direct_top]
    for B in (1, cfg.n_train):          # per-sample SGD and full-batch GD, their best backend
        at_b = [c for c in composed if c["batch_size"] == B]
        if at_b:
            picks.append(at_b[0])
    unique = {(c["batch_size"], c["backend"], c.get("device"), c.get("kernel")): c
              for c in picks}
    return list(unique.values())
