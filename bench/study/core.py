"""The study driver: time per step, the learning-rate searches, seeds, noise scale, direct runs.

Steps-to-target depends on (model, optimizer, B, lr, seed), not on the hardware; time per
step depends on the hardware (and B, backend), not on lr. The study measures each where it is
cheapest and composes them:

1. **timing** (here, in this process, one run after another): each CPU backend's training time
   per step at each B (``compute + read-back``, median of repeats) and per epoch (the
   reshuffle gather) on ``timing_threads`` threads;
2. **searches** (the runner: pool, Ray or in-process, one thread per trial): the
   learning-rate search of ``bench.study.search`` at every B on the search seeds, then the
   held-out seeds at the chosen rate, on ``trial_backend`` or else the backend that step 1
   found fastest there (steps do not depend on the backend beyond float32 rounding, so
   pinning it lets the trials run before, and apart from, the timing);
3. **noise**: the exact gradient noise scale (``bench.workload.noise_scale``) at checkpoints along
   the best run at a few B (and, in step 2, at the point where every reached trial hit the
   target);
4. **direct**: time-to-target measured at the best rate for the ``direct_top`` candidates of
   the composed time ``S(B) * step_s + epochs * epoch_move_s``, plus per-sample SGD and
   full-batch GD, so the report can state how far composition was from measurement.

Validation is scored every ``max(1, S_prior(B) // validations_per_prior)`` steps (rounded to
the harness's ``n_batches // validations_per_epoch``), with the prior
``S_prior(B) = prior_s_min + prior_e_min / B``: steps-to-target is thus resolved to about
1 / ``validations_per_prior`` of its expected value, not rounded to epochs.
"""


from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import time
from typing import Any

from bench.study.config import STUDY_GRID, StudyConfig
from bench.study.measure import fastest_backends, measure_timing
from bench.study.noise import noise_trajectories
from bench.study.progress import progress
from bench.study.runs import composed_times, direct_candidates, measure_direct
from bench.study.schedule import run_searches
from bench.study.storage import DEFAULT_ROOT, StudyStore
from bench.workload.datasets import load

__all__ = ["STUDY_GRID", "StudyConfig", "measure_timing", "run_study", "run_timing_only"]


def _on_gpu(text: str) -> bool:
    """Whether backend spec ``text`` names a GPU (False when it does not parse)."""
    from bench.study.timing import SpecError, parse_spec
    from bench.workload.config import placement_applies

    try:
        return placement_applies(parse_spec(text).device)
    except SpecError:
        return False


def _context(cfg: StudyConfig, runner: Any) -> dict[str, Any]:
    from bench.machine import describe_machine, machine_id

    m = describe_machine()
    label = f"{m.get('cpu_model')} x{m.get('cpu_count')}"
    ctx = {"started_utc": dt.datetime.now(dt.timezone.utc).isoformat(), "commit": m.get("commit"),
           "machine_id": machine_id(m), "machine_label": label,
           "machine_json": json.dumps(m, default=str),
           "runner": repr(runner), "study_config": json.dumps(dataclasses.asdict(cfg)),
           "purpose": "test" if "PYTEST_CURRENT_TEST" in os.environ else cfg.purpose,
           "load_average_start": os.getloadavg()[0]}
    if m.get("gpu_name") and any(_on_gpu(b) for b in cfg.backends):
        ctx["gpu_name"] = m["gpu_name"]
        ctx["machine_label"] = f"{m['gpu_name']} (host {label})"
    return ctx


def run_study(cfg: StudyConfig, runner: Any, root: str | os.PathLike = DEFAULT_ROOT,
              noise: bool = True, direct: bool = True) -> StudyStore:
    """Run (or complete) the study ``cfg`` with ``runner``; returns its store.

    Everything finished is stored as it finishes; rerunning the same ``cfg`` computes only what
    is missing. Writes ``study.csv`` (every record) at the end.
    """
    t0 = time.perf_counter()
    # first: a missing data folder leaves no study folder behind
    data = load(cfg.dataset) if cfg.timing or noise or direct else None
    store = StudyStore(root, cfg.name)
    with store.lock():
        ctx = _context(cfg, runner)
        store.put("context", ctx["started_utc"].replace(":", "-"), [ctx])
        timing = measure_timing(cfg, store, data) if cfg.timing else []
        backends = ({B: cfg.trial_backend for B in cfg.batch_sizes} if cfg.trial_backend
                    else fastest_backends(cfg, timing))
        progress(f"backends per B: {backends}")
        outcomes = run_searches(cfg, store, runner, backends)
        if noise:
            noise_trajectories(cfg, store, data, outcomes, backends)
        if direct and timing:
            composed = composed_times(timing, outcomes)
            measure_direct(cfg, store, data, direct_candidates(cfg, composed))
        _finish(store, ctx, ctx["started_utc"].replace(":", "-"), t0)
    progress(f"done in {ctx['wall_s']:.0f} s: {store.path}")
    return store


def _finish(store: StudyStore, ctx: dict[str, Any], name: str, t0: float) -> None:
    """Store the context's end (time, wall seconds, load) and the table of every record."""
    ctx["finished_utc"] = dt.datetime.now(dt.timezone.utc).isoformat()
    ctx["wall_s"] = time.perf_counter() - t0
    ctx["load_average_end"] = os.getloadavg()[0]
    store.put("context", name, [ctx])
    store.write_table()


def run_timing_only(cfg: StudyConfig, root: str | os.PathLike = DEFAULT_ROOT,
                    steps_from: str | None = None,
                    steps: dict[int, int] | None = None) -> StudyStore:
    """Only the timing phase of ``cfg`` (no searches, noise or direct runs), stored as study
    ``cfg.name`` under ``root`` with its context (machine, GPU, versions, commit).

    ``steps_from`` / ``steps``: the study whose S(B) the timings are to be composed with, and
    that S(B) ({B: steps}), recorded in the context (the report reads the named study, and
    this copy where that study is absent).
    """
    t0 = time.perf_counter()
    data = load(cfg.dataset)     # first: a missing data folder leaves no study folder behind
    store = StudyStore(root, cfg.name)
    with store.lock():
        ctx = _context(cfg, "timing only (this process)")
        ctx["timing_only"] = True
        if ctx["purpose"] == "full":
            ctx["purpose"] = "timing-only"
        if steps_from is not None:
            ctx["steps_from"] = steps_from
            ctx["steps_from_steps"] = json.dumps({str(B): S for B, S in
                                                  sorted((steps or {}).items())})
        name = ctx["started_utc"].replace(":", "-")
        store.put("context", name, [ctx])
        progress(f"data loaded in {time.perf_counter() - t0:.1f} s; timing "
                 f"{', '.join(cfg.backends)} at B = {', '.join(map(str, cfg.batch_sizes))}"
                 + (f" within {cfg.timing_max_seconds:g} s" if cfg.timing_max_seconds else ""))
        t1 = time.perf_counter()
        measure_timing(cfg, store, data)
        ctx["timing_wall_s"] = time.perf_counter() - t1
        _finish(store, ctx, name, t0)
    progress(f"timing done in {ctx['timing_wall_s']:.1f} s (all {ctx['wall_s']:.1f} s): "
             f"{store.path}")
    return store
