"""The study driver: time per step, the learning-rate searches, seeds, noise scale, direct runs.

Steps-to-target depends on (model, optimizer, B, lr, seed), not on the hardware; time per
step depends on the hardware (and B, backend), not on lr. The study measures each where it is
cheapest and composes them:

1. **timing** (here, in this process, one run after another): each CPU backend's training time
   per step at each B (``compute + read-back``, median of repeats) and per epoch (the
   reshuffle gather) on ``timing_threads`` threads;
2. **searches** (the runner: pool, Ray or in-process, one thread per trial): the
   learning-rate search of ``bench.study.search`` at every B on the backend that step 1 found
   fastest there, then the other seeds at the best rate;
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
import hashlib
import json
import math
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.study.search import SearchOutcome, lr_search
from bench.study.storage import DEFAULT_ROOT, StudyStore
from bench.study.timing import BackendSpec, composed_seconds, safe_key
from bench.study.trial import LR_UNITS_PER_DECADE, N_TRAIN, TrialSpec, thread_limit
from bench.workload.config import RunConfig

__all__ = ["FULL_GRID", "StudyConfig", "measure_timing", "run_study", "run_timing_only"]

#: B = 1, 2, 4, ..., 32768 and the full batch.
FULL_GRID: tuple[int, ...] = (*(2**k for k in range(16)), N_TRAIN)


@dataclass(frozen=True, kw_only=True)
class StudyConfig:
    """Every setting of one study; the defaults are the complete study of the README."""

    name: str = "default"
    batch_sizes: tuple[int, ...] = FULL_GRID
    seeds: tuple[int, ...] = (1234, 1, 2)
    target_error: float = 0.08
    backends: tuple[str, ...] = ("numpy", "torch", "numba", "jax")
    dtype: str = "float32"
    init: str = "zeros"
    order: str = "shuffle"
    prior_s_min: float = 150.0          # steps: the prior S_prior(B) = s_min + e_min / B
    prior_e_min: float = 60_000.0       # examples
    budget_factor: float = 5.0          # step budget per trial = factor * S_prior(B)
    validations_per_prior: int = 100    # validations within S_prior(B) steps
    grid: tuple[int, ...] | None = None  # lattice offsets instead of the adaptive search
    timing: bool = True
    timing_examples: int = 200_000      # examples per timed run: max(5, min(20000, n / B)) steps
    timing_repeats: int = 3
    timing_threads: int = 1             # see the README: 2 threads on a shared 2-core box lose
    timing_max_seconds: float | None = None  # bound on the whole timing phase (s); see timing
    direct_top: int = 3
    direct_repeats: int = 3
    noise_batch_sizes: tuple[int, ...] = (4, 16, 64, 256, 1024, N_TRAIN)
    noise_points: int = 24              # geometric checkpoints up to 1.5 x steps-to-target
    noise_dense: int = 11               # even checkpoints over 0.5-1.5 x steps-to-target
    extra_config: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        bad = [B for B in self.batch_sizes if not (isinstance(B, int) and 1 <= B <= N_TRAIN)]
        if bad or not self.batch_sizes:
            raise ValueError(f"The 'batch_sizes' of StudyConfig must be ints in [1, {N_TRAIN}]. "
                             f"Got {self.batch_sizes!r} instead.")
        if not self.seeds:
            raise ValueError("The 'seeds' of StudyConfig must name at least one seed. Got ().")
        if self.timing_max_seconds is not None and not self.timing_max_seconds > 0:
            raise ValueError(f"The 'timing_max_seconds' of StudyConfig must be None or > 0. "
                             f"Got {self.timing_max_seconds!r} instead.")
        # Fail now, not in a worker, if a field (e.g. an optimizer of a newer tree) is unknown.
        try:
            RunConfig(learning_rate=0.1, batch_size=2, **dict(self.extra_config))
        except TypeError as exc:
            raise ValueError(f"The 'extra_config' {dict(self.extra_config)!r} of StudyConfig "
                             f"names a field RunConfig does not have in this tree ({exc}); "
                             f"drop it or update the tree.") from exc

    def prior_steps(self, B: int) -> float:
        return self.prior_s_min + self.prior_e_min / B

    def budget(self, B: int) -> int:
        return math.ceil(self.budget_factor * self.prior_steps(B))

    def validations_per_epoch(self, B: int) -> int:
        nb = max(1, N_TRAIN // B)
        interval = max(1, int(self.prior_steps(B) // self.validations_per_prior))
        return max(1, nb // interval)

    def start_units(self, B: int) -> int:
        """The search's first lattice point: the half-decade nearest ``0.01 B ** 0.7``
        clipped to [1e-3, 30] (linear-then-sublinear scaling seen in a pilot)."""
        lr = min(max(0.01 * B**0.7, 1e-3), 30.0)
        return 4 * round(LR_UNITS_PER_DECADE * math.log10(lr) / 4)


def _progress(msg: str) -> None:
    print(f"[study {dt.datetime.now(dt.timezone.utc):%H:%M:%S}] {msg}", file=sys.stderr,
          flush=True)


def _on_gpu(text: str) -> bool:
    """Whether backend spec ``text`` names a GPU (False when it does not parse)."""
    from bench.study.timing import SpecError, parse_spec
    from bench.workload.config import placement_applies

    try:
        return placement_applies(parse_spec(text).device)
    except SpecError:
        return False


def _context(cfg: StudyConfig, runner: Any) -> dict[str, Any]:
    from bench.machine import describe_machine

    m = describe_machine()
    label = f"{m.get('cpu_model')} x{m.get('cpu_count')}"
    ctx = {"started_utc": dt.datetime.now(dt.timezone.utc).isoformat(), "commit": m.get("commit"),
           "machine_label": label, "machine_json": json.dumps(m, default=str),
           "runner": repr(runner), "study_config": json.dumps(dataclasses.asdict(cfg)),
           "load_average_start": os.getloadavg()[0]}
    if m.get("gpu_name") and any(_on_gpu(b) for b in cfg.backends):
        ctx["gpu_name"] = m["gpu_name"]
        ctx["machine_label"] = f"{m['gpu_name']} (host {label})"
    return ctx


# ------------------------------------------------------------------------------ timing


def _trainer(cache: dict, label: str, cfg: RunConfig, data: Any) -> Any:
    """The trainer of spec ``label`` (made and loaded once, reset for ``cfg`` after that)."""
    from bench.harness import prepare, reset

    if label not in cache:
        cache[label], _ = prepare(cfg, data)
    else:
        reset(cache[label], cfg)
    return cache[label]


def _base_kw(cfg: StudyConfig, B: int) -> dict[str, Any]:
    variant = {1: "sgd", N_TRAIN: "full"}.get(B, "minibatch")
    kw: dict[str, Any] = {"variant": variant, "dtype": cfg.dtype, "init": cfg.init,
                          "order": cfg.order, **dict(cfg.extra_config)}
    if variant == "minibatch":
        kw["batch_size"] = B
    return kw


def _timing_steps(cfg: StudyConfig, B: int) -> int:
    """Steps per timed run: ``max(5, min(20000, timing_examples / B))`` (fewer under a time
    budget, see ``measure_timing``)."""
    return max(5, min(20_000, cfg.timing_examples // B))


def _timing_config(cfg: StudyConfig, spec: BackendSpec, B: int,
                   n_steps: int | None = None) -> RunConfig:
    """A fixed-step run of ``spec`` without a target (``_timing_steps`` steps by default)."""
    n_steps = n_steps or _timing_steps(cfg, B)
    return RunConfig(backend=spec.backend, device=spec.device, kernel=spec.kernel,
                     learning_rate=1e-3, max_steps=n_steps,
                     max_epochs=math.ceil(n_steps / max(1, N_TRAIN // B)) + 1,
                     **_base_kw(cfg, B))


def _step_and_move(r: Any) -> tuple[float, float]:
    """(training seconds per step: compute + read-back, reshuffle seconds per epoch)."""
    return (r.times.compute_s + r.times.d2h_s) / r.steps, r.times.data_move_s / r.epochs


def _timing_key(cfg: StudyConfig, spec: BackendSpec, B: int) -> str:
    key = (f"{spec.key_prefix}_B{B}_t{cfg.timing_threads}_n{_timing_steps(cfg, B)}"
           f"_r{cfg.timing_repeats}_{cfg.dtype}_{_extra_tag(cfg)}")
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
    nb = max(1, N_TRAIN // B)

    def run(n: int) -> Any:
        rc = _timing_config(cfg, spec, B, n)
        r = train(_trainer(cache, spec.label, rc, data), rc)
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
    step_s, _ = _step_and_move(probe)
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
    _progress(f"timing: skip {spec}{where}: {reason}")
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
                step_s, move_s = zip(*(_step_and_move(r) for r in cell["runs"]), strict=True)
                trainer = cache.get(spec.label)
                rec = {"key": key, "spec": spec.label, **fields, "batch_size": B,
                       "threads": cfg.timing_threads, "steps_per_run": cell["steps"],
                       "batches_per_epoch": max(1, N_TRAIN // B),
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
                _progress(f"timing {spec.label:22s} B={B:6d}: {rec['step_s'] * 1e6:10.2f} us/step"
                          f" ({cell['steps']} steps x {len(step_s)})")
        if i + 1 == len(cells) or cells[i + 1][0] != spec:
            cache.pop(spec.label, None)
    return out


def _extra_tag(cfg: StudyConfig) -> str:
    """A file-name-safe tag of ``extra_config``: 'default', or a hash of its JSON."""
    if not cfg.extra_config:
        return "default"
    text = json.dumps(dict(cfg.extra_config), sort_keys=True)
    return "x" + hashlib.sha1(text.encode()).hexdigest()[:10]


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


# ------------------------------------------------------------------------------ searches


def _drive(gens: dict[int, Any], store: StudyStore, runner: Any,
           on_record: Callable[[dict[str, Any]], None]) -> dict[int, SearchOutcome]:
    """Run the search generators to completion, keeping the runner's workers busy.

    A spec already stored is answered from the store; the others go to the runner, at most
    ``runner.workers`` at a time (largest B first: the longest trials start early).
    """
    outcomes: dict[int, SearchOutcome] = {}
    batches: dict[int, list[Any]] = {}       # B -> the records of its current batch (or None)
    queue: deque[tuple[int, int, TrialSpec]] = deque()
    inflight: dict[Future, tuple[int, int, TrialSpec]] = {}

    def advance(B: int, send: list[dict[str, Any]] | None) -> None:
        while True:
            try:
                specs = gens[B].send(send) if send is not None else next(gens[B])
            except StopIteration as stop:
                outcomes[B] = stop.value
                return
            recs: list[Any] = [store.get("trial", s.key()) for s in specs]
            recs = [r[0] if r else None for r in recs]
            if all(r is not None for r in recs):
                send = recs
                continue
            batches[B] = recs
            for i, (s, r) in enumerate(zip(specs, recs, strict=True)):
                if r is None:
                    queue.append((B, i, s))
            return

    for B in sorted(gens, reverse=True):
        advance(B, None)
    try:
        while queue or inflight:
            while queue and len(inflight) < runner.workers:
                B, i, spec = queue.popleft()
                inflight[runner.submit(spec)] = (B, i, spec)
            finished, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            for fut in finished:
                B, i, spec = inflight.pop(fut)
                rec = fut.result()
                rec["phase"] = spec.phase
                store.put("trial", spec.key(), [rec])
                on_record(rec)
                batches[B][i] = rec
                if all(r is not None for r in batches[B]):
                    advance(B, batches.pop(B))
    finally:
        for fut in inflight:
            fut.cancel()
    return outcomes


def run_searches(cfg: StudyConfig, store: StudyStore, runner: Any,
                 backends: dict[int, str]) -> dict[int, SearchOutcome]:
    """The learning-rate search and the seeds at every B of ``cfg``."""
    def make(B: int) -> Callable[[int, int, str, int], TrialSpec]:
        def spec(units: int, max_steps: int, phase: str, seed: int) -> TrialSpec:
            return TrialSpec(batch_size=B, lr_units=units, seed=seed, backend=backends[B],
                             max_steps=max_steps, budget=cfg.budget(B),
                             validations_per_epoch=cfg.validations_per_epoch(B),
                             target_error=cfg.target_error, dtype=cfg.dtype, init=cfg.init,
                             order=cfg.order, extra_config=cfg.extra_config, phase=phase)
        return spec

    gens = {B: lr_search(B, cfg.start_units(B), cfg.budget(B), make(B), cfg.seeds,
                         grid=cfg.grid) for B in cfg.batch_sizes}
    n = [0]

    def report(rec: dict[str, Any]) -> None:
        n[0] += 1
        _progress(f"trial {n[0]:3d}: B={rec['batch_size']:6d} lr={rec['learning_rate']:9.4g} "
                  f"seed={rec['seed']:5d} {rec['backend']:6s} {rec['status']:8s} "
                  f"steps={rec['steps']:7d} ({rec['wall_s']:.1f} s, {rec['phase']})")

    return _drive(gens, store, runner, report)


# ------------------------------------------------------------------------------ noise, direct


def noise_along_run(cfg: StudyConfig, store: StudyStore, data: Any, B: int, units: int,
                    steps_to_target: int, backend: str) -> list[dict[str, Any]]:
    """|G|^2, tr S and B_simple over the training set at checkpoints of the best run at B.

    Checkpoints: step 0, ``noise_points`` steps spaced geometrically up to 1.5 x
    steps-to-target, and ``noise_dense`` evenly from 0.5 to 1.5 x steps-to-target (where the
    report averages |G|^2 and tr S near the target); one thread, in this process.
    """
    from bench.harness import prepare
    from bench.study.trial import lr_from_units
    from bench.workload.data_order import epoch_permutation
    from bench.workload.noise_scale import noise_scale

    key = (f"B{B}_u{units}_s{cfg.seeds[0]}_{backend}_n{cfg.noise_points}d{cfg.noise_dense}"
           f"_S{steps_to_target}")
    found = store.get("noise", key)
    if found:
        return found
    rc = RunConfig(backend=backend, learning_rate=lr_from_units(units), seed=cfg.seeds[0],
                   **_base_kw(cfg, B))
    marks = np.unique(np.r_[0, steps_to_target, np.round(
        np.geomspace(1, 1.5 * steps_to_target, cfg.noise_points)),
        np.round(np.linspace(0.5, 1.5, cfg.noise_dense) * steps_to_target)].astype(int))
    out = []
    with thread_limit(1):
        trainer, _ = prepare(rc, data)
        nb, n = trainer.n_batches(), trainer.n_train
        steps, epoch = 0, 0
        for mark in marks:
            while steps < mark:
                k = steps % nb
                if k == 0:
                    epoch += 1
                    trainer.begin_epoch(epoch_permutation(n, epoch, rc.order, rc.seed))
                stop = min(nb, k + int(mark) - steps)
                trainer.train_batches(k, stop)
                steps += stop - k
            params = trainer.get_params()
            W, b = params["W"], params["b"]
            ns = noise_scale(data.train.x, data.train.y, W, b)
            out.append({"key": key, "batch_size": B, "learning_rate": rc.learning_rate,
                        "backend": backend, "seed": rc.seed, "steps": int(mark),
                        "steps_to_target": steps_to_target,
                        "valid_error": trainer.error("valid"), "grad_sq_norm": ns.grad_sq_norm,
                        "trace_cov": ns.trace_cov, "b_simple": ns.b_simple})
    store.put("noise", key, out)
    _progress(f"noise B={B}: B_simple {out[0]['b_simple']:.0f} at step 0 -> "
              f"{out[-1]['b_simple']:.0f} at step {out[-1]['steps']}")
    return out


def composed_times(timing: list[dict[str, Any]],
                   outcomes: dict[int, SearchOutcome]) -> list[dict[str, Any]]:
    """``S(B) * step_s + ceil(S(B) / n_batches) * epoch_move_s`` for every timed (B, backend)."""
    out = []
    for rec in timing:
        o = outcomes.get(rec["batch_size"])
        if o is None or o.best_steps is None:
            continue
        S = o.best_steps
        t = composed_seconds(S, rec["step_s"], rec["batches_per_epoch"], rec["epoch_move_s"])
        out.append({"batch_size": rec["batch_size"], "backend": rec["backend"],
                    "device": rec.get("device", "cpu"), "kernel": rec.get("kernel", "eager"),
                    "steps": S, "composed_s": t, "lr_units": o.best_units})
    return sorted(out, key=lambda r: r["composed_s"])


def measure_direct(cfg: StudyConfig, store: StudyStore, data: Any,
                   candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Time-to-target measured at the best rate, ``direct_repeats`` times after one warm-up run,
    for each candidate (one thread by default, in this process).

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
        key = (f"{spec.key_prefix}_B{B}_u{c['lr_units']}_s{cfg.seeds[0]}_t{cfg.timing_threads}"
               f"_w1p_r{cfg.direct_repeats}_{cfg.target_error}_{_extra_tag(cfg)}")
        found = store.get("direct", key)
        if found:
            out.extend(found)
            continue
        rc = RunConfig(backend=backend, device=spec.device, kernel=spec.kernel,
                       learning_rate=lr_from_units(c["lr_units"]),
                       seed=cfg.seeds[0], target_error=cfg.target_error,
                       max_steps=cfg.budget(B),
                       max_epochs=math.ceil(cfg.budget(B) / max(1, N_TRAIN // B)) + 1,
                       validations_per_epoch=cfg.validations_per_epoch(B), **_base_kw(cfg, B))
        times, steps, paired = [], [], []
        tc = _timing_config(cfg, spec, B)
        S, nb = c["steps"], max(1, N_TRAIN // B)
        with thread_limit(cfg.timing_threads):
            for rep in range(cfg.direct_repeats + 1):      # the first is a warm-up
                step, move = _step_and_move(train(_trainer(cache, spec.label, tc, data), tc))
                r = train(_trainer(cache, spec.label, rc, data), rc)
                if rep and r.target_reached:
                    times.append(r.time_to_target_s)
                    steps.append(r.steps_to_target)
                    paired.append(composed_seconds(S, step, nb, move) / r.time_to_target_s - 1)
        rec = {"key": key, "batch_size": B, "backend": backend, "device": spec.device,
               "kernel": spec.kernel, "variant": rc.variant,
               "learning_rate": rc.learning_rate, "threads": cfg.timing_threads,
               "composed_s": c["composed_s"], "study_steps": c["steps"],
               "measured_s": float(np.median(times)) if times else None,
               "measured_s_all": times, "measured_steps_all": steps,
               "composition_error": (c["composed_s"] / float(np.median(times)) - 1
                                     if times else None),
               "paired_composition_error": float(np.median(paired)) if paired else None,
               "paired_composition_error_all": paired,
               "load_average": os.getloadavg()[0]}
        store.put("direct", key, [rec])
        out.append(rec)
        _progress(f"direct {backend} B={B}: composed {c['composed_s']:.3f} s, measured "
                  f"{rec['measured_s']} s, paired composition error "
                  f"{rec['paired_composition_error']}")
    return out


def _direct_candidates(cfg: StudyConfig, composed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    picks = composed[:cfg.direct_top]
    for B in (1, N_TRAIN):              # per-sample SGD and full-batch GD, their best backend
        at_b = [c for c in composed if c["batch_size"] == B]
        if at_b:
            picks.append(at_b[0])
    unique = {(c["batch_size"], c["backend"], c.get("device"), c.get("kernel")): c
              for c in picks}
    return list(unique.values())


# ------------------------------------------------------------------------------ the study


def run_study(cfg: StudyConfig, runner: Any, root: str | os.PathLike = DEFAULT_ROOT,
              noise: bool = True, direct: bool = True) -> StudyStore:
    """Run (or complete) the study ``cfg`` with ``runner``; returns its store.

    Everything finished is stored as it finishes; rerunning the same ``cfg`` computes only what
    is missing. Writes ``study.csv`` (every record) at the end.
    """
    from bench.workload.mnist import load_mnist

    t0 = time.perf_counter()
    store = StudyStore(root, cfg.name)
    ctx = _context(cfg, runner)
    store.put("context", ctx["started_utc"].replace(":", "-"), [ctx])
    data = load_mnist() if cfg.timing or noise or direct else None
    timing = measure_timing(cfg, store, data) if cfg.timing else []
    backends = fastest_backends(cfg, timing)
    _progress(f"backends per B: {backends}")
    outcomes = run_searches(cfg, store, runner, backends)
    for B in cfg.noise_batch_sizes if noise else ():
        o = outcomes.get(B)
        if o is not None and o.best_steps is not None:
            noise_along_run(cfg, store, data, B, o.best_units, o.best_steps, backends[B])
    if direct and timing:
        composed = composed_times(timing, outcomes)
        measure_direct(cfg, store, data, _direct_candidates(cfg, composed))
    ctx["finished_utc"] = dt.datetime.now(dt.timezone.utc).isoformat()
    ctx["wall_s"] = time.perf_counter() - t0
    ctx["load_average_end"] = os.getloadavg()[0]
    store.put("context", ctx["started_utc"].replace(":", "-"), [ctx])
    store.write_table()
    _progress(f"done in {ctx['wall_s']:.0f} s: {store.path}")
    return store


def run_timing_only(cfg: StudyConfig, root: str | os.PathLike = DEFAULT_ROOT,
                    steps_from: str | None = None,
                    steps: dict[int, int] | None = None) -> StudyStore:
    """Only the timing phase of ``cfg`` (no searches, noise or direct runs), stored as study
    ``cfg.name`` under ``root`` with its context (machine, GPU, versions, commit).

    ``steps_from`` / ``steps``: the study whose S(B) the timings are to be composed with, and
    that S(B) ({B: steps}), recorded in the context (the report reads the named study, and
    this copy where that study is absent).
    """
    from bench.workload.mnist import load_mnist

    t0 = time.perf_counter()
    store = StudyStore(root, cfg.name)
    ctx = _context(cfg, "timing only (this process)")
    ctx["timing_only"] = True
    if steps_from is not None:
        ctx["steps_from"] = steps_from
        ctx["steps_from_steps"] = json.dumps({str(B): S for B, S in sorted((steps or {}).items())})
    name = ctx["started_utc"].replace(":", "-")
    store.put("context", name, [ctx])
    data = load_mnist()
    _progress(f"data loaded in {time.perf_counter() - t0:.1f} s; timing "
              f"{', '.join(cfg.backends)} at B = {', '.join(map(str, cfg.batch_sizes))}"
              + (f" within {cfg.timing_max_seconds:g} s" if cfg.timing_max_seconds else ""))
    t1 = time.perf_counter()
    measure_timing(cfg, store, data)
    ctx["timing_wall_s"] = time.perf_counter() - t1
    ctx["finished_utc"] = dt.datetime.now(dt.timezone.utc).isoformat()
    ctx["wall_s"] = time.perf_counter() - t0
    ctx["load_average_end"] = os.getloadavg()[0]
    store.put("context", name, [ctx])
    store.write_table()
    _progress(f"timing done in {ctx['timing_wall_s']:.1f} s (all {ctx['wall_s']:.1f} s): "
              f"{store.path}")
    return store
