"""The study's scheduler: the learning-rate searches of every B driven to completion on a
runner, stored specs answered from the store (step 2 of ``bench.study.core``)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from bench.study.config import StudyConfig
from bench.study.progress import progress
from bench.study.runners import WorkerDied
from bench.study.search import SearchOutcome, lr_search
from bench.study.storage import StudyStore
from bench.study.trial import TrialSpec

__all__ = ["run_searches"]


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
                try:
                    rec = fut.result()
                except WorkerDied as exc:
                    running = [spec] + [s for _, _, s in inflight.values()]
                    raise WorkerDied(
                        f"{exc} while running " + "; ".join(map(_describe, running))
                        + ". Every finished trial is stored: rerun the same command to "
                        "resume.") from None
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


def _describe(spec: TrialSpec) -> str:
    return (f"trial B={spec.batch_size} lr={spec.learning_rate:.4g} seed={spec.seed} "
            f"{spec.backend} (key {spec.key()})")


def run_searches(cfg: StudyConfig, store: StudyStore, runner: Any,
                 backends: dict[int, str]) -> dict[int, SearchOutcome]:
    """The learning-rate search on the search seeds and the held-out runs at every B of ``cfg``."""
    def make(B: int) -> Callable[[int, int, str, int, float | None], TrialSpec]:
        def spec(units: int, max_steps: int, phase: str, seed: int,
                 after_target: float | None) -> TrialSpec:
            return TrialSpec(batch_size=B, lr_units=units, seed=seed, backend=backends[B],
                             max_steps=max_steps, budget=cfg.budget(B),
                             validations_per_epoch=cfg.validations_per_epoch(B),
                             target_error=cfg.target_error, dtype=cfg.dtype, init=cfg.init,
                             order=cfg.order, extra_config=cfg.extra_config, phase=phase,
                             dataset=cfg.dataset,
                             after_target=cfg.after_target if after_target is None
                             else after_target)
        return spec

    gens = {B: lr_search(B, cfg.start_units(B), cfg.budget(B), make(B), cfg.seeds,
                         cfg.held_out_seeds, grid=cfg.grid) for B in cfg.batch_sizes}
    n = [0]

    def report(rec: dict[str, Any]) -> None:
        n[0] += 1
        progress(f"trial {n[0]:3d}: B={rec['batch_size']:6d} lr={rec['learning_rate']:9.4g} "
                  f"seed={rec['seed']:5d} {rec['backend']:6s} {rec['status']:8s} "
                  f"steps={rec['steps']:7d} ({rec['wall_s']:.1f} s, {rec['phase']})")

    return _drive(gens, store, runner, report)
