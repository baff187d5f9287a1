"""The report's study page ("the fair race"): per study the answer, the fit of S(B), the noise
scale, the per-B table, the composed-vs-measured time-to-target, the card's subsection and the
optimizer axis, from the study's tidy table (``bench.study.load_study``); every number from
``bench.analysis`` (the fit of S(B) is recomputed from the stored trials).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from bench.analysis import StepsFit, fit_study, per_batch_size, regime
from bench.analysis.names import format_seconds, n_train_of, variant_name
from bench.analysis.study import context, records
from bench.analysis.study import studies as study_names
from reports.card import on_the_card
from reports.noise import lines as noise_lines

__all__ = ["optimizer_axis", "section"]


def _optimizer(cfg: dict) -> str:
    extra = dict(cfg.get("extra_config") or [])
    return ", ".join(f"{k} {v}" for k, v in extra.items()) or "plain SGD"


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
    n = n_train_of(best.get("dataset"))
    parts = [f"**fastest to the target: {variant_name(best['batch_size'], n)}, "
             f"B = {int(best['batch_size']):,}, {best['backend']}, cpu, in "
             f"{format_seconds(best['measured_s'])}**{spread(best)}"]
    for B in (n, 1):
        at = direct[direct["batch_size"] == B]
        if len(at):
            row = at.loc[at["measured_s"].idxmin()]
            parts.append(f"{variant_name(B, n)}: {format_seconds(row['measured_s'])}{spread(row)} "
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
        n_train = n_train_of(ctx.get("dataset"))

        def variant(B: int, n_train: int = n_train) -> str:
            return variant_name(B, n_train)
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
        if fit is not None:
            out.append(f"Fit S(B) = S_min + E_min/B (least squares of log S): **S_min = "
                       f"{fit.s_min:,.0f} steps, E_min = {fit.e_min:,.0f} examples, B_crit = "
                       f"E_min/S_min = {fit.b_crit:,.0f}** (RMS residual "
                       f"{fit.rms_log_residual:.2f} in log steps over {fit.n_points} B).")
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
        out += noise_lines(df)
        table = pd.DataFrame({
            "B": per_b["batch_size"].map("{:,}".format),
            "variant": per_b["batch_size"].map(variant),
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
                        "variant": d["batch_size"].map(variant),
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
