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
from bench.analysis.race import Interval, winner_or_tie
from bench.analysis.study import (
    NOT_A_RACE,
    context,
    race_fit,
    race_times,
    records,
    study_config,
)
from bench.analysis.study import studies as study_names
from reports.card import on_the_card
from reports.cells import md
from reports.noise import lines as noise_lines

__all__ = ["optimizer_axis", "race_section", "section"]


def _optimizer(cfg: dict) -> str:
    extra = dict(cfg.get("extra_config") or [])
    return ", ".join(f"{k} {v}" for k, v in extra.items()) or "plain SGD"


# ------------------------------------------------------------------------------ markdown


def _steps(v: float) -> str:
    return f"{v:,.0f}" if math.isfinite(v) else "not reached"


def _seconds(v: float) -> str:
    return format_seconds(v) if math.isfinite(v) else "not reached"


def _within(lo: float, hi: float) -> str:
    return f"[{_num(lo)}–{_num(hi)}]"


def _num(v: float) -> str:
    if not math.isfinite(v):
        return "—"
    return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def _not_a_race(cfg: dict) -> list[str]:
    return [f"**{NOT_A_RACE.capitalize()}.** This study ran before held-out seeds: its "
            f"steps-to-target is the fewest steps over the trials of one seed's search (seeds "
            f"{cfg.get('seeds')} only re-ran the best rate), each capped at the best so far, of "
            "a first passage on runs that may oscillate; it names no winner. Rerun it as a fair "
            "race (`python -m bench.study`: search and held-out seeds).", ""]


def race_section(df: pd.DataFrame, study: str, per_b: pd.DataFrame) -> list[str]:
    """A race study's fair-race section: how S(B) is measured, the fit with intervals, the
    verdict over the composed times and the per-B table."""
    cfg = study_config(df, study)
    out = [f"#### The fair race ({len(cfg.get('seeds') or ())} search seeds, "
           f"{len(cfg.get('held_out_seeds') or ())} held-out seeds)", "",
           f"Each B's learning rate is chosen on the search seeds {tuple(cfg.get('seeds'))} "
           "(the fewest median steps-to-target; ties to the smaller rate); S(B) is measured at "
           f"it on the held-out seeds {tuple(cfg.get('held_out_seeds'))}, which take no part in "
           "the choice and are never capped below the budget: their median and 95 % "
           "percentile-bootstrap interval. Steps-to-target is the first passage (the first "
           "check at or below the target): the best checkpoint, which early stopping keeps. "
           "*Oscillation*: of the checks after first passage, the share above the target "
           "(median over the held-out seeds [min–max]).", ""]
    fi = race_fit(per_b)
    if fi is not None:
        f = fi.fit
        out += [f"Fit S(B) = S_min + E_min/B to the held-out medians (95 % intervals: the fit "
                f"refitted to seeds resampled per B): **S_min = {_num(f.s_min)} "
                f"{_within(*fi.s_min)} steps, E_min = {_num(f.e_min)} {_within(*fi.e_min)} "
                f"examples, B_crit = {_num(f.b_crit)} {_within(*fi.b_crit)}** (RMS residual "
                f"{f.rms_log_residual:.2f} in log steps over {f.n_points} B).", ""]
    times = race_times(df, study)
    if len(times):
        verdict = winner_or_tie({int(r.batch_size): Interval(r.seconds, r.low_s, r.high_s,
                                                             int(r.seeds))
                                 for r in times.itertuples()})
        out += [f"**{verdict.statement}** Time-to-target composed: the held-out seeds' steps × "
                "the timing repeats of each B's fastest spec on this machine, plus its "
                "reshuffles (median [95 % interval over the seeds and the repeats]).", ""]
    times = times.set_index("batch_size") if len(times) else times
    n_train = n_train_of(context(df, study).get("dataset"))
    rows = []
    for r in per_b.itertuples():
        t = times.loc[r.batch_size] if len(times) and r.batch_size in times.index else None
        held = getattr(r, "held_out_steps", None)
        ok = isinstance(held, tuple)
        median = r.steps_to_target if pd.notna(r.steps_to_target) else math.inf
        rows.append({
            "B": f"{r.batch_size:,}", "variant": variant_name(r.batch_size, n_train),
            "chosen lr": f"{r.best_lr:.3g}" if pd.notna(getattr(r, "best_lr", None)) else "—",
            "held-out median [95 %] (steps)": (f"{_steps(median)} [{_steps(r.steps_low)}–"
                                               f"{_steps(r.steps_high)}]" if ok else "—"),
            "held-out seeds' steps": ", ".join(_steps(v) for v in held) if ok else "—",
            "old minimum (steps)": _steps(r.old_min_steps) if pd.notna(r.old_min_steps)
            else "—",
            "oscillation": (f"{r.oscillation_share:.0%} [{r.oscillation_min:.0%}–"
                            f"{r.oscillation_max:.0%}]" if ok and pd.notna(r.oscillation_share)
                            else "—"),
            "composed time [95 %]": (f"{_seconds(t['seconds'])} [{_seconds(t['low_s'])}–"
                                     f"{_seconds(t['high_s'])}] ({t['spec']})"
                                     if t is not None else "—"),
            "why not": r.why_not or ""})
    return [*out, md(pd.DataFrame(rows)), ""]


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
        race = bool(cfg.get("held_out_seeds"))
        ctxs = records(study_df, "context")
        walls = ctxs[ctxs["study"] == study].get("wall_s", pd.Series(dtype=float)).dropna()
        wall = float(walls.sum()) if len(walls) else None
        runs = (f" (the sum over {len(walls)} runs; a rerun computes only what is missing)"
                if len(walls) > 1 else "")
        out.append(f"Target: validation error ≤ {target:.1%}; {cfg.get('dtype', 'float32')}, "
                   f"{cfg.get('init', 'zeros')} init (the seed sets the data order), "
                   f"{_optimizer(cfg)}; seeds {cfg.get('seeds')}"
                   f"{'; held-out seeds ' + str(cfg['held_out_seeds']) if race else ''}; "
                   f"runner {ctx.get('runner', '?')}; commit `{str(ctx.get('commit'))[:10]}`; "
                   f"study wall time {format_seconds(wall) if wall else 'n/a (unfinished)'}{runs}.")
        out.append("")
        out += race_section(study_df, study, per_b) if race else _not_a_race(cfg)
        fit = fit_study(per_b)
        if fit is not None and not race:
            out.append(f"Fit S(B) = S_min + E_min/B (least squares of log S): **S_min = "
                       f"{fit.s_min:,.0f} steps, E_min = {fit.e_min:,.0f} examples, B_crit = "
                       f"E_min/S_min = {fit.b_crit:,.0f}** (RMS residual "
                       f"{fit.rms_log_residual:.2f} in log steps over {fit.n_points} B).")
        if fit is not None:
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
            .map(lambda v: f"{v:,.0f}" if pd.notna(v) else "—"),
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
    """Studies of one machine and one model that differ in the optimizer, side by side:
    steps-to-target per B at each one's best learning rate, and the fitted B_crit (Shallue et
    al. found that momentum extends perfect scaling). Empty for a model with fewer than two
    optimizers; models are never compared with each other."""
    by_model: dict[str, dict[str, tuple[pd.Series, StepsFit | None]]] = {}
    for name in study_names(study_df):
        cfg = json.loads(context(study_df, name).get("study_config") or "{}")
        extra = dict(cfg.get("extra_config") or {})
        label = extra.get("optimizer", "sgd")
        if label != "sgd" and "momentum" in extra:
            label += f" {extra['momentum']}"
        if not cfg.get("held_out_seeds"):
            label += f" ({NOT_A_RACE})"
        columns = by_model.setdefault(extra.get("model", "softmax"), {})
        if label in columns:
            label += f" (`{name}`)"
        per_b = per_batch_size(study_df[study_df["study"] == name])
        columns[label] = (per_b.set_index("batch_size")["steps_to_target"], fit_study(per_b))
    out = []
    for model, columns in sorted(by_model.items()):
        table = pd.DataFrame({k: v for k, (v, _) in columns.items()}).sort_index()
        table = table.dropna(how="any")
        if len(columns) < 2 or table.empty:
            continue
        shown = table.map(lambda v: f"{int(v):,}")
        shown.index = [f"{b:,}" for b in table.index]
        shown.index.name = "B"
        crit = "; ".join(f"{k}: B_crit = {f.b_crit:,.0f} (S_min = {f.s_min:,.0f}, "
                         f"E_min = {f.e_min:,.0f})" for k, (_, f) in columns.items()
                         if f is not None)
        out += [f"### The optimizer axis ({model}): steps to the target at each one's best "
                "learning rate", "", shown.to_markdown(), "",
                f"Fits over each study's own batch sizes — {crit}. A race's S(B) is its "
                "held-out median; a study with fewer seeds or batch sizes has a wider spread: "
                "compare the columns where both have a row.", ""]
    return out
