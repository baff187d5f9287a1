"""From the results DataFrame to the views the figures and tables use (no plotting here)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.results import epoch_seconds

__all__ = ["HUE", "STYLE", "epochs", "label", "machine", "steps", "time_to_target",
           "transfers"]

# column names, shown as legend titles
HUE = "backend-device"
STYLE = "placement / kernel / machine"


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
    same way for every file (``bench.results.epoch_seconds``)."""
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
