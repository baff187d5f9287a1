"""Training benchmarks: fixed-budget epochs, single optimizer steps, time to a target error.

Each benchmark trains from a fresh initialisation (untimed ``setup``) under pytest-benchmark's
pedantic mode, with warm-up rounds; ``extra_info`` carries every measurement the report needs.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from bench import record
from bench.benchmarks.conftest import skip_unusable
from bench.floors import products_only_epoch
from bench.harness import RunResult, prepare, reset, summarize_rounds, train
from bench.peers import dataloader_epoch, sklearn_epoch
from bench.targets import paired_ratio, side_reference


def _record(benchmark, trainer, profile, kind: str, results: list[RunResult],
            **measured) -> RunResult:
    """The record of a training benchmark: the last round's result, the medians over rounds,
    the compute seconds per step; time per epoch is derived by the reader
    (``bench.results.epoch_seconds``), never stored twice."""
    last = results[-1]
    record.write(benchmark, kind=kind, profile=profile.name, config=last.config,
                 fast_path=trainer.fast_path, **last.to_dict(), **summarize_rounds(results),
                 seconds_per_step=float(np.median([r.times.compute_s / max(r.steps, 1)
                                                   for r in results])),
                 compile_s=trainer.compile_s, **measured)
    return last


#: Pause after a reference run by another library than the benchmark's: OpenBLAS's workers
#: spin ~0.1 s after a call and, on 2 cores, slowed the PyTorch epoch that followed the NumPy
#: products 2.5x (measured; after a 0.1 s pause, not).
SETTLE_S = 0.25


def _side_reference(kind: str | None, case, trainer, config, upload_s,
                    mnist) -> Callable[[], float] | None:
    """A function timing one epoch of the reference a target compares this benchmark with
    (``bench.targets.side_reference``), in seconds; None when there is none here."""
    if kind is None:
        return None
    if kind == "fastest-own":
        return fastest_own_epoch(config, mnist)
    if kind == "in-order":
        unshuffled = replace(config, order="in-order")

        def in_order() -> float:
            reset(trainer, unshuffled)
            return train(trainer, unshuffled, upload_s).train_epoch_s
        return in_order
    try:
        epoch, library = {
            "products": lambda: (products_only_epoch(mnist.train.x, case.batch_size,
                                                     case.model), "numpy"),
            "sklearn": lambda: (sklearn_epoch(mnist), "numpy"),
            "dataloader": lambda: (dataloader_epoch(mnist, case.batch_size), "torch"),
        }[kind]()
    except ImportError:  # the peer's package is missing: the target falls back or is left out
        return None

    def timed() -> float:
        t0 = time.perf_counter()
        epoch()
        seconds = time.perf_counter() - t0
        if library != trainer.backend:
            time.sleep(SETTLE_S)
        return seconds
    return timed


def fastest_own_epoch(config, mnist) -> Callable[[], float] | None:
    """The reference of ``T_JAX``: every other usable CPU backend warms up (50 steps: JIT,
    first touches) and runs one epoch of ``config``, timed; the fastest is timed before each
    round of the benchmark (named by the returned function's ``backend``)."""
    from impls.registry import BACKENDS, unavailable_reason

    fastest = None
    for backend, (_, devices) in BACKENDS.items():
        if (backend == config.backend or "cpu" not in devices
                or unavailable_reason(backend, "cpu", config.model, config.optimizer)):
            continue
        own = replace(config, backend=backend, device="cpu")
        trainer, upload_s = prepare(own, mnist)
        for budget in (replace(own, max_epochs=1, max_steps=50), replace(own, max_epochs=1)):
            reset(trainer, budget)
            seconds = train(trainer, budget, upload_s).train_epoch_s
        if fastest is None or seconds < fastest[0]:
            fastest = (seconds, trainer, own, upload_s)
    if fastest is None:
        return None
    _, trainer, own, upload_s = fastest

    def epoch() -> float:
        reset(trainer, own)
        seconds = train(trainer, own, upload_s).train_epoch_s
        time.sleep(SETTLE_S)  # another library's threads
        return seconds
    epoch.backend = f"{own.backend}" + (f" ({trainer.fast_path})" if trainer.fast_path else "")
    return epoch


def test_epoch(benchmark, epoch_case, profile, trainer_pool, mnist):
    """A fixed budget of epochs (``profile.epochs``, at most ``profile.max_steps`` steps).

    Where a target compares this epoch with a reference, the reference is timed in the untimed
    set-up right before each round, so the two are measured side by side.
    """
    skip_unusable(epoch_case)
    config = epoch_case.config(max_epochs=profile.model_epochs.get(epoch_case.model,
                                                                   profile.epochs),
                               max_steps=profile.max_steps, learning_rate=profile.learning_rate)
    trainer, upload_s = trainer_pool.get(config)
    results: list[RunResult] = []
    kind = side_reference(epoch_case.backend, epoch_case.device, epoch_case.batch_size,
                          epoch_case.order, epoch_case.model)
    reference = _side_reference(kind, epoch_case, trainer, config, upload_s, mnist)
    reference_s: list[float] = []

    def setup():
        if reference is not None:
            reference_s.append(reference())
        reset(trainer, config)

    def target():
        results.append(train(trainer, config, upload_s))

    benchmark.group = f"epoch B={epoch_case.batch_size}"
    rounds = profile.paired_rounds if reference is not None else profile.rounds
    benchmark.pedantic(target, setup=setup, rounds=rounds,
                       warmup_rounds=profile.warmup_rounds, iterations=1)
    measured = results[profile.warmup_rounds:]
    side = {}
    if reference is not None and measured[-1].status == "ok":
        assert len(reference_s) == len(results)  # one per round, warm-up rounds included
        paired = reference_s[profile.warmup_rounds:]
        side = dict(side_reference=kind, side_reference_s=float(np.median(paired)),
                    side_ratio=paired_ratio([r.train_epoch_s for r in measured], paired))
        if kind == "fastest-own":
            side["note"] = reference.backend
    last = _record(benchmark, trainer, profile, "epoch", measured, **side)
    assert last.status in ("ok", "diverged", "oom")
    assert last.steps >= 1


def test_step(benchmark, step_case, profile, trainer_pool):
    """One optimizer step (one minibatch, synchronised), cycling through the epoch's batches."""
    skip_unusable(step_case)
    config = step_case.config(max_epochs=1)
    trainer, _ = trainer_pool.get(config)
    trainer.begin_epoch(None)
    batches = itertools.cycle(range(trainer.n_batches()))

    def target():
        k = next(batches)
        trainer.train_batches(k, k + 1)

    iterations = max(1, min(1000, 50_000 // (step_case.batch_size * 10)))
    benchmark.group = f"step B={step_case.batch_size}"
    benchmark.pedantic(target, rounds=profile.step_rounds, warmup_rounds=2,
                       iterations=iterations)
    record.write(benchmark, kind="step", profile=profile.name, config=config,
                 fast_path=trainer.fast_path, batch_size=step_case.batch_size,
                 steps_per_round=iterations, cfg_dtype=config.dtype)
    assert math.isfinite(trainer.read_cost())


def test_time_to_target(benchmark, ttt_case, profile, trainer_pool):
    """Train (lr from ``profile.lr_grid``, best kept) until validation error <= the target."""
    skip_unusable(ttt_case)
    base = ttt_case.config(max_epochs=profile.ttt_max_epochs, max_steps=profile.ttt_max_steps,
                           target_error=profile.target_error,
                           validations_per_epoch=profile.ttt_validations_per_epoch)
    grid = {}
    if len(profile.lr_grid) > 1:
        for lr in profile.lr_grid:
            config = replace(base, learning_rate=lr)
            trainer, upload_s = trainer_pool.get(config)
            r = train(trainer, config, upload_s)
            grid[lr] = r.time_to_target_s if r.target_reached else math.inf
        best_lr = min(grid, key=grid.get)
    else:
        best_lr = profile.lr_grid[0]
    config = replace(base, learning_rate=best_lr)
    trainer, upload_s = trainer_pool.get(config)
    results: list[RunResult] = []
    benchmark.group = "time to target"
    benchmark.pedantic(lambda: results.append(train(trainer, config, upload_s)),
                       setup=lambda: reset(trainer, config), rounds=1, iterations=1)
    last = _record(benchmark, trainer, profile, "time_to_target", results,
                   lr_grid_time_to_target_s={str(k): (None if math.isinf(v) else v)
                                             for k, v in grid.items()})
    assert last.target_reached is not None
