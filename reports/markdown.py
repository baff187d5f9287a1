"""The markdown report: machine table, findings computed from the data, tables, figures.

Every number here comes from the DataFrame; no sentence carries a typed-in number.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from bench.results import epoch_seconds
from bench.targets import evaluate
from reports import tidy

__all__ = ["comparison_table", "findings", "machine_table", "render", "tables"]


def _fmt_s(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if x >= 1:
        return f"{x:.2f} s"
    if x >= 1e-3:
        return f"{x * 1e3:.1f} ms"
    return f"{x * 1e6:.0f} µs"


def machine_table(df: pd.DataFrame) -> str:
    cols = {"file": "result file", "datetime": "date", "commit": "commit",
            "machine_cpu": "CPU", "machine_cpu_count": "CPUs", "machine_gpu": "GPU",
            "machine_python": "Python", "machine_numpy": "numpy", "machine_torch": "torch",
            "machine_cupy": "cupy", "machine_profile": "profile"}
    present = [c for c in cols if c in df]
    table = df[present].drop_duplicates(subset=["file"]).rename(columns=cols)
    table["result file"] = table["result file"].map(lambda f: Path(str(f)).name)
    if "commit" in table:
        table["commit"] = table["commit"].astype(str).str[:10]
    return table.fillna("—").to_markdown(index=False)


def _machine_name(sub: pd.DataFrame) -> str:
    row = sub.iloc[0]
    gpu = row.get("machine_gpu")
    cpu = f"{row.get('machine_cpu')} ({row.get('machine_cpu_count')} CPUs)"
    return f"{gpu} + {cpu}" if isinstance(gpu, str) and gpu else cpu


def findings(df: pd.DataFrame) -> dict[str, list[str]]:
    """Sentences computed from the data, per result file: ratios never cross machines."""
    return {f"{_machine_name(sub)} — `{Path(str(file)).name}`": _findings(sub)
            for file, sub in df.groupby("file", sort=False)}


def _findings(df: pd.DataFrame) -> list[str]:
    out: list[str] = []
    ep = tidy.epochs(df)
    if len(ep):
        for B, group in ep.groupby("batch_size"):
            if group["series"].nunique() < 2:
                continue
            best = group.loc[group["seconds_per_epoch"].idxmin()]
            worst = group.loc[group["seconds_per_epoch"].idxmax()]
            out.append(f"At B = {int(B)}, the fastest epoch is **{best['series']}** "
                       f"({_fmt_s(best['seconds_per_epoch'])}), "
                       f"{worst['seconds_per_epoch'] / best['seconds_per_epoch']:.1f}× faster "
                       f"than the slowest ({worst['series']}, "
                       f"{_fmt_s(worst['seconds_per_epoch'])}).")
        gpu = ep[(ep["device"] != "cpu") & ep["median_h2d_s"].notna()]
        if len(gpu):
            share = (gpu["median_h2d_s"] / gpu["median_total_s"]).groupby(
                [gpu["placement"], gpu["pinned"].astype(bool)]).median()
            for (placement, pinned), value in share.items():
                name = f"{placement}{' + pinned' if pinned else ''}"
                out.append(f"On the GPU, host→device copies take a median **{100 * value:.1f} %** "
                           f"of the run's wall time with `{name}` data.")
        kernel = ep["kernel"].fillna("eager") if "kernel" in ep else pd.Series("eager", ep.index)
        resident = ep[(ep["device"] != "cpu") & (ep["placement"] == "resident")]
        for (backend, fast), g in resident[kernel[resident.index] != "eager"].groupby(
                ["backend", kernel[resident.index]]):
            eager = resident[(resident["backend"] == backend)
                             & (kernel[resident.index] == "eager")]
            ratios = []
            for _, row in g.sort_values("batch_size").iterrows():
                base = eager[eager["batch_size"] == row["batch_size"]]
                if len(base):
                    fast_s = row["seconds_per_epoch"]
                    ratios.append(f"B = {int(row['batch_size'])}: "
                                  f"{base['seconds_per_epoch'].iloc[0] / fast_s:.1f}× "
                                  f"({_fmt_s(fast_s)} per epoch)")
            if ratios:
                out.append(f"The {backend} `{fast}` path against its eager steps (data "
                           f"resident): " + "; ".join(ratios) + ".")
        cpu = ep[ep["device"] == "cpu"]
        if len(gpu) and len(cpu):
            res = resident
            wins, losses = [], []
            for B, g in res.groupby("batch_size"):
                c = cpu[cpu["batch_size"] == B]
                if len(c):
                    ratio = c["seconds_per_epoch"].min() / g["seconds_per_epoch"].min()
                    (wins if ratio > 1 else losses).append(f"B = {int(B)} ({ratio:.1f}×)")
            if wins:
                out.append("The best GPU epoch (data resident, any kernel) beats the best CPU "
                           "epoch at "
                           + ", ".join(wins) + ".")
            if losses:
                out.append("The best CPU epoch beats the best GPU epoch at " + ", ".join(losses)
                           + " (ratio = CPU time / GPU time).")
    out += _reshuffle_findings(df)
    ttt = tidy.time_to_target(df)
    if len(ttt):
        reached = ttt[ttt["target_reached"].astype(bool)]
        target = 100 * float(ttt["cfg_target_error"].iloc[0])
        if len(reached):
            best = reached.loc[reached["time_to_target_s"].idxmin()]
            out.append(f"Fastest to {target:.0f} % validation error: **{best['series']} at "
                       f"B = {int(best['batch_size'])}** (lr {best['cfg_learning_rate']}), "
                       f"{_fmt_s(best['time_to_target_s'])} of training (evaluation excluded) "
                       f"and {int(best['steps_to_target'])} steps.")
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
            out.append("Not reached within budget: " + ", ".join(
                f"{r.series} B = {int(r.batch_size)}" for r in missed.itertuples()) + ".")
    return out


def _reshuffle_findings(df: pd.DataFrame, batch_size: int = 600) -> list[str]:
    """What the reshuffle costs on the CPU at ``batch_size``, against the machine's copy floor:
    a gather into a buffer reads the training set and writes a permuted copy of it."""
    if "kind" not in df or "cfg_order" not in df or "floor" not in df:
        return []
    copy = df[(df["kind"] == "floor") & (df["floor"] == "copy_bandwidth")]
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


def _floor_ratios(ep: pd.DataFrame, df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Training time per epoch over the same file's products-only epoch at that B, and over
    its FLOP floor (NaN where the file has no floor measurements)."""
    train = epoch_seconds(ep, evaluation=False)
    floors = df[df["kind"] == "floor"] if "floor" in set(df.get("kind", [])) else None
    mm_ratio = pd.Series(float("nan"), index=ep.index)
    flop_ratio = pd.Series(float("nan"), index=ep.index)
    if floors is None or floors.empty:
        return mm_ratio, flop_ratio
    for i, row in ep.iterrows():
        f = floors[floors["file"] == row["file"]]
        mm = f[(f["floor"] == "matmul_epoch") & (f["batch_size"] == row["batch_size"])]
        if len(mm):
            mm_ratio[i] = train[i] / float(mm["mm_epoch_s"].iloc[0])
        peak = f[f["floor"] == "peak_matmul"]
        if len(peak):
            flop_ratio[i] = train[i] / float(peak["flop_floor_epoch_s"].iloc[0])
    return mm_ratio, flop_ratio


def tables(df: pd.DataFrame) -> dict[str, str]:
    out = {}
    ep = tidy.epochs(df)
    if len(ep):
        t = ep.sort_values(["batch_size", "series"])
        mm_ratio, flop_ratio = _floor_ratios(t, df)
        t = pd.DataFrame({
            "series": t["series"], "B": t["batch_size"].astype(int),
            "order": t.get("cfg_order", pd.Series("shuffle", t.index)),
            "steps": t["steps"].astype(int),
            "time per epoch (s)": t["seconds_per_epoch"].round(5),
            "training ÷ products-only epoch": mm_ratio.round(2),
            "training ÷ FLOP floor": flop_ratio.round(1),
            "compute (s)": t["median_compute_s"].round(5),
            "host→device (s)": t["median_h2d_s"].round(5).astype(object).where(
                t["median_h2d_s"].notna(), "n/a"),
            "data movement (s)": t["median_data_move_s"].round(5),
            "examples/s": t["examples_per_second"].round(0),
            "final valid error (%)": (100 * t["final_valid_error"].astype(float)).round(2),
            "status": t["status"]})
        out["Fixed-budget epochs (medians over rounds)"] = t.to_markdown(index=False)
    st = tidy.steps(df)
    if len(st):
        t = st.sort_values(["batch_size", "series"])
        out["One optimizer step"] = pd.DataFrame({
            "series": t["series"], "B": t["batch_size"].astype(int),
            "time per step (µs)": (1e6 * t["seconds_per_step"]).round(1)}).to_markdown(
                index=False)
    ttt = tidy.time_to_target(df)
    if len(ttt):
        t = ttt.sort_values(["batch_size", "series"])
        out["Time to target"] = pd.DataFrame({
            "series": t["series"], "B": t["batch_size"].astype(int),
            "lr": t["cfg_learning_rate"], "reached": t["target_reached"],
            "training time to target (s)": t["time_to_target_s"].astype(float).round(3),
            "steps to target": t["steps_to_target"],
            "best valid error (%)": (100 * t["best_valid_error"].astype(float)).round(2),
            "epochs run": t["epochs"]}).to_markdown(index=False)
    if "kind" in df and "floor" in set(df["kind"]):
        f = df[df["kind"] == "floor"]
        rows = []
        for file, g in f.groupby("file", sort=False):
            def pick(name, col, g=g):
                sel = g[g["floor"] == name]
                return float(sel[col].iloc[0]) if len(sel) else float("nan")
            rows.append({"result file": Path(str(file)).name,
                         "peak float32 matmul (GFLOP/s)": round(pick("peak_matmul",
                                                                     "gflop_per_s"), 1),
                         "read (GB/s)": round(pick("read_bandwidth", "gb_per_s"), 2),
                         "copy, read + write (GB/s)": round(pick("copy_bandwidth", "gb_per_s"),
                                                           2),
                         "FLOP floor of an epoch (ms)": round(
                             1e3 * pick("peak_matmul", "flop_floor_epoch_s"), 2),
                         "bandwidth floor of an epoch (ms)": round(
                             1e3 * pick("read_bandwidth", "bandwidth_floor_epoch_s"), 2)})
        out["The machine's floors (measured by the suite, NumPy float32)"] = pd.DataFrame(
            rows).to_markdown(index=False)
        mm = f[f["floor"] == "matmul_epoch"].sort_values("batch_size")
        if len(mm):
            out["Matrix-products-only epoch (forward + weight gradient, in order)"] = \
                pd.DataFrame({"B": mm["batch_size"].astype(int),
                              "time (s)": mm["mm_epoch_s"].round(5),
                              "GFLOP/s": mm["gflop_per_s"].round(1)}).to_markdown(index=False)
    if "kind" in df and "peer" in set(df["kind"]):
        p = df[df["kind"] == "peer"].sort_values(["peer", "batch_size"])
        out["Peers (what users would pick instead; one epoch)"] = pd.DataFrame({
            "peer": p["peer"], "B": p["batch_size"].astype(int),
            "time per epoch (s)": p["seconds_per_epoch"].round(4),
            "valid error (%)": (100 * p["final_valid_error"].astype(float)).round(2),
            "note": p.get("note", pd.Series("", p.index)).fillna("")}).to_markdown(index=False)
    targets = [evaluate(g).assign(file=Path(str(file)).name)
               for file, g in df.groupby("file", sort=False)] if "file" in df else []
    targets = [t for t in targets if len(t)]
    if targets:
        t = pd.concat(targets, ignore_index=True)
        out["Performance targets (ratios measured in one run)"] = pd.DataFrame({
            "result file": t["file"].str.slice(0, 13), "target": t["target"],
            "subject": t["subject"],
            "measured (s)": t["measured_s"].round(4), "reference (s)": t["reference_s"].round(4),
            "ratio": t["ratio"].round(2), "limit": t["limit"],
            "holds": t["holds"].map({True: "yes", False: "**no**"}),
            "timed": t["paired"].map({True: "paired rounds", False: "separate benchmarks"}),
        }).to_markdown(index=False)
    tr = tidy.transfers(df)
    if len(tr):
        t = tr.sort_values(["copy", "rows", "series"])
        out["Transfers (device events)"] = pd.DataFrame({
            "series": t["series"], "copy": t["copy"], "rows": t["rows"].astype(int),
            "MB": (t["bytes"] / 1e6).round(3), "time (µs)": (1e6 * t["event_median_s"]).round(1),
            "GB/s": t["gb_per_s"].round(2)}).to_markdown(index=False)
    return out


def comparison_table(new: pd.DataFrame, old: pd.DataFrame) -> str | None:
    """Ratios old / new of the median benchmark time, for benchmarks present in both."""
    if new.empty or old.empty:
        return None
    # compare like with like: only results of the baseline's machine(s)
    key = ["machine_cpu", "machine_gpu"]
    machines = {tuple(r) for r in old[key].astype(str).itertuples(index=False)}
    new = new[[tuple(r) in machines for r in new[key].astype(str).itertuples(index=False)]]
    if new.empty:
        return None
    a = new.groupby("name")["stat_median"].median()
    b = old.groupby("name")["stat_median"].median()
    both = a.index.intersection(b.index)
    if both.empty:
        return None
    t = pd.DataFrame({"benchmark": both, "baseline median (s)": b[both].round(6).to_numpy(),
                      "this run median (s)": a[both].round(6).to_numpy(),
                      "speed-up (baseline / this)": (b[both] / a[both]).round(2).to_numpy()})
    return t.to_markdown(index=False)


def render(df: pd.DataFrame, figures: list[tuple[str, str | None]], command: str,
           files: list[str], compare: pd.DataFrame | None = None) -> str:
    """The whole report. ``figures``: (title, relative path or None when not drawable)."""
    lines = ["# gdbench report", "",
             f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `{command}` from "
             + ", ".join(f"`{f}`" for f in files) + ".", "",
             "Softmax regression on MNIST (50,000 train / 10,000 validation), mean NLL, "
             "trained by minibatch SGD; B = 1 is per-sample SGD, B = 50,000 full-batch GD. "
             "All times are medians over the benchmark's rounds, warm-up excluded.", "",
             "## Machine and software", "", machine_table(df), "", "## Findings", ""]
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
    lines += ["## Tables", ""]
    for title, table in tables(df).items():
        lines += [f"### {title}", "", table, ""]
    if compare is not None:
        table = comparison_table(df, compare)
        lines += ["## Comparison with the baseline run", "",
                  table or "No benchmark appears in both result sets.", ""]
    return "\n".join(lines) + "\n"
