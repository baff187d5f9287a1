"""The data-parallel section of the report and its figures, rendered from
``bench.analysis.parallel`` (the projection's maths and inputs are documented there).

``figures(df, out_dir)`` writes the PNGs and returns ``(title, path)`` pairs; ``section(df)``
returns the markdown.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bench.analysis.fit import StepsFit
from bench.analysis.parallel import (
    MAX_P,
    PER_WORKER_BATCH,
    PER_WORKER_BATCHES,
    allreduce_fits,
    has_rows,
    inputs,
    measured_steps,
    project_data_parallel,
    ring_allreduce_s,
    step_models,
    steps_curves,
    summarize,
)

__all__ = ["figures", "has_rows", "section"]

GivenSteps = dict[str, tuple[StepsFit, str]]


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
        model = ring_allreduce_s(P, grid, r.alpha_s, r.beta_s_per_byte)
        ax.loglog(grid, model * 1e6, "-", label=f"ring fit: α = {r.alpha_s * 1e6:.1f} µs, "
                  f"1/β = {1e-9 / r.beta_s_per_byte:.2f} GB/s")
    ax.set_xlabel("message size n (bytes)")
    ax.set_ylabel("one all-reduce (µs, median)")
    ax.set_title("All-reduce time vs message size, T(n) = 2(P−1)α + 2(P−1)/P·nβ", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def _projection_figure(df: pd.DataFrame, path: Path, b: int,
                       given: GivenSteps | None) -> Path | None:
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
            proj = project_data_parallel(models[model], curve, ic, b)
            s = summarize(proj, curve, b)
            c = colors[name]
            ring = proj[proj["P"] >= 2]  # 0 at P = 1
            top.loglog(ring["P"], ring["allreduce_s"] * 1e3, color=c,
                       label=f"all-reduce, {name}")
            bottom.loglog(proj["P"], proj["time_to_target_s"], color=c,
                          label=f"{name} (best P = {s['p_best']})")
            if s["p_allreduce_dominates"]:
                top.axvline(s["p_allreduce_dominates"], color=c, ls=":", lw=1)
        proj = project_data_parallel(models[model], curve, next(iter(ics.values())), b)
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
            given_steps: GivenSteps | None = None,
            ) -> list[tuple[str, Path]]:
    """Write the section's PNGs into ``out_dir``; ``(title, path)`` of those drawn."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn = [
        ("Data-parallel time per step: compute and all-reduce",
         _measured_figure(measured_steps(df), out_dir / "dist1_step_split.png")),
        ("All-reduce time vs message size with the ring fit",
         _allreduce_figure(allreduce_fits(df), out_dir / "dist2_allreduce_fit.png")),
        (f"Projected time to target vs P (per-worker batch b = {per_worker_batch})",
         _projection_figure(df, out_dir / "dist3_projection.png", per_worker_batch,
                            given_steps)),
    ]
    return [(title, path) for title, path in drawn if path is not None]


# ---------------------------------------------------------------------------- markdown
def _table(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False)


def section(df: pd.DataFrame, *, per_worker_batches: tuple[int, ...] = PER_WORKER_BATCHES,
            given_steps: GivenSteps | None = None) -> str:
    """The markdown section: measurements, the fitted all-reduce, the projection and its
    inputs with their sources."""
    rows, fits = measured_steps(df), allreduce_fits(df)
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
                proj = project_data_parallel(models[model], curves[model], ic, b)
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
