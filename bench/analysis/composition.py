"""Time-to-target composed from its two factors, measured where each is cheapest.

Steps-to-target S(B) depends on (dataset, model, optimizer, B, lr, seed), not on the hardware;
the time per step depends on the hardware, not on lr. So a machine's time per step composes
with the S(B) of a study run elsewhere::

    T(B) = S(B) * step_s + ceil(S(B) / batches_per_epoch) * epoch_move_s     (seconds)

``project_time_to_target`` applies it to timing records, with a range from the fastest and the
slowest repeat; ``fastest_variant`` names the variant (per-sample, minibatch, full batch) that
reaches the target first, or the variants tied with it when the ranges overlap.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from bench.analysis.names import n_train_of, spec_label
from bench.workload.config import variant_of

__all__ = ["composed_seconds", "fastest_variant", "overlapping", "project_time_to_target"]

PROJECTED_COLUMNS = ["study", "spec", "backend", "device", "kernel", "batch_size", "variant",
                     "steps", "epochs", "step_s", "step_s_min", "step_s_max", "projected_s",
                     "projected_s_min", "projected_s_max"]


def composed_seconds(steps: int, step_s: float, batches_per_epoch: int,
                     epoch_move_s: float) -> float:
    """Training seconds to take ``steps`` steps: ``steps * step_s`` plus one reshuffle
    (``epoch_move_s``) per epoch begun, ``ceil(steps / batches_per_epoch)``."""
    return steps * step_s + math.ceil(steps / batches_per_epoch) * epoch_move_s


def _move_range(rec: dict[str, Any]) -> tuple[float, float]:
    moves = rec.get("epoch_move_s_all")
    if isinstance(moves, list) and moves:
        return min(moves), max(moves)
    return rec["epoch_move_s"], rec["epoch_move_s"]


def _fill(rec: dict[str, Any]) -> dict[str, Any]:
    """Records stored before backend specs existed are the CPU, eager."""
    rec = dict(rec)
    for k, default in (("device", "cpu"), ("kernel", "eager")):
        if not isinstance(rec.get(k), str):
            rec[k] = default
    if not isinstance(rec.get("spec"), str):
        rec["spec"] = spec_label(rec["backend"], rec["device"], rec["kernel"])
    return rec


def project_time_to_target(timing: pd.DataFrame | list[dict[str, Any]],
                           steps: dict[int, int]) -> pd.DataFrame:
    """One row per timing record at a B of ``steps`` ({B: S(B)}): S(B), the time per step and
    the composed time-to-target ``projected_s`` (seconds, see the module docstring), with
    ``projected_s_min`` / ``_max`` from the fastest / slowest repeat (step and reshuffle)."""
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
            "variant": variant_of(B, n_train_of(rec.get("dataset"))),
            "steps": S, "epochs": math.ceil(S / nb),
            "step_s": rec["step_s"], "step_s_min": step_min, "step_s_max": step_max,
            "projected_s": composed_seconds(S, rec["step_s"], nb, rec["epoch_move_s"]),
            "projected_s_min": composed_seconds(S, step_min, nb, lo),
            "projected_s_max": composed_seconds(S, step_max, nb, hi)})
    return pd.DataFrame(rows, columns=PROJECTED_COLUMNS)


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
