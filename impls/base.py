"""The one interface every implementation satisfies, and the data movement they share.

A ``Trainer`` owns the parameters and the hot loop of one framework on one device. The harness
(``bench.harness``) drives it: ``load`` once, then per epoch ``begin_epoch`` with the epoch's
permutation and ``train_batches`` over ranges of minibatches, reading the cost and scoring
the validation set between ranges. A trainer knows nothing of pytest, timing policy or reports;
it only measures, with device events, the host-to-device copies it makes, since only it can.

Data placement (GPU backends), the question the tutorial's "shared variables" answer:

* ``resident``: the whole training set is copied to the device once; each epoch's reshuffle is a
  gather on the device; minibatches are slices there.
* ``streamed``: the training set stays in host memory (pinned if ``pinned``); each minibatch is
  copied host-to-device as it is needed, into a reused device buffer.

On CPU backends the data already is where the arithmetic happens: placement is a no-op
(``placement_applies`` is False) and there is no host-to-device time (None, not zero).
Validation and test sets are always placed on the device once, for scoring.

A framework supplies the primitives below (``_to_device``, ``_step``, ...); the rest is shared.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from bench.spec.data_order import n_batches
from bench.spec.mnist import MNIST

__all__ = ["Trainer"]


class Trainer(ABC):
    """Softmax regression trained by minibatch SGD with one framework on one device."""

    backend: ClassVar[str]
    devices: ClassVar[tuple[str, ...]]
    #: Ways to run the steps: "eager" everywhere; backends add their fast paths.
    kernels: ClassVar[tuple[str, ...]] = ("eager",)

    def __init__(self, *, device: str, dtype: str = "float32", placement: str = "resident",
                 pinned: bool = False, kernel: str = "eager") -> None:
        if kernel not in self.kernels:
            raise ValueError(f"Backend {self.backend!r} has no kernel {kernel!r}; choose one "
                             f"of {', '.join(self.kernels)}.")
        if kernel != "eager" and (device == "cpu" or placement != "resident"):
            raise ValueError(f"kernel={kernel!r} runs only on a GPU with placement='resident' "
                             f"(got device={device!r}, placement={placement!r}).")
        self.device = device
        self.dtype = dtype
        self.placement = placement
        self.pinned = pinned
        self.kernel = kernel
        self._data: dict[str, tuple[Any, Any]] = {}
        self._epoch: tuple[Any, Any] | None = None
        self._shuffled: tuple[Any, Any] | None = None
        self._n_train = 0
        self.configure(batch_size=1, learning_rate=0.1)

    # ------------------------------------------------------------------ facts
    @property
    def is_gpu(self) -> bool:
        return self.device != "cpu"

    @property
    def placement_applies(self) -> bool:
        """Whether resident / streamed differ here (only where a host-device copy exists)."""
        return self.is_gpu

    @property
    def streams(self) -> bool:
        return self.is_gpu and self.placement == "streamed"

    @classmethod
    def unavailable_reason(cls, device: str) -> str | None:
        """Why this backend cannot run on ``device`` here, or None when it can."""
        return None


    def __repr__(self) -> str:
        where = (f", placement={self.placement!r}, pinned={self.pinned}, "
                 f"kernel={self.kernel!r}") if self.is_gpu else ""
        return (f"{type(self).__name__}(device={self.device!r}, dtype={self.dtype!r}, "
                f"B={self.batch_size}, lr={self.learning_rate}{where})")

    # ------------------------------------------------------------------ framework primitives
    @abstractmethod
    def _to_device(self, host: np.ndarray) -> Any:
        """A device copy of a host array (the host array itself, or a view, on the CPU)."""

    @abstractmethod
    def _host(self, host: np.ndarray, pinned: bool) -> Any:
        """A host-side array of the framework holding ``host`` (a pinned copy when asked)."""

    @abstractmethod
    def _empty_like(self, a: Any) -> Any:
        """An uninitialised array of the same shape, dtype and memory (device/host/pinned)."""

    @abstractmethod
    def _gather(self, src: Any, index: Any, out: Any) -> None:
        """``out[i] = src[index[i]]`` along the first axis."""

    @abstractmethod
    def _index(self, permutation: np.ndarray, on_device: bool) -> Any:
        """The permutation as an index array of the framework (on the device if asked)."""

    @abstractmethod
    def _copy_h2d(self, dst: Any, src: Any) -> None:
        """Copy ``src`` (host, or device for a device-to-device copy) into device ``dst``,
        asynchronously where the framework can."""

    @abstractmethod
    def _step(self, X: Any, y: Any) -> None:
        """One SGD step on minibatch (X, y); add the minibatch's cost to the accumulator."""

    @abstractmethod
    def _count_errors(self, X: Any, y: Any) -> Any:
        """Number of misclassified rows, left on the device."""

    @abstractmethod
    def _reset_cost(self) -> None:
        """Zero the on-device cost accumulator."""

    @abstractmethod
    def _cost_sum(self) -> float:
        """Read the cost accumulator back to the host (a device-to-host sync)."""

    @abstractmethod
    def set_params(self, W: np.ndarray, b: np.ndarray) -> None:
        """Set ``W`` (784, 10) and ``b`` (10,) from host arrays, cast to this trainer's dtype."""

    @abstractmethod
    def get_params(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W, b)`` as float64 host arrays."""

    def _to_float(self, scalar: Any) -> float:
        return float(scalar)

    def synchronize(self) -> None:
        """Wait for all queued device work (a no-op on the CPU)."""
        return None

    def _h2d_start(self) -> Any:
        """Mark the start of a host-to-device copy (device events on a GPU)."""
        return None

    def _h2d_stop(self, mark: Any) -> None:
        """Mark its end."""
        return None

    def take_h2d_seconds(self) -> float | None:
        """Host-to-device copy time since the last call, from device events; None on the CPU."""
        return None

    # ------------------------------------------------------------------ shared logic
    def configure(self, *, batch_size: int, learning_rate: float, l1: float = 0.0,
                  l2: float = 0.0, drop_last: bool = True) -> None:
        """Set the step's hyperparameters (outside anything timed)."""
        self.batch_size = int(batch_size)
        self.learning_rate = float(learning_rate)
        self.l1 = float(l1)
        self.l2 = float(l2)
        self.drop_last = bool(drop_last)
        self._reset_cost()
        self._n_cost = 0
        if self._data:
            self._make_batch_buffers()

    def load(self, data: MNIST) -> float | None:
        """Place the data: train per ``placement``, valid and test on the device.

        Returns the seconds of host-to-device copying (device events), None on the CPU.
        """
        np_dtype = np.dtype(self.dtype)
        host = {name: (np.ascontiguousarray(s.x, dtype=np_dtype), np.ascontiguousarray(s.y))
                for name, s in (("train", data.train), ("valid", data.valid),
                                ("test", data.test))}
        self._host_train = tuple(self._host(a, self.pinned and self.streams)
                                 for a in host["train"])
        self._n_train = len(host["train"][1])
        self.synchronize()
        self.take_h2d_seconds()
        mark = self._h2d_start()
        for name, (x, y) in host.items():
            if name == "train" and self.streams:
                continue
            self._data[name] = (self._to_device(x), self._to_device(y))
        self._h2d_stop(mark)
        if self.streams:
            self._data["train"] = self._host_train
        self._shuffled = None
        self._make_batch_buffers()
        self.synchronize()
        return self.take_h2d_seconds()

    def _make_batch_buffers(self) -> None:
        if self.streams:
            B = self.batch_size
            self._batch_buf = (self._to_device(np.empty((B, self._host_train[0].shape[1]),
                                                        dtype=np.dtype(self.dtype))),
                               self._to_device(np.empty(B, dtype=np.int64)))

    @property
    def n_train(self) -> int:
        return self._n_train

    def n_batches(self) -> int:
        return n_batches(self._n_train, self.batch_size, self.drop_last)

    def begin_epoch(self, permutation: np.ndarray | None) -> None:
        """Fix the epoch's order: in place (None) or gathered into a preallocated buffer.

        The gather runs where the training set lives: on the device when resident, in host
        memory when streamed or on the CPU.
        """
        if permutation is None:
            self._epoch = self._data["train"]
            return
        if self._shuffled is None:  # allocated once, where the training set lives
            self._shuffled = tuple(self._empty_like(a) for a in self._data["train"])
        on_device = not self.streams
        mark = self._h2d_start() if on_device else None  # the permutation's upload
        index = self._index(permutation, on_device=on_device)
        if on_device:
            self._h2d_stop(mark)
        for src, out in zip(self._data["train"], self._shuffled, strict=True):
            self._gather(src, index, out)
        self._epoch = self._shuffled

    def train_batches(self, start: int, stop: int) -> None:
        """SGD steps on minibatches ``start .. stop - 1`` of the epoch; returns when done."""
        X, y = self._epoch
        B, n = self.batch_size, self._n_train
        if self.streams:
            xbuf, ybuf = self._batch_buf
            for k in range(start, stop):
                lo = k * B
                hi = min(lo + B, n)
                xb, yb = xbuf[: hi - lo], ybuf[: hi - lo]
                mark = self._h2d_start()
                self._copy_h2d(xb, X[lo:hi])
                self._copy_h2d(yb, y[lo:hi])
                self._h2d_stop(mark)
                self._step(xb, yb)
        else:
            for k in range(start, stop):
                lo = k * B
                self._step(X[lo : lo + B], y[lo : lo + B])
        self._n_cost += stop - start
        self.synchronize()

    def read_cost(self) -> float:
        """Mean minibatch cost since the last read (one device-to-host read-back)."""
        total = self._cost_sum()
        n, self._n_cost = self._n_cost, 0
        self._reset_cost()
        return total / n if n else float("nan")

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

    # ------------------------------------------------------------------ transfer micro-benchmark
    def copy_buffers(self, host: np.ndarray, kind: str) -> tuple[Any, Any]:
        """``(src, dst)`` for timing one copy of ``host``'s size: kind 'pageable' or 'pinned'
        (host to device) or 'd2d' (device to device)."""
        if kind not in ("pageable", "pinned", "d2d"):
            raise ValueError(f"kind must be 'pageable', 'pinned' or 'd2d'. Got {kind!r}.")
        dst = self._to_device(host)
        src = self._to_device(host) if kind == "d2d" else self._host(host, kind == "pinned")
        self.synchronize()
        return src, dst

    def time_copy(self, src: Any, dst: Any) -> float | None:
        """Seconds of one ``src -> dst`` copy measured with device events (None on a CPU)."""
        self.synchronize()
        self.take_h2d_seconds()
        mark = self._h2d_start()
        self._copy_h2d(dst, src)
        self._h2d_stop(mark)
        return self.take_h2d_seconds()
