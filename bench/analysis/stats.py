"""Whether two runs of one benchmark differ by more than their noise, and the speed-ups of a
run over a baseline (asv's rules)."""

from __future__ import annotations

import pandas as pd
from scipy.stats import mannwhitneyu

from bench.analysis.names import missing

__all__ = ["beyond_noise", "comparison"]


def beyond_noise(new: pd.Series, old: pd.Series) -> str:
    """Whether two runs of one benchmark differ by more than their noise.

    With per-round times in both files (saved with ``--benchmark-save-data``) and at least 5
    rounds each, a two-sided Mann–Whitney U test at 5 % (asv's test); otherwise asv's
    fallback: the runs differ only if their interquartile ranges do not overlap.
    """
    a, b = new.get("stat_data"), old.get("stat_data")
    if isinstance(a, list) and isinstance(b, list) and min(len(a), len(b)) >= 5:
        p = float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
        return f"{'yes' if p < 0.05 else 'no'} (Mann–Whitney p = {p:.2g})"

    def quartiles(r: pd.Series) -> tuple[float, float]:
        q1, q3 = r.get("stat_q1"), r.get("stat_q3")
        if missing(q1) or missing(q3):
            med, iqr = float(r["stat_median"]), r.get("stat_iqr")
            half = 0.0 if missing(iqr) else float(iqr) / 2
            return med - half, med + half
        return float(q1), float(q3)

    (a1, a3), (b1, b3) = quartiles(new), quartiles(old)
    return "yes (IQRs apart)" if a3 < b1 or b3 < a1 else "no (IQRs overlap)"


def comparison(new: pd.DataFrame, old: pd.DataFrame) -> pd.DataFrame | None:
    """Per benchmark present in both (of the baseline's machines): both medians (s), the
    speed-up old / new and whether the difference is larger than the noise
    (``beyond_noise``); None when no benchmark is in both."""
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
    return pd.DataFrame(rows)
