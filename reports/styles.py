"""How a series looks in every figure: one colour per backend-device, a line style per placement
and kernel, a marker per backend (and per model), never two series alike."""

from __future__ import annotations

import pandas as pd
import seaborn as sns

__all__ = ["palette", "series_styles"]


def palette(df: pd.DataFrame) -> dict[str, tuple]:
    """One colour per backend-device, the same in every figure (line styles tell placements
    and kernels apart)."""
    names = sorted(set(df["backend"].dropna().astype(str) + "-" + df["device"].dropna()
                       .astype(str))) if {"backend", "device"} <= set(df) else []
    return dict(zip(names, sns.color_palette("tab10", max(len(names), 1)), strict=False))


#: Markers tried in turn when two series of one colour would otherwise look the same.
SPARE_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">")


def series_styles(lines: list[str], colors: dict[str, tuple]) -> dict[str, dict]:
    """Colour by backend-device; line style by placement and kernel, the same in every figure:
    solid = resident (or CPU), dashed = a fast kernel or a batch gather, dotted = streamed,
    dash-dot = streamed from pinned memory; marker by backend, and a model other than softmax
    regression a marker of its own. No two series get the same colour, line style and marker:
    a clash takes the next spare marker."""
    styles: dict[str, dict] = {}
    taken: set[tuple] = set()
    for line in lines:
        head = line.split(" ")[0]
        rest = line[len(head):].strip()
        ls = "-." if "pinned" in rest else ":" if "streamed" in rest else \
            "--" if rest not in ("", "resident") else "-"
        backend = head.split("-")[0]
        marker = {"numpy": "o", "torch": "s", "cupy": "^", "numba": "D"}.get(backend, "v")
        if "mlp" in rest.split():   # another model: its own marker and a dense dotted line
            marker = "P"
            ls = ls if "streamed" in rest else (0, (1, 1))
        color = colors.get(head, "k")
        spare = iter(SPARE_MARKERS)
        while (color, str(ls), marker) in taken:
            marker = next(spare)
        taken.add((color, str(ls), marker))
        styles[line] = {"color": color, "ls": ls, "marker": marker}
    return styles
