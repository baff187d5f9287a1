"""JAX on the CPU (or a CUDA GPU with a CUDA jaxlib): the peer a user reaches for to run SGD
fast, as the fourth framework family (``impls/jaxfn/``: models and optimizer rules as pure
functions of pytrees, nothing updated in place).

One compiled call runs a whole range of steps (``jax-compiled-range``): ``lax.fori_loop`` over
the minibatches, each step gathering its B rows through the epoch's permutation inside the
compiled function (no gather of the training set, as Numba's loop reads rows where they lie),
then ``(nll, grads) = value_and_grad``, ``(params, state) = rule.update``; the parameters, the
optimizer's state and the cost are the loop's carry, donated to it. The loop's bounds are
traced values, so one compilation serves every range of an epoch (a ``lax.scan`` has a static
length: each distinct range between two validations would compile anew); lr, l1, l2 and the
momentum are traced too, so a learning-rate grid compiles nothing more.

Compilation is warm-up, timed apart: ``configure`` compiles the functions of the configuration
(the range through a permutation and the in-order one, the partial last batch's step, or the
generic step) with empty ranges, before anything is timed, and keeps the seconds that took in
``compile_s`` (a configuration compiled before keeps its first compile time).

float64 needs ``jax_enable_x64``: each trainer runs its JAX calls inside
``jax.enable_x64(dtype == "float64")`` (a context, not the global flag), so float32 runs are
float32 whatever the process's setting and nothing global changes.

The order of arithmetic is XLA's (fused reductions, autodiff's order of the backward pass), so
steps equal the reference to float32 rounding, not bit for bit; the tutorial protocol (B = 600,
74 epochs, float32) still reproduces the published 7.500000 % / 7.489583 % exactly
(``tests/test_tutorial.py``): its validation errors are counts, which rounding at this
learning rate does not change.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any

import jax
import numpy as np
from jax import lax

from bench.workload.datasets import Data
from bench.workload.models import Params
from impls.base import Specialisation, Trainer
from impls.jaxfn.optimizers import RULES, FunctionalOptimizer

__all__ = ["COMPILED_RANGE", "JaxTrainer"]

COMPILED_RANGE = Specialisation("jax-compiled-range", "_compiled_batches", kind="batches",
                                models=("softmax", "mlp"), optimizers=tuple(RULES),
                                reads_order=True)


def _in_precision(method: Callable) -> Callable:
    """Run ``method`` with JAX's 64-bit types on exactly when the trainer is float64."""
    @wraps(method)
    def wrapped(self: JaxTrainer, *args: Any, **kwargs: Any) -> Any:
        with jax.enable_x64(self.dtype == "float64"):
            return method(self, *args, **kwargs)
    return wrapped


@jax.jit
def _take(a: jax.Array, index: jax.Array) -> jax.Array:
    """``a[index]`` along the first axis (the permutation is valid by construction)."""
    return a.at[index].get(mode="promise_in_bounds", unique_indices=True)


class JaxTrainer(Trainer):
    backend = "jax"
    devices = ("cpu", "cuda")
    ops_module = "impls.jaxfn"
    specialisations = (COMPILED_RANGE,)
    optimizers = tuple(RULES)

    def __init__(self, **kwargs: Any) -> None:
        self._device = jax.devices("gpu" if kwargs.get("device") == "cuda" else "cpu")[0]
        self._compiled: dict[tuple, Callable] = {}
        self._compile_seconds: dict[tuple, float] = {}
        self._h2d_s = 0.0
        with jax.enable_x64(kwargs.get("dtype", "float32") == "float64"):
            super().__init__(**kwargs)

    @classmethod
    def unavailable_reason(cls, device: str) -> str | None:
        if device == "cuda":
            try:
                jax.devices("gpu")
            except RuntimeError:
                return ("jax: no CUDA device (jax.devices('gpu') found none; a CUDA jaxlib is "
                        "pip install 'jax[cuda12]')")
        return None

    def _make_optimizer(self) -> FunctionalOptimizer:
        return FunctionalOptimizer(self.optimizer_name, self.learning_rate, self.momentum)

    # ------------------------------------------------------------------ parameters and cost
    def _put(self, host: np.ndarray) -> jax.Array:
        """A device copy of ``host`` (labels and indices as int32); on a GPU the copy is timed
        as host-to-device by the host clock around a blocking copy (JAX has no device
        events)."""
        if host.dtype.kind in "iu":
            host = host.astype(np.int32)
        t0 = time.perf_counter()
        out = jax.device_put(host, self._device)
        if self.is_gpu:
            out.block_until_ready()
            self._h2d_s += time.perf_counter() - t0
        return out

    def _param(self, host: np.ndarray) -> jax.Array:
        return jax.device_put(np.array(host, dtype=self.dtype), self._device)

    def _to_numpy(self, a: jax.Array) -> np.ndarray:
        return np.array(a, dtype=np.float64)

    def _reset_cost(self) -> None:
        self._cost = jax.device_put(np.zeros((), self.dtype), self._device)

    def _cost_sum(self) -> float:
        return float(self._cost)

    @_in_precision
    def set_params(self, params: Params) -> None:
        if set(self.spec.param_names) - set(params):
            super().set_params(params)  # raises the shared error
        self.params = self.ops.to_device(params)
        self.optimizer.init_state(self.params)
        self.optimizer.state = self._commit(self.optimizer.state)

    # ------------------------------------------------------------------ memory primitives
    def _to_device(self, host: np.ndarray) -> jax.Array:
        return self._put(host)

    def _host(self, host: np.ndarray, pinned: bool) -> np.ndarray:
        return host

    def _empty_like(self, a: Any) -> Any:
        return np.empty_like(a)

    def _index(self, permutation: np.ndarray, on_device: bool) -> jax.Array:
        return self._put(permutation)

    def _gather(self, src: Any, index: Any, out: Any) -> None:
        raise TypeError("JAX arrays are immutable: the JAX trainer gathers into new arrays "
                        "(begin_epoch, minibatches), never into a buffer.")

    def _copy_h2d(self, dst: Any, src: Any) -> None:
        """A copy of ``src``'s bytes to the device (a new array: ``dst`` is immutable), for
        the transfer micro-benchmark."""
        self._put(np.asarray(src))

    def _make_batch_buffers(self) -> None:
        """None: each minibatch is a new array (``minibatches``)."""

    def _place_order(self, permutation: np.ndarray) -> jax.Array:
        return self._put(permutation)

    def take_h2d_seconds(self) -> float | None:
        if not self.is_gpu:
            return None
        seconds, self._h2d_s = self._h2d_s, 0.0
        return seconds

    @_in_precision
    def synchronize(self) -> None:
        """Wait for the queued work: JAX dispatches asynchronously on the CPU too."""
        jax.block_until_ready((self.params, self.optimizer.state, self._cost))

    # ------------------------------------------------------------------ the data side
    @_in_precision
    def load(self, data: Data) -> float | None:
        self._compiled.clear()
        self._compile_seconds.clear()
        return super().load(data)

    @_in_precision
    def begin_epoch(self, permutation: np.ndarray | None) -> None:
        """Reading through the permutation (the compiled range, ``gather='batch'``) keeps the
        training set as it is; the generic path with ``gather='epoch'`` gathers the epoch once
        into new arrays (in host memory when streamed)."""
        if permutation is None or self.reads_order or self.gathers_batches:
            super().begin_epoch(permutation)
            return
        self._order = None
        if self.streams:
            self._epoch = tuple(np.take(a, permutation, axis=0) for a in self._data["train"])
        else:
            index = self._place_order(permutation)
            self._epoch = tuple(_take(a, index) for a in self._data["train"])

    def minibatches(self, start: int, stop: int) -> Iterator[tuple[Any, Any]]:
        """Minibatches ``start .. stop - 1``: slices of the epoch, gathers through the
        permutation (``gather='batch'``), or copies to the device when streamed."""
        X, y = self._epoch
        B, n = self.batch_size, self._n_train
        for k in range(start, stop):
            lo, hi = k * B, min(k * B + B, n)
            if self._order is not None:
                index = self._order[lo:hi]
                yield _take(X, index), _take(y, index)
            elif self.streams:
                yield self._put(X[lo:hi]), self._put(y[lo:hi])
            else:
                yield X[lo:hi], y[lo:hi]

    # ------------------------------------------------------------------ configuration
    @_in_precision
    def configure(self, **kwargs: Any) -> None:
        """Set the hyperparameters and compile this configuration's functions (warm-up,
        timed into ``compile_s``) once the data is placed."""
        super().configure(**kwargs)
        self._hyper = tuple(jax.device_put(np.asarray(v, self.dtype), self._device)
                            for v in (self.learning_rate, self.l1, self.l2, self.momentum))
        if self._data:
            self._warm_up()

    def _penalties(self) -> tuple[bool, bool]:
        return self.l1 != 0.0, self.l2 != 0.0

    def _commit(self, tree: Any) -> Any:
        """``tree`` placed on (committed to) this trainer's device: a compiled function is
        keyed by its arguments' placement too, so every carry is committed alike."""
        return jax.device_put(tree, self._device)

    def _zero_carry(self) -> tuple[Any, Any, jax.Array]:
        params = {k: np.zeros(s, self.dtype) for k, s in self.spec.shapes().items()}
        return self._commit((params, self.optimizer.rule.init(params),
                             np.zeros((), self.dtype)))

    def _warm_up(self) -> None:
        """Compile (by an empty call) what this configuration runs; ``compile_s`` is the sum of
        those functions' compile seconds."""
        B, n = self.batch_size, self._n_train
        X, y = self._data["train"]
        keys = []
        if self.batches_path == COMPILED_RANGE.name:
            for through_order in (True, False):
                keys.append(self._range_key(through_order))
                self._range(through_order)(self._zero_carry(), X, y,
                                           self._order_or_identity(), 0, 0, self._hyper)
        full_sizes = () if self.batches_path else (B,)
        partial = () if self.drop_last or n % B == 0 else (n % B,)
        for m in (*full_sizes, *partial):
            keys.append(self._step_key(m))
            self._step_fn(m)(self._zero_carry(), X[:m], y[:m], self._hyper)
        jax.block_until_ready(self._cost)
        self.compile_s = sum(self._compile_seconds[k] for k in keys)

    def _compile(self, key: tuple, fn: Callable) -> Callable:
        """``fn`` jitted (the carry donated), its first call (the compilation) timed."""
        jitted = jax.jit(fn, donate_argnums=0)

        def first_call(*args: Any) -> Any:
            t0 = time.perf_counter()
            out = jax.block_until_ready(jitted(*args))
            self._compile_seconds[key] = time.perf_counter() - t0
            self._compiled[key] = jitted
            return out

        self._compiled[key] = first_call
        return first_call

    # ------------------------------------------------------------------ the compiled steps
    def _step_body(self) -> Callable:
        """The pure step ``(params, state, cost), X, y, hyper -> (params, state, cost)``."""
        ops, update, penalties = self.ops, self.optimizer.rule.update, self._penalties()

        def step(carry: tuple, X: jax.Array, y: jax.Array, hyper: tuple) -> tuple:
            params, state, cost = carry
            lr, l1, l2, mu = hyper
            nll, grads = ops.value_and_grad(params, X, y, l1, l2, penalties)
            params, state = update(params, grads, state, lr, mu)
            return params, state, cost + nll
        return step

    def _step_key(self, m: int) -> tuple:
        return ("step", m, self._penalties())

    def _step_fn(self, m: int) -> Callable:
        """One step on an m-row minibatch, compiled."""
        key = self._step_key(m)
        return self._compiled.get(key) or self._compile(key, self._step_body())

    def _range_key(self, through_order: bool) -> tuple:
        return ("range", through_order, self.batch_size, self._penalties())

    def _range(self, through_order: bool) -> Callable:
        """Full minibatches ``first .. last - 1`` in one compiled loop: each reads its B rows
        through ``order`` (``through_order``) or as the slice ``[k B, (k + 1) B)``."""
        key = self._range_key(through_order)
        if key in self._compiled:
            return self._compiled[key]
        step, B = self._step_body(), self.batch_size

        def run(carry: tuple, X: jax.Array, y: jax.Array, order: jax.Array, first: int,
                last: int, hyper: tuple) -> tuple:
            def body(k: jax.Array, carry: tuple) -> tuple:
                if through_order:
                    index = lax.dynamic_slice_in_dim(order, k * B, B)
                    Xb, yb = _take(X, index), _take(y, index)
                else:
                    Xb = lax.dynamic_slice_in_dim(X, k * B, B)
                    yb = lax.dynamic_slice_in_dim(y, k * B, B)
                return step(carry, Xb, yb, hyper)
            return lax.fori_loop(first, last, body, carry)
        return self._compile(key, run)

    def _carry(self) -> tuple:
        return self.params, self.optimizer.state, self._cost

    def _set_carry(self, carry: tuple) -> None:
        self.params, self.optimizer.state, self._cost = carry

    @_in_precision
    def train_batches(self, start: int, stop: int) -> None:
        super().train_batches(start, stop)

    def _generic_step(self, X: jax.Array, y: jax.Array) -> None:
        self._set_carry(self._step_fn(len(y))(self._carry(), X, y, self._hyper))

    def _compiled_batches(self, start: int, stop: int) -> None:
        """The full minibatches in one compiled call; a partial last batch by the step."""
        full = min(stop, self._n_train // self.batch_size)
        if start < full:
            X, y = self._epoch
            run = self._range(self._order is not None)  # in order: the identity, unread
            self._set_carry(run(self._carry(), X, y, self._order_or_identity(), start, full,
                                self._hyper))
        if max(start, full) < stop:
            self._loop(max(start, full), stop)

    # ------------------------------------------------------------------ evaluation
    @_in_precision
    def get_params(self, evaluated: bool = False) -> Params:
        return super().get_params(evaluated)

    @_in_precision
    def read_cost(self) -> float:
        return super().read_cost()

    @_in_precision
    def error(self, split: str = "valid", batch_size: int = 10_000,
              drop_last: bool = False) -> float:
        return super().error(split, batch_size, drop_last)
