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

from bench.benchmarks.conftest import case_config, skip_unusable
from bench.floors import products_only_epoch
from bench.harness import RunResult, reset, summarize_rounds, train
from bench.peers import dataloader_epoch, sklearn_epoch
from bench.targets import paired_ratio, side_reference


def _record(benchmark, case, profile, kind: str, results: list[RunResult]) -> RunResult:
    last = results[-1]
    info = benchmark.extra_info
    info.update(last.to_dict())
    info.update(summarize_rounds(results))
    info.update(kind=kind, profile=profile.name, backend=case.backend, device=case.device,
                placement=case.placement if case.device != "cpu" else "n/a",
                pinned=case.pinned, kernel=case.kernel, variant=last.config.variant)
    # per 50,000 examples' worth of steps: exact for whole epochs, pro rata when a step
    # budget cut the epoch short
    per_epoch = [r.times.total_s / r.epoch_equivalents for r in results if r.steps]
    info["seconds_per_epoch"] = float(np.median(per_epoch)) if per_epoch else None
    info["seconds_per_step"] = float(np.median([r.times.compute_s / max(r.steps, 1)
                                                for r in results]))
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
    if kind == "in-order":
        unshuffled = replace(config, order="in-order")

        def in_order() -> float:
            reset(trainer, unshuffled)
            return train(trainer, unshuffled, upload_s).train_epoch_s
        return in_order
    try:
        epoch, library = {
            "products": lambda: (products_only_epoch(mnist.train.x, case.batch_size), "numpy"),
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


def test_epoch(benchmark, epoch_case, profile, trainer_pool, mnist):
    """A fixed budget of epochs (``profile.epochs``, at most ``profile.max_steps`` steps).

    Where a target compares this epoch with a reference, the reference is timed in the untimed
    set-up right before each round, so the two are measured side by side.
    """
    skip_unusable(epoch_case)
    config = case_config(epoch_case, max_epochs=profile.epochs, max_steps=profile.max_steps,
                         learning_rate=profile.learning_rate)
    trainer, upload_s = trainer_pool.get(config)
    results: list[RunResult] = []
    kind = side_reference(epoch_case.backend, epoch_case.device, epoch_case.batch_size,
                          epoch_case.order)
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
    last = _record(benchmark, epoch_case, profile, "epoch", measured)
    assert last.status in ("ok", "diverged", "oom")
    assert last.steps >= 1
    if reference is not None and last.status == "ok":
        assert len(reference_s) == len(results)  # one per round, warm-up rounds included
        paired = reference_s[profile.warmup_rounds:]
        benchmark.extra_info.update(
            side_reference=kind, side_reference_s=float(np.median(paired)),
            side_ratio=paired_ratio([r.train_epoch_s for r in measured], paired))


def test_step(benchmark, step_case, profile, trainer_pool):
    """One optimizer step (one minibatch, synchronised), cycling through the epoch's batches."""
    skip_unusable(step_case)
    config = case_config(step_case, max_epochs=1)
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
    benchmark.extra_info.update(kind="step", profile=profile.name, backend=step_case.backend,
                                device=step_case.device, batch_size=step_case.batch_size,
                                placement=step_case.placement if step_case.device != "cpu"
                                else "n/a", pinned=step_case.pinned,
                                variant=config.variant, cfg_dtype=config.dtype,
                                steps_per_round=iterations)
    assert math.isfinite(trainer.read_cost())


def test_time_to_target(benchmark, ttt_case, profile, trainer_pool):
    """Train (lr from ``profile.lr_grid``, best kept) until validation error <= the target."""
    skip_unusable(ttt_case)
    base = case_config(ttt_case, max_epochs=profile.ttt_max_epochs,
                       max_steps=profile.ttt_max_steps, target_error=profile.target_error,
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
    last = _record(benchmark, ttt_case, profile, "time_to_target", results)
    benchmark.extra_info["lr_grid_time_to_target_s"] = {str(k): (None if math.isinf(v) else v)
                                                        for k, v in grid.items()}
    assert last.target_reached is not None
