"""The study's timing phase: time per step of every backend spec at every B, on this machine
(step 1 of ``bench.study.core``), and the fastest CPU backend per B that the searches use."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.study.config import StudyConfig, base_kw, extra_tag
from bench.study.progress import progress
from bench.study.storage import StudyStore
from bench.study.timing import BackendSpec, safe_key
from bench.study.trial import thread_limit
from bench.workload.config import RunConfig

__all__ = ["PROBE_STEPS", "cached_trainer", "fastest_backends", "measure_timing", "step_and_move",
           "timing_config"]


def cached_trainer(cache: dict, label: str, cfg: RunConfig, data: Any) -> Any:
    """The trainer of spec ``label`` (made and loaded once, reset for ``cfg`` after that)."""
    from bench.harness import prepare, reset

    if label not in cache:
        cache[label], _ = prepare(cfg, data)
    else:
        reset(cache[label], cfg)
    return cache[label]


def _timing_steps(cfg: StudyConfig, B: int) -> int:
    """Steps per timed run: ``max(5, min(20000, timing_examples / B))`` (fewer under a time
    budget, see ``measure_timing``)."""
    return max(5, min(20_000, cfg.timing_examples // B))


def timing_config(cfg: StudyConfig, spec: BackendSpec, B: int,
                   n_steps: int | None = None) -> RunConfig:
    """A fixed-step run of ``spec`` without a target (``_timing_steps`` steps by default)."""
    n_steps = n_steps or _timing_steps(cfg, B)
    return RunConfig(backend=spec.backend, device=spec.device, kernel=spec.kernel,
                     learning_rate=1e-3, max_steps=n_steps,
                     max_epochs=math.ceil(n_steps / max(1, cfg.n_train // B)) + 1,
                     **base_kw(cfg, B))


def step_and_move(r: Any) -> tuple[float, float]:
    """(training seconds per step: compute + read-back, reshuffle seconds per epoch)."""
    return (r.times.compute_s + r.times.d2h_s) / r.steps, r.times.data_move_s / r.epochs


def _timing_key(cfg: StudyConfig, spec: BackendSpec, B: int) -> str:
    key = (f"{spec.key_prefix}_B{B}_t{cfg.timing_threads}_n{_timing_steps(cfg, B)}"
           f"_r{cfg.timing_repeats}_{cfg.dtype}_{extra_tag(cfg)}")
    return key + ("_auto" if cfg.timing_max_seconds is not None else "")


#: Steps of the warm-up and probe runs of a time-budgeted cell.
PROBE_STEPS = 50


def _affordable_steps(per_run_s: float, step_s: float, epoch_s: float, nb: int) -> int:
    """The most steps n with ``n * step_s + ceil(n / nb) * epoch_s <= per_run_s`` (about)."""
    per_step = step_s + epoch_s / nb
    if per_step <= 0:
        return 20_000
    return max(0, int((per_run_s - epoch_s) / per_step))


def _time_cell(cfg: StudyConfig, spec: BackendSpec, B: int, data: Any, cache: dict,
               budget: Callable[[], float] | None) -> dict[str, Any]:
    """Time ``spec`` at ``B``: ``{"runs": the timed RunResults, "steps": steps per run,
    "budget_s": the cell's budget}``.

    Without a budget: ``timing_repeats`` runs of ``_timing_steps`` steps after one warm-up
    run. With ``budget`` (a callable: this cell's seconds, asked after the warm-up so that
    first-use costs, e.g. JIT, kernel compilation, data upload, fall on the whole phase): a
    warm-up and a probe run of ``PROBE_STEPS`` steps, then as many steps per run (up to
    ``_timing_steps``) as a warm-up at that length (CUDA graphs are captured per range) and
    ``timing_repeats`` runs fit in the budget left; when not even that many fit, the probe is
    the first repeat and as many more probe-length runs follow as fit.
    """
    from bench.harness import train

    n_cap = _timing_steps(cfg, B)
    nb = max(1, cfg.n_train // B)

    def run(n: int) -> Any:
        rc = timing_config(cfg, spec, B, n)
        r = train(cached_trainer(cache, spec.label, rc, data), rc)
        if r.status != "ok" or not r.steps:
            raise RuntimeError(f"the timing run ended {r.status!r} after {r.steps} steps: "
                               f"{r.message}")
        return r

    if budget is None:
        runs = [run(n_cap) for _ in range(cfg.timing_repeats + 1)][1:]  # the first: warm-up
        return {"runs": runs, "steps": n_cap, "budget_s": None}
    n0 = min(n_cap, PROBE_STEPS)
    run(n0)                                                 # warm-up
    budget_s = budget()
    t0 = time.perf_counter()
    probe = run(n0)
    wall = time.perf_counter() - t0
    step_s, _ = step_and_move(probe)
    epoch_s = max(0.0, wall - n0 * step_s) / probe.epochs   # reshuffle, validation, reset
    left = budget_s - wall
    n = min(n_cap, _affordable_steps(left / (cfg.timing_repeats + 1), step_s, epoch_s, nb))
    if n > n0:
        run(n)                              # warm-up at this length: graphs are per range
        runs = [run(n) for _ in range(cfg.timing_repeats)]
    else:
        n = n0
        more = min(cfg.timing_repeats - 1, int(left // wall) if wall > 0 else cfg.timing_repeats)
        runs = [probe, *(run(n0) for _ in range(max(0, more)))]
    return {"runs": runs, "steps": n, "budget_s": budget_s}


def _skip(store: StudyStore, key: str, spec: str, fields: dict[str, Any], B: int | None,
          reason: str, error: str) -> None:
    """Say and store why ``spec`` was not timed (at ``B``; at every B when None)."""
    where = f" B={B}" if B is not None else ""
    progress(f"timing: skip {spec}{where}: {reason}")
    store.put("skip", key, [{"key": key, "spec": spec, **fields, "batch_size": B,
                             "reason": reason, "error": error}])


def measure_timing(cfg: StudyConfig, store: StudyStore, data: Any) -> list[dict[str, Any]]:
    """Time per step of every usable backend spec of ``cfg.backends`` at every B (stored;
    reused when present). GPU ranges are timed synchronised (``Trainer.train_batches``).

    A spec this tree or machine cannot run, a B its kernel does not cover (a ValueError of the
    config or the trainer), or a B whose run fails is skipped: the reason is printed and stored
    (kind ``skip``). With ``cfg.timing_max_seconds`` the whole phase is bounded: each (spec, B)
    cell gets the time left divided by the cells left (see ``_time_cell``); cells reached after
    the time is spent are skipped.
    """
    from bench.study.timing import resolve_specs, spec_fields

    extra = dict(cfg.extra_config)
    specs, unusable = resolve_specs(cfg.backends, extra.get("model", "softmax"),
                                    extra.get("optimizer", "sgd"))
    for text, reason in unusable:
        _skip(store, f"{safe_key(text)}_spec", text, spec_fields(text), None, reason,
              "unusable")
    for text in set(cfg.backends) - {t for t, _ in unusable}:   # usable now: no stale reason
        store.drop("skip", f"{safe_key(text)}_spec")
    cells = [(spec, B) for spec in specs for B in cfg.batch_sizes]
    deadline = (time.perf_counter() + cfg.timing_max_seconds
                if cfg.timing_max_seconds is not None else None)
    out = []
    cache: dict[str, Any] = {}
    for i, (spec, B) in enumerate(cells):
        fields = {"backend": spec.backend, "device": spec.device, "kernel": spec.kernel}
        key = _timing_key(cfg, spec, B)
        skip_key = f"{spec.key_prefix}_B{B}"
        found = store.get("timing", key)
        cells_left = len(cells) - i
        budget = None if deadline is None else (
            lambda d=deadline, k=cells_left: max(0.0, d - time.perf_counter()) / k)
        if found:
            out.extend(found)
        elif deadline is not None and deadline - time.perf_counter() <= 0:
            _skip(store, skip_key, spec.label, fields, B, f"the timing budget of "
                  f"{cfg.timing_max_seconds:g} s was spent before this cell", "budget")
        else:
            try:
                with thread_limit(cfg.timing_threads):
                    cell = _time_cell(cfg, spec, B, data, cache, budget)
            except ValueError as exc:       # the kernel does not cover B (config or trainer)
                _skip(store, skip_key, spec.label, fields, B, str(exc), type(exc).__name__)
            except Exception as exc:        # a failed run: recorded, the study goes on
                cache.pop(spec.label, None)
                _skip(store, skip_key, spec.label, fields, B,
                      f"the run failed: {type(exc).__name__}: {exc}", type(exc).__name__)
            else:
                step_s, move_s = zip(*(step_and_move(r) for r in cell["runs"]), strict=True)
                trainer = cache.get(spec.label)
                rec = {"key": key, "spec": spec.label, **fields, "dataset": cfg.dataset,
                       "batch_size": B,
                       "threads": cfg.timing_threads, "steps_per_run": cell["steps"],
                       "batches_per_epoch": max(1, cfg.n_train // B),
                       "step_s": float(np.median(step_s)), "step_s_min": min(step_s),
                       "step_s_max": max(step_s), "step_s_all": list(step_s),
                       "epoch_move_s": float(np.median(move_s)), "epoch_move_s_all": list(move_s),
                       "fast_path": getattr(trainer, "fast_path", None),
                       "cell_budget_s": cell["budget_s"],
                       "extra_config": json.dumps(extra, sort_keys=True),
                       "load_average": os.getloadavg()[0]}
                store.put("timing", key, [rec])
                store.drop("skip", skip_key)
                out.append(rec)
                progress(f"timing {spec.label:22s} B={B:6d}: {rec['step_s'] * 1e6:10.2f} us/step"
                          f" ({cell['steps']} steps x {len(step_s)})")
        if i + 1 == len(cells) or cells[i + 1][0] != spec:
            cache.pop(spec.label, None)
    return out


def _seconds_per_step(rec: dict[str, Any]) -> float:
    """Training seconds per step with the per-epoch reshuffle spread over the epoch's steps."""
    return rec["step_s"] + rec["epoch_move_s"] / rec["batches_per_epoch"]


def fastest_backends(cfg: StudyConfig, timing: list[dict[str, Any]]) -> dict[int, str]:
    """The backend with the least training time per step at each B on the CPU, eagerly (where
    the searches' trials run; numpy where untimed)."""
    best: dict[int, tuple[float, str]] = {}
    for rec in timing:
        if rec.get("device", "cpu") != "cpu" or rec.get("kernel", "eager") != "eager":
            continue
        t = _seconds_per_step(rec)
        if rec["batch_size"] not in best or t < best[rec["batch_size"]][0]:
            best[rec["batch_size"]] = (t, rec["backend"])
    return {B: best[B][1] if B in best else "numpy" for B in cfg.batch_sizes}
