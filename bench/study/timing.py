"""What the study times (backend specs) and how a machine's time per step meets a stored S(B).

A **backend spec** names one timed configuration: ``backend[:device[:kernel]]``, e.g.
``numpy``, ``torch`` (its default device, the CPU), ``torch:cuda``, ``torch:cuda:cuda-graph``,
``cupy:cuda:fused``. A spec this tree does not know (a kernel another branch adds) or this
machine cannot run is skipped with the reason, never an error of the study.

Steps-to-target S(B) depends on (model, optimizer, B, lr, seed), not on the hardware, so a
machine's time per step composes with the S(B) of a study run elsewhere::

    projected(B) = S(B) * step_s + ceil(S(B) / batches_per_epoch) * epoch_move_s

with its range from the fastest and slowest repeat of the time per step (``project``);
``fastest_variant`` names the variant (per-sample, minibatch, full batch) that reaches the
target first, or the variants tied with it when the ranges overlap.

Reads only records and DataFrames: importing this imports no framework.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.workload.backends import BACKENDS
from bench.workload.config import KERNELS, placement_applies, variant_of
from bench.workload.datasets import DEFAULT, get_dataset

__all__ = ["VARIANT_NAMES", "BackendSpec", "SpecError", "composed_seconds", "fastest_variant",
           "overlapping", "parse_spec", "project", "resolve_specs", "safe_key", "spec_fields",
           "steps_to_target", "unusable_reason"]


#: A variant's name in prose.
VARIANT_NAMES = {"sgd": "per-sample SGD", "minibatch": "minibatch SGD", "full": "full-batch GD"}


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
        return f"{self.backend}:{self.device}" + (f":{self.kernel}" if self.kernel != "eager"
                                                  else "")

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


# ------------------------------------------------------------------------------ composition


def composed_seconds(steps: int, step_s: float, batches_per_epoch: int,
                     epoch_move_s: float) -> float:
    """Training seconds to take ``steps`` steps: ``steps * step_s`` plus one reshuffle
    (``epoch_move_s``) per epoch begun, ``ceil(steps / batches_per_epoch)``."""
    return steps * step_s + math.ceil(steps / batches_per_epoch) * epoch_move_s


def steps_to_target(df: pd.DataFrame, study: str) -> dict[int, int]:
    """``{B: S(B)}``: each B's steps-to-target at its best learning rate in ``study`` (the B
    whose searches reached the target)."""
    from bench.study.summary import per_batch_size

    if df.empty or "study" not in df:
        return {}
    per_b = per_batch_size(df[df["study"] == study])
    if per_b.empty or "steps_to_target" not in per_b:
        return {}
    ok = per_b.dropna(subset=["steps_to_target"])
    return {int(B): int(S) for B, S in zip(ok["batch_size"], ok["steps_to_target"], strict=True)}


def _move_range(rec: dict[str, Any]) -> tuple[float, float]:
    moves = rec.get("epoch_move_s_all")
    if isinstance(moves, list) and moves:
        return min(moves), max(moves)
    return rec["epoch_move_s"], rec["epoch_move_s"]


def _fill(rec: dict[str, Any]) -> dict[str, Any]:
    rec = dict(rec)
    for k, default in (("device", "cpu"), ("kernel", "eager")):
        if not isinstance(rec.get(k), str):
            rec[k] = default
    if not isinstance(rec.get("spec"), str):
        rec["spec"] = BackendSpec(rec["backend"], rec["device"], rec["kernel"]).label
    return rec


def _n_train(rec: dict[str, Any]) -> int:
    """The training-set size of a record's dataset (records from before datasets: MNIST)."""
    dataset = rec.get("dataset")
    return get_dataset(dataset if isinstance(dataset, str) else DEFAULT).n_train


def project(timing: pd.DataFrame | list[dict[str, Any]], steps: dict[int, int]) -> pd.DataFrame:
    """One row per timing record at a B of ``steps``: S(B), the time per step and the projected
    time-to-target (seconds) ``S * step_s + ceil(S / batches_per_epoch) * epoch_move_s``, with
    ``projected_s_min`` / ``_max`` from the fastest / slowest repeat (step and reshuffle).
    Records without device / kernel (stored before specs existed) are the CPU, eager."""
    recs = timing.to_dict("records") if isinstance(timing, pd.DataFrame) else list(timing)
    rows = []
    for rec in recs:
        B = int(rec["batch_size"])
        if B not in steps or rec.get("step_s") is None or pd.isna(rec.get("step_s")):
            continue
        rec = _fill(rec)
        S, nb = steps[B], rec["batches_per_epoch"]
        lo, hi = _move_range(rec)
        step_min = rec.get("step_s_min", rec["step_s"])
        step_max = rec.get("step_s_max", rec["step_s"])
        rows.append({
            "study": rec.get("study"), "spec": rec["spec"], "backend": rec["backend"],
            "device": rec["device"], "kernel": rec["kernel"], "batch_size": B,
            "variant": variant_of(B, _n_train(rec)),
            "steps": S, "epochs": math.ceil(S / nb),
            "step_s": rec["step_s"], "step_s_min": step_min, "step_s_max": step_max,
            "projected_s": composed_seconds(S, rec["step_s"], nb, rec["epoch_move_s"]),
            "projected_s_min": composed_seconds(S, step_min, nb, lo),
            "projected_s_max": composed_seconds(S, step_max, nb, hi)})
    cols = ["study", "spec", "backend", "device", "kernel", "batch_size", "variant", "steps",
            "epochs", "step_s", "step_s_min", "step_s_max", "projected_s", "projected_s_min",
            "projected_s_max"]
    return pd.DataFrame(rows, columns=cols)


def overlapping(rows: pd.DataFrame, best: pd.Series) -> pd.DataFrame:
    """The rows of ``rows`` other than ``best`` whose projected range overlaps ``best``'s."""
    others = rows.drop(index=best.name, errors="ignore")
    return others[others["projected_s_min"] <= best["projected_s_max"]]


def fastest_variant(projected: pd.DataFrame) -> dict[str, Any] | None:
    """The variant that reaches the target first: ``{"winner": row, "tied": [rows of other
    variants whose projected range overlaps the winner's], "by_variant": {variant: its best
    row}}`` (each variant's best = least median projected time over its B and specs); None
    when nothing is projected."""
    if projected.empty:
        return None
    best = projected.loc[projected.groupby("variant")["projected_s"].idxmin()]
    by_variant = {r["variant"]: r for _, r in best.iterrows()}
    winner = best.loc[best["projected_s"].idxmin()]
    tied = overlapping(best, winner)
    return {"winner": winner, "tied": [r for _, r in tied.sort_values("projected_s").iterrows()],
            "by_variant": by_variant}
