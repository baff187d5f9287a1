"""Run one configuration: train with a budget (and early stopping), timing where time goes.

Timing is kept in separate accumulators, each measured where the work happens:

* ``data_move_s``: putting the epoch's examples in order (the reshuffle gather), host clock
  around a synchronised call; on a GPU with resident data the gather runs on the device.
* ``h2d_s``: host-to-device copies inside the run, from device events (``streamed``: every
  minibatch; ``resident``: the epoch's permutation). None on a CPU: there is no device copy.
* ``compute_s``: the SGD steps: host clock around the synchronised steps, less the event-timed
  copies made among them; it includes the per-step launch/interpreter overhead.
* ``d2h_s``: reading the accumulated cost back (a device-to-host sync), once per validation.
* ``eval_s``: scoring validation (and test, at each new best) on the device.
* ``other_s``: the harness's own bookkeeping, so that the parts add up to ``total_s``.

The one-time upload of the data (``upload_s``) happens in ``prepare``, outside the run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bench.record import per_epoch_seconds
from bench.workload.config import RunConfig
from bench.workload.data_order import epoch_permutation
from bench.workload.datasets import Data, load
from bench.workload.early_stopping import EarlyStopping
from impls.base import Trainer
from impls.registry import BackendError, make_trainer, unavailable_reason

__all__ = ["CurvePoint", "RunResult", "TimeSplit", "prepare", "reset", "run", "train"]

_NEVER = 2**62  # patience that never runs out: a fixed budget, validation once per epoch


@dataclass
class TimeSplit:
    """Seconds spent per kind of work during one run (see the module docstring)."""

    compute_s: float = 0.0
    h2d_s: float | None = None
    d2h_s: float = 0.0
    eval_s: float = 0.0
    data_move_s: float = 0.0
    other_s: float = 0.0
    total_s: float = 0.0
    allreduce_s: float | None = None  # data-parallel runs only (bench.distributed); else None

    def training_s(self) -> float:
        """Time spent training so far: everything but evaluation and bookkeeping."""
        return (self.compute_s + (self.h2d_s or 0.0) + self.d2h_s + self.data_move_s
                + (self.allreduce_s or 0.0))

    def parts(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if k != "total_s" and v is not None}


@dataclass
class CurvePoint:
    """The state after a validation: epoch (1-based), optimizer steps so far, the mean training
    NLL of the minibatches since the previous validation (penalty not included), the
    validation error, and the wall time since the run began."""

    epoch: int
    steps: int
    train_nll: float
    valid_error: float
    wall_s: float


@dataclass
class RunResult:
    """What one run produced; ``status`` is 'ok', 'diverged' or 'oom'."""

    config: RunConfig
    batch_size: int
    batches_per_epoch: int
    n_train: int
    status: str = "ok"
    message: str = ""
    epochs: int = 0
    steps: int = 0
    examples: int = 0
    diverged_epoch: int | None = None
    final_valid_error: float = math.nan
    best_valid_error: float = math.nan
    test_error_at_best: float = math.nan
    best_epoch: int | None = None
    target_reached: bool | None = None
    time_to_target_s: float | None = None      # training time: evaluation excluded
    time_to_target_wall_s: float | None = None  # everything, evaluation included
    steps_to_target: int | None = None
    upload_s: float | None = None
    times: TimeSplit = field(default_factory=TimeSplit)
    curve: list[CurvePoint] = field(default_factory=list)

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    @property
    def epoch_equivalents(self) -> float:
        """Optimizer steps run, in epochs (fractional when a step budget cut an epoch)."""
        return self.steps / self.batches_per_epoch

    @property
    def train_epoch_s(self) -> float:
        """Training seconds per epoch, evaluation excluded (see ``per_epoch_seconds``)."""
        t = self.times
        return per_epoch_seconds(t.compute_s + (t.h2d_s or 0.0) + t.d2h_s, t.data_move_s,
                                 self.epoch_equivalents, self.epochs)

    @property
    def examples_per_second(self) -> float:
        """Training examples processed per second of compute (steps only)."""
        return self.examples / self.times.compute_s if self.times.compute_s > 0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        """A flat, JSON-serialisable record (for pytest-benchmark's ``extra_info``)."""
        out: dict[str, Any] = {f"cfg_{k}": v for k, v in self.config.to_dict().items()}
        for k, v in asdict(self).items():
            if k in ("config", "times", "curve"):
                continue
            out[k] = None if isinstance(v, float) and math.isnan(v) else v
        out["diverged"] = self.diverged
        out["examples_per_second"] = self.examples_per_second
        out["epoch_equivalents"] = self.epoch_equivalents
        out.update(asdict(self.times))
        out["curve_epoch"] = [p.epoch for p in self.curve]
        out["curve_steps"] = [p.steps for p in self.curve]
        out["curve_valid_error"] = [p.valid_error for p in self.curve]
        out["curve_train_nll"] = [p.train_nll for p in self.curve]
        out["curve_wall_s"] = [p.wall_s for p in self.curve]
        return out


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or "OutOfMemory" in type(exc).__name__


def prepare(config: RunConfig, data: Data | None = None) -> tuple[Trainer, float | None]:
    """Make the trainer, configure it and place the data; returns (trainer, upload seconds).

    Nothing here is part of a timed run: the upload is reported apart (``upload_s``).
    """
    reason = unavailable_reason(config.backend, config.device, config.model, config.optimizer)
    if reason:  # before any data is loaded (or downloaded)
        raise BackendError(f"RunConfig(backend={config.backend!r}, device={config.device!r}, "
                           f"model={config.model!r}, optimizer={config.optimizer!r}) cannot "
                           f"run here: {reason}")
    if data is None:
        data = load(config.dataset, pixel_scale=config.pixel_scale)
    trainer = make_trainer(config.backend, config.device, dataset=config.dataset,
                           dtype=config.dtype,
                           placement=config.placement, pinned=config.pinned,
                           gather=config.gather,
                           kernel=config.kernel, model=config.model,
                           optimizer=config.optimizer, momentum=config.momentum)
    upload_s = trainer.load(data)
    reset(trainer, config)
    return trainer, upload_s


def reset(trainer: Trainer, config: RunConfig) -> None:
    """Apply the config's step hyperparameters and fresh parameters per the model's spec.

    A loaded trainer can thus be reused for another configuration of the same backend,
    device, dtype and placement without placing the data again.
    """
    trainer.configure(batch_size=config.effective_batch_size(trainer.n_train),
                      learning_rate=config.learning_rate, l1=config.l1, l2=config.l2,
                      drop_last=config.drop_last)
    trainer.set_params(trainer.spec.init(config.init, config.seed))
    trainer.read_cost()
    trainer.synchronize()


def train(trainer: Trainer, config: RunConfig, upload_s: float | None = None,
          on_validation: Callable[[CurvePoint], None] | None = None) -> RunResult:
    """Train from the trainer's current parameters within the config's budget.

    ``on_validation`` (optional) is called with each new point of the validation curve, e.g.
    to show the progress of a long run; its time counts as bookkeeping (``other_s``).

    Never raises for divergence (NaN/inf cost: status 'diverged', with the epoch) or for running
    out of memory (status 'oom'): a sweep goes on.
    """
    n, nb, B = trainer.n_train, trainer.n_batches(), trainer.batch_size
    result = RunResult(config=config, batch_size=B, batches_per_epoch=nb, n_train=n,
                       upload_s=upload_s)
    if nb == 0:
        raise ValueError(f"No minibatch fits: n_train={n}, batch_size={B}, drop_last=True.")
    stopper = EarlyStopping(
        n_train_batches=nb,
        patience=config.patience if config.early_stopping else _NEVER,
        patience_increase=config.patience_increase,
        improvement_threshold=config.improvement_threshold,
        validations_per_epoch=config.validations_per_epoch,
    )
    t = result.times
    t.h2d_s = 0.0 if trainer.is_gpu else None
    max_steps = config.max_steps or _NEVER
    clock = time.perf_counter
    t_start = clock()

    def score(split: str) -> float:
        return trainer.error(split, config.eval_batch_size, config.eval_drop_last)

    def add_h2d() -> float:
        h2d = trainer.take_h2d_seconds()
        if h2d is None:
            return 0.0
        t.h2d_s += h2d
        return h2d

    def validate(epoch: int, iteration: int, cost: float) -> bool:
        """Score validation (and test at a new best); True when the target is reached."""
        t0 = clock()
        valid_error = score("valid")
        if stopper.update(iteration, valid_error):
            stopper.record_test(score("test"))
            result.best_epoch = epoch
        t.eval_s += clock() - t0
        result.curve.append(CurvePoint(epoch, result.steps, cost, valid_error,
                                       clock() - t_start))
        if on_validation is not None:
            on_validation(result.curve[-1])
        if (config.target_error is not None and valid_error <= config.target_error
                and not result.target_reached):
            result.target_reached = True
            result.time_to_target_s = t.training_s()
            result.time_to_target_wall_s = clock() - t_start
            result.steps_to_target = result.steps
            if not config.after_target:
                return True
            nonlocal max_steps                      # go on past first passage
            max_steps = min(max_steps, math.ceil((1 + config.after_target) * result.steps))
        return False

    try:
        done = False
        for epoch in range(1, config.max_epochs + 1):
            t0 = clock()
            trainer.begin_epoch(epoch_permutation(n, epoch, config.order, config.seed))
            trainer.synchronize()
            t.data_move_s += clock() - t0 - add_h2d()
            result.epochs = epoch
            k = 0
            while k < nb and not done:
                first = (epoch - 1) * nb + k           # global iteration index (0-based)
                # Run up to the next validation, the patience limit (the tutorial checks it
                # after every minibatch) or the step budget, whichever comes first.
                stop = min(nb, k + max_steps - result.steps,
                           min(stopper.next_validation(first), stopper.patience)
                           - (epoch - 1) * nb + 1)
                t0 = clock()
                first_k = k
                trainer.train_batches(k, stop)
                t.compute_s += clock() - t0 - add_h2d()
                result.steps += stop - k
                result.examples += min(stop * B, n) - k * B
                last = (epoch - 1) * nb + stop - 1
                k = stop
                t0 = clock()
                cost = trainer.read_cost()
                t.d2h_s += clock() - t0
                if not math.isfinite(cost):
                    result.status = "diverged"
                    result.diverged_epoch = epoch
                    result.message = (f"the training cost became {cost} in epoch {epoch}: the "
                                      f"mean NLL of steps {result.steps - (stop - first_k) + 1} to "
                                      f"{result.steps} (read once after them) is not finite; "
                                      "lower the learning rate")
                    done = True
                    break
                if stopper.should_validate(last):
                    done = validate(epoch, last, cost)
                if stopper.should_stop(last) or result.steps >= max_steps:
                    done = True
            if done:
                break
        cut_short = result.steps >= max_steps and (not result.curve
                                                   or result.curve[-1].steps != result.steps)
        if result.status == "ok" and cut_short:
            validate(result.epochs, last, cost)  # the step budget ended between validations
    except Exception as exc:
        if not _is_oom(exc):
            raise
        result.status = "oom"
        result.message = f"{type(exc).__name__}: {exc}"
    t.total_s = clock() - t_start
    t.other_s = t.total_s - sum(v for k, v in t.parts().items() if k != "other_s")
    if config.target_error is not None and not result.target_reached:
        result.target_reached = False
    if result.curve:
        result.final_valid_error = result.curve[-1].valid_error
    result.best_valid_error = stopper.best_valid_error if stopper.history else math.nan
    if stopper.test_error_at_best is not None:
        result.test_error_at_best = stopper.test_error_at_best
    return result


def run(config: RunConfig, data: Data | None = None) -> RunResult:
    """Prepare and train once: the one-call way to run a configuration."""
    trainer, upload_s = prepare(config, data)
    return train(trainer, config, upload_s)


def summarize_rounds(results: list[RunResult]) -> dict[str, float | None]:
    """Median of each time-split part over repeated rounds of the same configuration."""
    out: dict[str, float | None] = {}
    for key in asdict(TimeSplit()):
        vals = [getattr(r.times, key) for r in results]
        out[f"median_{key}"] = None if any(v is None for v in vals) else float(np.median(vals))
    return out
