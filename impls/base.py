"""The one interface every implementation satisfies: Trainer = model x optimizer x placement.

* **model**: the framework family's operations for a model spec (``impls/xp/`` for NumPy and
  CuPy, ``impls/pytorch/``): parameters in the family's layout, the gradient of the cost
  (mean NLL + penalties) into preallocated buffers, the error count.
* **optimizer**: a rule from ``bench.workload.optimizers``, written once for every framework.
* **placement**: where the data lives and how minibatches reach the arithmetic
  (``impls.placement``).

The generic step is ``grads <- model.gradient(params, X, y)``, then ``optimizer.step(params,
grads)``. Fast paths are ``Specialisation``s: each declares its domain (models, optimizers,
devices, batch sizes, kernel, dtypes) and replaces the step, or a whole range of steps, where
it applies; elsewhere the generic step runs. ``generic=True`` turns them off (tests compare the
two on each specialisation's domain).

The harness (``bench.harness``) drives a trainer: ``load`` once, then per epoch ``begin_epoch``
with the epoch's permutation and ``train_batches`` over ranges of minibatches, reading the cost
and scoring the validation set between ranges. A trainer knows nothing of pytest, timing policy
or reports.
"""

from __future__ import annotations

import importlib
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

import numpy as np

from bench.workload.config import placement_applies
from bench.workload.datasets import DEFAULT, Data
from bench.workload.models import Params, model_spec
from bench.workload.optimizers import OPTIMIZERS, make_optimizer
from bench.workload.optimizers.base import zeros_like
from impls.placement import Placement

__all__ = ["Specialisation", "Trainer"]


@dataclass(frozen=True)
class Specialisation:
    """A fast path and the domain it declares.

    ``method`` names the trainer method: with ``kind="step"`` it replaces one step
    ``(X, y) -> None`` (any placement); with ``kind="batches"`` it runs a range of steps
    ``(start, stop) -> None`` on resident data. A batches path reads either the epoch's
    gathered arrays (``gathers``: the ``gather`` modes it handles; "batch" only if it takes its
    minibatches from ``minibatches()``) or, with ``reads_order``, the unshuffled training set
    through the epoch's permutation ``_order`` itself, so no gather runs at all.
    """

    name: str
    method: str
    kind: str = "step"
    models: tuple[str, ...] = ("softmax",)
    optimizers: tuple[str, ...] = ("sgd",)
    devices: tuple[str, ...] = ("cpu", "cuda")
    min_batch: int = 1
    max_batch: int | None = None
    kernel: str = "eager"
    dtypes: tuple[str, ...] = ("float32", "float64")
    gathers: tuple[str, ...] = ("epoch",)
    reads_order: bool = False

    def covers(self, t: Trainer) -> bool:
        """Whether this fast path runs ``t``'s configuration."""
        # an eager step path also serves inside a batches kernel (a captured CUDA graph replays
        # the step eager runs; a one-block kernel's partial last batch runs it)
        kernel = t.kernel == self.kernel or (self.kind == "step" and self.kernel == "eager")
        return (t.model in self.models and t.optimizer_name in self.optimizers
                and t.device in self.devices and kernel
                and t.dtype in self.dtypes and self.min_batch <= t.batch_size
                and (self.max_batch is None or t.batch_size <= self.max_batch)
                and (self.kind == "step" or (not t.streams and (
                    self.reads_order or t.gather in self.gathers))))

    def domain(self) -> str:
        top = "any" if self.max_batch is None else str(self.max_batch)
        return (f"{self.name}: model {'/'.join(self.models)}, optimizer "
                f"{'/'.join(self.optimizers)}, device {'/'.join(self.devices)}, "
                f"B {self.min_batch}..{top}, dtype {'/'.join(self.dtypes)}")


class Trainer(Placement):
    """A model trained by an optimizer with one framework on one device."""

    backend: ClassVar[str]
    devices: ClassVar[tuple[str, ...]]
    #: Ways to run the steps: "eager" everywhere; backends add their fast paths.
    kernels: ClassVar[tuple[str, ...]] = ("eager",)
    #: The framework family's model operations: a module with an ``OPS`` registry.
    ops_module: ClassVar[str]
    #: The fast paths, tried in order; the first "step" and the first "batches" that cover the
    #: configuration are used.
    specialisations: ClassVar[tuple[Specialisation, ...]] = ()
    #: Seconds spent compiling this configuration's steps before any timed one (a JIT
    #: backend's warm-up, reported apart); None where nothing is compiled ahead.
    compile_s: float | None = None
    #: Models / optimizers this backend runs (None: all its family has / all there are).
    models: ClassVar[tuple[str, ...] | None] = None
    optimizers: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, *, device: str, dtype: str = "float32", placement: str = "resident",
                 pinned: bool = False, kernel: str = "eager", model: str = "softmax",
                 optimizer: str = "sgd", momentum: float = 0.9, generic: bool = False,
                 gather: str = "epoch", dataset: str = DEFAULT) -> None:
        super().__init__(device=device, dtype=dtype, placement=placement, pinned=pinned,
                         gather=gather)
        if kernel not in self.kernels:
            raise ValueError(f"Backend {self.backend!r} has no kernel {kernel!r}; choose one "
                             f"of {', '.join(self.kernels)}.")
        if kernel != "eager" and (not placement_applies(device) or placement != "resident"):
            raise ValueError(f"kernel={kernel!r} runs only on a GPU with placement='resident' "
                             f"(got device={device!r}, placement={placement!r}).")
        reason = self.unsupported_reason(model, optimizer)
        if reason:
            raise ValueError(reason)
        self.kernel = kernel
        self.model = model
        self.dataset = dataset
        self.spec = model_spec(model, dataset)
        self.ops = self.ops_registry()[model](self)
        self.optimizer_name = optimizer
        self.momentum = float(momentum)
        self.generic = bool(generic)
        self.params: dict[str, Any] = {}
        self.grads: dict[str, Any] = {}
        self.fast_path: str | None = None
        self._batches_spec: Specialisation | None = None
        self.configure(batch_size=1, learning_rate=0.1)

    def load(self, data: Data) -> float | None:
        """Place the data (``Placement.load``) after checking that its width is the one the
        model was made for (the trainer's dataset's D)."""
        width = data.train.x.shape[1]
        if width != self.spec.n_in:
            raise ValueError(f"The data has {width} features per example, but this trainer's "
                             f"{self.model} was made for dataset {self.dataset!r} with "
                             f"{self.spec.n_in}. Make the trainer with the data's dataset "
                             "(dataset=...).")
        return super().load(data)

    # ------------------------------------------------------------------ what runs where
    @classmethod
    def ops_registry(cls) -> dict[str, Any]:
        """Model name -> the family's operations class (imported on first use)."""
        return _ops(cls.ops_module)

    @classmethod
    def unavailable_reason(cls, device: str) -> str | None:
        """Why this backend cannot run on ``device`` here, or None when it can."""
        return None

    @classmethod
    def unsupported_reason(cls, model: str, optimizer: str) -> str | None:
        """Why this backend does not run (model, optimizer), or None when it does."""
        family = importlib.import_module(cls.ops_module).OPS
        if model not in family:
            from bench.workload.models import MODELS

            if model not in MODELS:
                return (f"Unknown model {model!r}; choose one of {', '.join(MODELS)} "
                        "(check the spelling).")
            return f"{cls.backend}: no operations for model {model!r} in {cls.ops_module}."
        if optimizer not in OPTIMIZERS:
            return (f"Unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)} "
                    "(check the spelling).")
        if cls.models is not None and model not in cls.models:
            return (f"{cls.backend}: runs model {'/'.join(cls.models)} only (a compiled "
                    f"reference, not a general backend); got model={model!r}.")
        if cls.optimizers is not None and optimizer not in cls.optimizers:
            return (f"{cls.backend}: runs optimizer {'/'.join(cls.optimizers)} only (a "
                    f"compiled reference, not a general backend); got optimizer={optimizer!r}.")
        return None

    def _choose(self, kind: str) -> Specialisation | None:
        """The first fast path of ``kind`` covering this configuration; with ``generic`` only
        an explicitly requested kernel (its steps then are the generic ones)."""
        return next((s for s in self.specialisations if s.kind == kind and s.covers(self)
                     and not (self.generic and s.kernel == "eager")), None)

    def __repr__(self) -> str:
        where = (f", placement={self.placement!r}, pinned={self.pinned}, "
                 f"kernel={self.kernel!r}") if self.is_gpu else ""
        return (f"{type(self).__name__}(device={self.device!r}, dtype={self.dtype!r}, "
                f"model={self.model!r}, optimizer={self.optimizer!r}, B={self.batch_size}, "
                f"fast_path={self.fast_path!r}{where})")

    @property
    def reads_order(self) -> bool:
        """Whether the chosen batches path reads the examples through ``_order`` itself."""
        spec = getattr(self, "_batches_spec", None)
        return bool(spec and spec.reads_order)

    # ------------------------------------------------------------------ framework primitives
    @abstractmethod
    def _param(self, host: np.ndarray) -> Any:
        """A device array of this trainer's dtype holding ``host`` (a fresh copy)."""

    @abstractmethod
    def _to_numpy(self, a: Any) -> np.ndarray:
        """``a`` as a float64 host array."""

    @abstractmethod
    def _reset_cost(self) -> None:
        """Zero the on-device cost accumulator."""

    @abstractmethod
    def _cost_sum(self) -> float:
        """Read the cost accumulator back to the host (a device-to-host sync)."""

    def _to_float(self, scalar: Any) -> float:
        return float(scalar)

    # ------------------------------------------------------------------ configuration
    def _make_optimizer(self) -> Any:
        """A fresh optimizer of this configuration (a functional family returns its own
        form of the same rule)."""
        return make_optimizer(self.optimizer_name, self.learning_rate, momentum=self.momentum)

    def configure(self, *, batch_size: int, learning_rate: float, l1: float = 0.0,
                  l2: float = 0.0, drop_last: bool = True) -> None:
        """Set the step's hyperparameters and choose the fast paths (outside anything timed)."""
        self.batch_size = int(batch_size)
        self.learning_rate = float(learning_rate)
        self.l1 = float(l1)
        self.l2 = float(l2)
        self.drop_last = bool(drop_last)
        key = (self.optimizer_name, self.learning_rate, self.momentum)
        if getattr(self, "_optimizer_key", None) != key:  # kept otherwise: graphs hold its state
            self.optimizer = self._make_optimizer()
            self._optimizer_key = key
        if self.params:
            self.optimizer.init_state(self.params)
        self._reset_cost()
        self._n_cost = 0
        step, batches = self._choose("step"), self._choose("batches")
        self._batches_spec = batches
        self._make_batch_buffers()
        if self.kernel != "eager" and batches is None:
            domains = "; ".join(s.domain() for s in self.specialisations
                                if s.kernel == self.kernel)
            raise ValueError(f"kernel={self.kernel!r} does not run this configuration (model "
                             f"{self.model!r}, optimizer {self.optimizer_name!r}, B "
                             f"{self.batch_size}, dtype {self.dtype!r}); it covers {domains}. "
                             "Use kernel='eager'.")
        self._step: Callable[[Any, Any], None] = (getattr(self, step.method) if step
                                                  else self._generic_step)
        self._batches: Callable[[int, int], None] = (getattr(self, batches.method) if batches
                                                     else self._loop)
        self.batches_path = batches.name if batches else None
        self.step_path = step.name if step else None
        self.fast_path = "+".join(s.name for s in (batches, step) if s) or None

    def set_params(self, params: Params) -> None:
        """Set the parameters from float64 host arrays (the spec's names and shapes), cast to
        this trainer's dtype and layout; resets the optimizer's state."""
        missing = set(self.spec.param_names) - set(params)
        if missing:
            raise ValueError(f"set_params: model {self.model!r} needs parameters "
                             f"{', '.join(self.spec.param_names)}; missing {sorted(missing)}.")
        self.params = self.ops.to_device(params)
        self.grads = {k: zeros_like(v) for k, v in self.params.items()}
        self.optimizer.init_state(self.params)

    def get_params(self, evaluated: bool = False) -> Params:
        """The parameters as float64 host arrays in the spec's layout; ``evaluated``: those the
        errors are scored with (the average, for averaged SGD)."""
        return self.ops.to_host(self.optimizer.eval_params(self.params) if evaluated
                                else self.params)

    # ------------------------------------------------------------------ training
    def _generic_step(self, X: Any, y: Any) -> None:
        """``grads <- dcost/dparams`` on (X, y); ``optimizer.step``; add the batch's mean NLL."""
        self._cost += self.ops.gradient(self.params, X, y, self.l1, self.l2, self.grads)
        self.optimizer.step(self.params, self.grads)

    def _loop(self, start: int, stop: int) -> None:
        """The steps of minibatches ``start .. stop - 1``, one ``_step`` each."""
        step = self._step
        for X, y in self.minibatches(start, stop):
            step(X, y)

    def train_batches(self, start: int, stop: int) -> None:
        """Steps on minibatches ``start .. stop - 1`` of the epoch; returns when done."""
        self._batches(start, stop)
        self._n_cost += stop - start
        self.synchronize()

    def read_cost(self) -> float:
        """Mean minibatch NLL since the last read (one device-to-host read-back); the penalty
        is not included."""
        total = self._cost_sum()
        n, self._n_cost = self._n_cost, 0
        self._reset_cost()
        return total / n if n else float("nan")

    def _count_errors(self, X: Any, y: Any) -> Any:
        """Misclassified rows of (X, y), left on the device."""
        return self.ops.errors(self.optimizer.eval_params(self.params), X, y)

    def error(self, split: str = "valid", batch_size: int = 10_000,
              drop_last: bool = False) -> float:
        """Zero-one error on ``split`` scored in batches of ``batch_size`` on the device.

        With ``drop_last`` only whole batches are scored (the tutorial scores 9,600 of 10,000).
        """
        X, y = self._data[split]
        n = len(y)
        stop = (n // batch_size) * batch_size if drop_last else n
        if stop == 0:
            raise ValueError(f"error(): batch_size={batch_size} exceeds the {n} examples of "
                             f"'{split}' with drop_last=True; nothing would be scored.")
        wrong = None
        for lo in range(0, stop, batch_size):
            c = self._count_errors(X[lo : min(lo + batch_size, stop)],
                                   y[lo : min(lo + batch_size, stop)])
            wrong = c if wrong is None else wrong + c
        return self._to_float(wrong) / stop


@cache
def _ops(ops_module: str) -> dict[str, Any]:
    registry = importlib.import_module(ops_module).OPS
    return {name: _load(target) for name, target in registry.items()}


def _load(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)
