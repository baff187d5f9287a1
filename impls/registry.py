"""Backends by name, imported lazily: a CPU-only install imports cleanly, and an unusable
backend gives a reason instead of an ImportError. The catalogue of names is
``bench.workload.backends.BACKENDS``: a new backend is one module + one line there.
"""

from __future__ import annotations

import importlib
from functools import cache

from bench.workload.backends import BACKENDS
from impls.base import Trainer

__all__ = [
    "BACKENDS",
    "BackendError",
    "check_name",
    "make_trainer",
    "targets",
    "trainer_class",
    "unavailable_reason",
]

_INSTALL = {
    "torch": "pip install 'gdbench[torch]'",
    "cupy": "pip install 'gdbench[cupy]' on a machine with an NVIDIA GPU and driver",
    "numba": "pip install 'gdbench[peers]'",
    "jax": "pip install 'gdbench[jax]'",
}


class BackendError(ValueError):
    """An unknown backend or device, or one that cannot run on this machine."""


def check_name(backend: str, device: str | None) -> str:
    """The device ``backend`` runs on (its default for None); a BackendError for an unknown
    backend or a device it does not run on."""
    if backend not in BACKENDS:
        raise BackendError(f"Unknown backend {backend!r}; choose one of "
                           f"{', '.join(BACKENDS)} (check the spelling).")
    devices = BACKENDS[backend][1]
    device = devices[0] if device is None else device
    if device not in devices:
        raise BackendError(f"Backend {backend!r} does not run on device {device!r}; "
                           f"choose one of {', '.join(devices)}.")
    return device


@cache
def _import(backend: str) -> type[Trainer] | str:
    target = BACKENDS[backend][0]
    module, _, name = target.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        return f"{backend}: not installed ({exc.name or exc}); {_INSTALL.get(backend, '')}".strip()


def unavailable_reason(backend: str, device: str | None = None, model: str = "softmax",
                       optimizer: str = "sgd") -> str | None:
    """Why (backend, device) cannot run (model, optimizer) here, or None when it can."""
    device = check_name(backend, device)
    cls = _import(backend)
    if isinstance(cls, str):
        return cls
    return cls.unavailable_reason(device) or cls.unsupported_reason(model, optimizer)


def trainer_class(backend: str, device: str | None = None) -> type[Trainer]:
    """The Trainer class of a usable backend; a BackendError with the reason otherwise."""
    reason = unavailable_reason(backend, device)
    if reason:
        raise BackendError(f"Backend {backend!r} on {device or 'its default device'} is not "
                           f"usable here: {reason}")
    return _import(backend)


def make_trainer(backend: str, device: str | None = None, **kwargs) -> Trainer:
    """A fresh trainer for (backend, device); kwargs: dtype, placement, pinned, gather, kernel,
    model, optimizer, momentum, generic."""
    device = check_name(backend, device)
    return trainer_class(backend, device)(device=device, **kwargs)


def targets() -> list[tuple[str, str, str | None]]:
    """Every (backend, device, reason-or-None) pair, usable or not."""
    return [(b, d, unavailable_reason(b, d)) for b, (_, devs) in BACKENDS.items() for d in devs]
