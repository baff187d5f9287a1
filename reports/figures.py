"""Seaborn / matplotlib figures of a results DataFrame. Each function writes one PNG and returns
its path, or returns None when the data lacks what the figure needs (the report then says so).

Readability rules kept by every figure: one panel per machine and kind of placement (facets,
not overplotting; at most a handful of series per panel), shared log axes within a figure, the
spread of the rounds as error bars (the interquartile range), shuffled epochs only (the in-order
references are in the tables), and what did not reach the target drawn as such.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from bench.analysis import views as tidy
from reports.styles import series_styles

__all__ = ["FIGURES", "HEADLINE_FIGURES"]

TIME_PARTS = {"median_compute_s": "compute", "median_h2d_s": "host→device",
              "median_d2h_s": "device→host", "median_eval_s": "evaluation",
              "median_data_move_s": "data movement (gather)"}
DPI = 110


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _series(df: pd.DataFrame) -> pd.Series:
    """The series label without the machine suffix (the machine is the panel)."""
    return df["series"].astype(str).str.split(" @").str[0]


def _group(row: pd.Series) -> str:
    if row["device"] == "cpu":
        return "CPU"
    return "GPU, data resident" if row.get("placement") == "resident" else "GPU, data streamed"


def _panels(data: pd.DataFrame) -> pd.DataFrame:
    """Adds ``panel`` (machine: CPU | GPU resident | GPU streamed) and ``line`` (series)."""
    data = data.copy()
    data["line"] = _series(data)
    data["panel"] = data["machine"] + ": " + [_group(r) for _, r in data.iterrows()]
    return data


def _grid(n: int, ncols: int = 2, width: float = 5.6, height: float = 3.9):
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                             sharex=True, sharey=True, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat[:n]


def _quiet_limits(values: pd.Series, noisy: pd.Series, log: bool) -> tuple[float, float] | None:
    """Axis limits that fit the rows not flagged noisy (a noisy point may fall outside)."""
    v = values[~noisy & values.notna()].astype(float)
    v = v[v > 0] if log else v
    if v.empty or not noisy.any():
        return None
    lo, hi = float(v.min()), float(v.max())
    return (lo / 1.6, hi * 1.6) if log else (lo - 0.05 * (hi - lo + 1), hi + 0.05 * (hi - lo + 1))


def _facet_lines(data: pd.DataFrame, y: str, lo: str | None, hi: str | None, ylabel: str,
                 title: str, path: Path, colors, logy: bool = True,
                 panel_titles: dict[str, str] | None = None) -> Path | None:
    """One panel per ``panel``, one line per ``line`` against B, error bars lo..hi."""
    data = data[data[y].notna()]
    if data.empty:
        return None
    if "noisy" in data:
        data = data.assign(noisy=data["noisy"].fillna(False).astype(bool))
    panels = sorted(data["panel"].unique())
    fig, axes = _grid(len(panels))
    styles = series_styles(sorted(data["line"].unique()), colors)
    for ax, panel in zip(axes, panels, strict=True):
        sub = data[data["panel"] == panel]
        for line, g in sub.groupby("line"):
            g = g.sort_values("batch_size")
            st = styles[line]
            yerr = None
            if lo and hi:
                yerr = np.vstack([(g[y] - g[lo]).clip(lower=0), (g[hi] - g[y]).clip(lower=0)])
            ax.errorbar(g["batch_size"], g[y], yerr=yerr, label=line, color=st["color"],
                        ls=st["ls"], marker=st["marker"], ms=4, lw=1.4, capsize=2.5)
            noisy = g[g["noisy"]] if "noisy" in g else g.iloc[0:0]
            if len(noisy):   # hollow: too noisy to read; the axis is not scaled to them
                ax.scatter(noisy["batch_size"], noisy[y], s=70, facecolors="white",
                           edgecolors=st["color"], marker=st["marker"], zorder=4)
        if "noisy" in sub:
            top = sub[hi] if hi else sub[y]
            bottom = sub[lo] if lo else sub[y]
            both = pd.concat([bottom, top])
            limits = _quiet_limits(both, pd.concat([sub["noisy"], sub["noisy"]]), logy)
            if limits:
                ax.set_ylim(*limits)
                ax.annotate("hollow: too noisy to read (axis not scaled to it)", (0.01, 0.01),
                            xycoords="axes fraction", fontsize=7, color="0.35")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        if logy:
            ax.set_yscale("log")
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_title((panel_titles or {}).get(panel, panel), fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7.5, loc="best")
    for ax in axes:
        ax.set_xlabel("batch size B (log scale)")
        ax.set_ylabel(ylabel)
        ax.tick_params(labelbottom=True, labelleft=True)
    fig.suptitle(title, y=1.0)
    fig.tight_layout()
    return _save(fig, path)


def _epochs_shuffled(df: pd.DataFrame) -> pd.DataFrame:
    data = tidy.epochs(df)
    if data.empty or "seconds_per_epoch" not in data:
        return data.iloc[0:0]
    order = data.get("cfg_order", pd.Series("shuffle", data.index)).fillna("shuffle")
    data = data[order == "shuffle"]
    rel_lo, rel_hi = _rel_quartiles(data)
    return _panels(data.assign(lo=data["seconds_per_epoch"] * rel_lo,
                               hi=data["seconds_per_epoch"] * rel_hi))


def _rel_quartiles(data: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """The rounds' first and third quartile over their median (1 where not recorded): scales a
    per-round spread onto a per-epoch time."""
    med = data["stat_median"].astype(float)
    q1 = data["stat_q1"].astype(float) if "stat_q1" in data else med
    q3 = data["stat_q3"].astype(float) if "stat_q3" in data else med
    return (q1 / med).fillna(1.0), (q3 / med).fillna(1.0)


def epoch_time(df: pd.DataFrame, out: Path, colors) -> Path | None:
    data = _epochs_shuffled(df)
    if data.empty:
        return None
    return _facet_lines(data, "seconds_per_epoch", "lo", "hi",
                        "time per epoch (s, log scale)",
                        "Time per epoch vs batch size (shuffled; bars: IQR of the rounds)",
                        out / "fig1_epoch_time.png", colors)


def step_time(df: pd.DataFrame, out: Path, colors) -> Path | None:
    data = tidy.steps(df)
    if data.empty:
        return None
    data = _panels(data.assign(
        us=data["seconds_per_step"] * 1e6,
        lo=data.get("stat_q1", data["seconds_per_step"]).astype(float) * 1e6,
        hi=data.get("stat_q3", data["seconds_per_step"]).astype(float) * 1e6))
    return _facet_lines(data, "us", "lo", "hi", "time per optimizer step (µs, log scale)",
                        "Time per step vs batch size (per-step overhead dominates on the left;"
                        " bars: IQR)", out / "fig2_step_time.png", colors)


def final_error(df: pd.DataFrame, out: Path, colors) -> Path | None:
    data = _epochs_shuffled(df)
    if data.empty or "final_valid_error" not in data:
        return None
    # streamed runs train exactly like resident ones: only the resident / CPU panels
    data = data[~data["panel"].str.endswith("streamed")]
    data = data.assign(err=100 * data["final_valid_error"].astype(float))
    titles = {}
    for panel, g in data.groupby("panel"):
        e = g["cfg_max_epochs"].dropna() if "cfg_max_epochs" in g else g["epochs"]
        s = g["cfg_max_steps"].dropna() if "cfg_max_steps" in g else pd.Series(dtype=float)
        budget = f"{int(e.max())} epoch{'s' if int(e.max()) != 1 else ''}" if len(e) else "?"
        if len(s):
            budget += f", ≤ {int(s.max())} steps"
        titles[panel] = f"{panel}\n(budget: {budget})"
    return _facet_lines(data, "err", None, None, "validation error (%)",
                        "Validation error after each machine's fixed budget (budgets differ "
                        "between machines: compare within a panel)", out / "fig3_final_error.png",
                        colors, logy=False, panel_titles=titles)


def error_vs_time(df: pd.DataFrame, out: Path, colors) -> Path | None:
    """Validation error against wall time: one panel per variant (full GD, per-sample SGD, the
    best minibatch B of each series), one line per series in the styles of every figure.

    For each (series, B) the run with the longest validation curve is drawn (a time-to-target
    run where there is one, else a fixed-budget run). Streamed runs, batch gathers and fast
    kernels follow the same error curve as their default run, only at another speed: they are
    left out here (their times are in the other figures).
    """
    runs = pd.concat([tidy.time_to_target(df), tidy.epochs(df)], ignore_index=True)
    if runs.empty or "curve_wall_s" not in runs:
        return None
    runs = runs[runs["curve_wall_s"].map(lambda c: isinstance(c, list) and len(c) > 0)]
    runs = runs[~runs["series"].str.contains("streamed")]
    for col, default in (("gather", "epoch"), ("kernel", "eager"), ("cfg_order", "shuffle")):
        if col in runs:
            runs = runs[runs[col].fillna(default) == default]
    if runs.empty:
        return None
    runs = runs.assign(points=runs["curve_wall_s"].map(len), line=_series(runs))
    runs = runs.sort_values("points").groupby(["line", "batch_size"]).tail(1)
    picks = []
    for _line, group in runs.groupby("line"):
        n = group["n_train"].max()
        mb = group[(group["batch_size"] > 1) & (group["batch_size"] < n)]
        picks += [("full-batch GD (B = n)", group[group["batch_size"] >= n]),
                  ("per-sample SGD (B = 1)", group[group["batch_size"] == 1])]
        if len(mb):
            picks.append(("best minibatch B", mb.loc[[mb["best_valid_error"].astype(float)
                                                       .idxmin()]]))
    panels = [p for p in ("full-batch GD (B = n)", "per-sample SGD (B = 1)", "best minibatch B")
              if any(v == p and len(sel) for v, sel in picks)]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), sharey=True,
                             squeeze=False)
    styles = series_styles(sorted(runs["line"].unique()), colors)
    for ax, panel in zip(axes[0], panels, strict=True):
        for variant, sel in picks:
            for _, r in sel.iterrows() if variant == panel else ():
                st = styles[r["line"]]
                label = r["line"] + (f" (B = {int(r['batch_size'])})"
                                     if panel == "best minibatch B" else "")
                ax.plot(r["curve_wall_s"], 100 * np.asarray(r["curve_valid_error"], float),
                        color=st["color"], ls=st["ls"], marker=st["marker"], ms=3, lw=1.2,
                        label=label)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="major", alpha=0.3)
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("wall-clock time since start (s, log scale)")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("validation error (%)")
    fig.suptitle(f"Validation error vs wall-clock time — {runs['machine'].iloc[0]}")
    fig.tight_layout()
    return _save(fig, out / "fig4_error_vs_time.png")


def time_split(df: pd.DataFrame, out: Path, colors) -> Path | None:
    """Each run's wall time as shares of compute / transfers / evaluation / data movement: one
    panel per backend, device and placement (softmax regression, eager, one gather per epoch),
    one stacked bar per B (shuffled runs)."""
    data = _epochs_shuffled(df)
    parts = [c for c in TIME_PARTS if c in data]
    if data.empty or not parts or "median_total_s" not in data:
        return None
    # one panel per backend, device and placement: the default kernel, gather and model only
    # (the others' split is in the tables)
    for col, default in (("gather", "epoch"), ("kernel", "eager"), ("model", "softmax")):
        if col in data:
            data = data[data[col].fillna(default) == default]
    data = data.assign(panel=data["line"] + " — " + data["machine"])
    panels = sorted(data["panel"].unique())
    ncols = min(4, len(panels))
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.9 * nrows + 0.6),
                             sharey=True, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    part_colors = dict(zip(parts, sns.color_palette("Set2", len(parts)), strict=False))
    for ax, panel in zip(axes.flat, panels, strict=False):
        g = data[data["panel"] == panel].sort_values("batch_size")
        shares = g[parts].astype(float).div(g["median_total_s"].astype(float), axis=0) \
            .fillna(0.0) * 100
        x = np.arange(len(g))
        bottom = np.zeros(len(g))
        for c in parts:
            ax.bar(x, shares[c], bottom=bottom, color=part_colors[c], width=0.75)
            bottom += shares[c].to_numpy()
        ax.set_xticks(x, [f"{int(b)}" for b in g["batch_size"]], fontsize=8, rotation=45)
        ax.set_ylim(0, 100)
        ax.set_title(panel, fontsize=8.5)
        ax.set_xlabel("B", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("share of wall time (%)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=part_colors[c]) for c in parts]
    fig.legend(handles, [TIME_PARTS[c] for c in parts], loc="upper center", ncol=len(parts),
               bbox_to_anchor=(0.5, 1.0), fontsize=9)
    fig.suptitle("Where the time goes, per series and B (softmax regression, shuffled "
                 "epochs; host→device is n/a on a CPU)", y=1.04)
    fig.tight_layout()
    return _save(fig, out / "fig5_time_split.png")


def to_target(df: pd.DataFrame, out: Path, colors) -> Path | None:
    data = tidy.time_to_target(df)
    if data.empty or "target_reached" not in data:
        return None
    data = data.assign(line=_series(data), reached=data["target_reached"].astype(bool))
    if not data["reached"].any():
        return None
    target = 100 * float(data["cfg_target_error"].iloc[0])
    machines = sorted(data["machine"].unique())
    fig, axes = plt.subplots(len(machines), 2, figsize=(11, 4.2 * len(machines)),
                             squeeze=False)
    styles = series_styles(sorted(data["line"].unique()), colors)
    for row, m in zip(axes, machines, strict=True):
        sub = data[data["machine"] == m]
        for ax, y, ylab in ((row[0], "steps_to_target", "optimizer steps to target (log)"),
                            (row[1], "time_to_target_s",
                             "training time to target (s, evaluation excluded, log)")):
            reached = sub[sub["reached"]]
            for line, g in reached.groupby("line"):
                g = g.sort_values("batch_size")
                st = styles[line]
                ax.plot(g["batch_size"], g[y].astype(float), color=st["color"], ls=st["ls"],
                        marker=st["marker"], ms=5, label=line)
            missed = sub[~sub["reached"]]
            if len(missed) and len(reached):
                top = reached[y].astype(float).max() * 2.5
                for line, g in missed.groupby("line"):
                    ax.scatter(g["batch_size"], np.full(len(g), top), marker="x", s=45,
                               color=styles[line]["color"])
                ax.axhline(top, color="0.6", lw=0.6, ls=":")
                ax.annotate("× not reached within budget", (0.02, 0.97),
                            xycoords="axes fraction", va="top", fontsize=8, color="0.3")
            if y == "steps_to_target" and len(reached) > 1:
                b = np.array(sorted(reached["batch_size"].unique()), dtype=float)
                s0 = reached.loc[reached["batch_size"] == b[0], y].astype(float).min()
                ax.plot(b, s0 * b[0] / b, "k--", lw=1, label="perfect scaling (slope −1)")
            ax.set_xscale("log")
            ax.set_yscale("log")
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("batch size B (log scale)")
            ax.set_ylabel(ylab)
            ax.set_title(m, fontsize=10)
            ax.grid(True, which="major", alpha=0.3)
        handles, labels = row[0].get_legend_handles_labels()
        if len(sub[~sub["reached"]]):
            handles.append(Line2D([], [], marker="x", ls="", color="0.3"))
            labels.append("not reached")
        row[0].legend(handles, labels, fontsize=7.5, loc="best")
    lrs = ", ".join(f"{v:g}" for v in sorted(set(data["cfg_learning_rate"].astype(float))))
    fig.suptitle(f"The time-to-target benchmark: reaching {target:.0f} % validation error with "
                 f"one learning rate per model for every B ({lrs}): not tuned per B")
    fig.tight_layout()
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

#: The figures the report's first page may show, in this order (the rest: the machine's page).
HEADLINE_FIGURES = ("Time per epoch vs batch size", "Time per optimizer step vs batch size")
