"""The data-parallel section of the report: what P ranks measured, and where data parallelism
stops paying, projected from the measurements.

Reads only the results DataFrame (rows of ``kind`` "distributed", "allreduce" and, for the
steps-to-target curve, "time_to_target"). ``figures(df, out_dir)`` writes the PNGs and returns
``(title, path)`` pairs; ``section(df)`` returns the markdown.

The projection, for a fixed per-worker batch b (global B = P b)::

    T_step(P)  = t0 + c b + T_ar(P)                 per-rank compute + the all-reduce
    T_ar(P)    = 2 (P - 1) alpha + 2 (P - 1)/P n beta      the ring model, n = gradient bytes
    S(B)       = S_min + E_min / B                  optimizer steps to the target error
    T_target(P) = S(P b) T_step(P)

``t0`` (s) and ``c`` (s per example) are fitted to the measured one-thread-per-rank compute
time per step; ``alpha`` (s) and ``beta`` (s/byte) come from the all-reduce micro-benchmark, or
are stated inputs for faster interconnects. The all-reduce dominates a step from the first P
with ``T_ar(P) > t0 + c b``; a larger global batch stops saving steps beyond
``B_crit = E_min / S_min``, i.e. beyond ``P = B_crit / b``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = ["INTERCONNECTS", "StepModel", "StepsCurve", "figures", "inputs", "project",
           "section", "summarize"]

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
    """Optimizer steps to the target error ``S(B) = S_min + E_min / B``."""

    model: str
    s_min: float
    e_min: float
    source: str
    placeholder: bool

    @property
    def b_crit(self) -> float:
        """``E_min / S_min``: above it a larger batch saves fewer than half the steps it could."""
        return self.e_min / self.s_min

    def steps(self, B: np.ndarray) -> np.ndarray:
        return self.s_min + self.e_min / np.asarray(B, float)


# ---------------------------------------------------------------------------- inputs from rows
def _newest(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if "datetime" in rows:
        rows = rows.sort_values("datetime", na_position="first")
    return rows.drop_duplicates(keys, keep="last")


def _kind(df: pd.DataFrame, kind: str) -> pd.DataFrame:
    return df[df["kind"] == kind].copy() if "kind" in df else df.iloc[0:0]


def _measured(df: pd.DataFrame) -> pd.DataFrame:
    rows = _kind(df, "distributed")
    if rows.empty:
        return rows
    return _newest(rows, ["device", "model", "batch_size", "world_size", "threads_per_rank"])


def _fits(df: pd.DataFrame) -> pd.DataFrame:
    rows = _kind(df, "allreduce")
    return rows if rows.empty else _newest(rows, ["device", "world_size"])


def step_models(df: pd.DataFrame) -> dict[str, StepModel]:
    """Per model, ``t0 + c b`` fitted (least squares on relative residuals, so b = 10 counts
    as much as b = 1,000; t0 >= 0) to the CPU rows with one thread per rank: compute seconds
    per step against the local batch ``b = ceil(B / P)``."""
    rows = _measured(df)
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


def steps_curves(df: pd.DataFrame, given: dict[str, tuple[float, float]] | None = None,
                 ) -> dict[str, StepsCurve]:
    """``S(B)`` per model: ``given`` (model -> (S_min, E_min), e.g. from the batch-size study)
    first; else fitted to the time-to-target rows of that model (steps to target at >= 2 batch
    sizes, the best learning rate of each); else a clearly labelled placeholder (the softmax
    fit, or S_min = 2,000, E_min = 45,000)."""
    given = given or {}
    out: dict[str, StepsCurve] = {}
    rows = _kind(df, "time_to_target")
    for model in ("softmax", "mlp"):
        if model in given:
            s_min, e_min = given[model]
            out[model] = StepsCurve(model, float(s_min), float(e_min), "given", False)
            continue
        g = rows
        if not g.empty:
            model_col = g["cfg_model"] if "cfg_model" in g else pd.Series("softmax", g.index)
            g = g[(model_col.fillna("softmax") == model) & (g["target_reached"] == True)  # noqa: E712
                  & g["steps_to_target"].notna()]
            g = _newest(g, ["batch_size"])
        if len(g) >= 2:
            B = g["batch_size"].astype(float).to_numpy()
            S = g["steps_to_target"].astype(float).to_numpy()
            A = np.column_stack([np.ones_like(B), 1.0 / B]) / S[:, None]
            (s_min, e_min), *_ = np.linalg.lstsq(A, np.ones_like(S), rcond=None)
            if s_min > 0 and e_min > 0:
                target = g["cfg_target_error"].iloc[0] if "cfg_target_error" in g else None
                lrs = sorted(set(g["cfg_learning_rate"].astype(float))) if (
                    "cfg_learning_rate" in g) else []
                pts = ", ".join(f"S({int(b)}) = {int(s)}" for b, s in sorted(zip(B, S,
                                                                                 strict=True)))
                out[model] = StepsCurve(
                    model, float(s_min), float(e_min),
                    f"fitted (relative least squares) to this suite's time-to-target runs "
                    f"(target {target}, learning rate {lrs}, one seed: {pts}); not the "
                    "batch-size study: the learning rate was not tuned per B", False)
                continue
    for model in ("softmax", "mlp"):
        if model not in out:
            base = out.get("softmax")
            if base is not None and not base.placeholder:
                out[model] = StepsCurve(model, base.s_min, base.e_min,
                                        "PLACEHOLDER: the softmax curve reused until the "
                                        f"batch-size study supplies the {model}'s", True)
            else:
                out[model] = StepsCurve(model, 2_000.0, 45_000.0,
                                        "PLACEHOLDER (illustrative, not measured): pass "
                                        "steps_curves={model: (S_min, E_min)}", True)
    return out


def _int_or(value: object, default: int) -> int:
    return int(value) if value is not None and pd.notna(value) else int(default)


def inputs(df: pd.DataFrame) -> dict[str, Interconnect]:
    """The interconnects projected: the measured fit(s) here (one per device and P, newest),
    then the stated ones."""
    out = {}
    for r in _fits(df).itertuples():
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
def project(step: StepModel, curve: StepsCurve, ic: Interconnect, b: int = PER_WORKER_BATCH,
            max_p: int = MAX_P) -> pd.DataFrame:
    """Per P = 1 .. ``max_p``: global B, compute and all-reduce seconds per step, steps and
    seconds to the target (see the module docstring)."""
    P = np.arange(1, max_p + 1, dtype=float)
    compute = np.full_like(P, step.t0_s + step.per_example_s * b)
    allreduce = (2 * (P - 1) * ic.alpha_s
                 + 2 * (P - 1) / P * step.gradient_bytes * ic.beta_s_per_byte)
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


# ---------------------------------------------------------------------------- figures
def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _measured_figure(rows: pd.DataFrame, path: Path) -> Path | None:
    if rows.empty:
        return None
    models = sorted(rows["model"].unique())
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4.6), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        g = rows[rows["model"] == model].sort_values(["batch_size", "world_size",
                                                      "threads_per_rank"])
        labels = [f"B={int(r.batch_size)}\nP={int(r.world_size)}×{int(r.threads_per_rank)}t"
                  for r in g.itertuples()]
        x = np.arange(len(g))
        compute = g["compute_s_per_step"].astype(float).to_numpy() * 1e3
        allreduce = g["allreduce_s_per_step"].astype(float).to_numpy() * 1e3
        ax.bar(x, compute, color="tab:blue", label="compute (per rank)")
        ax.bar(x, allreduce, bottom=compute, color="tab:red", label="all-reduce")
        for xi, c, a in zip(x, compute, allreduce, strict=True):
            if a > 0:
                ax.text(xi, c + a, f"{a / (c + a):.0%}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_ylabel("ms per step (median over rounds)")
        ax.set_title(f"{model}: time per step at P ranks × threads (% = all-reduce share)",
                     fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def _allreduce_figure(fits: pd.DataFrame, path: Path) -> Path | None:
    if fits.empty:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for r in fits.itertuples():
        n = np.asarray(r.message_bytes, float)
        ax.loglog(n, np.asarray(r.seconds) * 1e6, "o",
                  label=f"measured {r.dist_backend} P={int(r.world_size)} ({r.device})")
        grid = np.logspace(np.log10(n.min()), np.log10(n.max()), 100)
        P = int(r.world_size)
        model = 2 * (P - 1) * r.alpha_s + 2 * (P - 1) / P * grid * r.beta_s_per_byte
        ax.loglog(grid, model * 1e6, "-", label=f"ring fit: α = {r.alpha_s * 1e6:.1f} µs, "
                  f"1/β = {1e-9 / r.beta_s_per_byte:.2f} GB/s")
    ax.set_xlabel("message size n (bytes)")
    ax.set_ylabel("one all-reduce (µs, median)")
    ax.set_title("All-reduce time vs message size, T(n) = 2(P−1)α + 2(P−1)/P·nβ", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def _projection_figure(df: pd.DataFrame, path: Path, b: int,
                       given: dict[str, tuple[float, float]] | None) -> Path | None:
    models, curves, ics = step_models(df), steps_curves(df, given), inputs(df)
    if not models or not any(k.startswith("measured") for k in ics):
        return None
    names = sorted(models)
    fig, axes = plt.subplots(2, len(names), figsize=(6.2 * len(names), 8.4), squeeze=False)
    colors = dict(zip(ics, plt.get_cmap("tab10").colors, strict=False))
    for j, model in enumerate(names):
        curve = curves[model]
        top, bottom = axes[0][j], axes[1][j]
        for name, ic in ics.items():
            proj = project(models[model], curve, ic, b)
            s = summarize(proj, curve, b)
            c = colors[name]
            ring = proj[proj["P"] >= 2]  # 0 at P = 1
            top.loglog(ring["P"], ring["allreduce_s"] * 1e3, color=c,
                       label=f"all-reduce, {name}")
            bottom.loglog(proj["P"], proj["time_to_target_s"], color=c,
                          label=f"{name} (best P = {s['p_best']})")
            if s["p_allreduce_dominates"]:
                top.axvline(s["p_allreduce_dominates"], color=c, ls=":", lw=1)
        proj = project(models[model], curve, next(iter(ics.values())), b)
        top.loglog(proj["P"], proj["compute_s"] * 1e3, color="k", lw=2,
                   label=f"compute, b = {b} (measured)")
        p_crit = curve.b_crit / b
        for ax in (top, bottom):
            if p_crit >= 1:
                ax.axvline(p_crit, color="grey", ls="--", lw=1)
            ax.grid(True, which="both", alpha=0.3)
            ax.set_xlim(1, MAX_P)
        top.set_ylabel("ms per step")
        top.set_title(f"{model}: per-step compute vs ring all-reduce "
                      f"({models[model].gradient_bytes / 1e3:.1f} kB); dotted: all-reduce "
                      "dominates", fontsize=8)
        tag = " (PLACEHOLDER S(B))" if curve.placeholder else ""
        bottom.set_title(f"{model}: projected time to target, S(B) = {curve.s_min:.0f} + "
                         f"{curve.e_min:.0f}/B{tag}; dashed: P = B_crit/b = {p_crit:.2g}",
                         fontsize=8)
        bottom.set_xlabel(f"P workers (global B = P × {b})")
        bottom.set_ylabel("seconds to the target (projected)")
        top.legend(fontsize=6)
        bottom.legend(fontsize=6)
    return _save(fig, path)


def figures(df: pd.DataFrame, out_dir: Path, *, per_worker_batch: int = PER_WORKER_BATCH,
            given_steps: dict[str, tuple[float, float]] | None = None,
            ) -> list[tuple[str, Path]]:
    """Write the section's PNGs into ``out_dir``; ``(title, path)`` of those drawn."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn = [
        ("Data-parallel time per step: compute and all-reduce",
         _measured_figure(_measured(df), out_dir / "dist1_step_split.png")),
        ("All-reduce time vs message size with the ring fit",
         _allreduce_figure(_fits(df), out_dir / "dist2_allreduce_fit.png")),
        (f"Projected time to target vs P (per-worker batch b = {per_worker_batch})",
         _projection_figure(df, out_dir / "dist3_projection.png", per_worker_batch,
                            given_steps)),
    ]
    return [(title, path) for title, path in drawn if path is not None]


# ---------------------------------------------------------------------------- markdown
def _table(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False)


def section(df: pd.DataFrame, *, per_worker_batches: tuple[int, ...] = PER_WORKER_BATCHES,
            given_steps: dict[str, tuple[float, float]] | None = None) -> str:
    """The markdown section: measurements, the fitted all-reduce, the projection and its
    inputs with their sources."""
    rows, fits = _measured(df), _fits(df)
    lines = ["## Data-parallel minibatch SGD (torch.distributed)", ""]
    if rows.empty and fits.empty:
        lines += ["No data-parallel results in these files (run "
                  "`pytest bench/benchmarks/bench_distributed.py`).", ""]
        return "\n".join(lines)
    lines += ["P ranks each compute the gradient of their shard of every global minibatch of B "
              "examples, one all-reduce sums the shard-weighted gradients, every rank applies "
              "the same update (the single-process trajectory at batch B). Times are rank 0's "
              "medians over rounds; the all-reduce time includes waiting for the slower rank.",
              ""]
    if not rows.empty:
        b1 = rows[rows["world_size"] == 1]
        lines += ["### Measured", "", _table(pd.DataFrame({
            "model": rows["model"], "device": rows["device"], "B (global)": rows["batch_size"],
            "P": rows["world_size"], "threads / rank": rows["threads_per_rank"],
            "ms / step": (rows["seconds_per_step"].astype(float) * 1e3).round(3),
            "compute ms / step": (rows["compute_s_per_step"].astype(float) * 1e3).round(3),
            "all-reduce ms / step": (rows["allreduce_s_per_step"].astype(float) * 1e3).round(3),
            "all-reduce share": rows["allreduce_share"].astype(float).map("{:.1%}".format),
            "all-reduce s / epoch": rows["allreduce_s_per_epoch"].astype(float).round(3),
            "1-min load": rows.get("load_avg_1min", pd.Series(np.nan, rows.index)).round(1),
        }).sort_values(["model", "B (global)", "P", "threads / rank"])), ""]
        for r in rows[rows["world_size"] >= 2].itertuples():
            ref = b1[(b1["model"] == r.model) & (b1["batch_size"] == r.batch_size)
                     & (b1["device"] == r.device)
                     & (b1["threads_per_rank"] == r.world_size * r.threads_per_rank)]
            if not ref.empty:
                speed = float(ref["seconds_per_step"].iloc[0]) / r.seconds_per_step
                P, t = int(r.world_size), int(r.threads_per_rank)
                lines.append(f"- {r.model}, B = {int(r.batch_size)}: P = {P} × {t} thread(s) "
                             f"runs a step {speed:.2f}× as fast as one process with {P * t} "
                             f"threads; the all-reduce is {r.allreduce_share:.1%} of its step "
                             f"(1-min load {getattr(r, 'load_avg_1min', float('nan')):.1f}).")
        lines.append("")
    if not fits.empty:
        lines += ["### The all-reduce (ring model fit)", "", _table(pd.DataFrame({
            "backend": fits["dist_backend"], "device": fits["device"], "P": fits["world_size"],
            "α (µs)": (fits["alpha_s"].astype(float) * 1e6).round(2),
            "β (ns/byte)": (fits["beta_s_per_byte"].astype(float) * 1e9).round(4),
            "1/β (GB/s)": (1e-9 / fits["beta_s_per_byte"].astype(float)).round(2),
            "RMS relative residual": fits["fit_rms_relative"].astype(float).map("{:.0%}".format),
            "1-min load": fits.get("load_avg_1min", pd.Series(np.nan, fits.index)).round(1),
        })), ""]
    models, curves, ics = step_models(df), steps_curves(df, given_steps), inputs(df)
    if not models or not any(k.startswith("measured") for k in ics):
        lines += ["(No projection: it needs one-thread-per-rank CPU rows and an all-reduce fit.)",
                  ""]
        return "\n".join(lines) + "\n"
    bs = ", ".join(map(str, per_worker_batches))
    lines += ["### Projection: time to target vs P", "",
              f"Fixed per-worker batch b ∈ {{{bs}}} (global B = P b), P = 1 … {MAX_P}: "
              "T_step(P) = t0 + c b + 2(P−1)α + 2(P−1)/P n β; steps S(B) = S_min + E_min/B; "
              "time to target S(P b) T_step(P). A projection from the inputs below, not a "
              "measurement.", "", "Inputs:", ""]
    for m in models.values():
        lines.append(f"- {m.model}: t0 = {m.t0_s * 1e3:.3f} ms, c = {m.per_example_s * 1e6:.3f} "
                     f"µs per example, n = {m.gradient_bytes:,} bytes — {m.source}.")
    for c in curves.values():
        if c.model in models:
            lines.append(f"- {c.model}: S_min = {c.s_min:,.0f} steps, E_min = {c.e_min:,.0f} "
                         f"examples, B_crit = E_min/S_min = {c.b_crit:,.1f} — {c.source}.")
    for ic in ics.values():
        lines.append(f"- {ic.name}: α = {ic.alpha_s * 1e6:.2f} µs, 1/β = "
                     f"{1e-9 / ic.beta_s_per_byte:.2f} GB/s — {ic.source}.")
    out = []
    for model in sorted(models):
        for b in per_worker_batches:
            for name, ic in ics.items():
                proj = project(models[model], curves[model], ic, b)
                s = summarize(proj, curves[model], b)
                out.append({
                    "model": model + (" (placeholder S(B))" if curves[model].placeholder
                                      else ""),
                    "b": b, "interconnect": name,
                    "P where the all-reduce dominates a step": s["p_allreduce_dominates"]
                    or f"> {MAX_P}",
                    "P beyond which a larger B stops saving steps (B_crit/b)":
                        f"{s['p_batch_stops_saving']:.2g}",
                    "P with the least time to target": s["p_best"],
                    "speed-up there vs P = 1": f"{s['speedup_at_best']:.2f}×"})
    lines += ["", _table(pd.DataFrame(out)), ""]
    for model in sorted(models):
        c = curves[model]
        for b in per_worker_batches:
            p_crit = c.b_crit / b
            note = (f"at b = {b} the global batch exceeds B_crit = {c.b_crit:.0f} already at "
                    "P = 1, so every added worker multiplies B without cutting the steps much"
                    if p_crit <= 1 else
                    f"at b = {b}, beyond P ≈ {p_crit:.1f} a larger global batch stops saving "
                    "steps")
            lines.append(f"- {model}: {note}" + (" (placeholder S(B): not a finding)."
                                                 if c.placeholder else "."))
    lines.append("")
    return "\n".join(lines) + "\n"


def has_rows(df: pd.DataFrame) -> bool:
    """Whether ``df`` holds data-parallel or all-reduce benchmark rows."""
    return "kind" in df and bool(df["kind"].isin(["distributed", "allreduce"]).any())
