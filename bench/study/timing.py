"""What the study times: backend specs.

A **backend spec** names one timed configuration: ``backend[:device[:kernel]]``, e.g.
``numpy``, ``torch`` (its default device, the CPU), ``torch:cuda``, ``torch:cuda:cuda-graph``,
``cupy:cuda:fused``. A spec this tree does not know (a kernel another branch adds) or this
machine cannot run is skipped with the reason, never an error of the study.

The composition of a time per step with a stored S(B) is ``bench.analysis.composition``.

Reads only records and DataFrames: importing this imports no framework.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bench.analysis.names import spec_label
from bench.workload.backends import BACKENDS
from bench.workload.config import KERNELS, placement_applies

__all__ = ["BackendSpec", "SpecError", "parse_spec", "resolve_specs", "safe_key", "spec_fields",
           "unusable_reason"]


class SpecError(ValueError):
    """A backend spec that does not name a configuration of this tree."""


@dataclass(frozen=True)
class BackendSpec:
    """One timed configuration: backend, device (resolved, never None) and kernel."""

    backend: str
    device: str
    kernel: str = "eager"

    @property
    def label(self) -> str:
        """``backend:device`` and ``:kernel`` unless eager, e.g. ``torch:cuda:cuda-graph``."""
        return spec_label(self.backend, self.device, self.kernel)

    @property
    def key_prefix(self) -> str:
        """The stored records' key prefix: the bare backend for a CPU eager spec (the keys of
        studies stored before specs existed), else ``backend-device-kernel``."""
        if self.device == "cpu" and self.kernel == "eager":
            return self.backend
        return safe_key(f"{self.backend}-{self.device}-{self.kernel}")


def safe_key(text: str) -> str:
    """``text`` with every character outside ``[A-Za-z0-9_.-]`` replaced by '-' (file names)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text) or "-"


def spec_fields(text: str) -> dict[str, str | None]:
    """``{"backend", "device", "kernel"}`` as written in ``text`` (None where absent), for the
    record of a spec that did not parse."""
    parts = [*text.strip().split(":"), None, None][:3]
    return {"backend": parts[0] or None, "device": parts[1], "kernel": parts[2]}


def parse_spec(text: str) -> BackendSpec:
    """The ``BackendSpec`` of ``backend[:device[:kernel]]``; a SpecError naming the problem for
    an unknown backend, device or kernel (``bench.workload.config.KERNELS``) or a malformed text.
    Imports no framework."""
    parts = text.strip().split(":")
    if not parts[0] or len(parts) > 3 or not all(parts):
        raise SpecError(f"backend spec {text!r} is not 'backend[:device[:kernel]]' (e.g. "
                        "'torch:cuda:cuda-graph')")
    backend = parts[0]
    if backend not in BACKENDS:
        raise SpecError(f"unknown backend {backend!r}; this tree has {', '.join(BACKENDS)}")
    devices = BACKENDS[backend][1]
    device = parts[1] if len(parts) > 1 else devices[0]
    if device not in devices:
        raise SpecError(f"backend {backend!r} does not run on device {device!r}; it runs on "
                        f"{', '.join(devices)}")
    kernel = parts[2] if len(parts) > 2 else "eager"
    if kernel not in KERNELS:
        raise SpecError(f"unknown kernel {kernel!r} in this tree (bench.workload.config.KERNELS: "
                        f"{', '.join(KERNELS)})")
    if kernel != "eager" and not placement_applies(device):
        raise SpecError(f"kernel {kernel!r} runs only on a GPU; got device {device!r}")
    return BackendSpec(backend, device, kernel)


def unusable_reason(spec: BackendSpec, model: str = "softmax",
                    optimizer: str = "sgd") -> str | None:
    """Why ``spec`` cannot run (model, optimizer) on this machine (not installed, no GPU, the
    backend lacks the kernel), or None when it can. Imports the backend's framework."""
    from impls.registry import trainer_class, unavailable_reason

    reason = unavailable_reason(spec.backend, spec.device, model, optimizer)
    if reason:
        return reason
    kernels = trainer_class(spec.backend, spec.device).kernels
    if spec.kernel not in kernels:
        return (f"backend {spec.backend!r} has no kernel {spec.kernel!r} in this tree (it has "
                f"{', '.join(kernels)})")
    return None


def resolve_specs(texts: tuple[str, ...] | list[str], model: str = "softmax",
                  optimizer: str = "sgd") -> tuple[list[BackendSpec], list[tuple[str, str]]]:
    """``(usable specs in order, duplicates dropped; [(text, reason)] for the others)``."""
    usable: list[BackendSpec] = []
    skipped: list[tuple[str, str]] = []
    for text in texts:
        if not text.strip():
            continue
        try:
            spec = parse_spec(text)
        except SpecError as exc:
            skipped.append((text, str(exc)))
            continue
        reason = unusable_reason(spec, model, optimizer)
        if reason:
            skipped.append((text, reason))
        elif spec not in usable:
            usable.append(spec)
    return usable, skipped
