"""The performance targets, evaluated from one run's results (ratios measured side by side).

Every target compares two numbers from the same result file; "epoch time" is the training
time per epoch (compute, data movement, transfers, read-backs; evaluation excluded). The
matrix-products target compares in-order epochs with the in-order products-only epoch; the
cost of reshuffling is its own target.

Side by side, literally: a shared machine's speed drifts 1.5-3x within minutes, so a ratio of
two benchmarks run minutes apart measures mostly the drift (the DataLoader ratio read 8.2 and
4.7 in two runs of the same code). The epoch benchmarks a target judges against another epoch
(``side_reference``) therefore also time that reference in the untimed set-up right before
each round, and the target's ratio is the median of the per-round ratios (``paired``). Result
files without those timings fall back to the separate benchmarks.

A target whose subject (or, for separate benchmarks, whose reference) is too noisy to read
(``bench.results.NOISY_REL_IQR``) is marked ``noisy``: its ratio is shown but no verdict. So is
an epoch measured faster than its own floor (the products-only epoch or the FLOP floor: a ratio
below 1 there means the floor's measurement was disturbed, not that the epoch beat it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.results import epoch_seconds

__all__ = ["TARGETS", "evaluate", "paired_ratio", "side_reference", "verdict"]

#: name -> (limit, direction): the ratio must be <= limit ("le") or >= limit ("ge").
T_MATMUL = "epoch <= 1.5x matrix-products-only epoch (B >= 600, full GD)"
T_SKLEARN = "NumPy per-sample SGD epoch <= scikit-learn SGDClassifier epoch"
T_DATALOADER = "PyTorch-CPU B=20 >= 5x faster than the idiomatic DataLoader loop"
T_NUMBA = "Numba per-sample SGD epoch <= 20x the FLOP floor"
T_SHUFFLE = "reshuffling costs <= 25 % over the in-order sweep (B=600)"
T_MLP_MATMUL = "MLP epoch <= 1.5x its matrix-products-only epoch (B >= 100)"
TARGETS = {T_MATMUL: (1.5, "le"), T_SKLEARN: (1.0, "le"), T_DATALOADER: (5.0, "ge"),
           T_NUMBA: (20.0, "le"), T_SHUFFLE: (1.25, "le"), T_MLP_MATMUL: (1.5, "le")}


def side_reference(backend: str, device: str, batch_size: int, order: str,
                   model: str = "softmax") -> str | None:
    """The reference an epoch benchmark times next to each round: ``"products"`` (the
    matrix-products-only epoch), ``"in-order"`` (the same epoch unshuffled), a peer's epoch
    (``"sklearn"``, ``"dataloader"``, see ``bench.peers``), or None."""
    if device != "cpu":
        return None
    if model == "mlp":
        return ("products" if order == "in-order" and backend in ("numpy", "torch")
                and batch_size >= 100 else None)
    if model != "softmax":
        return None
    if order == "in-order":
        return "products" if backend in ("numpy", "torch") and batch_size >= 600 else None
    if batch_size == 600:
        return "in-order"
    if (backend, batch_size) == ("numpy", 1):
        return "sklearn"
    if (backend, batch_size) == ("torch", 20):
        return "dataloader"
    return None


def paired_ratio(measured: list[float], reference: list[float]) -> float:
    """Median of the per-round ratios measured / reference."""
    if len(measured) != len(reference) or not measured:
        raise ValueError(f"paired_ratio needs one reference per round: {len(measured)} "
                         f"measured, {len(reference)} reference timings.")
    return float(np.median(np.asarray(measured) / np.asarray(reference)))


def evaluate(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (target, subject): measured and reference seconds, ratio, limit, holds,
    and whether the ratio is ``paired`` (per-round references) or from separate benchmarks."""
    cols = ["target", "subject", "measured_s", "reference_s", "ratio", "limit", "holds",
            "paired", "noisy"]
    if df.empty or not {"kind", "device", "backend", "batch_size"} <= set(df):
        return pd.DataFrame(columns=cols)
    rows = []

    def add(target, subject, measured, reference, ratio=None, paired=False, noisy=()):
        limit, direction = TARGETS[target]
        ratio = measured / reference if ratio is None else ratio
        holds = ratio <= limit if direction == "le" else ratio >= limit
        below_floor = target in (T_MATMUL, T_NUMBA) and ratio < 1.0
        rows.append([target, subject, measured, reference, ratio, limit, bool(holds), paired,
                     below_floor or any(_noisy(x) for x in noisy)])

    def side(row, kind):
        """(reference seconds, paired ratio) timed next to this benchmark's rounds, or None."""
        if row.get("side_reference") != kind or pd.isna(row.get("side_ratio")):
            return None
        return float(row["side_reference_s"]), float(row["side_ratio"])

    ep = df[(df["kind"] == "epoch") & (df["device"] == "cpu")].copy()
    if len(ep):
        ep["train_epoch_s"] = epoch_seconds(ep, evaluation=False)
        order = ep["cfg_order"] if "cfg_order" in ep else pd.Series("shuffle", ep.index)
        ep["order"] = order.fillna("shuffle")
    model = (ep["model"].fillna("softmax") if "model" in ep
             else pd.Series("softmax", ep.index, dtype=object))
    mlp, ep = ep[model == "mlp"], ep[model == "softmax"]
    for _, r in mlp[mlp["order"] == "in-order"].iterrows() if len(mlp) else []:
        paired = side(r, "products")
        if paired:
            add(T_MLP_MATMUL, f"{r['backend']}-cpu mlp B={int(r['batch_size'])}",
                r["train_epoch_s"], paired[0], paired[1], paired=True)
    floors = df[df["kind"] == "floor"] if "floor" in set(df["kind"]) else df.iloc[0:0]
    peers = df[df["kind"] == "peer"] if "peer" in set(df["kind"]) else df.iloc[0:0]
    shuffled = ep[ep["order"] == "shuffle"] if len(ep) else ep

    mm = floors[floors.get("floor", pd.Series(dtype=str)) == "matmul_epoch"] if len(floors) \
        else floors
    in_order = ep[ep["order"] == "in-order"] if len(ep) else ep
    for _, r in in_order[in_order["backend"].isin(["numpy", "torch"])
                         & (in_order["batch_size"] >= 600)].iterrows() if len(ep) else []:
        subject = f"{r['backend']}-cpu B={int(r['batch_size'])}"
        paired = side(r, "products")
        ref = mm[mm["batch_size"] == r["batch_size"]] if len(mm) else mm
        if paired:
            add(T_MATMUL, subject, r["train_epoch_s"], paired[0], paired[1], paired=True,
                noisy=[r])
        elif len(ref):
            add(T_MATMUL, subject, r["train_epoch_s"], float(ref["mm_epoch_s"].iloc[0]),
                noisy=[r, ref])

    sk = peers[peers.get("peer", pd.Series(dtype=str)) == "sklearn-sgdclassifier"] \
        if len(peers) else peers
    ours = shuffled[(shuffled["backend"] == "numpy") & (shuffled["batch_size"] == 1)] \
        if len(shuffled) else shuffled
    paired = side(ours.iloc[0], "sklearn") if len(ours) else None
    if paired:
        add(T_SKLEARN, "numpy-cpu B=1 vs sklearn", float(ours["train_epoch_s"].iloc[0]),
            paired[0], paired[1], paired=True, noisy=[ours])
    elif len(sk) and len(ours):
        add(T_SKLEARN, "numpy-cpu B=1 vs sklearn", float(ours["train_epoch_s"].iloc[0]),
            float(sk["seconds_per_epoch"].iloc[0]), noisy=[ours, sk])

    dl = peers[(peers.get("peer", pd.Series(dtype=str)) == "torch-dataloader")
               & (peers.get("batch_size", pd.Series(dtype=float)) == 20)] if len(peers) \
        else peers
    ours = shuffled[(shuffled["backend"] == "torch") & (shuffled["batch_size"] == 20)] \
        if len(shuffled) else shuffled
    paired = side(ours.iloc[0], "dataloader") if len(ours) else None
    if paired:  # "times faster": the reciprocal of the median of ours / theirs (odd rounds)
        add(T_DATALOADER, "torch-cpu B=20 vs DataLoader", float(ours["train_epoch_s"].iloc[0]),
            paired[0], 1.0 / paired[1], paired=True, noisy=[ours])
    elif len(dl) and len(ours):
        m, ref = float(ours["train_epoch_s"].iloc[0]), float(dl["seconds_per_epoch"].iloc[0])
        add(T_DATALOADER, "torch-cpu B=20 vs DataLoader", m, ref, ratio=ref / m,
            noisy=[ours, dl])

    peak = floors[floors.get("floor", pd.Series(dtype=str)) == "peak_matmul"] if len(floors) \
        else floors
    ours = shuffled[(shuffled["backend"] == "numba") & (shuffled["batch_size"] == 1)] \
        if len(shuffled) else shuffled
    if len(peak) and len(ours):
        add(T_NUMBA, "numba-cpu B=1", float(ours["train_epoch_s"].iloc[0]),
            float(peak["flop_floor_epoch_s"].iloc[0]), noisy=[ours, peak])

    if len(ep):
        at600 = ep[ep["batch_size"] == 600]
        gather = (at600["gather"].fillna("epoch") if "gather" in at600
                  else pd.Series("epoch", at600.index, dtype=object))
        for backend, g in at600.groupby("backend"):
            o = g[g["order"] == "in-order"]
            for how in ("epoch", "batch"):  # one gather per epoch, or per minibatch
                s = g[(g["order"] == "shuffle") & (gather[g.index] == how)]
                subject = f"{backend}-cpu B=600" + ("" if how == "epoch" else " batch-gather")
                paired = side(s.iloc[0], "in-order") if len(s) else None
                if paired:
                    add(T_SHUFFLE, subject, float(s["train_epoch_s"].iloc[0]),
                        paired[0], paired[1], paired=True, noisy=[s])
                elif len(s) and len(o):
                    add(T_SHUFFLE, subject, float(s["train_epoch_s"].iloc[0]),
                        float(o["train_epoch_s"].iloc[0]), noisy=[s, o])
    return pd.DataFrame(rows, columns=cols)


def _noisy(rows: pd.Series | pd.DataFrame) -> bool:
    """Whether a row (or the first row of a frame) is flagged too noisy to read."""
    if isinstance(rows, pd.DataFrame):
        rows = rows.iloc[0] if len(rows) else pd.Series(dtype=object)
    value = rows.get("noisy")
    return bool(value) if value is not None and not pd.isna(value) else False


def verdict(row: pd.Series | object) -> str:
    """'holds', 'MISSED', or 'too noisy' (no verdict) for a row of ``evaluate``."""
    if getattr(row, "noisy", False):
        return "too noisy"
    return "holds" if row.holds else "MISSED"
