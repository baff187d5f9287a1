"""The study page's noise-scale table: per trajectory and quantity, the value at first passage,
its ratio to the fitted B_crit and whether it lies within the fit's interval
(``bench.analysis.noise.noise_table``; every number from there)."""

from __future__ import annotations

import math

import pandas as pd

from bench.analysis.noise import noise_table

__all__ = ["lines"]


def _num(v: float) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:,.0f}"


def lines(study_df: pd.DataFrame) -> list[str]:
    """Markdown lines: per study with noise records, the fitted B_crit and the table (empty
    without noise records)."""
    table = noise_table(study_df)
    out: list[str] = []
    for study, t in table.groupby("study") if not table.empty else ():
        first = t.iloc[0]
        interval = (f" (95 % interval {_num(first['b_crit_low'])}–{_num(first['b_crit_high'])})"
                    if math.isfinite(first["b_crit_low"]) else
                    " (no interval: a study before held-out seeds)")
        out += [f"Noise scales at first passage (the first checkpoint at or below the target) "
                f"along each trajectory, exact over the training set, against the fitted "
                f"B_crit = {_num(first['b_crit'])}{interval}. Each trajectory and quantity is "
                f"its own row: none is chosen as the agreement.", ""]
        if not t[t["quantity"] == "B_noise"]["measured"].any():
            out += [f"B_noise not measured in this study (`{study}` has B_simple only, along "
                    f"the search's best runs).", ""]
            t = t[t["quantity"] != "B_noise"]
        shown = pd.DataFrame({
            "trajectory": t["trajectory"],
            "why": t["rule"],
            "quantity": t["quantity"],
            "first passage: step (valid error)": [
                f"{int(r.step):,} ({r.valid_error:.2%})" if pd.notna(r.step) else "not reached"
                for r in t.itertuples()],
            "value (examples)": t["value"].map(_num),
            "value / B_crit": t["ratio"].map(lambda v: f"{v:.2f}" if math.isfinite(v) else "—"),
            "within B_crit's interval": t["within"].map(
                lambda v: "—" if v is None or pd.isna(v) else ("yes" if v else "no")),
        })
        out += [shown.to_markdown(index=False), ""]
    return out
