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
from bench.results import purpose_reason, study_purpose

__all__ = ["context", "fit_study", "gpu_timing_studies",
           "on_device", "optimizer_label", "per_batch_size",
           "records", "steps_curve", "steps_to_target", "studies", "study_config",
           "untuned_reason"]

#: The fewest batch sizes, seeds and timing repeats of a study that may answer "which variant
#: is fastest to the target" (the CI's ``--small`` study has 3 B, 1 seed, 1 repeat).
TUNED_MIN_BATCH_SIZES = 5
TUNED_MIN_SEEDS = 2
TUNED_MIN_REPEATS = 2


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
    a reduced learning-rate grid, fewer than ``TUNED_MIN_*`` batch sizes, seeds or timing
    repeats; no direct time-to-target measurement), or None for a tuned study."""
    cfg = study_config(df, study)
    if not cfg:
        return "no stored configuration"
    rows = df[df["study"] == study]
    purpose = rows["purpose"].dropna().iloc[0] if "purpose" in rows and \
        rows["purpose"].notna().any() else study_purpose({"study_config": json.dumps(cfg)})
    if purpose_reason(purpose):
        return purpose_reason(purpose)
    for key, least, what in (("batch_sizes", TUNED_MIN_BATCH_SIZES, "batch sizes"),
                             ("seeds", TUNED_MIN_SEEDS, "seeds")):
        if len(cfg.get(key) or ()) < least:
            return f"{what}: {len(cfg.get(key) or ())} (a tuned study has at least {least})"
    if int(cfg.get("timing_repeats") or 0) < TUNED_MIN_REPEATS:
        return (f"{cfg.get('timing_repeats')} timing repeat(s) (a tuned study has at least "
                f"{TUNED_MIN_REPEATS})")
    direct = records(df, "direct")
    if direct.empty or direct[direct["study"] == study]["measured_s"].dropna().empty:
        return "no direct time-to-target measurement"
    return None


def per_batch_size(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (study, B): the best learning rate, steps-to-target (the fewest steps of the
    search's trials), the seeds' spread at that rate, the trial counts, and why not when no
    trial reached the target."""
    trials = records(df, "trial")
    rows = []
    for (study, B), g in trials.groupby(["study", "batch_size"]):
        search = g[g["phase"] != "seed"]
        reached = search[search["status"] == "reached"]
        row = {"study": study, "batch_size": int(B), "variant": g["variant"].iloc[0],
               "backend": g["backend"].iloc[0], "trials": len(g),
               "diverged": int((g["status"] == "diverged").sum()),
               "capped": int((g["status"] == "capped").sum()),
               "lr_tried_min": g["learning_rate"].min(), "lr_tried_max": g["learning_rate"].max(),
               "budget": int(g["budget"].max())}
        if reached.empty:
            row["why_not"] = (f"no trial reached the target in {row['budget']} steps with lr in "
                              f"[{row['lr_tried_min']:.3g}, {row['lr_tried_max']:.3g}]")
            rows.append(row)
            continue
        best = reached.loc[reached["steps_to_target"].idxmin()]
        at_lr = g[(g["lr_units"] == best["lr_units"])]
        seeds = at_lr[at_lr["status"] == "reached"].drop_duplicates("seed")["steps_to_target"]
        row.update(best_lr=float(best["learning_rate"]), best_lr_units=int(best["lr_units"]),
                   steps_to_target=int(best["steps_to_target"]),
                   validation_interval=int(best["validation_interval"]),
                   seeds=int(at_lr["seed"].nunique()), seeds_reached=len(seeds),
                   seed_steps_min=int(seeds.min()), seed_steps_median=float(seeds.median()),
                   seed_steps_max=int(seeds.max()),
                   b_simple_at_target=best.get("b_simple", math.nan), why_not="")
        rows.append(row)
    return pd.DataFrame(rows)


def fit_study(per_b: pd.DataFrame) -> StepsFit | None:
    """The fit of S(B) = S_min + E_min / B to one study's steps-to-target (None: too few B)."""
    ok = per_b.dropna(subset=["steps_to_target"]) if "steps_to_target" in per_b else per_b[:0]
    if ok["batch_size"].nunique() < 2:
        return None
    return fit_steps(ok["batch_size"].to_numpy(), ok["steps_to_target"].to_numpy())


def steps_to_target(df: pd.DataFrame, study: str) -> dict[int, int]:
    """``{B: S(B)}``: each B's steps-to-target at its best learning rate in ``study`` (the B
    whose searches reached the target)."""
    if df.empty or "study" not in df:
        return {}
    per_b = per_batch_size(df[df["study"] == study])
    if per_b.empty or "steps_to_target" not in per_b:
        return {}
    ok = per_b.dropna(subset=["steps_to_target"])
    return {int(B): int(S) for B, S in zip(ok["batch_size"], ok["steps_to_target"], strict=True)}


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
