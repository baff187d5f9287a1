"""The markdown report: a summary per machine first, then the machines, findings, figures and
tables.

Every number here comes from the DataFrame; no sentence carries a typed-in number, and every
number in the summary names the table row it comes from. Spellings: ``n/a`` = not applicable
(e.g. host→device on a CPU), ``not reached`` = the target error was not reached within the
budget, ``—`` = not measured in that result file.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from bench.results import NOISY_REL_IQR, epoch_seconds, per_epoch_seconds
from bench.targets import FIXED_BUDGET_TARGETS, evaluate, verdict
from reports import tidy

__all__ = ["NA", "NOT_MEASURED", "NOT_REACHED", "comparison_table", "findings",
           "machine_table", "render", "summary", "tables"]

NA = "n/a"
NOT_REACHED = "not reached"
NOT_MEASURED = "—"
NOISY = "**noisy**"

EPOCH_TABLE = "Fixed-budget epochs"
TTT_TABLE = "Time to target"
TRANSFER_TABLE = "Transfers (device events)"


def _missing(x: object) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA


def _fmt_s(x: float | None) -> str:
    """Seconds, in the unit that suits them (s, ms, µs)."""
    if _missing(x):
        return NOT_MEASURED
    if x >= 1:
        return f"{x:.2f} s"
    if x >= 1e-3:
        return f"{x * 1e3:.1f} ms"
    return f"{x * 1e6:.0f} µs"


def _ms(x: float | None, digits: int = 2) -> str:
    return NOT_MEASURED if _missing(x) else f"{1e3 * float(x):.{digits}f}"


def _target_ms(x: float | None) -> str:
    """Milliseconds of a target's row: 2 decimals, 3 below 0.1 ms (a GPU floor)."""
    return _ms(x, 3 if not _missing(x) and abs(float(x)) < 1e-4 else 2)


def _ratio(x: float) -> str:
    """A ratio: one decimal below 100, whole numbers with thousands separators above."""
    return f"{x:.1f}" if abs(x) < 100 else f"{x:,.0f}"


def _md(frame: pd.DataFrame) -> str:
    """A markdown table of cells as formatted here (tabulate would re-parse '0.00' as 0)."""
    return frame.to_markdown(index=False, disable_numparse=True)


def _file(f: object) -> str:
    return Path(str(f)).name


def _short_commit(c: object) -> str:
    return "unknown" if _missing(c) or not c else str(c)[:10]


# --------------------------------------------------------------------------- views


def _epoch_view(df: pd.DataFrame) -> pd.DataFrame:
    """Epoch rows with per-epoch times (all from the same per-step / per-epoch split), their
    spread scaled from the rounds' IQR, the data order and the budget."""
    ep = tidy.epochs(df)
    if ep.empty:
        return ep
    ep = ep.copy()
    ep["order"] = ep.get("cfg_order", pd.Series("shuffle", ep.index)).fillna("shuffle")
    ep["train_s"] = epoch_seconds(ep, evaluation=False)
    fraction = ep["steps"].astype(float) / ep["batches_per_epoch"].astype(float)
    epochs = ep["epochs"].astype(float)

    def per_epoch(col: str, once: bool = False) -> pd.Series:
        v = ep[col].astype(float) if col in ep else pd.Series(np.nan, ep.index)
        return per_epoch_seconds(0.0, v, fraction, epochs) if once else \
            per_epoch_seconds(v, 0.0, fraction, epochs)

    ep["compute_epoch_s"] = per_epoch("median_compute_s")
    ep["h2d_epoch_s"] = per_epoch("median_h2d_s")
    ep["move_epoch_s"] = per_epoch("median_data_move_s", once=True)
    rel = ep["rel_iqr"] if "rel_iqr" in ep else pd.Series(np.nan, ep.index)
    ep["iqr_epoch_s"] = ep["seconds_per_epoch"] * rel.astype(float)
    ep["noisy"] = ep.get("noisy", pd.Series(False, ep.index)).fillna(False).astype(bool)
    n = ep["n_train"].astype(float) if "n_train" in ep else \
        ep["batches_per_epoch"].astype(float) * ep["batch_size"].astype(float)
    ep["examples_per_s"] = n / ep["train_s"]
    ep["budget"] = [_budget(r) for _, r in ep.iterrows()]
    return ep


def _budget(row: pd.Series) -> str:
    epochs = row.get("cfg_max_epochs")
    steps = row.get("cfg_max_steps")
    n = int(epochs) if not _missing(epochs) else int(row["epochs"])
    text = f"{n} epoch{'s' if n != 1 else ''}"
    if not _missing(steps):
        text += f", ≤ {int(steps)} steps"
    return text


def _row_ref(table: str, r: pd.Series) -> str:
    order = f", {r['order']}" if "order" in r and r["order"] != "shuffle" else ""
    return f"[{table}: {r['series']}, B = {int(r['batch_size'])}{order}]"


def _variant_of(r: pd.Series, n: float) -> str:
    b = int(r["batch_size"])
    return "per-sample SGD" if b == 1 else "full-batch GD" if b >= n else "minibatch SGD"


# --------------------------------------------------------------------------- machines


def _machine_name(sub: pd.DataFrame) -> str:
    row = sub.iloc[0]
    gpu = row.get("machine_gpu")
    cpu = f"{row.get('machine_cpu')} ({row.get('machine_cpu_count')} CPUs)"
    return f"{gpu} + {cpu}" if isinstance(gpu, str) and gpu else cpu


def _run_line(sub: pd.DataFrame) -> str:
    r = sub.iloc[0]
    dirty = " with uncommitted changes" if bool(r.get("commit_dirty")) else ""
    status = r.get("run_status") if not _missing(r.get("run_status")) else "complete"
    load = ""
    if r.get("run_loaded") is True:
        load = " The machine was **loaded** during the run (other processes shared the " \
               "cores): its times are slower and noisier than on an idle machine."
    return (f"Profile `{r.get('machine_profile') or 'unknown'}`, commit "
            f"`{_short_commit(r.get('commit'))}`{dirty}, run {str(r.get('datetime'))[:16]} "
            f"(`{_file(r['file'])}`: {status}).{load}")


def machine_table(df: pd.DataFrame) -> str:
    cols = {"file": "result file", "datetime": "date", "commit": "commit",
            "machine_profile": "profile", "run_status": "run",
            "run_loaded": "loaded", "machine_cpu": "CPU", "machine_cpu_count": "CPUs",
            "machine_gpu": "GPU", "machine_python": "Python", "machine_numpy": "numpy",
            "machine_torch": "torch", "machine_cupy": "cupy"}
    present = [c for c in cols if c in df]
    table = df[present].drop_duplicates(subset=["file"]).copy()
    table["file"] = table["file"].map(_file)
    if "commit" in table:
        table["commit"] = table["commit"].map(_short_commit)
    if "datetime" in table:
        table["datetime"] = table["datetime"].astype(str).str[:16]
    if "run_loaded" in table:
        table["run_loaded"] = table["run_loaded"].map(
            {True: "**yes**", False: "no"}).fillna(NOT_MEASURED)
    return table.rename(columns=cols).astype(object).fillna(NOT_MEASURED).pipe(_md)


def _code_note(df: pd.DataFrame) -> list[str]:
    """Whether the machines' results come from the same code."""
    runs = df.drop_duplicates("file")[["file", "commit", "datetime"]]
    if len(runs) < 2:
        return []
    commits = runs["commit"].map(_short_commit)
    if commits.nunique() == 1 and "unknown" not in set(commits):
        return [f"All machines ran the same code (commit `{commits.iloc[0]}`): their numbers "
                "can be compared."]
    newest = str(runs["datetime"].max())
    listing = "; ".join(f"`{_file(f)}`: commit `{c}`, run {str(d)[:16]}"
                        + (" (older code)" if str(d) < newest else "")
                        for f, c, d in zip(runs["file"], commits, runs["datetime"], strict=True))
    return [f"**The machines ran different code** ({listing}). Each machine's section compares "
            "only rows of its own run; numbers are not compared across machines, and a "
            "difference between sections may come from the code, not the hardware."]


# --------------------------------------------------------------------------- summary


def summary(df: pd.DataFrame) -> dict[str, list[str]]:
    """Per machine (result file): what to use for what, each number with its table row."""
    return {f"{_machine_name(sub)}": [_run_line(sub), *_summary(sub)]
            for _, sub in df.groupby("file", sort=False)}


def _models(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(sentence prefix, rows) per model, softmax regression first: never compared across."""
    model = df["model"].fillna("softmax").astype(str) if "model" in df else \
        pd.Series("softmax", df.index)
    names = sorted(model.unique(), key=lambda m: (m != "softmax", m))
    return [("" if m == "softmax" else f"{m.upper()}: ", df[model == m]) for m in names]


def _summary(df: pd.DataFrame) -> list[str]:
    out: list[str] = []
    for prefix, rows in _models(df):
        out += [prefix + line for line in _summary_of_model(rows)]
    softmax = [rows for prefix, rows in _models(df) if not prefix]
    out += _transfer_summary(_epoch_view(softmax[0]) if softmax else df.iloc[0:0])
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


def _summary_of_model(df: pd.DataFrame) -> list[str]:
    out: list[str] = []
    ep = _epoch_view(df)
    if len(ep):
        n = float(ep["n_train"].max()) if "n_train" in ep else 50_000.0
        shuffled = ep[ep["order"] == "shuffle"].copy()
        shuffled["variant_name"] = [_variant_of(r, n) for _, r in shuffled.iterrows()]
        budgets = ", ".join(sorted(set(shuffled["budget"])))
        for variant in ("per-sample SGD", "minibatch SGD", "full-batch GD"):
            g = shuffled[shuffled["variant_name"] == variant]
            if g.empty:
                continue
            best = g.loc[g["seconds_per_epoch"].idxmin()]
            at = f" at B = {int(best['batch_size'])}" if variant == "minibatch SGD" else ""
            noisy = " — *too noisy to rank: rerun on a quiet machine*" if best["noisy"] else ""
            out.append(f"Fastest {variant} epoch (shuffled, budget {budgets}): "
                       f"**{best['series']}{at}**, {_ms(best['seconds_per_epoch'])} ± "
                       f"{_ms(best['iqr_epoch_s'])} ms per epoch "
                       f"{_row_ref(EPOCH_TABLE, best)}{noisy}.")
    ttt = tidy.time_to_target(df)
    if len(ttt):
        target = 100 * float(ttt["cfg_target_error"].iloc[0])
        reached = ttt[ttt["target_reached"].astype(bool)]
        if len(reached):
            best = reached.loc[reached["time_to_target_s"].astype(float).idxmin()]
            out.append(f"Fastest to {target:.0f} % validation error: **{best['series']} at "
                       f"B = {int(best['batch_size'])}** (lr {best['cfg_learning_rate']}), "
                       f"{float(best['time_to_target_s']):.3f} s of training in "
                       f"{int(best['steps_to_target'])} steps {_row_ref(TTT_TABLE, best)}.")
        else:
            out.append(f"No run reached {target:.0f} % validation error within its budget.")
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
                                 f"{_fmt_s(s['seconds_per_epoch'])} vs {r['series']} "
                                 f"{_fmt_s(r['seconds_per_epoch'])})")
        if parts:
            out.append("What moving the data costs: the fastest streamed (pageable memory) epoch "
                       f"over the fastest resident one, per B [{EPOCH_TABLE}]: "
                       + "; ".join(parts) + ".")
    elif len(ep):
        out.append(f"Transfers: {NA} (CPU only: the data never leaves host memory).")
    return out


# --------------------------------------------------------------------------- findings


def findings(df: pd.DataFrame) -> dict[str, list[str]]:
    """Sentences computed from the data, per result file: ratios never cross machines."""
    return {f"{_machine_name(sub)} — `{_file(file)}`": _findings(sub)
            for file, sub in df.groupby("file", sort=False)}


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
    ep = _epoch_view(df)
    if len(ep):
        shuffled = ep[ep["order"] == "shuffle"]
        for B, group in shuffled.groupby("batch_size"):
            if group["series"].nunique() < 2:
                continue
            best = group.loc[group["seconds_per_epoch"].idxmin()]
            worst = group.loc[group["seconds_per_epoch"].idxmax()]
            out.append(f"At B = {int(B)} (shuffled), the fastest epoch is **{best['series']}** "
                       f"({_fmt_s(best['seconds_per_epoch'])}), "
                       f"{_ratio_or_noise(best, worst)} faster than the slowest "
                       f"({worst['series']}, {_fmt_s(worst['seconds_per_epoch'])}).")
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
                                  f"({_fmt_s(row['seconds_per_epoch'])} per epoch)")
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
    out += _reshuffle_findings(df)
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


def _reshuffle_findings(df: pd.DataFrame, batch_size: int = 600) -> list[str]:
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
        in_order = float(epoch_seconds(o, evaluation=False).iloc[0])
        if move < 0.1 * copy_s:
            parts.append(f"{backend} reads the examples through the permutation (data "
                         f"movement {_fmt_s(move)} per epoch)")
        else:
            parts.append(f"{backend}: the gather takes {_fmt_s(move)} "
                         f"({move / copy_s:.1f}× the copy floor) against a "
                         f"{_fmt_s(in_order)} in-order epoch; a gather at the floor would "
                         f"still add {100 * copy_s / in_order:.0f} %")
    if not parts:
        return []
    return [f"Reshuffling at B = {batch_size} (CPU): a gather into a buffer reads the training "
            f"set and writes a permuted copy, which this machine does at best in "
            f"{_fmt_s(copy_s)} (the copy floor). " + "; ".join(parts) + "."]


# --------------------------------------------------------------------------- tables


def _floor_ratios(ep: pd.DataFrame, df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Training time per epoch over the same file's products-only epoch at that B, and over
    its FLOP floor, each measured on the row's own device (NaN where the file has no such
    floor)."""
    train = epoch_seconds(ep, evaluation=False)
    floors = df[df["kind"] == "floor"] if "floor" in set(df.get("kind", [])) else None
    mm_ratio = pd.Series(float("nan"), index=ep.index)
    flop_ratio = pd.Series(float("nan"), index=ep.index)
    if floors is None or floors.empty:
        return mm_ratio, flop_ratio
    for i, row in ep.iterrows():
        f = floors[(floors["file"] == row["file"]) & (floors["device"] == row["device"])]
        mm = f[(f["floor"] == "matmul_epoch") & (f["batch_size"] == row["batch_size"])]
        if len(mm):
            mm_ratio[i] = train[i] / float(mm["mm_epoch_s"].iloc[0])
        peak = f[f["floor"] == "peak_matmul"]
        if len(peak):
            flop_ratio[i] = train[i] / float(peak["flop_floor_epoch_s"].iloc[0])
    return mm_ratio, flop_ratio


def _gpu_floor(df: pd.DataFrame, file: object, floor: str, col: str) -> float:
    """A GPU floor's value from one result file (NaN where it was not measured)."""
    if "floor" not in df or col not in df:
        return float("nan")
    sel = df[(df["kind"] == "floor") & (df["device"] == "cuda") & (df["file"] == file)
             & (df["floor"] == floor)]
    sel = sel[sel[col].notna()]
    return float(sel[col].iloc[0]) if len(sel) else float("nan")


def _gpu_floor_ratios(ep: pd.DataFrame, df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """For CUDA epoch rows: training time per epoch over the same file's read floor (one read
    of the training set, ``read_floor_epoch_s``), and training time per step over its
    CUDA-graph replay latency (NaN for other rows, and where the file lacks the floor)."""
    train = epoch_seconds(ep, evaluation=False)
    per_step = train / ep["batches_per_epoch"].astype(float)
    read = pd.Series(float("nan"), index=ep.index)
    replay = pd.Series(float("nan"), index=ep.index)
    for i, row in ep[ep["device"] == "cuda"].iterrows():
        read[i] = train[i] / _gpu_floor(df, row["file"], "read_bandwidth", "read_floor_epoch_s")
        replay[i] = per_step[i] / _gpu_floor(df, row["file"], "launch_graph", "event_best_s")
    return read, replay


#: The card's floors as the report names them, with their unit, in the table's order.
GPU_FLOOR_LABELS = {
    "peak_matmul": "peak float32 matrix product, TF32 off (GFLOP/s)",
    "peak_matmul_tf32": "matrix product, TF32 allowed (GFLOP/s)",
    "read_bandwidth": "read, training set (GB/s)",
    "read_bandwidth_large": "read, 2 GiB buffer (GB/s)",
    "copy_bandwidth": "device copy of the training set, read + write (GB/s)",
    "copy_bandwidth_large": "device copy of 2 GiB, read + write (GB/s)",
    "launch_empty": "empty-kernel launch (µs)",
    "launch_op": "1-element torch op launch (µs)",
    "launch_graph": "CUDA graph replay, one kernel (µs)",
    "h2d_pageable": "host→device, pageable, training set (GB/s)",
    "h2d_pinned": "host→device, pinned, training set (GB/s)",
    "d2h_pageable": "device→host, pageable, training set (GB/s)",
    "d2h_pinned": "device→host, pinned, training set (GB/s)",
}
#: The fields of the per-epoch floors a GPU floor record may set (``bench.gpu_floors``: at
#: most one each).
GPU_EPOCH_FLOOR_FIELDS = ("flop_floor_epoch_s", "read_floor_epoch_s", "copy_floor_epoch_s",
                          "launch_floor_epoch_s", "transfer_floor_epoch_s")


def _gpu_floor_cells(r: pd.Series) -> tuple[str, str]:
    """(best, median ± IQR) of one GPU floor row in the unit of its label."""
    def get(col: str) -> float:
        v = r.get(col)
        return float("nan") if _missing(v) else float(v)

    if not _missing(r.get("gflop_per_s")):
        vals, fmt = [get("gflop_per_s"), get("gflop_per_s_median"),
                     get("gflop_per_s_iqr")], "{:,.0f}"
    elif not _missing(r.get("gb_per_s")):
        vals, fmt = [get("gb_per_s"), get("gb_per_s_median"), get("gb_per_s_iqr")], "{:,.1f}"
    else:
        vals = [1e6 * get("event_best_s"), 1e6 * get("event_median_s"),
                1e6 * get("event_iqr_s")]
        fmt = "{:.2f}"
    best, median, iqr = (NOT_MEASURED if math.isnan(v) else fmt.format(v) for v in vals)
    return best, f"{median} ± {iqr}"


def gpu_floors_table(df: pd.DataFrame) -> str | None:
    """The card's floors of each result file: best round, median ± IQR over the rounds, and
    the per-epoch floor each sets; None when no file has them."""
    if "kind" not in df or "floor" not in df:
        return None
    f = df[(df["kind"] == "floor") & (df["device"] == "cuda")]
    if f.empty:
        return None
    order = {name: k for k, name in enumerate(GPU_FLOOR_LABELS)}
    f = f.assign(_order=f["floor"].map(order).fillna(len(order))).sort_values(
        ["file", "_order", "floor"], kind="stable")
    rows = []
    for _, r in f.iterrows():
        best, spread = _gpu_floor_cells(r)
        epoch = next((r[c] for c in GPU_EPOCH_FLOOR_FIELDS if not _missing(r.get(c))), None)
        rows.append({
            "result file": _file(r["file"])[:13],
            "GPU": r.get("machine_gpu") if not _missing(r.get("machine_gpu")) else NOT_MEASURED,
            "floor (unit)": GPU_FLOOR_LABELS.get(r["floor"], str(r["floor"])),
            "best round": best, "median ± IQR (rounds)": spread,
            "epoch floor it sets (ms)": NA if epoch is None else _ms(epoch, 3)})
    return pd.DataFrame(rows).pipe(_md)


def _cells(values: pd.Series, fmt, na_mask: pd.Series | None = None) -> list[str]:
    out = []
    for i, v in values.items():
        if na_mask is not None and bool(na_mask.get(i)):
            out.append(NA)
        else:
            out.append(NOT_MEASURED if _missing(v) else fmt(v))
    return out


def _noise_cells(t: pd.DataFrame) -> list[str]:
    rel = t["rel_iqr"] if "rel_iqr" in t else pd.Series(np.nan, t.index)
    return [NOT_MEASURED if _missing(r) else (f"{NOISY} ({100 * r:.0f} %)" if n
                                                else f"{100 * r:.0f} %")
            for r, n in zip(rel, t["noisy"].fillna(False), strict=True)]


def tables(df: pd.DataFrame) -> dict[str, str]:
    out = {}
    ep = _epoch_view(df)
    if len(ep):
        t = ep.sort_values(["file", "batch_size", "series", "order"])
        mm_ratio, flop_ratio = _floor_ratios(t, df)
        cpu = t["device"] == "cpu"
        gpu_cols = {}
        if (t["device"] == "cuda").any():  # only where there are GPU rows: CPU tables unchanged
            read_ratio, replay_ratio = _gpu_floor_ratios(t, df)
            gpu_cols = {
                "training ÷ GPU read floor": _cells(read_ratio, _ratio, cpu),
                "training per step ÷ GPU graph replay": _cells(replay_ratio, _ratio, cpu)}
        out[f"{EPOCH_TABLE} (medians over rounds; per epoch)"] = pd.DataFrame({
            "result file": t["file"].map(_file).str.slice(0, 13),
            "series": t["series"], "B": t["batch_size"].astype(int), "data order": t["order"],
            "budget per round": t["budget"],
            "time per epoch, incl. validation (ms, median ± IQR)": [
                f"{_ms(m)} ± {_ms(q)}" for m, q in zip(t["seconds_per_epoch"],
                                                       t["iqr_epoch_s"], strict=True)],
            "IQR / median (rounds)": _noise_cells(t),
            "training per epoch (ms)": _cells(t["train_s"], _ms),
            "compute per epoch (ms)": _cells(t["compute_epoch_s"], _ms),
            "host→device per epoch (ms)": _cells(t["h2d_epoch_s"], _ms, cpu),
            "data movement per epoch (ms)": _cells(t["move_epoch_s"], _ms),
            "training ÷ products-only epoch": _cells(mm_ratio, "{:.2f}".format),
            "training ÷ FLOP floor": _cells(flop_ratio, "{:.1f}".format),
            **gpu_cols,
            "examples/s (training)": _cells(t["examples_per_s"], "{:,.0f}".format),
            "final valid error (%)": _cells(100 * t["final_valid_error"].astype(float),
                                            "{:.2f}".format),
            "status": t["status"].fillna(NOT_MEASURED)}).pipe(_md)
    st = tidy.steps(df)
    if len(st):
        t = st.sort_values(["file", "batch_size", "series"])
        t = t.assign(noisy=t.get("noisy", pd.Series(False, t.index)).fillna(False))
        out["One optimizer step (median over rounds)"] = pd.DataFrame({
            "result file": t["file"].map(_file).str.slice(0, 13),
            "series": t["series"], "B": t["batch_size"].astype(int),
            "time per step (µs, median ± IQR)": [
                f"{1e6 * m:.1f} ± {1e6 * q:.1f}" if not _missing(q) else f"{1e6 * m:.1f}"
                for m, q in zip(t["seconds_per_step"], t["stat_iqr"], strict=True)],
            "IQR / median (rounds)": _noise_cells(t)}).pipe(_md)
    ttt = tidy.time_to_target(df)
    if len(ttt):
        t = ttt.sort_values(["file", "batch_size", "series"])
        reached = t["target_reached"].astype(bool)
        out[f"{TTT_TABLE} (one run per point; best learning rate per B)"] = pd.DataFrame({
            "result file": t["file"].map(_file).str.slice(0, 13),
            "series": t["series"], "B": t["batch_size"].astype(int),
            "lr": t["cfg_learning_rate"],
            "budget": [f"{int(e)} epochs" if not _missing(e) else NOT_MEASURED
                       for e in t.get("cfg_max_epochs", pd.Series(np.nan, t.index))],
            "training time to target (s)": [f"{float(v):.3f}" if r else NOT_REACHED
                                            for v, r in zip(t["time_to_target_s"], reached,
                                                            strict=True)],
            "steps to target": [f"{int(v)}" if r else NOT_REACHED
                                for v, r in zip(t["steps_to_target"], reached, strict=True)],
            "best valid error (%)": _cells(100 * t["best_valid_error"].astype(float),
                                           "{:.2f}".format),
            "epochs run": t["epochs"]}).pipe(_md)
    if "kind" in df and "floor" in set(df["kind"]):
        f = df[(df["kind"] == "floor") & (df["device"] == "cpu")]
        rows = []
        for file, g in f.groupby("file", sort=False):
            def pick(name, col, g=g):
                sel = g[g["floor"] == name]
                return float(sel[col].iloc[0]) if len(sel) else float("nan")
            rows.append({"result file": _file(file)[:13],
                         "peak float32 matmul (GFLOP/s)": round(pick("peak_matmul",
                                                                     "gflop_per_s"), 1),
                         "read (GB/s)": round(pick("read_bandwidth", "gb_per_s"), 2),
                         "copy, read + write (GB/s)": round(pick("copy_bandwidth", "gb_per_s"),
                                                           2),
                         "FLOP floor of an epoch (ms)": round(
                             1e3 * pick("peak_matmul", "flop_floor_epoch_s"), 2),
                         "bandwidth floor of an epoch (ms)": round(
                             1e3 * pick("read_bandwidth", "bandwidth_floor_epoch_s"), 2)})
        if rows:
            out["The machine's floors (measured by the suite, NumPy float32)"] = pd.DataFrame(
                rows).pipe(_md)
        gpu_floors = gpu_floors_table(df)
        if gpu_floors:
            out["The card's floors (measured by the suite, torch on CUDA, device events)"] = (
                "The best round is the floor; median ± IQR over the timed rounds. The epoch "
                "floor each sets: peak product: one epoch's products at the best rate; read: "
                "one read of the training set (the GPU targets' reference); copy: one device "
                "copy of it; launches: one launch or replay per step of a per-sample SGD "
                "epoch; host→device: one upload of the training set.\n\n" + gpu_floors)
        mm = f[f["floor"] == "matmul_epoch"].sort_values(["file", "batch_size"])
        if len(mm):
            mm = mm.assign(noisy=mm.get("noisy", pd.Series(False, mm.index)).fillna(False))
            out["Matrix-products-only epoch (forward + weight gradient, in order)"] = \
                pd.DataFrame({"result file": mm["file"].map(_file).str.slice(0, 13),
                              "B": mm["batch_size"].astype(int),
                              "time per epoch (ms)": _cells(mm["mm_epoch_s"], _ms),
                              "GFLOP/s": mm["gflop_per_s"].round(1),
                              "IQR / median (rounds)": _noise_cells(mm)}).pipe(_md)
    if "kind" in df and "peer" in set(df["kind"]):
        p = df[df["kind"] == "peer"].sort_values(["file", "peer", "batch_size"])
        p = p.assign(noisy=p.get("noisy", pd.Series(False, p.index)).fillna(False))
        out["Peers (what users would pick instead; one epoch)"] = pd.DataFrame({
            "result file": p["file"].map(_file).str.slice(0, 13),
            "peer": p["peer"], "B": p["batch_size"].astype(int),
            "time per epoch (ms)": _cells(p["seconds_per_epoch"], _ms),
            "IQR / median (rounds)": _noise_cells(p),
            "valid error (%)": (100 * p["final_valid_error"].astype(float)).round(2),
            "note": p.get("note", pd.Series("", p.index)).fillna("")}).pipe(_md)
    targets = [evaluate(g).assign(file=_file(file))
               for file, g in df.groupby("file", sort=False)] if "file" in df else []
    targets = [t for t in targets if len(t)]
    if targets:
        t = pd.concat(targets, ignore_index=True)
        out["Performance targets (ratios measured in one run)"] = pd.DataFrame({
            "result file": t["file"].str.slice(0, 13), "target": t["target"],
            "subject": t["subject"],
            "measured (ms)": t["measured_s"].map(_target_ms),
            "reference (ms)": t["reference_s"].map(_target_ms),
            "ratio": t["ratio"].round(2), "limit": t["limit"],
            "verdict": [verdict(r) for r in t.itertuples()],
            "timed": [("fixed budget" if target in FIXED_BUDGET_TARGETS else "paired rounds"
                       if paired else "separate benchmarks")
                      for target, paired in zip(t["target"], t["paired"], strict=True)],
        }).pipe(_md)
    tr = tidy.transfers(df)
    if len(tr):
        t = tr.sort_values(["file", "copy", "rows", "series"])
        t = t.assign(noisy=t.get("noisy", pd.Series(False, t.index)).fillna(False))
        out[TRANSFER_TABLE] = pd.DataFrame({
            "result file": t["file"].map(_file).str.slice(0, 13),
            "series": t["series"], "copy": t["copy"], "rows": t["rows"].astype(int),
            "MB per copy": (t["bytes"] / 1e6).round(3),
            "time per copy (µs, median of device events)": (1e6 * t["event_median_s"]).round(1),
            "GB/s": t["gb_per_s"].round(2),
            "IQR / median (rounds)": _noise_cells(t)}).pipe(_md)
    return out


# --------------------------------------------------------------------------- comparison


def beyond_noise(new: pd.Series, old: pd.Series) -> str:
    """Whether two runs of one benchmark differ by more than their noise.

    With per-round times in both files (saved with ``--benchmark-save-data``) and at least 5
    rounds each, a two-sided Mann–Whitney U test at 5 % (asv's test); otherwise asv's
    fallback: the runs differ only if their interquartile ranges do not overlap.
    """
    a, b = new.get("stat_data"), old.get("stat_data")
    if isinstance(a, list) and isinstance(b, list) and min(len(a), len(b)) >= 5:
        from scipy.stats import mannwhitneyu

        p = float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
        return f"{'yes' if p < 0.05 else 'no'} (Mann–Whitney p = {p:.2g})"

    def quartiles(r: pd.Series) -> tuple[float, float]:
        q1, q3 = r.get("stat_q1"), r.get("stat_q3")
        if _missing(q1) or _missing(q3):
            med, iqr = float(r["stat_median"]), r.get("stat_iqr")
            half = 0.0 if _missing(iqr) else float(iqr) / 2
            return med - half, med + half
        return float(q1), float(q3)

    (a1, a3), (b1, b3) = quartiles(new), quartiles(old)
    return "yes (IQRs apart)" if a3 < b1 or b3 < a1 else "no (IQRs overlap)"


def comparison_table(new: pd.DataFrame, old: pd.DataFrame) -> str | None:
    """Ratios old / new of the median benchmark time, for benchmarks present in both, with
    whether each difference is larger than the noise (``beyond_noise``)."""
    if new.empty or old.empty:
        return None
    # compare like with like: only results of the baseline's machine(s)
    key = ["machine_cpu", "machine_gpu"]
    machines = {tuple(r) for r in old[key].astype(str).itertuples(index=False)}
    new = new[[tuple(r) in machines for r in new[key].astype(str).itertuples(index=False)]]
    if new.empty:
        return None
    a = new.drop_duplicates("name", keep="last").set_index("name")
    b = old.drop_duplicates("name", keep="last").set_index("name")
    both = a.index.intersection(b.index)
    if both.empty:
        return None
    rows = []
    for name in both:
        rows.append({"benchmark": name,
                     "baseline median (s)": round(float(b.at[name, "stat_median"]), 6),
                     "this run median (s)": round(float(a.at[name, "stat_median"]), 6),
                     "speed-up (baseline / this)": round(float(b.at[name, "stat_median"])
                                                        / float(a.at[name, "stat_median"]), 2),
                     "beyond the noise?": beyond_noise(a.loc[name], b.loc[name])})
    return pd.DataFrame(rows).pipe(_md)


def _comparison_header(new: pd.DataFrame, old: pd.DataFrame) -> list[str]:
    c_new = sorted({_short_commit(c) for c in new["commit"]}) if "commit" in new else []
    c_old = sorted({_short_commit(c) for c in old["commit"]}) if "commit" in old else []
    return [f"Baseline commit {', '.join(f'`{c}`' for c in c_old)}; this run "
            f"{', '.join(f'`{c}`' for c in c_new)}. A speed-up counts only where "
            "*beyond the noise?* says yes: with per-round data (files saved with "
            "`--benchmark-save-data`, ≥ 5 rounds) a Mann–Whitney U test at 5 %, otherwise "
            "non-overlapping interquartile ranges of the rounds.", ""]


# --------------------------------------------------------------------------- the report


def render(df: pd.DataFrame, figures: list[tuple[str, str | None]], command: str,
           files: list[str], compare: pd.DataFrame | None = None,
           answers: list[str] = (), sections: list[str] = ()) -> str:
    """The whole report. ``figures``: (title, relative path or None when not drawable);
    ``answers``: markdown blocks that open the summary (the batch-size study's answer);
    ``sections``: whole markdown sections placed after the summary (the study, data
    parallelism)."""
    lines = ["# gdbench report", "",
             f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `{command}` from "
             + ", ".join(f"`{f}`" for f in files) + ".", "",
             "Softmax regression on MNIST (50,000 train / 10,000 validation), mean NLL, "
             "trained by minibatch SGD; B = 1 is per-sample SGD, B = 50,000 full-batch GD. "
             "All times are medians over the benchmark's rounds, warm-up excluded; ± is the "
             "interquartile range of the rounds.", "",
             "## Summary: what to use for what", ""]
    for block in answers:
        lines += [block.rstrip(), ""]
    lines += [f"- {s}" for s in _code_note(df)]
    if _code_note(df):
        lines.append("")
    for machine, found in summary(df).items():
        lines += [f"### {machine}", "", found[0], ""]
        lines += [f"- {s}" for s in found[1:]] or ["- (no comparable measurements)"]
        lines.append("")
    for section in sections:
        lines += [section.rstrip(), ""]
    lines += ["## Machine and software", "", machine_table(df), "", "## Findings", ""]
    for machine, found in findings(df).items():
        lines += [f"### {machine}", ""]
        lines += [f"- {s}" for s in found] if found else ["- (no comparable measurements)"]
        lines.append("")
    lines += ["", "## Figures", ""]
    for title, path in figures:
        if path is None:
            lines += [f"- *{title}*: not drawn — these results lack the measurements it needs.",
                      ""]
        else:
            lines += [f"### {title}", "", f"![{title}]({path})", ""]
    lines += ["## Tables", "",
              f"`{NA}`: not applicable (e.g. host→device on a CPU); `{NOT_REACHED}`: the target "
              f"error was not reached within the budget; `{NOT_MEASURED}`: not measured in that "
              f"result file; {NOISY}: the rounds' IQR exceeds {NOISY_REL_IQR:.0%} of the median, "
              "too noisy to read. Per-epoch times divide each run's step-proportional time by "
              "the epochs' worth of steps it ran, and its once-per-epoch time (the reshuffle) by "
              "the epochs begun.", ""]
    for title, table in tables(df).items():
        lines += [f"### {title}", "", table, ""]
    if compare is not None:
        table = comparison_table(df, compare)
        lines += ["## Comparison with the baseline run", ""]
        lines += _comparison_header(df, compare) if table else []
        lines += [table or "No benchmark appears in both result sets.", ""]
    return "\n".join(lines) + "\n"
