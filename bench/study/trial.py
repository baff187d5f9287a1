"""One trial of the study: train (B, lr, seed) to the target or a step budget, in a worker.

A trial is deterministic given its ``TrialSpec``: the data order comes from the seed
(``bench.workload.data_order``), the initialisation is the config's ``init`` (zeros by default, so
the seed then changes the data order only), and every worker runs its BLAS, PyTorch and Numba
on **one thread** so that a trial's float32 rounding, and hence its steps, do not depend on
where it runs (in-process, a process pool, a Ray task) nor on the trials that ran before it in
the same process (``run_trial`` imports the backend's framework before ``thread_limit`` pins
every pool; a pool worker is pinned for good when it starts, ``pin_process_threads``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.workload.config import RunConfig, variant_of
from bench.workload.datasets import DEFAULT, get_dataset, load

__all__ = ["LR_UNITS_PER_DECADE", "THREAD_ENV", "TrialSpec", "lr_from_units",
           "pin_process_threads", "run_trial", "thread_limit"]

#: The learning-rate lattice: lr = 10 ** (units / 8); a half-decade is 4 units.
LR_UNITS_PER_DECADE = 8


def lr_from_units(units: int) -> float:
    """The learning rate at lattice point ``units``: ``10 ** (units / 8)``."""
    return 10.0 ** (units / LR_UNITS_PER_DECADE)


#: TrialSpec fields left out of its key at these values: keys from before them stay valid.
_KEY_DEFAULTS = {"dataset": DEFAULT, "after_target": 0.0}


@dataclass(frozen=True, kw_only=True)
class TrialSpec:
    """Everything that determines a trial's outcome (``phase`` only labels why it ran).

    ``lr_units`` places the learning rate on the log lattice (``lr = 10 ** (lr_units / 8)``) so
    that keys are exact; ``max_steps`` is the step budget of this trial, lowered to the fewest
    steps already found at its B (a trial that passes them cannot lower the minimum);
    ``validations_per_epoch`` sets how often the validation error is scored
    (every ``n_batches // validations_per_epoch`` steps); ``extra_config`` is merged into the
    ``RunConfig`` (e.g. ``{"optimizer": "momentum", "momentum": 0.9}``); ``dataset`` names the
    data (``bench.workload.datasets``); ``after_target`` > 0 (a held-out run) trains on past
    first passage to ``(1 + after_target)`` x its steps-to-target, so its record shows how
    steady the run stays below the target (``oscillation_share``).
    """

    batch_size: int
    lr_units: int
    seed: int
    backend: str
    max_steps: int
    budget: int
    validations_per_epoch: int
    target_error: float = 0.08
    dtype: str = "float32"
    init: str = "zeros"
    order: str = "shuffle"
    extra_config: tuple[tuple[str, Any], ...] = ()
    phase: str = "search"
    dataset: str = DEFAULT
    after_target: float = 0.0

    @property
    def learning_rate(self) -> float:
        return lr_from_units(self.lr_units)

    @property
    def n_train(self) -> int:
        return get_dataset(self.dataset).n_train

    @property
    def variant(self) -> str:
        return variant_of(self.batch_size, self.n_train)

    def key(self) -> str:
        """A stable id of the outcome-determining fields (everything but ``phase``; fields
        at their ``_KEY_DEFAULTS`` are left out, so keys from before them stay valid)."""
        fields = {k: v for k, v in asdict(self).items()
                  if k != "phase" and not (k in _KEY_DEFAULTS and v == _KEY_DEFAULTS[k])}
        text = json.dumps(fields, sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def run_config(self) -> RunConfig:
        """The harness configuration of this trial (raises ConfigError for a bad field)."""
        n_batches = max(1, self.n_train // self.batch_size)
        return RunConfig(backend=self.backend, dataset=self.dataset, batch_size=self.batch_size,
                         learning_rate=self.learning_rate, dtype=self.dtype, init=self.init,
                         seed=self.seed, order=self.order, target_error=self.target_error,
                         after_target=self.after_target,
                         max_steps=self.max_steps,
                         max_epochs=math.ceil(self.max_steps / n_batches) + 1,
                         validations_per_epoch=self.validations_per_epoch,
                         **dict(self.extra_config))


@dataclass
class _WorkerState:
    data: dict[str, Any] = field(default_factory=dict)
    trainers: dict[tuple[str, str, str, str], Any] = field(default_factory=dict)


_STATE = _WorkerState()


#: Environment variables that size the thread pools of libraries loaded after they are set.
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
#: XLA's flags for one thread.
XLA_ONE_THREAD = ("--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1")


def pin_process_threads(n: int = 1) -> None:
    """Pin a process that only runs trials (a pool worker) to ``n`` threads for good, before
    its first trial: the environment sizes the pools of libraries loaded later (OpenMP, BLAS,
    Numba, PyTorch's intra-op pool), ``threadpoolctl`` those already loaded."""
    from threadpoolctl import threadpool_limits

    for var in THREAD_ENV:
        os.environ[var] = str(n)
    if n == 1:  # XLA (JAX) reads its pool's size from its flags when it starts
        os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), *XLA_ONE_THREAD])
    threadpool_limits(limits=n)


@contextmanager
def thread_limit(n: int) -> Iterator[None]:
    """Run BLAS/OpenMP, PyTorch and Numba (those imported) on ``n`` threads inside; a trial
    imports its backend's framework before it enters (``run_trial``), so its pools are pinned
    even in the first trial of a process.

    Trials run at one thread: two workers on two cores then never compete for threads, and a
    trial's float32 rounding (and so its steps) does not depend on the process it runs in nor
    on the trials it ran before.
    """
    from threadpoolctl import threadpool_limits

    torch, numba = sys.modules.get("torch"), sys.modules.get("numba")
    old_torch = torch.get_num_threads() if torch else None
    old_numba = numba.get_num_threads() if numba else None
    with threadpool_limits(limits=n):
        if torch:
            torch.set_num_threads(n)
            with suppress(RuntimeError):    # possible only before its first parallel work
                torch.set_num_interop_threads(n)
        if numba:
            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        try:
            yield
        finally:
            if torch:
                torch.set_num_threads(old_torch)
            if numba:
                numba.set_num_threads(old_numba)


def _data(dataset: str) -> Any:
    if dataset not in _STATE.data:
        _STATE.data[dataset] = load(dataset)
    return _STATE.data[dataset]


def run_trial(spec: TrialSpec, noise: bool = True) -> dict[str, Any]:
    """Run one trial (one thread, this process's cached data and trainer) and return its record.

    The record's ``status``: ``reached`` (the target, at ``steps_to_target`` steps),
    ``capped`` (stopped at ``max_steps`` < ``budget``: it could not beat the fewest steps
    already found at its B), ``budget`` (the full step budget ran out), ``diverged`` or ``oom``.
    With ``noise``, a reached trial also records the exact gradient noise scale of the training
    set at the parameters where it reached the target, where ``_takes_noise_scale`` says so.
    """
    from bench.harness import prepare, reset, train
    from impls.registry import trainer_class

    cfg = spec.run_config()
    data = _data(spec.dataset)
    trainer_class(cfg.backend, cfg.device)  # its framework imported, so that it is pinned too
    with thread_limit(1):
        t0 = time.perf_counter()
        tkey = (spec.dataset, spec.backend, spec.dtype,
                json.dumps(dict(spec.extra_config), sort_keys=True))
        trainer = _STATE.trainers.get(tkey)
        if trainer is None:
            trainer, _ = prepare(cfg, data)
            _STATE.trainers[tkey] = trainer
        else:
            reset(trainer, cfg)
        at_passage: dict[str, Any] = {}       # the parameters at first passage

        def keep(point: Any) -> None:
            if not at_passage and point.valid_error <= spec.target_error:
                at_passage.update(trainer.get_params())

        noise = noise and _takes_noise_scale(spec)
        result = train(trainer, cfg, on_validation=keep if noise else None)
        wall_s = time.perf_counter() - t0
    if result.status != "ok":
        status = result.status
    elif result.target_reached:
        status = "reached"
    else:
        status = "capped" if spec.max_steps < spec.budget else "budget"
    rec: dict[str, Any] = {
        "record": "trial", "key": spec.key(), **asdict(spec),
        "extra_config": json.dumps(dict(spec.extra_config), sort_keys=True),
        "learning_rate": spec.learning_rate, "variant": spec.variant, "status": status,
        "steps_to_target": result.steps_to_target, "steps": result.steps,
        "epochs": result.epochs, "batches_per_epoch": result.batches_per_epoch,
        "validation_interval": max(1, result.batches_per_epoch // spec.validations_per_epoch),
        "validations": len(result.curve),
        "best_valid_error": _num(result.best_valid_error),
        "final_valid_error": _num(result.final_valid_error),
        "time_to_target_s": result.time_to_target_s,
        "train_s": result.times.training_s(), "eval_s": result.times.eval_s,
        "wall_s": wall_s, "message": result.message, "pid": os.getpid(),
        **_after_passage(result.curve, spec),
    }
    if noise and status == "reached":
        rec.update(_noise_at_passage(spec, data, at_passage))
    return rec


def _takes_noise_scale(spec: TrialSpec) -> bool:
    """Whether a reached trial records the noise scale: softmax regression's closed form on
    every trial; the MLP's per-example gradients (~8 s a trial) on the held-out runs only
    (``after_target``), the ones S(B) is read from."""
    model = dict(spec.extra_config).get("model", "softmax")
    return model == "softmax" or (model == "mlp" and spec.after_target > 0)


def _noise_at_passage(spec: TrialSpec, data: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The exact gradient noise scale of the training set at the first-passage ``params``
    (``bench.workload.noise_scale``, ``bench.workload.noise_scale_mlp``); the MLP's only with
    PyTorch, else the record says why it has none."""
    if dict(spec.extra_config).get("model", "softmax") == "softmax":
        from bench.workload.noise_scale import noise_scale

        with thread_limit(1):
            ns = noise_scale(data.train.x, data.train.y, params["W"], params["b"])
    else:
        from bench.workload.noise_scale_mlp import mlp_noise_scale

        try:
            with thread_limit(1):
                ns = mlp_noise_scale(data.train.x, data.train.y, params)
        except ImportError as exc:
            return {"noise_note": str(exc)}
    return {"grad_sq_norm": ns.grad_sq_norm, "trace_cov": ns.trace_cov, "b_simple": ns.b_simple}


def _after_passage(curve: list[Any], spec: TrialSpec) -> dict[str, Any]:
    """How steady the run stayed after first passage: the share of later checks above the
    target (``bench.analysis.race.oscillation_share``) and how many checks it is over; a run
    that went on past the target (``after_target``) also keeps its whole validation curve."""
    from bench.analysis.race import oscillation_share

    errors = [p.valid_error for p in curve]
    first = next((i for i, e in enumerate(errors) if e <= spec.target_error), None)
    share = oscillation_share(errors, spec.target_error)
    return {"oscillation_share": None if math.isnan(share) else share,
            "post_passage_checks": None if first is None else len(errors) - first - 1,
            "valid_curve": json.dumps([[p.steps, p.valid_error] for p in curve])
            if spec.after_target else None}


def _num(v: float) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
