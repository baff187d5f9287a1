"""Data-parallel SGD projected from measurements: where data parallelism stops paying.

For a fixed per-worker batch b (global B = P b)::

    T_step(P)  = t0 + c b + T_ar(P)                 per-rank compute + the all-reduce
    T_ar(P)    = 2 (P - 1) alpha + 2 (P - 1)/P n beta      the ring model, n = gradient bytes
    S(B)       = S_min + E_min / B                  optimizer steps to the target error
    T_target(P) = S(P b) T_step(P)

``t0`` (s) and ``c`` (s per example) are fitted to the measured one-thread-per-rank compute
time per step; ``alpha`` (s) and ``beta`` (s/byte) come from the all-reduce micro-benchmark, or
are stated inputs for faster interconnects; S(B) is ``bench.analysis.fit``'s one fit of the
model's complete plain-SGD batch-size study (``study_steps``), else of this suite's
time-to-target rows, else a labelled placeholder. The
all-reduce dominates a step from the first P with ``T_ar(P) > t0 + c b``; a larger global batch
stops saving steps beyond ``B_crit = E_min / S_min``, i.e. beyond ``P = B_crit / b``.

Reads only the results DataFrame (rows of ``kind`` "distributed", "allreduce" and, for S(B)
without a study, "time_to_target").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.analysis.fit import StepsFit, fit_steps
from bench.analysis.study import steps_curve, studies, untuned_reason

__all__ = ["INTERCONNECTS", "MAX_P", "PER_WORKER_BATCH", "PER_WORKER_BATCHES", "Interconnect",
           "StepModel", "StepsCurve", "allreduce_fits", "has_rows", "inputs", "measured_steps",
           "project_data_parallel", "ring_allreduce_s", "step_models", "steps_curves",
           "study_steps", "summarize"]

#: Largest P projected.
MAX_P = 1024
#: Default per-worker batch b of the projection figure (examples per rank per step) and the
#: per-worker batches of its table.
PER_WORKER_BATCH = 10
PER_WORKER_BATCHES = (10, 100)


@dataclass(frozen=True)
class Interconnect:
    """Ring all-reduce parameters: ``alpha_s`` latency per step of the ring (s),
    ``beta_s_per_byte`` inverse bandwidth (s/byte), and where they come from."""

    name: str
    alpha_s: float
    beta_s_per_byte: float
    source: str


#: Stated inputs, not measured here.
INTERCONNECTS = (
    Interconnect("NVLink 4 (H100 SXM)", 10e-6, 1 / 450e9,
                 "stated input: beta from NVIDIA's H100 SXM datasheet, NVLink 900 GB/s per GPU "
                 "both directions together = 450 GB/s per direction; alpha = 10 us, an assumed "
                 "order of magnitude of NCCL's small-message step latency (not measured here); "
                 "one node holds at most 8 such GPUs, so beyond P = 8 this is hypothetical"),
    Interconnect("100 Gb/s Ethernet", 25e-6, 1 / 12.5e9,
                 "stated input: beta from the 100 Gb/s line rate (12.5 GB/s); alpha = 25 us, an "
                 "assumed order of magnitude of a TCP round trip between hosts (not measured "
                 "here)"),
)


@dataclass(frozen=True)
class StepModel:
    """One rank's compute time per step ``t0 + c b`` (s), and the gradient bytes all-reduced."""

    model: str
    t0_s: float
    per_example_s: float
    gradient_bytes: int
    source: str


@dataclass(frozen=True)
class StepsCurve:
    """The S(B) a projection uses for ``model``: the one fit (``bench.analysis.fit``), where it
    comes from, and whether it is a placeholder (not measured for this model)."""

    model: str
    fit: StepsFit
    source: str
    placeholder: bool

    @property
    def s_min(self) -> float:
        return self.fit.s_min

    @property
    def e_min(self) -> float:
        return self.fit.e_min

    @property
    def b_crit(self) -> float:
        return self.fit.b_crit

    def steps(self, B: np.ndarray) -> np.ndarray:
        return self.fit.steps(B)


def ring_allreduce_s(P: np.ndarray | int, nbytes: np.ndarray | float, alpha_s: float,
                     beta_s_per_byte: float) -> np.ndarray:
    """Seconds of one ring all-reduce of ``nbytes`` over P ranks:
    ``2 (P - 1) alpha + 2 (P - 1) / P n beta``."""
    P = np.asarray(P, dtype=float)
    return 2 * (P - 1) * alpha_s + 2 * (P - 1) / P * np.asarray(nbytes, float) * beta_s_per_byte


# ---------------------------------------------------------------------------- inputs from rows
def _newest(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if "datetime" in rows:
        rows = rows.sort_values("datetime", na_position="first")
    return rows.drop_duplicates(keys, keep="last")


def _kind(df: pd.DataFrame, kind: str) -> pd.DataFrame:
    return df[df["kind"] == kind].copy() if "kind" in df else df.iloc[0:0]


def measured_steps(df: pd.DataFrame) -> pd.DataFrame:
    rows = _kind(df, "distributed")
    if rows.empty:
        return rows
    return _newest(rows, ["device", "model", "batch_size", "world_size", "threads_per_rank"])


def allreduce_fits(df: pd.DataFrame) -> pd.DataFrame:
    rows = _kind(df, "allreduce")
    return rows if rows.empty else _newest(rows, ["device", "world_size"])


def step_models(df: pd.DataFrame) -> dict[str, StepModel]:
    """Per model, ``t0 + c b`` fitted (least squares on relative residuals, so b = 10 counts
    as much as b = 1,000; t0 >= 0) to the CPU rows with one thread per rank: compute seconds
    per step against the local batch ``b = ceil(B / P)``."""
    rows = measured_steps(df)
    out: dict[str, StepModel] = {}
    if rows.empty:
        return out
    rows = rows[(rows["device"] == "cpu") & (rows["threads_per_rank"] == 1)]
    for model, g in rows.groupby("model"):
        b = g["local_batch_size"].astype(float).to_numpy()
        t = g["compute_s_per_step"].astype(float).to_numpy()
        if len(set(b)) >= 2:
            slope, intercept = np.polyfit(b, t, 1, w=1.0 / t)  # relative residuals
            if intercept < 0 or slope <= 0:
                slope, intercept = float(np.sum(t * b) / np.sum(b * b)), 0.0
        else:
            slope, intercept = float(np.mean(t / b)), 0.0
        points = ", ".join(f"b={int(x)}: {y * 1e3:.2f} ms" for x, y in sorted(zip(b, t,
                                                                                  strict=True)))
        out[str(model)] = StepModel(
            str(model), float(intercept), float(slope), int(g["gradient_bytes"].iloc[0]),
            f"fitted to the measured compute per step at one thread per rank ({points})")
    return out


def study_steps(study_df: pd.DataFrame) -> dict[str, tuple[StepsFit, str]]:
    """``{model: (fit of S(B), study name)}`` of the complete plain-SGD studies in the study
    table: ``bench.analysis.study.steps_curve`` of each study that may answer
    (``untuned_reason`` None: not a smoke study, enough batch sizes, seeds and repeats); the
    last such study by name per model. A smoke or partial study is never the projection's S(B).
    """
    out: dict[str, tuple[StepsFit, str]] = {}
    for name in studies(study_df):
        if untuned_reason(study_df, name) is None:
            out.update(steps_curve(study_df[study_df["study"] == name]))
    return out


def _placeholder(s_min: float, e_min: float) -> StepsFit:
    return StepsFit(s_min=s_min, e_min=e_min, rms_log_residual=float("nan"), n_points=0)


#: How to run each model's batch-size study (``bench.study.presets``).
_RUN_STUDY = {m: f"`python -m bench.study --preset {m}`" for m in ("softmax", "mlp")}


def steps_curves(df: pd.DataFrame, given: dict[str, tuple[StepsFit, str]] | None = None,
                 ) -> dict[str, StepsCurve]:
    """``S(B)`` per model: ``given`` (model -> (fit, the study it comes from), see
    ``study_steps``) first; else ``fit_steps`` over the time-to-target rows
    of that model (steps to target at >= 2 batch sizes, newest per B); else a clearly labelled
    placeholder (the softmax curve, or S_min = 2,000, E_min = 45,000)."""
    given = given or {}
    out: dict[str, StepsCurve] = {}
    rows = _kind(df, "time_to_target")
    for model in ("softmax", "mlp"):
        if model in given:
            fit, study = given[model]
            out[model] = StepsCurve(model, fit, f"the {model}'s batch-size study `{study}` "
                                    "(each B at its tuned learning rate)", False)
            continue
        g = rows
        if not g.empty:
            model_col = g["cfg_model"] if "cfg_model" in g else pd.Series("softmax", g.index)
            g = g[(model_col.fillna("softmax") == model) & (g["target_reached"] == True)  # noqa: E712
                  & g["steps_to_target"].notna()]
            g = _newest(g, ["batch_size"])
        if g["batch_size"].nunique() >= 2 if len(g) else False:
            B = g["batch_size"].astype(float).to_numpy()
            S = g["steps_to_target"].astype(float).to_numpy()
            target = g["cfg_target_error"].iloc[0] if "cfg_target_error" in g else None
            lrs = sorted(set(g["cfg_learning_rate"].astype(float))) if (
                "cfg_learning_rate" in g) else []
            pts = ", ".join(f"S({int(b)}) = {int(s)}" for b, s in sorted(zip(B, S, strict=True)))
            out[model] = StepsCurve(
                model, fit_steps(B, S),
                f"no complete {model} batch-size study is present ({_RUN_STUDY[model]}), so "
                f"fitted to this suite's time-to-target runs (target {target}, learning rate "
                f"{lrs}, one seed: {pts}); the learning rate was not tuned per B", False)
    for model in ("softmax", "mlp"):
        if model not in out:
            base = out.get("softmax")
            if base is not None and not base.placeholder:
                out[model] = StepsCurve(model, base.fit,
                                        f"PLACEHOLDER: no complete {model} batch-size study "
                                        "is present; the softmax curve reused until it is "
                                        f"({_RUN_STUDY[model]})", True)
            else:
                out[model] = StepsCurve(model, _placeholder(2_000.0, 45_000.0),
                                        "PLACEHOLDER (illustrative, not measured): no complete "
                                        f"{model} batch-size study is present "
                                        f"({_RUN_STUDY[model]})", True)
    return out


def _int_or(value: object, default: int) -> int:
    return int(value) if value is not None and pd.notna(value) else int(default)


def inputs(df: pd.DataFrame) -> dict[str, Interconnect]:
    """The interconnects projected: the measured fit(s) here (one per device and P, newest),
    then the stated ones."""
    out = {}
    for r in allreduce_fits(df).itertuples():
        name = f"measured: {r.dist_backend} P={int(r.world_size)} ({r.device})"
        out[name] = Interconnect(
            name, float(r.alpha_s), float(r.beta_s_per_byte),
            f"fitted to the all-reduce micro-benchmark ({len(r.message_bytes)} sizes, "
            f"{min(r.message_bytes)} B to {max(r.message_bytes) / 2**20:.0f} MiB, fitted from "
            f"{_int_or(getattr(r, 'fit_min_bytes', None), min(r.message_bytes))} B, RMS relative "
            f"residual {r.fit_rms_relative:.0%}, 1-min load "
            f"{getattr(r, 'load_avg_1min', float('nan')):.1f})")
    for ic in INTERCONNECTS:
        out[ic.name] = ic
    return out


# ---------------------------------------------------------------------------- the projection
def project_data_parallel(step: StepModel, curve: StepsCurve, ic: Interconnect,
                          b: int = PER_WORKER_BATCH, max_p: int = MAX_P) -> pd.DataFrame:
    """Per P = 1 .. ``max_p``: global B, compute and all-reduce seconds per step, steps and
    seconds to the target (see the module docstring)."""
    P = np.arange(1, max_p + 1, dtype=float)
    compute = np.full_like(P, step.t0_s + step.per_example_s * b)
    allreduce = ring_allreduce_s(P, step.gradient_bytes, ic.alpha_s, ic.beta_s_per_byte)
    steps = curve.steps(P * b)
    return pd.DataFrame({"P": P.astype(int), "B": (P * b).astype(int), "compute_s": compute,
                         "allreduce_s": allreduce, "step_s": compute + allreduce,
                         "steps": steps, "time_to_target_s": steps * (compute + allreduce)})


def summarize(proj: pd.DataFrame, curve: StepsCurve, b: int) -> dict[str, float | int | None]:
    """The P where the all-reduce first exceeds compute (None: not up to the last P), the P
    beyond which a larger global batch stops saving steps (B_crit / b), the P with the least
    time to target and its speed-up over P = 1."""
    dominated = proj[proj["allreduce_s"] > proj["compute_s"]]
    best = proj.loc[proj["time_to_target_s"].idxmin()]
    return {"p_allreduce_dominates": int(dominated["P"].iloc[0]) if len(dominated) else None,
            "p_batch_stops_saving": curve.b_crit / b,
            "p_best": int(best["P"]),
            "speedup_at_best": float(proj["time_to_target_s"].iloc[0]
                                     / best["time_to_target_s"]),
            "time_to_target_p1_s": float(proj["time_to_target_s"].iloc[0])}


def has_rows(df: pd.DataFrame) -> bool:
    """Whether ``df`` holds data-parallel or all-reduce benchmark rows."""
    return "kind" in df and bool(df["kind"].isin(["distributed", "allreduce"]).any())
