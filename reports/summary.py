"""The report's prose per machine: what to use for what (the summary) and the findings, each
number with the table row it comes from. Every number comes from ``bench.analysis``' views; no
sentence carries a typed-in number, and ratios never cross machines."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis import NOISY_REL_IQR
from bench.analysis import views as tidy
from bench.analysis.names import format_seconds, missing, variant_name
from reports.cells import (
    NA,
    NOISY,
    NOT_REACHED,
    file_name,
    ms,
    row_ref,
    short_commit,
)

__all__ = ["EPOCH_TABLE", "TRANSFER_TABLE", "TTT_TABLE", "code_note", "findings", "machine_name",
           "reshuffle_findings", "run_line", "summary"]

EPOCH_TABLE = "Fixed-budget epochs"
TTT_TABLE = "Time to target"
TRANSFER_TABLE = "Transfers (device events)"


def machine_name(sub: pd.DataFrame) -> str:
    row = sub.iloc[0]
    gpu = row.get("machine_gpu")
    cpu = f"{row.get('machine_cpu')} ({row.get('machine_cpu_count')} CPUs)"
    return f"{gpu} + {cpu}" if isinstance(gpu, str) and gpu else cpu


def run_line(sub: pd.DataFrame) -> str:
    r = sub.iloc[0]
    dirty = " with uncommitted changes" if bool(r.get("commit_dirty")) else ""
    status = r.get("run_status") if not missing(r.get("run_status")) else "complete"
    load = ""
    if r.get("run_loaded") is True:
        load = " The machine was **loaded** during the run (other processes shared the " \
               "cores): its times are slower and noisier than on an idle machine."
    return (f"Profile `{r.get('machine_profile') or 'unknown'}`, commit "
            f"`{short_commit(r.get('commit'))}`{dirty}, run {str(r.get('datetime'))[:16]} "
            f"(`{file_name(r['file'])}`: {status}).{load}")


def code_note(df: pd.DataFrame) -> list[str]:
    """Whether the machines' results come from the same code."""
    runs = df.drop_duplicates("file")[["file", "commit", "datetime"]]
    if len(runs) < 2:
        return []
    commits = runs["commit"].map(short_commit)
    if commits.nunique() == 1 and "unknown" not in set(commits):
        return [f"All machines ran the same code (commit `{commits.iloc[0]}`): their numbers "
                "can be compared."]
    newest = str(runs["datetime"].max())
    listing = "; ".join(f"`{file_name(f)}`: commit `{c}`, run {str(d)[:16]}"
                        + (" (older code)" if str(d) < newest else "")
                        for f, c, d in zip(runs["file"], commits, runs["datetime"], strict=True))
    return [f"**The machines ran different code** ({listing}). Each machine's section compares "
            "only rows of its own run; numbers are not compared across machines, and a "
            "difference between sections may come from the code, not the hardware."]



def summary(df: pd.DataFrame, *, untuned_ttt: bool = True) -> list[str]:
    """One machine's run: what to use for what, each number with its table row. The
    benchmarks' time-to-target line (one untuned learning rate) only with ``untuned_ttt``."""
    return _summary(df, untuned_ttt)


def _models(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(sentence prefix, rows) per model, softmax regression first: never compared across."""
    model = df["model"].fillna("softmax").astype(str) if "model" in df else \
        pd.Series("softmax", df.index)
    names = sorted(model.unique(), key=lambda m: (m != "softmax", m))
    return [("" if m == "softmax" else f"{m.upper()}: ", df[model == m]) for m in names]


def _summary(df: pd.DataFrame, untuned_ttt: bool) -> list[str]:
    out: list[str] = []
    for prefix, rows in _models(df):
        out += [prefix + line for line in _summary_of_model(rows, untuned_ttt)]
    softmax = [rows for prefix, rows in _models(df) if not prefix]
    out += _transfer_summary(tidy.epoch_view(softmax[0]) if softmax else df.iloc[0:0])
    timed = df[df["stat_median"].notna()] if "stat_median" in df else df.iloc[0:0]
    if "noisy" in timed and len(timed):
        k = int(timed["noisy"].fillna(False).astype(bool).sum())
        if k:
            out.append(f"Noise: {k} of {len(timed)} timed rows have an IQR above "
                       f"{NOISY_REL_IQR:.0%} of their median ({NOISY} in the tables); findings "
                       "and targets built on them give no verdict.")
        else:
            out.append(f"Noise: every timed row's IQR is within {NOISY_REL_IQR:.0%} of its "
                       "median.")
    return out


def _summary_of_model(df: pd.DataFrame, untuned_ttt: bool) -> list[str]:
    out: list[str] = []
    ep = tidy.epoch_view(df)
    if len(ep):
        n = float(ep["n_train"].max()) if "n_train" in ep else 50_000.0
        shuffled = ep[ep["order"] == "shuffle"].copy()
        shuffled["variant_name"] = [variant_name(b, n) for b in shuffled["batch_size"]]
        budgets = ", ".join(sorted(set(shuffled["budget"])))
        for variant in ("per-sample SGD", "minibatch SGD", "full-batch GD"):
            g = shuffled[shuffled["variant_name"] == variant]
            if g.empty:
                continue
            best = g.loc[g["seconds_per_epoch"].idxmin()]
            at = f" at B = {int(best['batch_size'])}" if variant == "minibatch SGD" else ""
            noisy = " — *too noisy to rank: rerun on a quiet machine*" if best["noisy"] else ""
            out.append(f"Fastest {variant} epoch (shuffled, budget {budgets}): "
                       f"**{best['series']}{at}**, {ms(best['seconds_per_epoch'])} ± "
                       f"{ms(best['iqr_epoch_s'])} ms per epoch "
                       f"{row_ref(EPOCH_TABLE, best)}{noisy}.")
    ttt = tidy.time_to_target(df) if untuned_ttt else df.iloc[0:0]
    if len(ttt):
        target = 100 * float(ttt["cfg_target_error"].iloc[0])
        reached = ttt[ttt["target_reached"].astype(bool)]
        lrs = ", ".join(f"{v:g}" for v in sorted(set(ttt["cfg_learning_rate"].astype(float))))
        head = (f"The time-to-target benchmark (learning rate {lrs} at every B, not tuned per "
                f"B: not the answer, which comes from the study) to {target:.0f} % validation "
                "error: ")
        if len(reached):
            best = reached.loc[reached["time_to_target_s"].astype(float).idxmin()]
            out.append(head + f"quickest {best['series']} at B = {int(best['batch_size'])}, "
                       f"{format_seconds(float(best['time_to_target_s']))} of training in "
                       f"{int(best['steps_to_target'])} steps {row_ref(TTT_TABLE, best)}.")
        else:
            out.append(head + "no run reached it within its budget.")
    return out


def _transfer_summary(ep: pd.DataFrame) -> list[str]:
    out: list[str] = []
    if len(ep) and (ep["device"] != "cpu").any():
        gpu = ep[(ep["device"] != "cpu") & (ep["kernel"].fillna("eager") == "eager")]
        parts = []
        for B in sorted(gpu["batch_size"].unique()):
            g = gpu[gpu["batch_size"] == B]
            res = g[g["placement"] == "resident"]
            st = g[(g["placement"] == "streamed") & ~g["pinned"].fillna(False).astype(bool)]
            if len(res) and len(st):
                r, s = res.loc[res["seconds_per_epoch"].idxmin()], \
                    st.loc[st["seconds_per_epoch"].idxmin()]
                if r["noisy"] or s["noisy"]:
                    parts.append(f"B = {int(B)}: too noisy to compare")
                else:
                    ratio = s["seconds_per_epoch"] / r["seconds_per_epoch"]
                    parts.append(f"B = {int(B)}: {ratio:.1f}× ({s['series']} "
                                 f"{format_seconds(s['seconds_per_epoch'])} vs {r['series']} "
                                 f"{format_seconds(r['seconds_per_epoch'])})")
        if parts:
            out.append("What moving the data costs: the fastest streamed (pageable memory) epoch "
                       f"over the fastest resident one, per B [{EPOCH_TABLE}]: "
                       + "; ".join(parts) + ".")
    elif len(ep):
        out.append(f"Transfers: {NA} (CPU only: the data never leaves host memory).")
    return out


# --------------------------------------------------------------------------- findings


def findings(df: pd.DataFrame) -> list[str]:
    """Sentences computed from one run's rows (ratios never cross runs or machines)."""
    return _findings(df)


def _ratio_or_noise(a: pd.Series, b: pd.Series, col: str = "seconds_per_epoch") -> str:
    if bool(a.get("noisy")) or bool(b.get("noisy")):
        return "(too noisy to state a ratio)"
    return f"{b[col] / a[col]:.1f}×"


def _findings(df: pd.DataFrame) -> list[str]:
    out: list[str] = []
    for prefix, rows in _models(df):
        out += [prefix + line for line in _findings_of_model(rows)]
    return out


def _findings_of_model(df: pd.DataFrame) -> list[str]:
    out: list[str] = []
    ep = tidy.epoch_view(df)
    if len(ep):
        shuffled = ep[ep["order"] == "shuffle"]
        for B, group in shuffled.groupby("batch_size"):
            if group["series"].nunique() < 2:
                continue
            best = group.loc[group["seconds_per_epoch"].idxmin()]
            worst = group.loc[group["seconds_per_epoch"].idxmax()]
            out.append(f"At B = {int(B)} (shuffled), the fastest epoch is **{best['series']}** "
                       f"({format_seconds(best['seconds_per_epoch'])}), "
                       f"{_ratio_or_noise(best, worst)} faster than the slowest "
                       f"({worst['series']}, {format_seconds(worst['seconds_per_epoch'])}).")
        gpu = ep[(ep["device"] != "cpu") & ep["median_h2d_s"].notna()] \
            if "median_h2d_s" in ep else ep.iloc[0:0]
        if len(gpu):
            share = (gpu["median_h2d_s"] / gpu["median_total_s"]).groupby(
                [gpu["placement"], gpu["pinned"].astype(bool)]).median()
            for (placement, pinned), value in share.items():
                name = f"{placement}{' + pinned' if pinned else ''}"
                out.append(f"On the GPU, host→device copies take a median **{100 * value:.1f} %** "
                           f"of the run's wall time with `{name}` data.")
        kernel = ep["kernel"].fillna("eager") if "kernel" in ep else pd.Series("eager", ep.index)
        resident = ep[(ep["device"] != "cpu") & (ep.get("placement") == "resident")]
        for (backend, fast), g in resident[kernel[resident.index] != "eager"].groupby(
                ["backend", kernel[resident.index]]):
            eager = resident[(resident["backend"] == backend)
                             & (kernel[resident.index] == "eager")]
            ratios = []
            for _, row in g.sort_values("batch_size").iterrows():
                base = eager[eager["batch_size"] == row["batch_size"]]
                if len(base):
                    ratios.append(f"B = {int(row['batch_size'])}: "
                                  f"{_ratio_or_noise(row, base.iloc[0])} "
                                  f"({format_seconds(row['seconds_per_epoch'])} per epoch)")
            if ratios:
                out.append(f"The {backend} `{fast}` path against its eager steps (data "
                           f"resident): " + "; ".join(ratios) + ".")
        cpu = shuffled[shuffled["device"] == "cpu"]
        if len(gpu) and len(cpu):
            wins, losses = [], []
            for B, g in resident.groupby("batch_size"):
                c = cpu[cpu["batch_size"] == B]
                if len(c):
                    ratio = c["seconds_per_epoch"].min() / g["seconds_per_epoch"].min()
                    (wins if ratio > 1 else losses).append(f"B = {int(B)} ({ratio:.1f}×)")
            same = "same run, same code and budget"
            if wins:
                out.append(f"The best GPU epoch (data resident, any kernel) beats the best "
                           f"CPU epoch of this machine ({same}) at " + ", ".join(wins) + ".")
            if losses:
                out.append(f"The best CPU epoch of this machine ({same}) beats the best GPU "
                           "epoch at " + ", ".join(losses) + " (ratio = CPU time / GPU time).")
    out += reshuffle_findings(df)
    ttt = tidy.time_to_target(df)
    if len(ttt):
        reached = ttt[ttt["target_reached"].astype(bool)]
        for series, g in reached.groupby("series"):
            g = g.sort_values("batch_size")
            b, s = g["batch_size"].to_numpy(float), g["steps_to_target"].to_numpy(float)
            if len(b) < 3:
                continue
            # perfect scaling: steps ∝ 1/B; call the knee where a B step cuts steps by
            # less than half of what perfect scaling would
            for i in range(1, len(b)):
                gain = np.log(s[i - 1] / s[i]) / np.log(b[i] / b[i - 1])
                if gain < 0.5:
                    out.append(f"{series}: steps to target shrink with B up to "
                               f"B = {int(b[i - 1])}; beyond it they shrink at less than "
                               "half the perfect-scaling rate.")
                    break
        missed = ttt[~ttt["target_reached"].astype(bool)]
        if len(missed):
            out.append(f"{NOT_REACHED.capitalize()} within budget: " + ", ".join(
                f"{r.series} B = {int(r.batch_size)}" for r in missed.itertuples()) + ".")
    return out


def reshuffle_findings(df: pd.DataFrame, batch_size: int = 600) -> list[str]:
    """What the reshuffle costs on the CPU at ``batch_size``, against the machine's copy floor:
    a gather into a buffer reads the training set and writes a permuted copy of it."""
    if "kind" not in df or "cfg_order" not in df or "floor" not in df:
        return []
    copy = df[(df["kind"] == "floor") & (df["floor"] == "copy_bandwidth")
              & (df["device"] == "cpu")]
    ep = df[(df["kind"] == "epoch") & (df["device"] == "cpu") & (df["batch_size"] == batch_size)]
    if copy.empty or ep.empty:
        return []
    copy_s = float(copy["bytes"].iloc[0]) / float(copy["gb_per_s"].iloc[0]) / 1e9
    parts = []
    for backend, g in ep.groupby("backend"):
        s, o = g[g["cfg_order"] == "shuffle"], g[g["cfg_order"] == "in-order"]
        if s.empty or o.empty:
            continue
        move = float(s["median_data_move_s"].iloc[0]) / max(float(s["epochs"].iloc[0]), 1.0)
        in_order = float(tidy.train_seconds(o).iloc[0])
        if move < 0.1 * copy_s:
            parts.append(f"{backend} reads the examples through the permutation (data "
                         f"movement {format_seconds(move)} per epoch)")
        else:
            parts.append(f"{backend}: the gather takes {format_seconds(move)} "
                         f"({move / copy_s:.1f}× the copy floor) against a "
                         f"{format_seconds(in_order)} in-order epoch; a gather at the floor would "
                         f"still add {100 * copy_s / in_order:.0f} %")
    if not parts:
        return []
    return [f"Reshuffling at B = {batch_size} (CPU): a gather into a buffer reads the training "
            f"set and writes a permuted copy, which this machine does at best in "
            f"{format_seconds(copy_s)} (the copy floor). " + "; ".join(parts) + "."]
