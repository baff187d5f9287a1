"""Seaborn figures of a results DataFrame. Each function writes one PNG and returns its path,
or returns None when the data lacks what the figure needs (the report then says so)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import NullFormatter

from reports import tidy

__all__ = ["FIGURES", "palette"]

TIME_PARTS = {"median_compute_s": "compute", "median_h2d_s": "host→device",
              "median_d2h_s": "device→host", "median_eval_s": "evaluation",
              "median_data_move_s": "data movement (gather)"}


def palette(df: pd.DataFrame) -> dict[str, tuple]:
    """One colour per backend-device, the same in every figure (line styles tell placements,
    kernels and machines apart)."""
    names = sorted(set(df["backend"].dropna().astype(str) + "-" + df["device"].dropna()
                       .astype(str))) if {"backend", "device"} <= set(df) else []
    return dict(zip(names, sns.color_palette("tab10", max(len(names), 1)), strict=False))


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _lines(data: pd.DataFrame, y: str, ylabel: str, title: str, path: Path, colors,
           logy: bool = True) -> Path | None:
    if data.empty or data[y].dropna().empty:
        return None
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    sns.lineplot(data=data.sort_values("batch_size"), x="batch_size", y=y, hue=tidy.HUE,
                 style=tidy.STYLE, palette=colors, markers=True, ax=ax, errorbar=None)
    ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("batch size B (examples per step, log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title=None, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, path)


def epoch_time(df: pd.DataFrame, out: Path, colors) -> Path | None:
    return _lines(tidy.epochs(df), "seconds_per_epoch", "time per epoch (s, log scale)",
                  "Time per epoch vs batch size", out / "fig1_epoch_time.png", colors)


def step_time(df: pd.DataFrame, out: Path, colors) -> Path | None:
    data = tidy.steps(df)
    if data.empty:
        return None
    data = data.assign(us_per_step=data["seconds_per_step"] * 1e6)
    return _lines(data, "us_per_step", "time per optimizer step (µs, log scale)",
                  "Time per step vs batch size (per-step overhead dominates on the left)",
                  out / "fig2_step_time.png", colors)


def final_error(df: pd.DataFrame, out: Path, colors) -> Path | None:
    data = tidy.epochs(df)
    if data.empty:
        return None
    data = data.assign(final_valid_error_pct=100 * data["final_valid_error"].astype(float))
    epochs = int(data["epochs"].max())
    return _lines(data, "final_valid_error_pct", "validation error (%)",
                  f"Validation error after the fixed budget (≤ {epochs} epochs)",
                  out / "fig3_final_error.png", colors, logy=False)


def error_vs_time(df: pd.DataFrame, out: Path, colors) -> Path | None:
    """Validation error against wall time: full GD, per-sample SGD and the best minibatch B.

    For each (series, B) the run with the longest validation curve is drawn (a time-to-target
    run where there is one, else a fixed-budget run).
    """
    runs = pd.concat([tidy.time_to_target(df), tidy.epochs(df)], ignore_index=True)
    if runs.empty or "curve_wall_s" not in runs:
        return None
    runs = runs[runs["curve_wall_s"].map(lambda c: isinstance(c, list) and len(c) > 0)]
    # streamed runs follow the resident ones' error curve, only slower: leave them out here
    runs = runs[~runs["series"].str.contains("streamed")]
    if runs.empty:
        return None
    runs = runs.assign(points=runs["curve_wall_s"].map(len))
    runs = runs.sort_values("points").groupby(["series", "batch_size"]).tail(1)
    rows = []
    for series, group in runs.groupby("series"):
        n = group["n_train"].max()
        mb = group[(group["batch_size"] > 1) & (group["batch_size"] < n)]
        picks = [("full GD (B = n)", group[group["batch_size"] >= n]),
                 ("per-sample SGD (B = 1)", group[group["batch_size"] == 1])]
        if len(mb):
            best = mb.loc[mb["best_valid_error"].astype(float).idxmin()]
            picks.append(("best minibatch", mb.loc[[best.name]]))
        for variant, sel in picks:
            for _, r in sel.iterrows():
                name = variant if variant != "best minibatch" else \
                    f"best minibatch (B = {int(r['batch_size'])})"
                for t, e in zip(r["curve_wall_s"], r["curve_valid_error"], strict=True):
                    rows.append({"series": series, "variant": name.split(" (")[0],
                                 "wall_s": t, "valid_error_pct": 100 * e})
    if not rows:
        return None
    data = pd.DataFrame(rows)
    grid = sns.relplot(data=data, x="wall_s", y="valid_error_pct", hue="variant",
                       col="series", col_wrap=min(3, data["series"].nunique()), kind="line",
                       marker="o", height=3.4, aspect=1.25,
                       facet_kws={"sharey": True, "sharex": False})
    for ax in grid.axes.flat:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="major", alpha=0.3)
    grid.set_axis_labels("wall-clock time since start (s, log scale)", "validation error (%)")
    grid.set_titles("{col_name}")
    grid.figure.suptitle("Validation error vs wall-clock time", y=1.02)
    grid.savefig(out / "fig4_error_vs_time.png", dpi=110)
    plt.close(grid.figure)
    return out / "fig4_error_vs_time.png"


def time_split(df: pd.DataFrame, out: Path, colors) -> Path | None:
    """Each run's wall time as shares of compute / transfers / evaluation / data movement."""
    data = tidy.epochs(df)
    parts = [c for c in TIME_PARTS if c in data]
    if data.empty or not parts or "median_total_s" not in data:
        return None
    data = data.sort_values(["series", "batch_size"])
    total = data["median_total_s"].astype(float)
    shares = data[parts].astype(float).div(total, axis=0).fillna(0.0) * 100
    shares.columns = [TIME_PARTS[c] for c in parts]
    shares.index = (data["series"] + "  B=" + data["batch_size"].astype(int).astype(str)
                    + "  (" + (data["seconds_per_epoch"].astype(float)).map(
                        lambda s: f"{s * 1e3:.1f} ms/epoch") + ")")
    fig, ax = plt.subplots(figsize=(9, max(4, 0.24 * len(shares) + 1.5)))
    shares.plot.barh(stacked=True, ax=ax, width=0.8,
                     color=sns.color_palette("Set2", len(shares.columns)))
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of the run's wall time (%); on a CPU host→device is not applicable")
    ax.set_ylabel("")
    ax.set_title("Where the time goes (epoch time in brackets)")
    ax.invert_yaxis()
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3)
    ax.tick_params(axis="y", labelsize=7)
    return _save(fig, out / "fig5_time_split.png")


def to_target(df: pd.DataFrame, out: Path, colors) -> Path | None:
    data = tidy.time_to_target(df)
    if data.empty:
        return None
    reached = data[data["target_reached"].astype(bool)]
    if reached.empty:
        return None
    target = 100 * float(reached["cfg_target_error"].iloc[0])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    sns.lineplot(data=reached, x="batch_size", y="steps_to_target", hue=tidy.HUE, style=tidy.STYLE,
                 palette=colors, markers=True, ax=axes[0], errorbar=None)
    b = np.array(sorted(reached["batch_size"].unique()), dtype=float)
    s0 = reached.loc[reached["batch_size"] == b[0], "steps_to_target"].min()
    axes[0].plot(b, s0 * b[0] / b, "k--", lw=1, label="perfect scaling (slope −1)")
    axes[0].legend(fontsize=8)
    sns.lineplot(data=reached, x="batch_size", y="time_to_target_s", hue=tidy.HUE, style=tidy.STYLE,
                 palette=colors, markers=True, ax=axes[1], errorbar=None)
    axes[1].get_legend().remove()  # same colours as the left panel
    for ax, ylab in zip(axes, ("optimizer steps to target (log)",
                               "training time to target (s, evaluation excluded, log)"),
                        strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("batch size B (log scale)")
        ax.set_ylabel(ylab)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"Reaching {target:.0f} % validation error (best learning rate per B)")
    return _save(fig, out / "fig6_time_to_target.png")


#: (title, function) in report order.
FIGURES = [
    ("Time per epoch vs batch size", epoch_time),
    ("Time per optimizer step vs batch size", step_time),
    ("Validation error after the fixed budget", final_error),
    ("Validation error vs wall-clock time", error_vs_time),
    ("Time split per epoch", time_split),
    ("Time to the target error", to_target),
]
