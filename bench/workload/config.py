"""The run configuration: frozen, keyword-only, validated once before anything is timed."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from bench.workload.backends import BACKENDS
from bench.workload.data_order import ORDERS
from bench.workload.datasets import DATASETS, DEFAULT, get_dataset
from bench.workload.models import MODELS
from bench.workload.optimizers import OPTIMIZERS

__all__ = ["DTYPES", "FULL_BATCH", "GATHERS", "PLACEMENTS", "VARIANTS", "ConfigError",
           "RunConfig", "batch_sizes_for", "placement_applies", "variant_of"]

VARIANTS = ("full", "sgd", "minibatch")
DTYPES = ("float32", "float64")
PLACEMENTS = ("resident", "streamed")
#: How a shuffled epoch's examples reach the step (see ``impls.placement``).
GATHERS = ("epoch", "batch")
KERNELS = ("eager", "cuda-graph", "fused", "rows", "persistent")
INITS = ("zeros", "random")
#: "All n training examples", in a grid of batch sizes: the dataset's n_train once resolved.
FULL_BATCH = "full"


def variant_of(batch_size: int, n_train: int) -> str:
    """The variant a batch size is for ``n_train`` training examples: ``"sgd"`` (B = 1),
    ``"full"`` (B >= n), else ``"minibatch"``. The one place that derives it."""
    if batch_size == 1:
        return "sgd"
    return "full" if batch_size >= n_train else "minibatch"


def batch_sizes_for(sizes: Iterable[int | str], n_train: int) -> tuple[int, ...]:
    """A grid's batch sizes as numbers for ``n_train`` training examples: ``FULL_BATCH``
    becomes n_train, sizes above n_train are left out (they would be full batch again);
    sorted, each once."""
    out = {n_train if B == FULL_BATCH else B for B in sizes}
    bad = [B for B in out if not (_is_int(B) and B >= 1)]
    if bad:
        raise ConfigError(f"Batch sizes must be ints >= 1 or {FULL_BATCH!r}. Got {bad} instead.")
    return tuple(sorted(B for B in out if B <= n_train))


def placement_applies(device: str | None) -> bool:
    """Whether data placement (resident / streamed / pinned) means anything on ``device``:
    only where a host-device copy exists, i.e. not on the CPU. The one place that says so."""
    return device not in (None, "cpu")


def _is_int(v: Any) -> bool:
    """An integer and not a bool (``True`` is no batch size)."""
    return isinstance(v, int) and not isinstance(v, bool)


class ConfigError(ValueError):
    """A run parameter is invalid; the message names it, its value and the valid set."""


def _bad(name: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"The '{name}' parameter of RunConfig must be {expected}. "
                       f"Got {value!r} instead.")


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """One training run: a model trained by an optimizer on one backend, on one dataset.

    The three variants are points on one batch-size axis: ``full`` = one step per epoch over
    all n training examples (B = n), ``sgd`` = per-sample (B = 1), ``minibatch`` = B examples.
    Give the batch size as a number (the variant follows from it and the dataset's n_train,
    ``variant_of``), or name the variant ``full`` / ``sgd`` and leave ``batch_size`` None.

    Budget: at most ``max_epochs`` epochs and, if set, ``max_steps`` optimizer steps; with
    ``early_stopping`` the tutorial's patience rule (in minibatch iterations) may stop sooner;
    with ``target_error`` the run stops once the validation error is at or below it (its first
    passage, ``steps_to_target``), or with ``after_target`` > 0 goes on to
    ``ceil((1 + after_target) * steps_to_target)`` steps (within the budget), so the checks
    after first passage show whether the run stays below the target.
    The validation error is scored ``validations_per_epoch`` times per epoch (at most every
    ``patience // 2`` steps with early stopping, the tutorial's rule).
    """

    backend: str = "numpy"
    dataset: str = DEFAULT             # bench.workload.datasets.DATASETS
    device: str | None = None          # None: the backend's natural device
    model: str = "softmax"             # bench.workload.models.MODELS
    optimizer: str = "sgd"             # bench.workload.optimizers.OPTIMIZERS
    momentum: float = 0.9              # for optimizer "momentum" / "nesterov"
    variant: str | None = None         # None: variant_of(batch_size, the dataset's n_train)
    batch_size: int | None = None      # required unless the variant is full or sgd
    learning_rate: float = 0.13
    l1: float = 0.0
    l2: float = 0.0
    dtype: str = "float32"
    init: str = "zeros"
    seed: int = 1234
    order: str = "shuffle"
    drop_last: bool = True
    placement: str = "resident"
    pinned: bool = False
    gather: str = "epoch"              # a shuffled epoch: one gather per "epoch" or per "batch"
    kernel: str = "eager"              # GPU: torch "cuda-graph"; cupy "fused", "rows", "persistent"
    max_epochs: int = 1
    max_steps: int | None = None
    early_stopping: bool = False
    patience: int = 5000
    patience_increase: int = 2
    improvement_threshold: float = 0.995
    target_error: float | None = None
    after_target: float = 0.0
    validations_per_epoch: int = 1
    eval_batch_size: int = 10_000
    eval_drop_last: bool = False
    pixel_scale: float | None = None   # pixels = byte / pixel_scale; None: the dataset's own

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise _bad("backend", f"one of {tuple(BACKENDS)} (check the spelling)", self.backend)
        devices = BACKENDS[self.backend][1]
        if self.device is not None and self.device not in devices:
            raise _bad("device", f"None or one of {devices} for backend {self.backend!r}",
                       self.device)
        if self.dataset not in DATASETS:
            raise _bad("dataset", f"one of {tuple(DATASETS)} (check the spelling)",
                       self.dataset)
        if self.model not in MODELS:
            raise _bad("model", f"one of {tuple(MODELS)}", self.model)
        if self.optimizer not in OPTIMIZERS:
            raise _bad("optimizer", f"one of {tuple(OPTIMIZERS)}", self.optimizer)
        if not (isinstance(self.momentum, numbers.Real) and 0 <= self.momentum < 1):
            raise _bad("momentum", "a float in [0, 1)", self.momentum)
        for name in ("batch_size", "max_steps", "seed", "max_epochs", "patience"):
            v = getattr(self, name)  # NumPy integers are ints too
            if isinstance(v, numbers.Integral) and not isinstance(v, bool):
                object.__setattr__(self, name, int(v))
        if self.variant is None:
            if not (_is_int(self.batch_size) and self.batch_size >= 1):
                raise _bad("batch_size", "an int >= 1 (or set variant='full' or 'sgd')",
                           self.batch_size)
            object.__setattr__(self, "variant",
                               variant_of(self.batch_size, get_dataset(self.dataset).n_train))
        elif self.variant not in VARIANTS:
            raise _bad("variant", f"one of {VARIANTS}", self.variant)
        if self.variant == "minibatch":
            if not (_is_int(self.batch_size) and self.batch_size >= 1):
                raise _bad("batch_size", "an int >= 1 for the minibatch variant", self.batch_size)
        elif self.variant == "sgd" and self.batch_size not in (None, 1):
            raise _bad("batch_size", "None or 1 for the sgd (per-sample) variant",
                       self.batch_size)
        elif self.variant == "full" and self.batch_size not in (
                None, get_dataset(self.dataset).n_train):
            raise _bad("batch_size", f"None or n_train for the full variant (B = n = "
                       f"{get_dataset(self.dataset).n_train} on {self.dataset})",
                       self.batch_size)
        for name in ("learning_rate",):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise _bad(name, "a finite float > 0", v)
        for name in ("l1", "l2"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise _bad(name, "a finite float >= 0", v)
        if self.dtype not in DTYPES:
            raise _bad("dtype", f"one of {DTYPES}", self.dtype)
        if self.init not in INITS:
            raise _bad("init", f"one of {INITS}", self.init)
        if self.order not in ORDERS:
            raise _bad("order", f"one of {ORDERS}", self.order)
        if self.placement not in PLACEMENTS:
            raise _bad("placement", f"one of {PLACEMENTS}", self.placement)
        if self.kernel not in KERNELS:
            raise _bad("kernel", f"one of {KERNELS}", self.kernel)
        if self.pinned and self.placement != "streamed":
            raise _bad("pinned", "False unless placement='streamed'", self.pinned)
        if self.gather not in GATHERS:
            raise _bad("gather", f"one of {GATHERS}", self.gather)
        if self.gather == "batch" and self.placement != "resident":
            raise _bad("gather", "'epoch' unless placement='resident' (a minibatch is gathered "
                       "where the training set lives)", self.gather)
        for name in ("max_epochs", "eval_batch_size", "patience", "patience_increase",
                     "validations_per_epoch"):
            v = getattr(self, name)
            if not (_is_int(v) and v >= 1):
                raise _bad(name, "an int >= 1", v)
        if self.max_steps is not None and not (_is_int(self.max_steps)
                                               and self.max_steps >= 1):
            raise _bad("max_steps", "None or an int >= 1", self.max_steps)
        if self.target_error is not None and not 0 <= self.target_error <= 1:
            raise _bad("target_error", "None or a float in [0, 1]", self.target_error)
        if not (isinstance(self.after_target, (int, float)) and 0 <= self.after_target < 100):
            raise _bad("after_target", "a float in [0, 100) (a fraction of steps-to-target)",
                       self.after_target)
        if self.pixel_scale is not None and not (isinstance(self.pixel_scale, (int, float))
                                                 and self.pixel_scale > 0):
            raise _bad("pixel_scale", "None or a float > 0", self.pixel_scale)
        if not 0 < self.improvement_threshold <= 1:
            raise _bad("improvement_threshold", "a float in (0, 1]", self.improvement_threshold)
        if not (_is_int(self.seed) and self.seed >= 0):
            raise _bad("seed", "an int >= 0", self.seed)

    def effective_batch_size(self, n_train: int) -> int:
        """B for ``n_train`` training examples; a B above n_train is an error."""
        B = {"full": n_train, "sgd": 1}.get(self.variant, self.batch_size)
        if n_train < B:
            raise ConfigError(f"The 'batch_size' parameter of RunConfig must be an int in "
                              f"[1, {n_train}]. Got {B} instead.")
        return B

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
