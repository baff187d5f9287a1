"""Training benchmarks: fixed-budget epochs, single optimizer steps, time to a target error.

Each benchmark trains from a fresh initialisation (untimed ``setup``) under pytest-benchmark's
pedantic mode, with warm-up rounds; ``extra_info`` carries every measurement the report needs.
Time to target trains at the tuned study's best learning rate for its B (``study_rate``): the
learning-rate search is defined once, in ``bench.study``.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from bench import record
from bench.analysis.targets import paired_ratio, side_reference
from bench.benchmarks.conftest import skip_unusable
from bench.floors import products_only_epoch
from bench.harness import RunResult, prepare, reset, summarize_rounds, train
from bench.peers import dataloader_epoch, sklearn_epoch
from bench.results import STUDY_ROOT, load_study, select_studies
from bench.workload.config import RunConfig
from bench.workload.datasets import get_dataset


def _record(benchmark, trainer, profile, kind: str, results: list[RunResult],
            **measured) -> RunResult:
    """The record of a training benchmark: the last round's result, the medians over rounds,
    the compute seconds per step; time per epoch is derived by the reader
    (``bench.analysis.views.epoch_seconds``), never stored twice."""
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
                    data) -> Callable[[], float] | None:
    """A function timing one epoch of the reference a target compares this benchmark with
    (``bench.analysis.targets.side_reference``), in seconds; None when there is none here."""
    if kind is None:
        return None
    if kind == "fastest-own":
        return fastest_own_epoch(config, data)
    if kind == "in-order":
        unshuffled = replace(config, order="in-order")

        def in_order() -> float:
            reset(trainer, unshuffled)
            return train(trainer, unshuffled, upload_s).train_epoch_s
        return in_order
    try:
        epoch, library = {
            "products": lambda: (products_only_epoch(
                data.train.x, case.batch_size, case.model,
                n_classes=get_dataset(case.dataset).n_classes), "numpy"),
            "sklearn": lambda: (sklearn_epoch(data), "numpy"),
            "dataloader": lambda: (dataloader_epoch(
                data, case.batch_size, n_classes=get_dataset(case.dataset).n_classes), "torch"),
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


#: Epochs of ``config`` each candidate of ``fastest_own_epoch`` is timed for; the median picks.
#: One epoch picked NumPy at MLP B = 200 (1.12 s paired) where Numba's median was 0.89 s, and
#: Numba at B = 600 (1.05 s) over PyTorch's 0.83 s (the d82dba1 standard run).
SELECTION_EPOCHS = 3


def fastest_own_epoch(config, data) -> Callable[[], float] | None:
    """The reference of ``T_JAX``: every other usable CPU backend warms up (50 steps: JIT,
    first touches) and runs ``SELECTION_EPOCHS`` epochs of ``config``, each timed; the one of
    the lowest median is timed before each round of the benchmark (named by the returned
    function's ``backend``)."""
    from impls.registry import BACKENDS, unavailable_reason

    fastest = None
    for backend, (_, devices) in BACKENDS.items():
        if (backend == config.backend or "cpu" not in devices
                or unavailable_reason(backend, "cpu", config.model, config.optimizer)):
            continue
        own = replace(config, backend=backend, device="cpu")
        trainer, upload_s = prepare(own, data)
        warm = replace(own, max_epochs=1, max_steps=50)
        reset(trainer, warm)
        train(trainer, warm, upload_s)
        times = []
        for _ in range(SELECTION_EPOCHS):
            reset(trainer, own)
            times.append(train(trainer, own, upload_s).train_epoch_s)
        seconds = float(np.median(times))
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


def test_epoch(benchmark, epoch_case, profile, trainer_pool, data):
    """A fixed budget of epochs and steps (``profile.budget``).

    Where a target compares this epoch with a reference, the reference is timed in the untimed
    set-up right before each round, so the two are measured side by side.
    """
    skip_unusable(epoch_case)
    epochs, max_steps = profile.budget(epoch_case.model)
    config = epoch_case.config(max_epochs=epochs, max_steps=max_steps,
                               learning_rate=profile.learning_rate)
    trainer, upload_s = trainer_pool.get(config)
    results: list[RunResult] = []
    kind = side_reference(epoch_case.backend, epoch_case.device, epoch_case.batch_size,
                          epoch_case.order, epoch_case.model)
    reference = _side_reference(kind, epoch_case, trainer, config, upload_s, data)
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

    iterations = max(1, min(1000, trainer.n_train // (step_case.batch_size * 10)))
    benchmark.group = f"step B={step_case.batch_size}"
    benchmark.pedantic(target, rounds=profile.step_rounds, warmup_rounds=2,
                       iterations=iterations)
    record.write(benchmark, kind="step", profile=profile.name, config=config,
                 fast_path=trainer.fast_path, batch_size=step_case.batch_size,
                 steps_per_round=iterations, cfg_dtype=config.dtype)
    assert math.isfinite(trainer.read_cost())


#: The RunConfig fields a study's trials share with the time-to-target run that uses its rates.
_SAME_RUN = ("model", "optimizer", "momentum", "dtype", "order", "init")


def study_rate(studies: pd.DataFrame, config: RunConfig, B: int) -> tuple[float, str]:
    """The learning rate of a time-to-target run of ``config`` at batch size ``B`` and where it
    came from.

    The best rate per B is defined once, by the study's search (``bench.study.search``; the
    rate of the fewest steps to the target, ``bench.analysis.study.per_batch_size``), in a
    tuned study of the same dataset, model, optimizer, dtype, data order, initialisation and
    target (a study stored before records named their dataset trained on MNIST).
    Steps-to-target does not depend on the machine, so neither does the rate. At a B the study
    did not search, the best rate of the largest study B below it (the best rate grows with
    B, so it errs to the stable side; interpolating between neighbours would carry a noisy
    optimum at the stability edge, e.g. 10 at B = 1024 between 1.3 and 3.2, into B = 600).
    A LookupError says why there is none (no such study, or B below its smallest B).
    """
    from bench.analysis.study import per_batch_size

    trials = studies[studies["record"] == "trial"] if "record" in studies else studies[:0]
    want = {k: getattr(config, k) for k in _SAME_RUN}

    dataset = getattr(config, "dataset", "mnist")

    def same(row: pd.Series) -> bool:
        ran = RunConfig(learning_rate=0.1, batch_size=2, dtype=row["dtype"], order=row["order"],
                        init=row["init"], **json.loads(row["extra_config"] or "{}"))
        return ({k: getattr(ran, k) for k in _SAME_RUN} == want
                and math.isclose(row["target_error"], config.target_error)
                and (row.get("dataset") if pd.notna(row.get("dataset")) else "mnist") == dataset)

    if len(trials):
        trials = trials[trials.apply(same, axis=1)]
    for study, rows in trials.groupby("study"):
        best = per_batch_size(rows).dropna(subset=["best_lr"])
        below = best[best["batch_size"] <= B].sort_values("batch_size")
        if len(below):
            at = below.iloc[-1]
            return float(at["best_lr"]), f"study {study}: best rate at B={int(at['batch_size'])}"
    raise LookupError(
        f"no tuned study of {', '.join(f'{k}={v}' for k, v in want.items())}, target "
        f"{config.target_error:g} covers B={B} under {STUDY_ROOT}: time to target trains at "
        "the study's best rate; run `python -m bench.study` with that model and optimizer "
        "first.")


@pytest.fixture(scope="module")
def tuned_studies(request: pytest.FixtureRequest) -> pd.DataFrame:
    """The tuned studies of the project's ``results/study`` (smoke and test studies left out)."""
    return select_studies(load_study(request.config.rootpath / STUDY_ROOT))[0]


def test_time_to_target(benchmark, ttt_case, profile, trainer_pool, tuned_studies):
    """Train at the tuned study's best rate for this B (``study_rate``) until the validation
    error <= the target."""
    skip_unusable(ttt_case)
    base = ttt_case.config(max_epochs=profile.ttt_max_epochs, max_steps=profile.ttt_max_steps,
                           target_error=profile.target_error,
                           validations_per_epoch=profile.ttt_validations_per_epoch)
    try:
        lr, source = study_rate(tuned_studies, base, ttt_case.batch_size)
    except LookupError as exc:
        pytest.skip(str(exc))
    config = replace(base, learning_rate=lr)
    trainer, upload_s = trainer_pool.get(config)
    results: list[RunResult] = []
    benchmark.group = "time to target"
    benchmark.pedantic(lambda: results.append(train(trainer, config, upload_s)),
                       setup=lambda: reset(trainer, config), rounds=1, iterations=1)
    last = _record(benchmark, trainer, profile, "time_to_target", results, lr_source=source)
    assert last.target_reached is not None
