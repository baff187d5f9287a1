"""How the report writes a cell or a number: the spellings of missing values, milliseconds,
ratios, result files and commits, and markdown tables (no computation here)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis.names import MISSING, missing

__all__ = ["NA", "NOISY", "NOT_MEASURED", "NOT_REACHED", "cells", "file_name", "md", "ms",
           "noise_cells", "ratio", "row_ref", "short_commit", "target_ms", "wrap"]

NA = "n/a"
NOT_REACHED = "not reached"
NOT_MEASURED = MISSING
NOISY = "**noisy**"

EPOCH_TABLE = "Fixed-budget epochs"
TTT_TABLE = "Time to target"
TRANSFER_TABLE = "Transfers (device events)"


def ms(x: float | None, digits: int = 2) -> str:
    return NOT_MEASURED if missing(x) else f"{1e3 * float(x):.{digits}f}"


def target_ms(x: float | None) -> str:
    """Milliseconds of a target's row: 2 decimals, 3 below 0.1 ms (a GPU floor)."""
    return ms(x, 3 if not missing(x) and abs(float(x)) < 1e-4 else 2)


def ratio(x: float) -> str:
    """A ratio: one decimal below 100, whole numbers with thousands separators above."""
    return f"{x:.1f}" if abs(x) < 100 else f"{x:,.0f}"


def md(frame: pd.DataFrame) -> str:
    """A markdown table of cells as formatted here (tabulate would re-parse '0.00' as 0)."""
    return frame.to_markdown(index=False, disable_numparse=True)


def file_name(f: object) -> str:
    return Path(str(f)).name


def short_commit(c: object) -> str:
    return "unknown" if missing(c) or not c else str(c)[:10]


def row_ref(table: str, r: pd.Series) -> str:
    order = r.get("order")
    order = f", {order}" if isinstance(order, str) and order != "shuffle" else ""
    return f"[{table}: {r['series']}, B = {int(r['batch_size'])}{order}]"


def cells(values: pd.Series, fmt, na_mask: pd.Series | None = None) -> list[str]:
    out = []
    for i, v in values.items():
        if na_mask is not None and bool(na_mask.get(i)):
            out.append(NA)
        else:
            out.append(NOT_MEASURED if missing(v) else fmt(v))
    return out


def noise_cells(t: pd.DataFrame) -> list[str]:
    rel = t["rel_iqr"] if "rel_iqr" in t else pd.Series(np.nan, t.index)
    return [NOT_MEASURED if missing(r) else (f"{NOISY} ({100 * r:.0f} %)" if n
                                                else f"{100 * r:.0f} %")
            for r, n in zip(rel, t["noisy"].fillna(False), strict=True)]


def wrap(text: str, width: int = 100) -> str:
    """Markdown with its prose lines (paragraphs, bullets) wrapped at ``width`` characters;
    tables, headings and images untouched. A line break inside a paragraph renders as a space."""
    out = []
    for line in text.split("\n"):
        if len(line) <= width or line.startswith(("|", "![", "#")):
            out.append(line)
            continue
        indent = "  " if line.startswith("- ") else ""
        out += textwrap.wrap(line, width, subsequent_indent=indent, break_long_words=False,
                             break_on_hyphens=False)
    return "\n".join(out)
