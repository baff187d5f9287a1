"""The report's subsection "On the card": a GPU timing study's time per step composed with the
S(B) of the CPU study it names, against that CPU study, per batch size and backend spec."""

from __future__ import annotations

import json

import pandas as pd

from bench.analysis import overlapping, steps_to_target
from bench.analysis import project_time_to_target as project
from bench.analysis.names import format_seconds, n_train_of, variant_name
from bench.analysis.race import Interval, winner_or_tie
from bench.analysis.study import (
    NOT_A_RACE,
    context,
    gpu_timing_studies,
    on_device,
    race_times,
    records,
    study_config,
)
from bench.analysis.study import studies as study_names

__all__ = ["on_the_card"]


def _num(v: float) -> str:
    """Three significant digits, without exponents up to 10^6 (12.3, 0.00456, 25,800)."""
    return f"{v:,.0f}" if 1000 <= abs(v) < 1e6 else f"{v:.3g}"


def _rng(row: pd.Series | dict, col: str = "projected_s", scale: float = 1.0) -> str:
    """'median [min–max]' of ``col`` (and its ``_min`` / ``_max``) times ``scale``."""
    return (f"{_num(row[col] * scale)} [{_num(row[col + '_min'] * scale)}–"
            f"{_num(row[col + '_max'] * scale)}]")


def _verdict(times: pd.DataFrame, where: str) -> str:
    """``where`` + the winner-or-tie sentence over ``race_times`` rows ("" without any)."""
    if times.empty:
        return ""
    return where + winner_or_tie({int(r.batch_size): Interval(r.seconds, r.low_s, r.high_s,
                                                              int(r.seeds))
                                  for r in times.itertuples()}).statement


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
    on_card = on_device(timing[timing["study"] == card], gpu=True)
    proj = project(on_card, steps)
    cpu = on_device(timing[timing["study"] == source], gpu=False) if source else timing[:0]
    cpu_proj = project(cpu, steps)
    line = ""
    if len(proj) and source in study_names(df) and study_config(df, source).get("held_out_seeds"):
        line = (f"**{_verdict(race_times(df, source, card, gpu=True), 'On the card: ')}** "
                f"{_verdict(race_times(df, source), f'On the CPU (study `{source}`): ')} "
                "Time-to-target composed: the held-out seeds' steps × the timing repeats of "
                "each B's fastest spec, plus its reshuffles (median [95 % interval over the "
                "seeds and the repeats]).")
    elif len(proj):
        line = (f"S(B) from `{source}`: {NOT_A_RACE}, so no winner is named; the table shows "
                "the projections (median [fastest–slowest repeat]).")
    return {"ctx": ctx, "gpu": gpu, "source": source or "none", "note": note, "steps": steps,
            "dataset": ctx.get("dataset"),
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
                "B": f"{B:,}", "variant": variant_name(B, n_train_of(c["dataset"])),
                "S(B) (steps)": f"{c['steps'][B]:,.0f}" if B in c["steps"] else "—",
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
