"""The report's study section ("the fair race") and its figures, from the study's tidy table.

``section(study_df)`` returns markdown; ``figures(study_df, out_dir)`` writes PNGs and returns
``(caption, path)`` pairs. ``study_df`` is ``bench.study.load_study("results/study")``; every
number shown comes from it (the fit of S(B) is recomputed from the stored trials).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from bench.analysis import (
    StepsFit,
    b_simple_near_target,
    fastest_variant,
    fit_study,
    overlapping,
    per_batch_size,
    regime,
    steps_to_target,
)
from bench.analysis import project_time_to_target as project
from bench.analysis.names import format_seconds, variant_name
from bench.analysis.study import context, records
from bench.analysis.study import studies as study_names
from reports.figures import palette

STEPS_FIGURE = ("Steps to the target vs B at each B's best learning rate: the fit S(B) = S_min + "
                "E_min/B, B_crit, B_simple and the seeds' range")
LR_FIGURE = "Learning rates tried per B, by outcome, and the best one"
TIME_FIGURE = ("Time-to-target vs B per backend: S(B) × the measured time per step (band: "
               "fastest–slowest repeat); crosses: measured directly")
NOISE_FIGURE = ("The exact gradient noise scale B_simple along the best runs (bars: mean tr Σ / "
                "mean |G|² over 0.5–1.5 × steps-to-target)")
#: The study's figures the report's first page may show, in this order.
HEADLINE_FIGURES = (STEPS_FIGURE, TIME_FIGURE)

__all__ = ["HEADLINE_FIGURES", "figures", "gpu_timing_studies", "on_the_card", "section"]


def _optimizer(cfg: dict) -> str:
    extra = dict(cfg.get("extra_config") or [])
    return ", ".join(f"{k} {v}" for k, v in extra.items()) or "plain SGD"


def _variant(B: int) -> str:
    return variant_name(B)


# ------------------------------------------------------------------------------ markdown


def _answer(df: pd.DataFrame, study: str) -> list[str]:
    direct = records(df, "direct")
    direct = direct[(direct["study"] == study)].dropna(subset=["measured_s"]) \
        if not direct.empty else direct
    if direct.empty:
        return ["*No direct time-to-target measurement stored for this study.*"]
    def spread(row: pd.Series) -> str:
        v = row["measured_s_all"]
        return f" [{min(v):.3g}–{max(v):.3g}]" if isinstance(v, list) and v else ""

    best = direct.loc[direct["measured_s"].idxmin()]
    parts = [f"**fastest to the target: {_variant(best['batch_size'])}, "
             f"B = {int(best['batch_size']):,}, {best['backend']}, cpu, in "
             f"{format_seconds(best['measured_s'])}**{spread(best)}"]
    for B in (50_000, 1):
        at = direct[direct["batch_size"] == B]
        if len(at):
            row = at.loc[at["measured_s"].idxmin()]
            parts.append(f"{_variant(B)}: {format_seconds(row['measured_s'])}{spread(row)} "
                         f"({row['backend']})")
    return ["; ".join(parts) + " — time-to-target measured at each one's best learning rate "
            "(training time, validation excluded; median [min–max] of the repeats, one "
            "thread)."]


def _regimes(fit: StepsFit, Bs: list[int]) -> str:
    groups: dict[str, list[int]] = {}
    for B in Bs:
        groups.setdefault(regime(fit, B), []).append(B)
    desc = "; ".join(f"{name}: B ∈ {{{', '.join(f'{b:,}' for b in bs)}}}"
                     for name, bs in groups.items())
    return (f"Regimes (from the fit): perfect scaling for B ≤ B_crit/10 = "
            f"{fit.perfect_scaling_max_b:,.0f}, diminishing returns up to 10 B_crit = "
            f"{fit.max_parallelism_min_b:,.0f}, maximal data parallelism above; measured "
            f"batch sizes — {desc}.")


def section(study_df: pd.DataFrame) -> str:
    """The study's markdown: per study (machine) the answer, the fit, B_simple, the per-B
    table and the composed-vs-measured time-to-target table."""
    studies = study_names(study_df)
    if not studies:
        card = on_the_card(study_df)
        return ("## The fair race\n\nNo study results found (run `python -m bench.study`; "
                "results go to `results/study/`).\n" + ("\n" + "\n".join(card) + "\n"
                                                        if card else ""))
    out = ["## The fair race: each batch size at its best learning rate", ""]
    for study in studies:
        df = study_df[study_df["study"] == study]
        ctx = context(study_df, study)
        cfg = json.loads(ctx.get("study_config") or "{}")
        per_b = per_batch_size(df).sort_values("batch_size")
        target = cfg.get("target_error", df["target_error"].dropna().iloc[0]
                         if "target_error" in df else math.nan)
        out += [f"### Study `{study}` — {ctx.get('machine_label', 'unknown machine')}", ""]
        out += [*_answer(df, study), ""]
        ctxs = records(study_df, "context")
        walls = ctxs[ctxs["study"] == study].get("wall_s", pd.Series(dtype=float)).dropna()
        wall = float(walls.sum()) if len(walls) else None
        runs = (f" (the sum over {len(walls)} runs; a rerun computes only what is missing)"
                if len(walls) > 1 else "")
        out.append(f"Target: validation error ≤ {target:.1%}; {cfg.get('dtype', 'float32')}, "
                   f"{cfg.get('init', 'zeros')} init (the seed sets the data order), "
                   f"{_optimizer(cfg)}; seeds {cfg.get('seeds')}; "
                   f"runner {ctx.get('runner', '?')}; commit `{str(ctx.get('commit'))[:10]}`; "
                   f"study wall time {format_seconds(wall) if wall else 'n/a (unfinished)'}{runs}.")
        out.append("")
        fit = fit_study(per_b)
        bs = b_simple_near_target(df, per_b)
        if fit is not None:
            out.append(f"Fit S(B) = S_min + E_min/B (least squares of log S): **S_min = "
                       f"{fit.s_min:,.0f} steps, E_min = {fit.e_min:,.0f} examples, B_crit = "
                       f"E_min/S_min = {fit.b_crit:,.0f}** (RMS residual "
                       f"{fit.rms_log_residual:.2f} in log steps over {fit.n_points} B).")
            if not math.isnan(bs["stable"]):
                runs = ", ".join(f"B = {b:,}: {v:,.0f}" for b, v in bs["along_runs_by_b"].items())
                stable = ", ".join(f"{b:,}" for b in bs["stable_bs"])
                out.append(f"Gradient noise scale near the target (exact, over the 50,000 "
                           f"training examples; mean tr Σ / mean |G|² over 0.5–1.5 × "
                           f"steps-to-target along the best run at each B): **B_simple = "
                           f"{bs['stable']:,.0f}** along the runs in the perfect-scaling regime "
                           f"(B = {stable}), whose rates are far below the stability edge: the "
                           f"fitted B_crit is {fit.b_crit / bs['stable']:.2f} × this "
                           f"prediction. Every run: {runs}; at the best rates of larger B the "
                           f"runs oscillate (the validation error jumps between checkpoints) "
                           f"and |G|² there measures the oscillation, so B_simple drops.")
            if not math.isnan(bs["median"]):
                out.append(f"At the single point where each B's best trial reached the target, "
                           f"B_simple has median {bs['median']:,.0f} over B (range "
                           f"{bs['min']:,.0f}–{bs['max']:,.0f}): at the best rates the runs "
                           f"oscillate, |G|² swings by orders of magnitude between checkpoints "
                           f"while tr Σ stays steady, and the target is met on a downswing of "
                           f"|G|², so one point overstates B_simple; the ratio of averages above "
                           f"is the estimate to compare with B_crit (McCandlish et al. average "
                           f"both before dividing).")
            out.append("")
            out.append(_regimes(fit, per_b["batch_size"].tolist()))
            lrs = per_b.dropna(subset=["best_lr"])
            slopes = []
            for name in ("perfect scaling", "diminishing returns", "maximal data parallelism"):
                g = lrs[[regime(fit, B) == name for B in lrs["batch_size"]]]
                if len(g) >= 2:
                    k = np.polyfit(np.log(g["batch_size"]), np.log(g["best_lr"]), 1)[0]
                    slopes.append(f"{name}: B^{k:.2f} (best lr {g['best_lr'].min():.3g}–"
                                  f"{g['best_lr'].max():.3g})")
            if slopes:
                out.append("The best learning rate grows as (least squares of log lr on log B; "
                           "linear scaling is B^1.00) — " + "; ".join(slopes) + ".")
        out.append("")
        table = pd.DataFrame({
            "B": per_b["batch_size"].map("{:,}".format),
            "variant": per_b["batch_size"].map(_variant),
            "backend": per_b["backend"],
            "best lr": per_b.get("best_lr", pd.Series(index=per_b.index, dtype=float))
            .map(lambda v: f"{v:.3g}" if pd.notna(v) else "—"),
            "steps to target": per_b.get("steps_to_target", pd.Series(index=per_b.index))
            .map(lambda v: f"{int(v):,}" if pd.notna(v) else "—"),
            "seeds min / median / max (steps)": [
                f"{int(r.seed_steps_min):,} / {r.seed_steps_median:,.0f} / "
                f"{int(r.seed_steps_max):,} ({r.seeds_reached}/{r.seeds})"
                if pd.notna(r.get("seed_steps_min")) else "—" for _, r in per_b.iterrows()],
            "trials (diverged, capped)": [f"{r.trials} ({r.diverged}, {r.capped})"
                                          for r in per_b.itertuples()],
            "validate every (steps)": per_b.get("validation_interval",
                                                pd.Series(index=per_b.index))
            .map(lambda v: f"{int(v):,}" if pd.notna(v) else "—"),
            "B_simple at target": per_b.get("b_simple_at_target", pd.Series(index=per_b.index))
            .map(lambda v: f"{v:,.0f}" if pd.notna(v) else "—"),
            "why not": per_b.get("why_not", pd.Series(index=per_b.index)).fillna(""),
        })
        out += [table.to_markdown(index=False), ""]
        direct = records(df, "direct")
        if not direct.empty:
            d = direct.sort_values("measured_s")
            out += ["Time-to-target, composed (steps-to-target × the measured time per step at "
                    "one thread, plus the per-epoch reshuffle) against measured directly at the "
                    "best learning rate. *Error (timing phase)*: composed from the study's timing "
                    "phase, minutes earlier, so it also holds the machine's drift; *error "
                    "(paired)*: the step re-timed right before each direct run, median of the "
                    "per-round errors — the composition's own error.", "",
                    pd.DataFrame({
                        "B": d["batch_size"].map("{:,}".format),
                        "variant": d["batch_size"].map(_variant),
                        "backend": d["backend"],
                        "composed (s)": d["composed_s"].map("{:.3g}".format),
                        "measured (s): median [min–max]": [
                            f"{r.measured_s:.3g} [{min(r.measured_s_all):.3g}–"
                            f"{max(r.measured_s_all):.3g}]" if pd.notna(r.measured_s) else "—"
                            for r in d.itertuples()],
                        "error (timing phase)": d["composition_error"].map(
                            lambda v: f"{v:+.0%}" if pd.notna(v) else "—"),
                        "error (paired)": d.get("paired_composition_error",
                                                pd.Series(index=d.index, dtype=float)).map(
                            lambda v: f"{v:+.0%}" if pd.notna(v) else "—"),
                    }).to_markdown(index=False), ""]
    out += on_the_card(study_df)
    out += optimizer_axis(study_df)
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------ on the card


def _on_device(rows: pd.DataFrame, gpu: bool) -> pd.DataFrame:
    """Timing rows on a GPU (``gpu``) or on the CPU; rows without a device are the CPU's."""
    if rows.empty:
        return rows
    device = rows["device"] if "device" in rows else pd.Series("cpu", index=rows.index)
    on_cpu = device.fillna("cpu") == "cpu"
    return rows[~on_cpu] if gpu else rows[on_cpu]


def gpu_timing_studies(study_df: pd.DataFrame) -> list[str]:
    """The studies holding time per step measured on a GPU (e.g. ``--timing-only`` on a card)."""
    on_gpu = _on_device(records(study_df, "timing"), gpu=True)
    return sorted(on_gpu["study"].unique()) if not on_gpu.empty else []


def _num(v: float) -> str:
    """Three significant digits, without exponents up to 10^6 (12.3, 0.00456, 25,800)."""
    return f"{v:,.0f}" if 1000 <= abs(v) < 1e6 else f"{v:.3g}"


def _rng(row: pd.Series | dict, col: str = "projected_s", scale: float = 1.0) -> str:
    """'median [min–max]' of ``col`` (and its ``_min`` / ``_max``) times ``scale``."""
    return (f"{_num(row[col] * scale)} [{_num(row[col + '_min'] * scale)}–"
            f"{_num(row[col + '_max'] * scale)}]")


def _phrase(row: pd.Series) -> str:
    return (f"{_variant(row['batch_size'])} (B = {int(row['batch_size']):,}, {row['spec']}) "
            f"{_rng(row)} s")


def _winner(fv: dict | None, where: str) -> str:
    """'<where> fastest: ...' or '<where> tied: ... and ...': never a winner the spread could
    reverse (tied when the [fastest–slowest repeat] ranges of the projections overlap)."""
    if fv is None:
        return ""
    if fv["tied"]:
        return (f"{where} tied: {_phrase(fv['winner'])} and "
                + " and ".join(_phrase(t) for t in fv["tied"]) + " (their ranges overlap)")
    return f"{where} fastest: {_phrase(fv['winner'])}"


def _card(df: pd.DataFrame, card: str) -> dict:
    """Everything the card's subsection and answer show for GPU timing study ``card``."""
    ctx = context(df, card)
    gpu = ctx.get("gpu_name") or ctx.get("machine_label") or card
    if not isinstance(gpu, str):
        gpu = card
    source = ctx.get("steps_from") if isinstance(ctx.get("steps_from"), str) else None
    steps = steps_to_target(df, source) if source in study_names(df) else {}
    note = ""
    if not steps and isinstance(ctx.get("steps_from_steps"), str):
        steps = {int(B): int(S) for B, S in json.loads(ctx["steps_from_steps"]).items()}
        note = " (the copy stored with the timing: that study is not in this report)"
    timing = records(df, "timing")
    on_card = _on_device(timing[timing["study"] == card], gpu=True)
    proj = project(on_card, steps)
    cpu = _on_device(timing[timing["study"] == source], gpu=False) if source else timing[:0]
    cpu_proj = project(cpu, steps)
    fv, fv_cpu = fastest_variant(proj), fastest_variant(cpu_proj)
    line = ""
    if fv is not None:
        shown = {fv["winner"].name, *(t.name for t in fv["tied"])}
        others = [r for _, r in sorted(fv["by_variant"].items()) if r.name not in shown]
        line = (f"**{_winner(fv, 'On the card,')}**"
                + "".join(f"; {_phrase(r)}" for r in others))
        if fv_cpu is not None:
            line += f". {_winner(fv_cpu, f'On the CPU (composed, study `{source}`),')}"
            if not fv["tied"] and not fv_cpu["tied"]:
                same = fv_cpu["winner"]["variant"] == fv["winner"]["variant"]
                line += (" — the same variant wins on both" if same
                         else " — a different variant wins on the card")
            ratio = fv_cpu["winner"]["projected_s"] / fv["winner"]["projected_s"]
            line += (f"; the card's fastest reaches the target {_times(ratio)} sooner than the "
                     f"CPU's" if ratio >= 1 else f"; the card's fastest reaches the target "
                     f"{_times(1 / ratio)} later than the CPU's")
            line += " (medians)"
        line += (". Projected time-to-target = S(B) × time per step + reshuffles, median "
                 "[fastest–slowest repeat].")
    return {"ctx": ctx, "gpu": gpu, "source": source or "none", "note": note, "steps": steps,
            "on_card": on_card, "proj": proj, "cpu_proj": cpu_proj, "winner_line": line}


def _times(ratio: float) -> str:
    """A ratio as '2.5×', '53×', '1,234×'."""
    return f"{ratio:.2g}×" if ratio < 100 else f"{ratio:,.0f}×"


def _us(v: float) -> str:
    return _num(v * 1e6) if pd.notna(v) else "—"


def on_the_card(study_df: pd.DataFrame) -> list[str]:
    """Markdown lines of the subsection "On the card", one part per study that measured time
    per step on a GPU: per B the best time per step there (spec), the projected
    time-to-target with the S(B) of the study it names (``--steps-from``), the CPU study's
    composed and measured time-to-target, the time per step of every spec, what was not timed
    and why, and the answer (which variant is fastest, or tied). Empty without such a study."""
    out: list[str] = []
    for card in gpu_timing_studies(study_df):
        c = _card(study_df, card)
        ctx, proj, on_card = c["ctx"], c["proj"], c["on_card"]
        cfg = json.loads(ctx.get("study_config") or "{}")
        target = cfg.get("target_error", 0.08)
        out += [f"### On the card: {c['gpu']} (time per step `{card}`, S(B) from "
                f"`{c['source']}`)", ""]
        out.append(f"Steps-to-target depends on the model, optimizer, B, learning rate and seed, "
                   f"not on the hardware: the card's time per step (median of the repeats after "
                   f"a warm-up, every range synchronised, {cfg.get('timing_threads', 1)} host "
                   f"thread) times S(B) of study `{c['source']}`{c['note']} (each B at its best "
                   f"learning rate) plus the reshuffles projects the time to validation error "
                   f"≤ {target:.1%} on the card. Commit `{str(ctx.get('commit'))[:10]}`; timing "
                   f"wall time {format_seconds(ctx.get('timing_wall_s'))} (bound "
                   f"{format_seconds(cfg.get('timing_max_seconds'))}).")
        out.append("")
        if c["winner_line"]:
            out += [c["winner_line"], ""]
        direct = records(study_df, "direct")
        direct = direct[direct["study"] == c["source"]].dropna(subset=["measured_s"]) \
            if not direct.empty else direct
        rows = []
        for B in sorted(on_card["batch_size"].astype(int).unique()):
            at = proj[proj["batch_size"] == B]
            cpu_at = c["cpu_proj"][c["cpu_proj"]["batch_size"] == B]
            d_at = direct[direct["batch_size"] == B] if not direct.empty else direct
            if len(at):
                best = at.loc[at["projected_s"].idxmin()]
                tied = overlapping(at, best)
                best_name = best["spec"] + (f" (tied: {', '.join(tied['spec'])})"
                                            if len(tied) else "")
                step = _rng(best, "step_s", 1e6)
                projected = _rng(best)
            else:
                g = on_card[on_card["batch_size"] == B]
                best = g.loc[g["step_s"].idxmin()]
                best_name, projected = best["spec"], "— (no S(B))"
                step = _rng(best, "step_s", 1e6)
            cpu_best = cpu_at.loc[cpu_at["projected_s"].idxmin()] if len(cpu_at) else None
            d_best = d_at.loc[d_at["measured_s"].idxmin()] if len(d_at) else None
            rows.append({
                "B": f"{B:,}", "variant": _variant(B),
                "S(B) (steps)": f"{c['steps'][B]:,}" if B in c["steps"] else "—",
                "best on the card": best_name,
                "time per step (µs)": step,
                "projected on the card (s)": projected,
                "CPU composed (s)": (f"{_rng(cpu_best)} ({cpu_best['backend']})"
                                     if cpu_best is not None else "—"),
                "CPU measured (s)": (f"{d_best['measured_s']:.3g} ({d_best['backend']})"
                                     if d_best is not None else "—"),
                "CPU ÷ card": (_times(cpu_best["projected_s"] / at["projected_s"].min())
                               if cpu_best is not None and len(at) else "—"),
            })
        out += ["Per batch size: the best time per step on the card and its projected "
                "time-to-target (median [fastest–slowest repeat]; *tied*: another spec's range "
                "overlaps), against the CPU study's time-to-target composed from its own time "
                "per step and, where it ran one, measured directly.", "",
                pd.DataFrame(rows).to_markdown(index=False), ""]
        us = on_card.assign(batch_size=on_card["batch_size"].astype(int)).pivot_table(
            index="batch_size", columns="spec", values="step_s", aggfunc="median")
        us = us.map(_us)
        us.index = [f"{b:,}" for b in us.index]
        us.index.name = "B"
        out += ["Time per step on the card by backend spec (µs, median of the repeats):", "",
                us.to_markdown(), ""]
        skips = records(study_df, "skip")
        skips = skips[skips["study"] == card] if not skips.empty else skips
        notes = []
        for spec, g in skips.groupby("spec", sort=True) if not skips.empty else ():
            Bs = g["batch_size"].dropna().astype(int).sort_values()
            where = (f"at B = {', '.join(f'{b:,}' for b in Bs)}" if len(Bs) == len(g)
                     else "at all")
            reason = str(g["reason"].iloc[0])
            notes.append(f"- `{spec}` not timed {where}: "
                         f"{reason[:200] + ('…' if len(reason) > 200 else '')}")
        if notes:
            out += ["Not timed on the card:", "", *notes, ""]
    return out


# ------------------------------------------------------------------------------ figures


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
        near = b_simple_near_target(df[df["study"] == study], per_b)
        bs = near["stable"] if not math.isnan(near["stable"]) else near["median"]
        if not math.isnan(bs):
            ax.axvline(bs, color=c, ls="-.", lw=1)
            ax.text(bs, S.max(), f" B_simple={bs:,.0f}", color=c, rotation=90, va="top",
                    ha="left", fontsize=8)
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
    noise = records(df, "noise")
    if noise.empty:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for (study, B), g in noise.groupby(["study", "batch_size"]):
        g = g[g["steps"] > 0].sort_values("steps")
        frac = g["steps"] / g["steps_to_target"]
        near = g[(frac >= 0.5) & (frac <= 1.5)]
        avg = near["trace_cov"].mean() / near["grad_sq_norm"].mean()
        line, = ax.plot(frac, g["b_simple"], "-o", ms=3,
                        label=f"B = {int(B):,} (lr {g['learning_rate'].iloc[0]:.3g}, target at "
                              f"step {int(g['steps_to_target'].iloc[0]):,}; near it "
                              f"mean trΣ / mean |G|² = {avg:,.0f})"
                              + (f", {study}" if noise["study"].nunique() > 1 else ""))
        hit = g[g["steps"] == g["steps_to_target"]]
        ax.scatter(hit["steps"] / hit["steps_to_target"], hit["b_simple"], marker="*", s=150,
                   color=line.get_color(), zorder=5)
        ax.plot([0.5, 1.5], [avg, avg], color=line.get_color(), lw=4, alpha=0.5)
    init = noise[noise["steps"] == 0]["b_simple"]
    if len(init):
        ax.axhline(float(init.iloc[0]), color="grey", ls=":",
                   label=f"at the zero initialisation: {float(init.iloc[0]):,.0f}")
    ax.axvline(1.0, color="grey", ls="--", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="steps / steps-to-target of that run",
           ylabel="B_simple = tr Σ / |G|² (examples)",
           title="Exact gradient noise scale along the best runs (★ = at the target)")
    ax.legend(fontsize=7, loc="upper left")
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


def optimizer_axis(study_df: pd.DataFrame) -> list[str]:
    """Studies of one machine that differ in the optimizer, side by side: steps-to-target per
    B at each one's best learning rate, and the fitted B_crit (Shallue et al. found that
    momentum extends perfect scaling). Empty with fewer than two optimizers."""
    rows, fits = {}, {}
    for name in study_names(study_df):
        cfg = json.loads(context(study_df, name).get("study_config") or "{}")
        extra = dict(cfg.get("extra_config") or {})
        label = extra.get("optimizer", "sgd")
        if label != "sgd" and "momentum" in extra:
            label += f" {extra['momentum']}"
        per_b = per_batch_size(study_df[study_df["study"] == name])
        rows[label] = per_b.set_index("batch_size")["steps_to_target"]
        fits[label] = fit_study(per_b)
    if len(rows) < 2:
        return []
    table = pd.DataFrame(rows).sort_index()
    table = table.dropna(how="any")
    if table.empty:
        return []
    shown = table.map(lambda v: f"{int(v):,}")
    shown.index = [f"{b:,}" for b in table.index]
    shown.index.name = "B"
    crit = "; ".join(f"{k}: B_crit = {f.b_crit:,.0f} (S_min = {f.s_min:,.0f}, "
                     f"E_min = {f.e_min:,.0f})" for k, f in fits.items() if f is not None)
    return ["### The optimizer axis: steps to the target at each one's best learning rate", "",
            shown.to_markdown(), "",
            f"Fits over each study's own batch sizes — {crit}. A study with fewer seeds or "
            "batch sizes has a wider spread: compare the columns where both have a row.", ""]
