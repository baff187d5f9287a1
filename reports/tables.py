"""The report's tables (the detail pages' long tables): fixed-budget epochs, steps,
time-to-target, floors, peers, targets, transfers, the machine, and the comparison with a
baseline. Cells as ``reports.cells`` writes them; every value from ``bench.analysis``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench.analysis import NOISY_REL_IQR
from bench.analysis import views as tidy
from bench.analysis.names import missing
from bench.analysis.stats import comparison
from bench.analysis.targets import FIXED_BUDGET_TARGETS, evaluate, verdict
from reports.cells import (
    NA,
    NOISY,
    NOT_MEASURED,
    NOT_REACHED,
    cells,
    file_name,
    md,
    ms,
    noise_cells,
    ratio,
    short_commit,
    target_ms,
)
from reports.summary import EPOCH_TABLE, TRANSFER_TABLE, TTT_TABLE

__all__ = ["comparison_header", "comparison_table", "gpu_floors_table", "legend",
           "machine_table", "tables"]


def machine_table(df: pd.DataFrame) -> str:
    cols = {"file": "result file", "datetime": "date", "commit": "commit",
            "machine_profile": "profile", "run_status": "run",
            "run_loaded": "loaded", "machine_cpu": "CPU", "machine_cpu_count": "CPUs",
            "machine_gpu": "GPU", "machine_python": "Python", "machine_numpy": "numpy",
            "machine_torch": "torch", "machine_cupy": "cupy"}
    present = [c for c in cols if c in df]
    table = df[present].drop_duplicates(subset=["file"]).copy()
    table["file"] = table["file"].map(file_name)
    if "commit" in table:
        table["commit"] = table["commit"].map(short_commit)
    if "datetime" in table:
        table["datetime"] = table["datetime"].astype(str).str[:16]
    if "run_loaded" in table:
        table["run_loaded"] = table["run_loaded"].map(
            {True: "**yes**", False: "no"}).fillna(NOT_MEASURED)
    return table.rename(columns=cols).astype(object).fillna(NOT_MEASURED).pipe(md)



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
        return float("nan") if missing(v) else float(v)

    if not missing(r.get("gflop_per_s")):
        vals, fmt = [get("gflop_per_s"), get("gflop_per_s_median"),
                     get("gflop_per_s_iqr")], "{:,.0f}"
    elif not missing(r.get("gb_per_s")):
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
        epoch = next((r[c] for c in GPU_EPOCH_FLOOR_FIELDS if not missing(r.get(c))), None)
        rows.append({
            "result file": file_name(r["file"])[:13],
            "GPU": r.get("machine_gpu") if not missing(r.get("machine_gpu")) else NOT_MEASURED,
            "floor (unit)": GPU_FLOOR_LABELS.get(r["floor"], str(r["floor"])),
            "best round": best, "median ± IQR (rounds)": spread,
            "epoch floor it sets (ms)": NA if epoch is None else ms(epoch, 3)})
    return pd.DataFrame(rows).pipe(md)


def tables(df: pd.DataFrame) -> dict[str, str]:
    out = {}
    ep = tidy.epoch_view(df)
    if len(ep):
        t = ep.sort_values(["file", "batch_size", "series", "order"])
        mm_ratio, flop_ratio = tidy.floor_ratios(t, df)
        cpu = t["device"] == "cpu"
        gpu_cols = {}
        if (t["device"] == "cuda").any():  # only where there are GPU rows: CPU tables unchanged
            read_ratio, replay_ratio = tidy.gpu_floor_ratios(t, df)
            gpu_cols = {
                "training ÷ GPU read floor": cells(read_ratio, ratio, cpu),
                "training per step ÷ GPU graph replay": cells(replay_ratio, ratio, cpu)}
        out[f"{EPOCH_TABLE} (medians over rounds; per epoch)"] = pd.DataFrame({
            "result file": t["file"].map(file_name).str.slice(0, 13),
            "series": t["series"], "B": t["batch_size"].astype(int), "data order": t["order"],
            "budget per round": t["budget"],
            "time per epoch, incl. validation (ms, median ± IQR)": [
                f"{ms(m)} ± {ms(q)}" for m, q in zip(t["seconds_per_epoch"],
                                                       t["iqr_epoch_s"], strict=True)],
            "IQR / median (rounds)": noise_cells(t),
            "training per epoch (ms)": cells(t["train_s"], ms),
            "compute per epoch (ms)": cells(t["compute_epoch_s"], ms),
            "host→device per epoch (ms)": cells(t["h2d_epoch_s"], ms, cpu),
            "data movement per epoch (ms)": cells(t["move_epoch_s"], ms),
            "training ÷ products-only epoch": cells(mm_ratio, "{:.2f}".format),
            "training ÷ FLOP floor": cells(flop_ratio, "{:.1f}".format),
            **gpu_cols,
            "examples/s (training)": cells(t["examples_per_s"], "{:,.0f}".format),
            "final valid error (%)": cells(100 * t["final_valid_error"].astype(float),
                                            "{:.2f}".format),
            "status": t["status"].fillna(NOT_MEASURED)}).pipe(md)
    st = tidy.steps(df)
    if len(st):
        t = st.sort_values(["file", "batch_size", "series"])
        t = t.assign(noisy=t.get("noisy", pd.Series(False, t.index)).fillna(False))
        out["One optimizer step (median over rounds)"] = pd.DataFrame({
            "result file": t["file"].map(file_name).str.slice(0, 13),
            "series": t["series"], "B": t["batch_size"].astype(int),
            "time per step (µs, median ± IQR)": [
                f"{1e6 * m:.1f} ± {1e6 * q:.1f}" if not missing(q) else f"{1e6 * m:.1f}"
                for m, q in zip(t["seconds_per_step"], t["stat_iqr"], strict=True)],
            "IQR / median (rounds)": noise_cells(t)}).pipe(md)
    ttt = tidy.time_to_target(df)
    if len(ttt):
        t = ttt.sort_values(["file", "batch_size", "series"])
        reached = t["target_reached"].astype(bool)
        out[f"{TTT_TABLE} (one run per point; the best of the profile's learning-rate grid per "
            "B, one rate by default: not tuned)"] = pd.DataFrame({
            "result file": t["file"].map(file_name).str.slice(0, 13),
            "series": t["series"], "B": t["batch_size"].astype(int),
            "lr": t["cfg_learning_rate"],
            "budget": [f"{int(e)} epochs" if not missing(e) else NOT_MEASURED
                       for e in t.get("cfg_max_epochs", pd.Series(np.nan, t.index))],
            "training time to target (s)": [f"{float(v):.3f}" if r else NOT_REACHED
                                            for v, r in zip(t["time_to_target_s"], reached,
                                                            strict=True)],
            "steps to target": [f"{int(v)}" if r else NOT_REACHED
                                for v, r in zip(t["steps_to_target"], reached, strict=True)],
            "best valid error (%)": cells(100 * t["best_valid_error"].astype(float),
                                           "{:.2f}".format),
            "epochs run": t["epochs"]}).pipe(md)
    if "kind" in df and "floor" in set(df["kind"]):
        f = df[(df["kind"] == "floor") & (df["device"] == "cpu")]
        rows = []
        for file, g in f.groupby("file", sort=False):
            def pick(name, col, g=g):
                sel = g[g["floor"] == name]
                return float(sel[col].iloc[0]) if len(sel) else float("nan")
            rows.append({"result file": file_name(file)[:13],
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
                rows).pipe(md)
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
                pd.DataFrame({"result file": mm["file"].map(file_name).str.slice(0, 13),
                              "B": mm["batch_size"].astype(int),
                              "time per epoch (ms)": cells(mm["mm_epoch_s"], ms),
                              "GFLOP/s": mm["gflop_per_s"].round(1),
                              "IQR / median (rounds)": noise_cells(mm)}).pipe(md)
    if "kind" in df and "peer" in set(df["kind"]):
        p = df[df["kind"] == "peer"].sort_values(["file", "peer", "batch_size"])
        p = p.assign(noisy=p.get("noisy", pd.Series(False, p.index)).fillna(False))
        out["Peers (what users would pick instead; one epoch)"] = pd.DataFrame({
            "result file": p["file"].map(file_name).str.slice(0, 13),
            "peer": p["peer"], "B": p["batch_size"].astype(int),
            "time per epoch (ms)": cells(p["seconds_per_epoch"], ms),
            "IQR / median (rounds)": noise_cells(p),
            "valid error (%)": (100 * p["final_valid_error"].astype(float)).round(2),
            "note": p.get("note", pd.Series("", p.index)).fillna("")}).pipe(md)
    targets = [evaluate(g).assign(file=file_name(file))
               for file, g in df.groupby("file", sort=False)] if "file" in df else []
    targets = [t for t in targets if len(t)]
    if targets:
        t = pd.concat(targets, ignore_index=True)
        out["Performance targets (ratios measured in one run)"] = pd.DataFrame({
            "result file": t["file"].str.slice(0, 13), "target": t["target"],
            "subject": t["subject"],
            "measured (ms)": t["measured_s"].map(target_ms),
            "reference (ms)": t["reference_s"].map(target_ms),
            "ratio": t["ratio"].round(2), "limit": t["limit"],
            "verdict": [verdict(r) for r in t.itertuples()],
            "timed": [("fixed budget" if target in FIXED_BUDGET_TARGETS else "paired rounds"
                       if paired else "separate benchmarks")
                      for target, paired in zip(t["target"], t["paired"], strict=True)],
        }).pipe(md)
    tr = tidy.transfers(df)
    if len(tr):
        t = tr.sort_values(["file", "copy", "rows", "series"])
        t = t.assign(noisy=t.get("noisy", pd.Series(False, t.index)).fillna(False))
        out[TRANSFER_TABLE] = pd.DataFrame({
            "result file": t["file"].map(file_name).str.slice(0, 13),
            "series": t["series"], "copy": t["copy"], "rows": t["rows"].astype(int),
            "MB per copy": (t["bytes"] / 1e6).round(3),
            "time per copy (µs, median of device events)": (1e6 * t["event_median_s"]).round(1),
            "GB/s": t["gb_per_s"].round(2),
            "IQR / median (rounds)": noise_cells(t)}).pipe(md)
    return out



def comparison_table(new: pd.DataFrame, old: pd.DataFrame) -> str | None:
    """The baseline comparison (``bench.analysis.stats.comparison``) as a markdown table."""
    rows = comparison(new, old)
    return None if rows is None else md(rows)


def comparison_header(new: pd.DataFrame, old: pd.DataFrame) -> list[str]:
    c_new = sorted({short_commit(c) for c in new["commit"]}) if "commit" in new else []
    c_old = sorted({short_commit(c) for c in old["commit"]}) if "commit" in old else []
    return [f"Baseline commit {', '.join(f'`{c}`' for c in c_old)}; this run "
            f"{', '.join(f'`{c}`' for c in c_new)}. A speed-up counts only where "
            "*beyond the noise?* says yes: with per-round data (files saved with "
            "`--benchmark-save-data`, ≥ 5 rounds) a Mann–Whitney U test at 5 %, otherwise "
            "non-overlapping interquartile ranges of the rounds.", ""]


def legend() -> str:
    """What the tables' spellings mean and how per-epoch times are derived."""
    return (f"`{NA}`: not applicable (e.g. host→device on a CPU); `{NOT_REACHED}`: the target "
            f"error was not reached within the budget; `{NOT_MEASURED}`: not measured in that "
            f"result file; {NOISY}: the rounds' IQR exceeds {NOISY_REL_IQR:.0%} of the median, "
            "too noisy to read. Per-epoch times divide each run's step-proportional time by the "
            "epochs' worth of steps it ran, and its once-per-epoch time (the reshuffle) by the "
            "epochs begun.")
