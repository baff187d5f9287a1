"""Where the data lives and how each minibatch reaches the arithmetic: the placement part of a
trainer, kept apart from the step.

The question the tutorial's "shared variables" answer, on a GPU:

* ``resident``: the whole training set is copied to the device once; each epoch's reshuffle is a
  gather on the device; minibatches are slices there.
* ``streamed``: the training set stays in host memory (pinned if ``pinned``); each minibatch is
  copied host-to-device as it is needed, into a reused device buffer.

How a shuffled epoch's examples reach the step (``gather``):

* ``epoch``: one gather of the whole training set through the permutation per epoch, into a
  preallocated buffer; minibatches are then contiguous slices of it.
* ``batch`` (resident data, or a CPU): the permutation is kept where the data lives
  (``_order``) and each minibatch is gathered through its slice of it into a reused batch
  buffer, so the gathered rows are still in cache when the step reads them, and a captured CUDA
  graph replays the gathers too.
* A fast path that reads the examples through the permutation itself (``reads_order``, e.g. a
  sparse-row kernel) needs no gather at all: ``_epoch`` is the unshuffled set and ``_order`` the
  permutation (None for an in-order epoch).

On a CPU the data already is where the arithmetic happens: placement is a no-op
(``placement_applies`` is False) and there is no host-to-device time (None, not zero).
Validation and test sets are always placed on the device once, for scoring. Host-to-device
copies are timed with device events, since only the framework can.

A framework supplies the memory primitives (``_to_device``, ``_gather``, ``_copy_h2d``, ...);
the placement logic here is shared.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import numpy as np

from bench.workload.config import GATHERS, PLACEMENTS, placement_applies
from bench.workload.data_order import n_batches
from bench.workload.datasets import Data

__all__ = ["GATHERS", "PLACEMENTS", "Placement"]



class Placement(ABC):
    """The data side of a trainer: load, reshuffle, hand out minibatches, time the copies."""

    def __init__(self, *, device: str, dtype: str = "float32", placement: str = "resident",
                 pinned: bool = False, gather: str = "epoch") -> None:
        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}. Got {placement!r}.")
        if gather not in GATHERS:
            raise ValueError(f"gather must be one of {GATHERS}. Got {gather!r}.")
        if gather == "batch" and placement_applies(device) and placement != "resident":
            raise ValueError("gather='batch' gathers minibatches where the training set lives: "
                             f"it needs placement='resident' on {device!r} (got "
                             f"placement={placement!r}). Use gather='epoch'.")
        self.device = device
        self.dtype = dtype
        self.placement = placement
        self.pinned = pinned
        self.gather = gather
        self._order: Any | None = None
        self._order_buf: Any | None = None
        self._identity: Any | None = None
        self._batch_bufs: dict[int, tuple[Any, Any]] = {}
        self._data: dict[str, tuple[Any, Any]] = {}
        self._epoch: tuple[Any, Any] | None = None
        self._shuffled: tuple[Any, Any] | None = None
        self._n_train = 0
        self.batch_size = 1
        self.drop_last = True

    # ------------------------------------------------------------------ facts
    @property
    def is_gpu(self) -> bool:
        return placement_applies(self.device)

    @property
    def placement_applies(self) -> bool:
        """Whether resident / streamed differ here (only where a host-device copy exists)."""
        return placement_applies(self.device)

    @property
    def streams(self) -> bool:
        return self.is_gpu and self.placement == "streamed"

    @property
    def n_train(self) -> int:
        return self._n_train

    @property
    def reads_order(self) -> bool:
        """Whether the steps read the examples through ``_order`` themselves (no gather)."""
        return False

    @property
    def gathers_batches(self) -> bool:
        """Whether shuffled minibatches are gathered one by one through ``_order``."""
        return self.gather == "batch" and not self.reads_order

    def n_batches(self) -> int:
        return n_batches(self._n_train, self.batch_size, self.drop_last)

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
    def load(self, data: Data) -> float | None:
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
        self._batch_bufs.clear()
        self._make_batch_buffers()
        self.synchronize()
        return self.take_h2d_seconds()

    def _make_batch_buffers(self) -> None:
        """The reused device buffers of one minibatch, made once per B and kept: a captured
        CUDA graph holds their addresses, so a later ``configure`` must not reallocate them."""
        if (self.streams or self.gathers_batches) and self._data:
            B = self.batch_size
            if B not in self._batch_bufs:
                self._batch_bufs[B] = (
                    self._to_device(np.empty((B, self._host_train[0].shape[1]),
                                             dtype=np.dtype(self.dtype))),
                    self._to_device(np.empty(B, dtype=np.int64)))
            self._batch_buf = self._batch_bufs[B]

    def begin_epoch(self, permutation: np.ndarray | None) -> None:
        """Fix the epoch's order: in place (None) or gathered into a preallocated buffer.

        The gather runs where the training set lives: on the device when resident, in host
        memory when streamed or on the CPU.
        """
        if permutation is None:
            self._epoch = self._data["train"]
            self._order = None
            return
        if self.reads_order or self.gathers_batches:
            self._epoch = self._data["train"]
            self._order = self._place_order(permutation)
            return
        if self._shuffled is None:  # allocated once, where the training set lives
            self._shuffled = tuple(self._empty_like(a) for a in self._data["train"])
        index = (self._index(permutation, on_device=False) if self.streams
                 else self._place_order(permutation))
        for src, out in zip(self._data["train"], self._shuffled, strict=True):
            self._gather(src, index, out)
        self._epoch = self._shuffled

    def _place_order(self, permutation: np.ndarray) -> Any:
        """The epoch's permutation where the training set lives: on a GPU copied into one
        device buffer (allocated once, so captured graphs and kernels keep its address;
        the upload is event-timed as host-to-device), on a CPU the array itself."""
        if not self.is_gpu:
            return self._index(permutation, on_device=False)
        perm = np.ascontiguousarray(permutation, dtype=np.int64)
        mark = self._h2d_start()
        if self._order_buf is None or len(self._order_buf) != len(perm):
            self._order_buf = self._index(perm, on_device=True)
        else:
            self._copy_h2d(self._order_buf, self._host(perm, False))
        self._h2d_stop(mark)
        return self._order_buf

    def _order_or_identity(self) -> Any:
        """The epoch's order as an index array where the training set lives, for a kernel that
        always reads through one: the permutation, or the identity (made once) in order."""
        if self._order is not None:
            return self._order
        if self._identity is None or len(self._identity) != self._n_train:
            self._identity = self._index(np.arange(self._n_train, dtype=np.int64),
                                         on_device=self.is_gpu)
        return self._identity

    def minibatches(self, start: int, stop: int) -> Iterator[tuple[Any, Any]]:
        """Minibatches ``start .. stop - 1`` of the epoch, on the device: slices of the resident
        set, gathers through the permutation into the reused batch buffer (``gather='batch'``),
        or copies into the reused device buffer (event-timed) when streamed."""
        X, y = self._epoch
        B, n = self.batch_size, self._n_train
        if self._order is not None and self.gathers_batches:
            xbuf, ybuf = self._batch_buf
            for k in range(start, stop):
                lo = k * B
                hi = min(lo + B, n)
                index = self._order[lo:hi]
                xb, yb = xbuf[: hi - lo], ybuf[: hi - lo]
                self._gather(X, index, xb)
                self._gather(y, index, yb)
                yield xb, yb
            return
        if not self.streams:
            for k in range(start, stop):
                lo = k * B
                yield X[lo : lo + B], y[lo : lo + B]
            return
        xbuf, ybuf = self._batch_buf
        for k in range(start, stop):
            lo = k * B
            hi = min(lo + B, n)
            xb, yb = xbuf[: hi - lo], ybuf[: hi - lo]
            mark = self._h2d_start()
            self._copy_h2d(xb, X[lo:hi])
            self._copy_h2d(yb, y[lo:hi])
            self._h2d_stop(mark)
            yield xb, yb

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
