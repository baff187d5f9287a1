"""Read pytest-benchmark result files into one tidy pandas DataFrame.

One row per benchmark run; columns: the file and its context (datetime, commit, machine),
the benchmark's name, group and timing statistics (``stat_*``, seconds), and every
``extra_info`` field (per-epoch curves stay as lists). Malformed or foreign JSON files are
skipped with a warning naming the file.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from bench.record import per_epoch_seconds

__all__ = ["epoch_seconds", "find_result_files", "load_results", "newest_result_file",
           "rows_from_benchmarks"]

_STATS = ("min", "max", "mean", "stddev", "median", "iqr", "rounds", "iterations", "ops")


def find_result_files(folder: str | os.PathLike = "results") -> list[Path]:
    """Every pytest-benchmark JSON file under ``folder`` (its storage layout is
    ``<machine-id>/<counter>_<commit>_<date>.json``), oldest first by modification time."""
    folder = Path(folder)
    return sorted(folder.rglob("*.json"), key=lambda p: (p.stat().st_mtime, p.name))


def newest_result_file(folder: str | os.PathLike = "results") -> Path | None:
    """The newest result file under ``folder`` by its saved datetime, or None."""
    best, best_dt = None, ""
    for path in find_result_files(folder):
        doc = _read(path, warn=False)
        if doc is not None and str(doc.get("datetime", "")) >= best_dt:
            best, best_dt = path, str(doc.get("datetime", ""))
    return best


def _read(path: Path, warn: bool = True) -> dict[str, Any] | None:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        if warn:
            warnings.warn(f"{path}: skipped, not readable JSON ({exc}).", stacklevel=3)
        return None
    if not (isinstance(doc, dict) and isinstance(doc.get("benchmarks"), list)
            and isinstance(doc.get("machine_info"), dict)):
        if warn:
            warnings.warn(f"{path}: skipped, not a pytest-benchmark result file (no "
                          "'benchmarks' list or 'machine_info').", stacklevel=3)
        return None
    return doc


def _machine_columns(machine_info: dict[str, Any]) -> dict[str, Any]:
    g = machine_info.get("gdbench") or {}
    cpu = machine_info.get("cpu") or {}
    return {
        "machine_node": machine_info.get("node"),
        "machine_cpu": g.get("cpu_model") or cpu.get("brand_raw"),
        "machine_cpu_count": g.get("cpu_count") or cpu.get("count"),
        "machine_gpu": g.get("gpu_name"),
        "machine_profile": machine_info.get("gdbench_profile"),
        "machine_python": machine_info.get("python_version"),
        "machine_numpy": g.get("numpy"),
        "machine_torch": g.get("torch"),
        "machine_cupy": g.get("cupy"),
    }


def load_results(paths: Iterable[str | os.PathLike] | str | os.PathLike) -> pd.DataFrame:
    """One row per benchmark from result files, or every file under a folder."""
    if isinstance(paths, (str, os.PathLike)):
        p = Path(paths)
        paths = find_result_files(p) if p.is_dir() else [p]
    rows = []
    for path in paths:
        doc = _read(Path(path))
        if doc is None:
            continue
        commit = (doc.get("commit_info") or {}).get("id")
        if commit in (None, "unknown"):  # e.g. a copy without git metadata (GDBENCH_COMMIT)
            commit = (doc["machine_info"].get("gdbench") or {}).get("commit") or commit
        context = {"file": str(path), "datetime": doc.get("datetime"), "commit": commit,
                   **_machine_columns(doc["machine_info"])}
        rows += _rows(doc["benchmarks"], context, str(path))
    return pd.DataFrame(rows)


def _rows(benchmarks: list, context: dict[str, Any], where: str) -> list[dict[str, Any]]:
    rows = []
    for bench in benchmarks:
        if not isinstance(bench, dict) or "stats" not in bench:
            warnings.warn(f"{where}: a benchmark entry without 'stats' was skipped.",
                          stacklevel=3)
            continue
        row = dict(context)
        row.update(name=bench.get("name"), fullname=bench.get("fullname"),
                   group=bench.get("group"))
        stats = bench.get("stats") or {}
        row.update({f"stat_{k}": stats.get(k) for k in _STATS})
        row.update(bench.get("extra_info") or {})
        rows.append(row)
    return rows


def rows_from_benchmarks(benchmarks: list[dict[str, Any]]) -> pd.DataFrame:
    """The same tidy rows from benchmark dicts of a live session (no file)."""
    return pd.DataFrame(_rows(benchmarks, {"file": "(this session)"}, "this session"))


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
