"""The study's figures: steps-to-target and its fit, the learning rates tried, the composed
time-to-target per backend, and both noise scales along the noise trajectories. Each writes one
PNG from the study table (``bench.study.load_study``) and ``bench.analysis``' views."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from bench.analysis import fit_study, per_batch_size, steps_to_target
from bench.analysis import project_time_to_target as project
from bench.analysis.noise import QUANTITIES, noise_table, trajectory_points
from bench.analysis.study import records
from bench.analysis.study import studies as study_names
from reports.styles import palette

STEPS_FIGURE = ("Steps to the target vs B at each B's best learning rate: the fit S(B) = S_min + "
                "E_min/B, B_crit and the seeds' range")
LR_FIGURE = "Learning rates tried per B, by outcome, and the best one"
TIME_FIGURE = ("Time-to-target vs B per backend: S(B) × the measured time per step (band: "
               "fastest–slowest repeat); crosses: measured directly")
NOISE_FIGURE = ("The exact noise scales B_simple = tr Σ / |G|² (solid) and B_noise = tr(HΣ) / "
                "GᵀHG (dashed) along each trajectory against its validation error (★: first "
                "passage; band: the fitted B_crit's 95 % interval)")
#: The study's figures the report's first page may show, in this order.
HEADLINE_FIGURES = (STEPS_FIGURE, TIME_FIGURE)
__all__ = ["HEADLINE_FIGURES", "figures"]


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _steps_figure(df: pd.DataFrame, out: Path) -> Path | None:
    studies = study_names(df)
    if not studies:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 5))
    colors = dict(zip(studies, sns.color_palette("tab10", len(studies)), strict=False))
    for study in studies:
        per_b = per_batch_size(df[df["study"] == study]).dropna(subset=["steps_to_target"])
        if per_b.empty:
            continue
        B = per_b["batch_size"].to_numpy(float)
        S = per_b["steps_to_target"].to_numpy(float)
        c = colors[study]
        ax.errorbar(B, S, yerr=[S - np.minimum(S, per_b["seed_steps_min"]),
                                np.maximum(per_b["seed_steps_max"], S) - S],
                    fmt="o", color=c, capsize=3, label=f"{study}: steps-to-target "
                                                       f"(bars: seeds' range)")
        keep = S[0] * B[0] / B >= S.min() * 0.5
        ax.plot(B[keep], (S[0] * B[0] / B)[keep], ":", color="grey",
                label="perfect scaling (S ∝ 1/B)")
        fit = fit_study(per_b)
        if fit is not None:
            grid = np.geomspace(B.min(), B.max(), 200)
            ax.plot(grid, fit.steps(grid), "-", color=c,
                    label=f"fit: S_min={fit.s_min:,.0f}, E_min={fit.e_min:,.0f}")
            ax.axvline(fit.b_crit, color=c, ls="--", lw=1)
            ax.text(fit.b_crit, S.max(), f"B_crit={fit.b_crit:,.0f} ", color=c,
                    rotation=90, va="top", ha="right", fontsize=8)
            if len(studies) == 1:
                edges = [B.min() / 1.5, fit.perfect_scaling_max_b, fit.max_parallelism_min_b,
                         B.max() * 1.5]
                names = ["perfect scaling", "diminishing returns", "maximal data parallelism"]
                for lo, hi, name, shade in zip(edges, edges[1:], names, (0.10, 0.04, 0.10),
                                               strict=False):
                    if hi > lo:
                        ax.axvspan(lo, hi, color="grey", alpha=shade, lw=0)
                        ax.text(math.sqrt(lo * hi), S.min() * 0.55, name, ha="center",
                                fontsize=8, color="dimgrey")
    all_s = [v for line in ax.get_lines() for v in np.asarray(line.get_ydata(), float)
             if v > 1]            # the axvlines' data are (0, 1) in axes units
    if all_s:
        ax.set_ylim(min(all_s) * 0.4, max(all_s) * 2)
    ax.set(xscale="log", yscale="log", xlabel="batch size B (examples)",
           ylabel="steps to the target validation error",
           title="Steps-to-target at each B's best learning rate")
    ax.legend(fontsize=8, loc="upper right")
    return _save(fig, out / "study_steps_to_target.png")


def _lr_figure(df: pd.DataFrame, out: Path) -> Path | None:
    trials = records(df, "trial")
    if trials.empty:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 5))
    t = trials[trials["phase"] != "seed"]
    markers = {"reached": "o", "capped": "s", "budget": "v", "diverged": "X", "oom": "D"}
    sns.scatterplot(data=t, x="batch_size", y="learning_rate", hue="status", style="status",
                    markers=markers, alpha=0.45, ax=ax, s=30)
    names = study_names(df)
    line_colors = ["k", *sns.color_palette("dark", len(names))]   # one colour per study
    for study, color, dash in zip(names, line_colors, ("-", "--", "-.", ":") * len(names),
                                  strict=False):
        per_b = per_batch_size(df[df["study"] == study]).dropna(subset=["steps_to_target"])
        ax.plot(per_b["batch_size"], per_b["best_lr"], ls=dash, marker="o", color=color, lw=1.5,
                ms=5, label=f"{study}: best lr")
        if len(per_b):
            B0, lr0 = per_b["batch_size"].iloc[0], per_b["best_lr"].iloc[0]
            grid = np.geomspace(B0, per_b["batch_size"].max(), 50)
            ax.plot(grid, lr0 * grid / B0, ":", color="grey", label="linear scaling (lr ∝ B)")
    ax.set(xscale="log", yscale="log", xlabel="batch size B (examples)",
           ylabel="learning rate", title="Learning rates tried (by outcome) and the best per B")
    ax.set_ylim(top=min(ax.get_ylim()[1], 10 * t["learning_rate"].max()))
    ax.legend(fontsize=8)
    return _save(fig, out / "study_best_lr.png")


def _time_figure(df: pd.DataFrame, out: Path) -> Path | None:
    timing = records(df, "timing")
    if timing.empty:
        return None
    parts = [project(timing[timing["study"] == study], steps_to_target(df, study))
             .assign(study=study) for study in study_names(df)]
    proj = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if proj.empty:
        return None
    where = proj["device"] + np.where(proj["kernel"] != "eager", "-" + proj["kernel"], "")
    comp = pd.DataFrame({"study": proj["study"], "B": proj["batch_size"],
                         "backend": proj["backend"] + "-" + where,
                         "median": proj["projected_s"], "min": proj["projected_s_min"],
                         "max": proj["projected_s_max"]}).groupby(
        ["study", "B", "backend"], as_index=False).mean()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    # the same colour per backend-device as the benchmark figures
    by_device = palette(proj)
    colors = {label: by_device.get(f"{b}-{d}", "k") for label, b, d in
              zip(proj["backend"] + "-" + where, proj["backend"], proj["device"], strict=True)}
    for (study, backend), g in comp.groupby(["study", "backend"]):
        g = g.sort_values("B")
        ax.plot(g["B"], g["median"], "-o", ms=3, color=colors[backend],
                label=f"{backend} (composed)" + (f", {study}" if len(study_names(df)) > 1 else ""))
        ax.fill_between(g["B"], g["min"], g["max"], color=colors[backend], alpha=0.2)
    direct = records(df, "direct").dropna(subset=["measured_s"]) if "measured_s" in df else None
    if direct is not None and len(direct):
        ax.scatter(direct["batch_size"], direct["measured_s"], marker="X", s=70, color="k",
                   zorder=5, label="measured directly (median)")
    ax.set(xscale="log", yscale="log", xlabel="batch size B (examples)",
           ylabel="training time to the target (s)",
           title="Time-to-target per backend (one thread): steps × time per step")
    ax.legend(fontsize=8)
    return _save(fig, out / "study_time_to_target.png")


def _noise_figure(df: pd.DataFrame, out: Path) -> Path | None:
    table = noise_table(df)
    if table.empty:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 5))
    several = table["study"].nunique() > 1
    colors = sns.color_palette("tab10", len(table.groupby(["study", "trajectory"])))
    for color, ((study, label), rows) in zip(colors, table.groupby(["study", "trajectory"],
                                                                  sort=False), strict=False):
        pts = trajectory_points(df, study)[label][1]
        err = np.array([p.valid_error for p in pts])
        for (field, name), style in zip(QUANTITIES.items(), ("-o", "--s"), strict=True):
            values = np.array([getattr(p, field) for p in pts])
            ok = np.isfinite(values) & (values > 0) & np.isfinite(err)
            if not ok.any():
                continue
            ax.plot(err[ok], values[ok], style, ms=3, color=color,
                    label=f"{name}: {label}" + (f", {study}" if several else ""))
            hit = rows[(rows["quantity"] == name)].dropna(subset=["value"])
            ax.scatter(hit["valid_error"], hit["value"], marker="*", s=140, color=color,
                       zorder=5)
    for study, rows in table.groupby("study"):
        crit = rows.iloc[0]
        if np.isfinite(crit["b_crit_low"]):
            ax.axhspan(crit["b_crit_low"], crit["b_crit_high"], color="grey", alpha=0.2, lw=0,
                       label=f"fitted B_crit, 95 % interval{f', {study}' if several else ''}")
        if np.isfinite(crit["b_crit"]):
            ax.axhline(crit["b_crit"], color="grey", ls=":",
                       label=f"fitted B_crit = {crit['b_crit']:,.0f}"
                             + (f", {study}" if several else ""))
    ax.set(xscale="log", yscale="log", xlabel="validation error (fraction; training goes right)",
           ylabel="noise scale (examples)",
           title="Exact noise scales along each trajectory (★ = first passage)")
    ax.invert_xaxis()
    ax.legend(fontsize=7, loc="best")
    return _save(fig, out / "study_noise_scale.png")


def figures(study_df: pd.DataFrame, out_dir: str | Path) -> list[tuple[str, Path]]:
    """Write the study's figures into ``out_dir``; ``(caption, path)`` for each one made."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    made = [(STEPS_FIGURE, _steps_figure(study_df, out)),
            (LR_FIGURE, _lr_figure(study_df, out)),
            (TIME_FIGURE, _time_figure(study_df, out)),
            (NOISE_FIGURE, _noise_figure(study_df, out))]
    return [(caption, path) for caption, path in made if path is not None]
