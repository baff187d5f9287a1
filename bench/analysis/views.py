"""From the benchmark results DataFrame to the views the figures and tables use: series labels,
machines, per-kind rows with derived per-epoch and per-step seconds (no plotting here)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis.names import missing
from bench.record import per_epoch_seconds

__all__ = ["HUE", "STYLE", "budget", "epoch_seconds", "epoch_view", "epochs", "floor_ratios",
           "gpu_floor", "gpu_floor_ratios", "label", "machine", "steps", "time_to_target",
           "train_seconds", "transfers"]

# column names, shown as legend titles
HUE = "backend-device"
STYLE = "placement / kernel / machine"



def epoch_seconds(rows: pd.DataFrame, evaluation: bool = True) -> pd.Series:
    """Seconds per epoch of epoch-benchmark rows (medians over rounds).

    Per-step parts scale with the share of the epoch's steps that ran (a step budget may cut
    an epoch short); the epoch's data movement (the reshuffle gather) happens once per epoch.
    ``evaluation=False`` leaves out the validation scoring: the training time per epoch.
    """
    def col(name: str) -> pd.Series:
        return rows[name].astype(float).fillna(0.0) if name in rows else 0.0

    per_step = col("median_compute_s") + col("median_h2d_s") + col("median_d2h_s")
    once = col("median_data_move_s")
    if evaluation:
        once = once + col("median_eval_s") + col("median_other_s")
    fraction = rows["steps"].astype(float) / rows["batches_per_epoch"].astype(float)
    return per_epoch_seconds(per_step, once, fraction, rows["epochs"].astype(float))

def label(df: pd.DataFrame) -> pd.Series:
    """'backend-device' plus the placement on a GPU: the series name used in every figure."""
    where = df["device"].astype(str)
    lab = df["backend"].astype(str) + "-" + where
    gpu = where != "cpu"
    if "placement" in df:
        pinned = df.get("pinned", pd.Series(False, index=df.index)).fillna(False).astype(bool)
        lab = lab.where(~gpu, lab + " " + df["placement"].fillna("resident").astype(str)
                        + np.where(pinned, "+pinned", ""))
    if "gather" in df:  # the default, one gather per epoch, unmarked
        gather = df["gather"].fillna("epoch").astype(str)
        lab = lab.where(gather == "epoch", lab + " " + gather + "-gather")
    if "kernel" in df:
        kernel = df["kernel"].fillna("eager").astype(str)
        lab = lab.where(kernel == "eager", lab + " " + kernel)
    if "model" in df:  # softmax regression unmarked; any other model named
        model = df["model"].fillna("softmax").astype(str)
        lab = lab.where(model == "softmax", lab + " " + model)
    if "machine_gpu" in df and df["machine_gpu"].notna().any():
        # results from several machines: keep them apart
        machine = df["machine_gpu"].fillna(df.get("machine_cpu", "cpu")).astype(str)
        if machine.nunique() > 1:
            lab = lab + " @" + machine.str.replace("NVIDIA ", "", regex=False)
    return lab


def machine(df: pd.DataFrame) -> pd.Series:
    """A short machine name per row: the GPU where there is one, else the CPU model."""
    gpu = df["machine_gpu"] if "machine_gpu" in df else pd.Series(None, df.index, dtype=object)
    cpu = df["machine_cpu"] if "machine_cpu" in df else pd.Series("CPU", df.index)
    count = df["machine_cpu_count"] if "machine_cpu_count" in df else pd.Series(None, df.index)
    cpu_name = cpu.astype(str) + count.map(lambda c: f" ({int(c)} CPUs)"
                                           if pd.notna(c) else "")
    return gpu.where(gpu.notna() & (gpu.astype(str) != ""), cpu_name).astype(str).str.replace(
        "NVIDIA ", "", regex=False)


def _kind(df: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Rows of one benchmark kind, with ``series`` (the full label), ``HUE`` (backend-device:
    one colour each) and ``STYLE`` (the rest of the label: placement, kernel, machine)."""
    if "kind" not in df:
        return df.iloc[0:0]
    out = df[df["kind"] == kind].copy()
    if len(out):
        out["series"] = label(out)
        out[HUE] = out["backend"].astype(str) + "-" + out["device"].astype(str)
        out[STYLE] = [s[len(h):].strip() or "—"
                      for s, h in zip(out["series"], out[HUE], strict=True)]
        out["machine"] = machine(out)
    return out


def epochs(df: pd.DataFrame) -> pd.DataFrame:
    """Fixed-budget epoch runs, one row per benchmark, with ``seconds_per_epoch`` derived the
    same way for every file (``bench.analysis.views.epoch_seconds``)."""
    out = _kind(df, "epoch")
    if len(out) and {"steps", "batches_per_epoch", "epochs"} <= set(out):
        out["seconds_per_epoch"] = epoch_seconds(out)
    return out


def steps(df: pd.DataFrame) -> pd.DataFrame:
    """Single-step micro-benchmarks; ``seconds_per_step`` is pytest-benchmark's median."""
    out = _kind(df, "step")
    if len(out):
        out["seconds_per_step"] = out["stat_median"]
    return out


def time_to_target(df: pd.DataFrame) -> pd.DataFrame:
    return _kind(df, "time_to_target")


def transfers(df: pd.DataFrame) -> pd.DataFrame:
    return _kind(df, "transfer")


def epoch_view(df: pd.DataFrame) -> pd.DataFrame:
    """Epoch rows with per-epoch times in seconds (all from the same per-step / per-epoch
    split): ``train_s`` (evaluation excluded), ``compute_epoch_s``, ``h2d_epoch_s``,
    ``move_epoch_s``; ``iqr_epoch_s`` (the rounds' IQR scaled), ``noisy``, ``order``,
    ``examples_per_s`` (training) and ``budget`` (text)."""
    ep = epochs(df)
    if ep.empty:
        return ep
    ep = ep.copy()
    ep["order"] = ep.get("cfg_order", pd.Series("shuffle", ep.index)).fillna("shuffle")
    ep["train_s"] = epoch_seconds(ep, evaluation=False)
    fraction = ep["steps"].astype(float) / ep["batches_per_epoch"].astype(float)
    n_epochs = ep["epochs"].astype(float)

    def per_epoch(col: str, once: bool = False) -> pd.Series:
        v = ep[col].astype(float) if col in ep else pd.Series(np.nan, ep.index)
        return per_epoch_seconds(0.0, v, fraction, n_epochs) if once else \
            per_epoch_seconds(v, 0.0, fraction, n_epochs)

    ep["compute_epoch_s"] = per_epoch("median_compute_s")
    ep["h2d_epoch_s"] = per_epoch("median_h2d_s")
    ep["move_epoch_s"] = per_epoch("median_data_move_s", once=True)
    rel = ep["rel_iqr"] if "rel_iqr" in ep else pd.Series(np.nan, ep.index)
    ep["iqr_epoch_s"] = ep["seconds_per_epoch"] * rel.astype(float)
    ep["noisy"] = ep.get("noisy", pd.Series(False, ep.index)).fillna(False).astype(bool)
    n = ep["n_train"].astype(float) if "n_train" in ep else \
        ep["batches_per_epoch"].astype(float) * ep["batch_size"].astype(float)
    ep["examples_per_s"] = n / ep["train_s"]
    ep["budget"] = [budget(r) for _, r in ep.iterrows()]
    return ep


def budget(row: pd.Series) -> str:
    """A run's budget per round: ``2 epochs`` or ``1 epoch, ≤ 5000 steps``."""
    epochs = row.get("cfg_max_epochs")
    steps = row.get("cfg_max_steps")
    n = int(epochs) if not missing(epochs) else int(row["epochs"])
    text = f"{n} epoch{'s' if n != 1 else ''}"
    if not missing(steps):
        text += f", ≤ {int(steps)} steps"
    return text


def train_seconds(ep: pd.DataFrame) -> pd.Series:
    """Training seconds per epoch of epoch rows, evaluation excluded."""
    return epoch_seconds(ep, evaluation=False)


def floor_ratios(ep: pd.DataFrame, df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Training time per epoch over the same file's products-only epoch at that B, and over
    its FLOP floor, each measured on the row's own device (NaN where the file has no such
    floor)."""
    train = train_seconds(ep)
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


def gpu_floor(df: pd.DataFrame, file: object, floor: str, col: str) -> float:
    """A GPU floor's value from one result file (NaN where it was not measured)."""
    if "floor" not in df or col not in df:
        return float("nan")
    sel = df[(df["kind"] == "floor") & (df["device"] == "cuda") & (df["file"] == file)
             & (df["floor"] == floor)]
    sel = sel[sel[col].notna()]
    return float(sel[col].iloc[0]) if len(sel) else float("nan")


def gpu_floor_ratios(ep: pd.DataFrame, df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """For CUDA epoch rows: training time per epoch over the same file's read floor (one read
    of the training set, ``read_floor_epoch_s``), and training time per step over its
    CUDA-graph replay latency (NaN for other rows, and where the file lacks the floor)."""
    train = train_seconds(ep)
    per_step = train / ep["batches_per_epoch"].astype(float)
    read = pd.Series(float("nan"), index=ep.index)
    replay = pd.Series(float("nan"), index=ep.index)
    for i, row in ep[ep["device"] == "cuda"].iterrows():
        read[i] = train[i] / gpu_floor(df, row["file"], "read_bandwidth", "read_floor_epoch_s")
        replay[i] = per_step[i] / gpu_floor(df, row["file"], "launch_graph", "event_best_s")
    return read, replay
