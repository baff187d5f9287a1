"""Views of the study's tidy table: its studies and their configuration, the per-B answer, the
fit of S(B), and whether a study may answer at all (the noise scales: ``bench.analysis.noise``).

Everything here reads only the DataFrame of ``bench.study.storage.load_study`` (or a store's
records), so the report and the command line print the same numbers from stored results.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from bench.analysis.fit import StepsFit, fit_steps
from bench.analysis.names import spec_label
from bench.analysis.race import (
    MIN_HELD_OUT_SEEDS,
    MIN_SEARCH_SEEDS,
    FitIntervals,
    fit_with_intervals,
    race_batch_size,
    time_to_target,
)
from bench.results import purpose_reason, study_purpose

__all__ = ["NOT_A_RACE", "context", "fit_study", "gpu_timing_studies",
           "on_device", "optimizer_label", "per_batch_size", "race_fit", "race_times",
           "records", "steps_curve", "steps_to_target", "studies", "study_config",
           "untuned_reason"]

#: The fewest batch sizes and timing repeats of a study that may answer "which variant is
#: fastest to the target" (the CI's ``--small`` study has 3 B, 1 seed, 1 repeat); its seeds:
#: ``bench.analysis.race.MIN_SEARCH_SEEDS`` search and ``MIN_HELD_OUT_SEEDS`` held-out seeds.
TUNED_MIN_BATCH_SIZES = 5
TUNED_MIN_REPEATS = 2
#: Why an old-scheme study (no held-out seeds) never answers, and how its S(B) is marked.
NOT_A_RACE = "not a race (one seed's minimum, biased low)"


def records(df: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The rows of one record kind (``trial``, ``timing``, ``direct``, ``noise``, ``context``,
    ``skip``) of the study table; empty when there are none."""
    if df.empty or "record" not in df:
        return pd.DataFrame()
    return df[df["record"] == kind]



def studies(df: pd.DataFrame) -> list[str]:
    """The names of the studies with trials, sorted."""
    trials = records(df, "trial")
    return sorted(trials["study"].unique()) if not trials.empty else []


def context(df: pd.DataFrame, study: str) -> dict[str, Any]:
    """The newest context record of ``study`` (machine, commit, configuration), or {}."""
    ctx = records(df, "context")
    ctx = ctx[ctx["study"] == study].sort_values("started_utc") if not ctx.empty else ctx
    return ctx.iloc[-1].to_dict() if len(ctx) else {}


def study_config(df: pd.DataFrame, study: str) -> dict[str, Any]:
    """The study's stored ``StudyConfig`` as a dict ({} when unknown); ``extra_config`` as a
    dict (model, optimizer, momentum)."""
    raw = context(df, study).get("study_config")
    cfg = json.loads(raw) if isinstance(raw, str) and raw else {}
    cfg["extra_config"] = dict(cfg.get("extra_config") or [])
    return cfg


def optimizer_label(cfg: dict[str, Any]) -> str:
    """``sgd``, or the optimizer and its momentum (``momentum 0.9``)."""
    extra = cfg.get("extra_config") or {}
    label = extra.get("optimizer", "sgd")
    return f"{label} {extra['momentum']}" if label != "sgd" and "momentum" in extra else label


def untuned_reason(df: pd.DataFrame, study: str) -> str | None:
    """Why ``study`` may not answer which variant is fastest to the target (a smoke or CI study:
    a reduced learning-rate grid, fewer than ``TUNED_MIN_*`` batch sizes or timing repeats, too
    few search or held-out seeds; an old-scheme study: ``NOT_A_RACE``), or None for a race."""
    cfg = study_config(df, study)
    if not cfg:
        return "no stored configuration"
    rows = df[df["study"] == study]
    purpose = rows["purpose"].dropna().iloc[0] if "purpose" in rows and \
        rows["purpose"].notna().any() else study_purpose({"study_config": json.dumps(cfg)})
    if purpose_reason(purpose):
        return purpose_reason(purpose)
    if not cfg.get("held_out_seeds"):
        return NOT_A_RACE
    for key, least, what in (("batch_sizes", TUNED_MIN_BATCH_SIZES, "batch sizes"),
                             ("seeds", MIN_SEARCH_SEEDS, "search seeds"),
                             ("held_out_seeds", MIN_HELD_OUT_SEEDS, "held-out seeds")):
        if len(cfg.get(key) or ()) < least:
            return f"{what}: {len(cfg.get(key) or ())} (a tuned study has at least {least})"
    if int(cfg.get("timing_repeats") or 0) < TUNED_MIN_REPEATS:
        return (f"{cfg.get('timing_repeats')} timing repeat(s) (a tuned study has at least "
                f"{TUNED_MIN_REPEATS})")
    return None


def per_batch_size(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (study, B): S(B), one definition wherever it is read (``steps_to_target``).

    A race study (``held_out_seeds`` in its configuration) gives the rate chosen on the search
    seeds and S(B) = the held-out seeds' median there, with its 95 % bootstrap interval
    (``steps_low`` / ``steps_high``), their steps, and the oscillation share after first
    passage (median over the held-out seeds, ``oscillation_min`` / ``_max``). An old-scheme
    study gives the fewest steps of its search's trials, marked ``race`` False: one seed's
    minimum, biased low. Both: the minimum over all trials (``old_min_steps``, for comparison),
    the trial counts, and ``why_not`` where S(B) is unknown."""
    trials = records(df, "trial")
    rows = []
    for (study, B), g in trials.groupby(["study", "batch_size"]):
        reached = g[g["status"] == "reached"]["steps_to_target"].dropna()
        row = {"study": study, "batch_size": int(B), "variant": g["variant"].iloc[0],
               "backend": g["backend"].iloc[0], "trials": len(g),
               "diverged": int((g["status"] == "diverged").sum()),
               "capped": int((g["status"] == "capped").sum()),
               "lr_tried_min": g["learning_rate"].min(), "lr_tried_max": g["learning_rate"].max(),
               "budget": int(g["budget"].max()),
               "old_min_steps": float(reached.min()) if len(reached) else math.nan,
               "why_not": ""}
        cfg = study_config(df, study)
        row.update(_race_row(g, cfg, row["budget"]) if cfg.get("held_out_seeds")
                   else _old_row(g, row))
        rows.append(row)
    out = pd.DataFrame(rows)
    for col in ("best_lr", "steps_to_target"):      # a study where no B has S(B) (yet)
        if col not in out:
            out[col] = math.nan
    return out


def _old_row(g: pd.DataFrame, row: dict[str, Any]) -> dict[str, Any]:
    """An old-scheme study's B: the fewest steps of its search (one seed, biased low)."""
    reached = g[(g["phase"] != "seed") & (g["status"] == "reached")]
    if reached.empty:
        return {"race": False, "why_not": (
            f"no trial reached the target in {row['budget']} steps with lr in "
            f"[{row['lr_tried_min']:.3g}, {row['lr_tried_max']:.3g}]")}
    best = reached.loc[reached["steps_to_target"].idxmin()]
    at_lr = g[(g["lr_units"] == best["lr_units"])]
    seeds = at_lr[at_lr["status"] == "reached"].drop_duplicates("seed")["steps_to_target"]
    return {"race": False, "best_lr": float(best["learning_rate"]),
            "best_lr_units": int(best["lr_units"]),
            "steps_to_target": int(best["steps_to_target"]),
            "validation_interval": int(best["validation_interval"]),
            "seeds": int(at_lr["seed"].nunique()), "seeds_reached": len(seeds),
            "seed_steps_min": int(seeds.min()), "seed_steps_median": float(seeds.median()),
            "seed_steps_max": int(seeds.max()),
            "b_simple_at_target": best.get("b_simple", math.nan)}


def _race_row(g: pd.DataFrame, cfg: dict[str, Any], budget: int) -> dict[str, Any]:
    """A race study's B (``bench.analysis.race.race_batch_size``): the rate chosen on the
    search seeds' medians, S(B) = the held-out seeds' median there [95 %], their oscillation."""
    try:
        seeds, held = cfg.get("seeds") or (), cfg.get("held_out_seeds") or ()
        r = race_batch_size(g.to_dict("records"), search_seeds=seeds, budget=budget,
                            min_search_seeds=min(MIN_SEARCH_SEEDS, max(1, len(seeds))),
                            min_held_out_seeds=min(MIN_HELD_OUT_SEEDS, max(1, len(held))))
    except ValueError as exc:
        return {"race": True, "why_not": str(exc)}
    iv, lr = r.steps_to_target, r.choice.learning_rate
    held = g[g["seed"].isin(r.seeds) & (g["learning_rate"] == lr)]
    steps = pd.Series(r.steps, dtype=float).replace(math.inf, math.nan).dropna()
    osc = held.get("oscillation_share", pd.Series(dtype=float)).dropna().astype(float)
    row = {"race": True, "best_lr": lr, "best_lr_units": int(held["lr_units"].iloc[0]),
           "search_median_steps": r.choice.median_steps,
           "steps_to_target": iv.point if math.isfinite(iv.point) else math.nan,
           "steps_low": iv.low, "steps_high": iv.high,
           "held_out_seeds": r.seeds, "held_out_steps": r.steps,
           "validation_interval": int(held["validation_interval"].iloc[0]),
           "seeds": len(r.seeds), "seeds_reached": len(steps),
           "seed_steps_min": steps.min(), "seed_steps_median": steps.median(),
           "seed_steps_max": steps.max(),
           "oscillation_share": osc.median() if len(osc) else math.nan,
           "oscillation_min": osc.min() if len(osc) else math.nan,
           "oscillation_max": osc.max() if len(osc) else math.nan,
           "b_simple_at_target": held.get("b_simple", pd.Series(dtype=float)).median()}
    if not math.isfinite(iv.point):
        row["why_not"] = (f"the held-out median did not reach the target in {budget} steps at "
                          f"lr {lr:.3g} ({len(steps)} of {len(r.seeds)} seeds reached it)")
    return row


def race_fit(per_b: pd.DataFrame, n_resamples: int = 999) -> FitIntervals | None:
    """The fit of S(B) to a race study's held-out medians with 95 % intervals from the
    bootstrap over its held-out seeds (``bench.analysis.race.fit_with_intervals``); None for
    an old-scheme study or fewer than two B with a held-out median."""
    if per_b.empty or "held_out_steps" not in per_b:
        return None
    ok = per_b.dropna(subset=["steps_to_target", "held_out_steps"])
    if ok["batch_size"].nunique() < 2:
        return None
    return fit_with_intervals(dict(zip(ok["batch_size"], ok["held_out_steps"], strict=True)),
                              n_resamples=n_resamples)


def race_times(df: pd.DataFrame, study: str, timing_study: str | None = None, *,
               gpu: bool = False) -> pd.DataFrame:
    """Per B of race study ``study``: the composed time-to-target with its 95 % interval
    (``bench.analysis.race.time_to_target``: the held-out seeds' steps x the timing repeats of
    the B's fastest spec + its reshuffles), from ``timing_study``'s (default: the same study)
    timing records on the CPU or (``gpu``) a card. Columns ``batch_size``, ``spec``,
    ``backend``, ``seconds``, ``low_s``, ``high_s``, ``seeds``; empty without a race."""
    per_b = per_batch_size(df[df["study"] == study])
    timing = on_device(records(df, "timing"), gpu)
    timing = timing[timing["study"] == (timing_study or study)] if not timing.empty else timing
    cols = ["batch_size", "spec", "backend", "seconds", "low_s", "high_s", "seeds"]
    if per_b.empty or "held_out_steps" not in per_b or timing.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for r in per_b.dropna(subset=["steps_to_target"]).itertuples():
        at = timing[(timing["batch_size"] == r.batch_size) & timing["step_s"].notna()]
        if at.empty:
            continue
        best = at.loc[(at["step_s"] + at["epoch_move_s"] / at["batches_per_epoch"]).idxmin()]
        iv = time_to_target(r.held_out_steps, _repeats(best, "step_s"),
                            steps_per_epoch=int(best["batches_per_epoch"]),
                            reshuffle_seconds=_repeats(best, "epoch_move_s"))
        rows.append({"batch_size": int(r.batch_size), "backend": best["backend"],
                     "spec": spec_label(best["backend"], _text(best.get("device"), "cpu"),
                                        _text(best.get("kernel"), "eager")),
                     "seconds": iv.point, "low_s": iv.low, "high_s": iv.high, "seeds": iv.n})
    return pd.DataFrame(rows, columns=cols)


def _repeats(rec: pd.Series, col: str) -> list[float]:
    """A timing record's repeats of ``col`` (its median alone when they were not stored)."""
    v = rec.get(f"{col}_all")
    return [float(x) for x in v] if isinstance(v, list) and v else [float(rec[col])]


def _text(v: object, default: str) -> str:
    return v if isinstance(v, str) else default


def fit_study(per_b: pd.DataFrame) -> StepsFit | None:
    """The fit of S(B) = S_min + E_min / B to one study's steps-to-target (None: too few B)."""
    ok = per_b.dropna(subset=["steps_to_target"]) if "steps_to_target" in per_b else per_b[:0]
    if ok["batch_size"].nunique() < 2:
        return None
    return fit_steps(ok["batch_size"].to_numpy(), ok["steps_to_target"].to_numpy())


def steps_to_target(df: pd.DataFrame, study: str) -> dict[int, int]:
    """``{B: S(B)}`` of ``study`` in whole steps (``per_batch_size``: a race's held-out median
    at the chosen rate, half a step rounded up where the seeds are even in number; an old
    study's search minimum), for the B where it is known."""
    if df.empty or "study" not in df:
        return {}
    per_b = per_batch_size(df[df["study"] == study])
    if per_b.empty or "steps_to_target" not in per_b:
        return {}
    ok = per_b.dropna(subset=["steps_to_target"])
    return {int(B): math.floor(S + 0.5) for B, S in zip(ok["batch_size"],
                                                       ok["steps_to_target"], strict=True)}


def steps_curve(df: pd.DataFrame) -> dict[str, tuple[StepsFit, str]]:
    """``{model: (fit of S(B), study name)}`` from the plain-SGD studies, one per model (the
    data-parallel projection's runs use plain SGD); empty without such a study."""
    out: dict[str, tuple[StepsFit, str]] = {}
    for name in studies(df):
        cfg = study_config(df, name)
        if cfg["extra_config"].get("optimizer", "sgd") != "sgd":
            continue
        fit = fit_study(per_batch_size(df[df["study"] == name]))
        if fit is not None:
            out[str(cfg["extra_config"].get("model") or "softmax")] = (fit, name)
    return out


def on_device(rows: pd.DataFrame, gpu: bool) -> pd.DataFrame:
    """Timing rows on a GPU (``gpu``) or on the CPU; rows without a device are the CPU's."""
    if rows.empty:
        return rows
    device = rows["device"] if "device" in rows else pd.Series("cpu", index=rows.index)
    on_cpu = device.fillna("cpu") == "cpu"
    return rows[~on_cpu] if gpu else rows[on_cpu]


def gpu_timing_studies(study_df: pd.DataFrame) -> list[str]:
    """The studies holding time per step measured on a GPU (e.g. ``--timing-only`` on a card)."""
    on_gpu = on_device(records(study_df, "timing"), gpu=True)
    return sorted(on_gpu["study"].unique()) if not on_gpu.empty else []
