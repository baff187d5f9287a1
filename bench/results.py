"""The one reader of gdbench's records: benchmark runs (pytest-benchmark JSON) and studies
(JSON Lines of ``bench.store``) into one tidy pandas DataFrame, and which of them a report is
made from.

``load_records(folder)`` gives one row per record of ``bench.record``'s schema, whatever wrote
it, with ``suite`` ('benchmark' or 'study'), ``record`` (its kind) and ``machine_id``
(``bench.machine.machine_id``) on every row. ``load_results`` and ``load_study`` are its two
halves, with the columns the report reads:

- benchmark rows: the file and its context (datetime, commit, ``machine_*``, profile, whether
  the run was complete, the machine load), the benchmark's name, group and timing statistics
  (``stat_*``, seconds), its noise (``rel_iqr``: interquartile range over median; ``noisy``:
  above ``NOISY_REL_IQR``), and every ``extra_info`` field (per-epoch curves stay as lists);
  ``kind`` repeats ``record`` (older files have only ``kind``). Malformed or foreign files,
  dangling links and entries without a usable ``extra_info`` are skipped with a warning.
- study rows: ``study`` (its folder name), ``record`` ('context', 'trial', 'timing', 'skip',
  'direct', 'noise') and the fields of each kind (timing records always have ``device`` and
  ``kernel``: 'cpu' and 'eager' where a study stored before them has none); every row also
  carries ``machine`` (the CPU model and count, or the GPU), ``machine_id``, ``commit`` and
  ``purpose`` (``study_purpose``) from its study's newest context record.

Which runs are complete: files saved since runs were marked carry a top-level ``gdbench`` block
(``bench.pytest_plugin``) with ``complete``; older files carry none, and count as complete only
when every benchmark has gdbench's ``extra_info`` and the file is not a journal
(``partial/``). ``select_runs`` picks, per machine id, the newest complete run;
``select_studies`` keeps the studies a report may answer from (full ones, and timing-only ones
composed with them) and says which it passed over and why.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.machine import machine_id
from bench.record import RECORDS, RENAMED, STATS
from bench.store import RecordStore
from bench.workload.datasets import DEFAULT as DEFAULT_DATASET

__all__ = ["NOISY_REL_IQR", "STUDY_ROOT", "RunInfo", "find_result_files",
           "find_studies", "load_records", "load_results", "load_study", "newest_result_file",
           "purpose_reason", "rows_from_benchmarks", "run_info", "select_runs",
           "select_studies", "study_purpose"]

#: A timed row whose interquartile range exceeds this fraction of its median is too noisy to
#: read: its middle rounds already differ by more than half the median, so a ratio under about
#: 2× against another row may be noise. Quiet runs stay well below it (the committed standard
#: run: 90 % of rows under 0.33); the contended run of issue 11 had 0.93.
NOISY_REL_IQR = 0.5

#: The journal folder of unfinished runs (``bench.pytest_plugin``): never a machine.
PARTIAL = "partial"

#: Where ``bench.study`` stores its studies by default, one folder each.
STUDY_ROOT = Path("results") / "study"

#: The study's record kinds (``bench.record.RECORDS``): the folders of a study.
_STUDY_KINDS = frozenset(k for k, (suite, _) in RECORDS.items() if suite == "study")


def find_result_files(folder: str | os.PathLike = "results") -> list[Path]:
    """Every pytest-benchmark JSON file under ``folder`` (its storage layout is
    ``<machine-id>/<counter>_<commit>_<date>.json``), oldest first by modification time.
    Dangling links are skipped with a warning."""
    folder = Path(folder)
    found = []
    for p in folder.rglob("*.json"):
        if not p.is_file():
            warnings.warn(f"{p}: skipped, a link to a missing file.", stacklevel=2)
            continue
        found.append(p)
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


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


@dataclass(frozen=True)
class RunInfo:
    """What a result file says about its run: profile, commit, and whether it is complete.

    ``complete`` is True, False, or None for an older file that predates the marking and
    otherwise looks whole; ``why`` names what makes it partial. ``machine`` is the machine id
    of its ``machine_info``, ``folder`` the storage folder it was found in.
    """

    path: Path
    machine: str
    folder: str
    datetime: str
    profile: str | None
    commit: str | None
    dirty: bool
    complete: bool | None
    why: tuple[str, ...]
    loaded: bool | None

    @property
    def status(self) -> str:
        """'complete', 'complete (unmarked: saved before runs were marked)' or 'partial: …'."""
        if self.complete:
            return "complete"
        if self.complete is None:
            return "complete (unmarked: saved before runs were marked)"
        return "partial: " + "; ".join(self.why)


def run_info(path: Path, doc: dict[str, Any]) -> RunInfo:
    """The ``RunInfo`` of a result file already read."""
    mi = doc["machine_info"]
    g = doc.get("gdbench") if isinstance(doc.get("gdbench"), dict) else {}
    legacy = mi.get("gdbench") if isinstance(mi.get("gdbench"), dict) else {}
    ci = doc.get("commit_info") or {}
    commit = ci.get("id")
    if commit in (None, "unknown"):  # e.g. a copy without git metadata (GDBENCH_COMMIT)
        commit = g.get("commit") or legacy.get("commit") or None
    if commit is None:  # older copies: only pytest-benchmark's file name kept it
        named = re.match(r"\d{4}_([0-9a-f]{7,40})_", Path(path).name)
        commit = named.group(1) if named else None
    why: list[str] = list(g.get("incomplete_because") or [])
    if PARTIAL in Path(path).parts or doc.get("gdbench_partial"):
        why.append("journal of an unfinished run")
    if "complete" in g:
        complete: bool | None = bool(g["complete"]) and not why
    else:
        no_info = sum(not isinstance(b, dict) or not isinstance(b.get("extra_info"), dict)
                      or not {"record", "kind"} & set(b["extra_info"])
                      for b in doc["benchmarks"])
        if no_info:
            why.append(f"{no_info} benchmarks without gdbench's extra_info (a cut-short or "
                       "foreign run)")
        if not doc["benchmarks"]:
            why.append("no benchmarks")
        complete = None if not why else False
    load = g.get("load_before") or {}
    load_after = g.get("load_after") or {}
    # the load before the run: the one after it counts the run's own threads
    loaded = bool(load.get("loaded")) if load else (
        bool(load_after.get("loaded")) if load_after else None)
    return RunInfo(path=Path(path), machine=_machine_of(mi), folder=Path(path).parent.name,
                   datetime=str(doc.get("datetime", "")),
                   profile=g.get("profile") or mi.get("gdbench_profile"), commit=commit,
                   dirty=bool(ci.get("dirty")), complete=complete, why=tuple(why),
                   loaded=loaded)


def select_runs(folder: str | os.PathLike = "results",
                profile: str | None = None) -> tuple[list[Path], list[str]]:
    """Per machine id (of each file's ``machine_info``, wherever the file lies), the newest
    complete run (of ``profile`` when given).

    Returns the chosen files and one line per file passed over, saying why.
    """
    by_machine: dict[str, list[RunInfo]] = {}
    for path in find_result_files(folder):
        if PARTIAL in path.relative_to(folder).parts:
            continue
        doc = _read(path, warn=False)
        if doc is not None:
            info = run_info(path, doc)
            by_machine.setdefault(info.machine, []).append(info)
    chosen, passed_over = [], []
    for _, runs in sorted(by_machine.items()):
        runs = sorted(runs, key=lambda r: r.datetime, reverse=True)
        pick = next((r for r in runs if r.complete is not False
                     and (profile is None or r.profile == profile)), None)
        for r in runs:
            if pick is not None and r.datetime < pick.datetime:
                break
            if r is not pick:
                reason = (r.status if r.complete is False
                          else f"profile {r.profile}, not {profile}")
                passed_over.append(f"{r.path}: passed over ({reason}).")
        if pick is not None:
            chosen.append(pick.path)
    return chosen, passed_over


def _hardware(machine_info: dict[str, Any]) -> dict[str, Any]:
    """What ``bench.machine.machine_id`` reads, from a result file's ``machine_info`` (older
    files: pytest-benchmark's own ``cpu`` block where gdbench's lacks the CPU)."""
    g = machine_info.get("gdbench") if isinstance(machine_info.get("gdbench"), dict) else {}
    cpu = machine_info.get("cpu") if isinstance(machine_info.get("cpu"), dict) else {}
    return {"cpu_model": g.get("cpu_model") or cpu.get("brand_raw"),
            "cpu_count": g.get("cpu_count") or cpu.get("count"),
            **{k: g.get(k) for k in ("memory_bytes", "gpu_name", "gpu_memory", "gpu_count")}}


def _machine_of(machine_info: dict[str, Any]) -> str:
    return machine_id(_hardware(machine_info))


def _machine_columns(machine_info: dict[str, Any]) -> dict[str, Any]:
    g = machine_info.get("gdbench") or {}
    cpu = machine_info.get("cpu") or {}
    return {
        "machine_id": _machine_of(machine_info),
        "machine_memory_bytes": g.get("memory_bytes"),
        "machine_node": machine_info.get("node"),
        "machine_cpu": g.get("cpu_model") or cpu.get("brand_raw"),
        "machine_cpu_count": g.get("cpu_count") or cpu.get("count"),
        "machine_gpu": g.get("gpu_name"),
        "machine_python": machine_info.get("python_version"),
        "machine_numpy": g.get("numpy"),
        "machine_torch": g.get("torch"),
        "machine_cupy": g.get("cupy"),
    }


def load_results(paths: Iterable[str | os.PathLike] | str | os.PathLike) -> pd.DataFrame:
    """One row per benchmark from result files, or every file under a folder (the benchmark
    half of ``load_records``)."""
    if isinstance(paths, (str, os.PathLike)):
        p = Path(paths)
        paths = find_result_files(p) if p.is_dir() else [p]
    rows = []
    for path in paths:
        doc = _read(Path(path))
        if doc is None:
            continue
        info = run_info(Path(path), doc)
        context = {"file": str(path), "datetime": doc.get("datetime"), "commit": info.commit,
                   "commit_dirty": info.dirty,
                   **_machine_columns(doc["machine_info"]),
                   "machine_profile": info.profile, "run_complete": info.complete,
                   "run_status": info.status, "run_loaded": info.loaded}
        rows += _rows(doc["benchmarks"], context, str(path))
    return _with_noise(pd.DataFrame(rows))


def _with_noise(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``rel_iqr`` (IQR / median of the rounds) and ``noisy`` (above ``NOISY_REL_IQR``)."""
    if df.empty or "stat_median" not in df:
        return df
    med = pd.to_numeric(df["stat_median"], errors="coerce")
    iqr = pd.to_numeric(df["stat_iqr"], errors="coerce")
    rounds = pd.to_numeric(df["stat_rounds"], errors="coerce")
    df["rel_iqr"] = (iqr / med).where((med > 0) & (rounds > 1))
    df["noisy"] = df["rel_iqr"] > NOISY_REL_IQR
    return df


def _rows(benchmarks: list, context: dict[str, Any], where: str) -> list[dict[str, Any]]:
    rows = []
    for bench in benchmarks:
        if not isinstance(bench, dict) or not isinstance(bench.get("stats"), dict):
            warnings.warn(f"{where}: a benchmark entry without 'stats' was skipped.",
                          stacklevel=3)
            continue
        extra = bench.get("extra_info")
        if extra is not None and not isinstance(extra, dict):
            warnings.warn(f"{where}: benchmark {bench.get('name')!r} skipped: its extra_info "
                          f"is a {type(extra).__name__}, not a mapping of fields.", stacklevel=3)
            continue
        row = dict(context)
        row.update(name=bench.get("name"), fullname=bench.get("fullname"),
                   group=bench.get("group"))
        stats = bench.get("stats") or {}
        row.update({f"stat_{k}": stats.get(k) for k in STATS})
        # per-round times: only in files saved with --benchmark-save-data
        row["stat_data"] = stats.get("data") if isinstance(stats.get("data"), list) else None
        row.update(bench.get("extra_info") or {})
        for old, new in RENAMED.items():
            if old in row:
                row.setdefault(new, row.pop(old))
        kind = row.get("record", row.get("kind"))  # files before the one schema: 'kind'
        row.update(suite="benchmark", record=kind, kind=kind)
        row.setdefault("dataset", DEFAULT_DATASET)  # files before the dataset axis: MNIST
        rows.append(row)
    return rows


def rows_from_benchmarks(benchmarks: list[dict[str, Any]]) -> pd.DataFrame:
    """The same tidy rows from benchmark dicts of a live session (no file)."""
    return _with_noise(pd.DataFrame(_rows(benchmarks, {"file": "(this session)"},
                                          "this session")))


# ---------------------------------------------------------------------------------- studies


def find_studies(root: str | os.PathLike = STUDY_ROOT) -> list[Path]:
    """The study folders directly under ``root`` (each holding ``<kind>/<key>.jsonl``
    records), sorted by name."""
    root = Path(root)
    return sorted(p for p in root.glob("*") if p.is_dir() and any(
        (p / kind).is_dir() and any((p / kind).glob("*.jsonl")) for kind in _STUDY_KINDS))


def study_purpose(context: dict[str, Any]) -> str:
    """What a study run is for (its context's ``purpose``): ``full``, ``small``, ``test`` or
    ``timing-only``. Contexts stored before the purpose was recorded: ``timing-only`` when
    they say so, ``small`` when the rates came from a fixed lattice (``StudyConfig.grid``, the
    ``--small`` study) instead of the search, else ``full``."""
    if context.get("purpose"):
        return str(context["purpose"])
    if context.get("timing_only"):
        return "timing-only"
    settings = context.get("study_config")
    settings = json.loads(settings) if isinstance(settings, str) and settings else {}
    return "small" if settings.get("grid") is not None else "full"


def _study_rows(folder: Path) -> list[dict[str, Any]]:
    recs = [{"study": folder.name, **r} for r in RecordStore(folder).records()]
    contexts = sorted((r for r in recs if r["record"] == "context"),
                      key=lambda r: str(r.get("started_utc", "")))
    ctx = contexts[-1] if contexts else {}
    described = ctx.get("machine_json")
    shared = {"suite": "study", "machine": ctx.get("machine_label"),
              "machine_id": ctx.get("machine_id") or (
                  machine_id(json.loads(described)) if described else None),
              "commit": ctx.get("commit"), "purpose": study_purpose(ctx) if ctx else None,
              "dataset": DEFAULT_DATASET}  # studies before the dataset axis trained on MNIST
    for r in recs:
        if r["record"] == "timing":  # stored before timings named their device and kernel
            r.setdefault("device", "cpu")
            r.setdefault("kernel", "eager")
        for k, v in shared.items():
            r.setdefault(k, v)
    return recs


def load_study(root: str | os.PathLike = STUDY_ROOT) -> pd.DataFrame:
    """Every study under ``root`` as one tidy DataFrame (the study half of ``load_records``;
    see the module's docstring). Empty (no columns) when there is no study."""
    return pd.DataFrame([r for folder in find_studies(root) for r in _study_rows(folder)])


def select_studies(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The study rows a report answers from: full studies, and timing-only ones (time per step
    on another machine, composed with a full study's S(B)); smoke (``small``) and test studies
    are passed over. Returns the kept rows and one line per study passed over, saying why."""
    if df.empty or "purpose" not in df:
        return df, []
    keep = df["purpose"].isin(["full", "timing-only"])
    passed = df.loc[~keep, ["study", "purpose"]].drop_duplicates()
    return df[keep], [f"study {r.study}: passed over ({purpose_reason(r.purpose)})."
                      for r in passed.itertuples()]


def purpose_reason(purpose: object) -> str | None:
    """Why a study of this ``purpose`` never answers (None for a full or timing-only one)."""
    if purpose in ("full", "timing-only"):
        return None
    why = {"small": "a --small smoke study (a fixed three-rate lattice, one seed): not tuned",
           "test": "written by a test run"}
    return (why.get(purpose, f"purpose {purpose!r}") if isinstance(purpose, str)
            else "no context record: what it was run for is unknown")


def load_records(*sources: str | os.PathLike) -> pd.DataFrame:
    """Every record under the folders (or in the files) ``sources`` -- benchmark runs and
    studies alike -- as one tidy DataFrame: one row per record, ``suite``, ``record`` and
    ``machine_id`` on every row (see the module's docstring for the rest). A folder's studies
    are its study folders and those of its ``study/`` (the layout of ``results/``)."""
    files: list[Path] = []
    studies: list[Path] = []
    for source in sources or ("results",):
        p = Path(source)
        if p.is_dir():
            files += find_result_files(p)
            studies += find_studies(p) + find_studies(p / STUDY_ROOT.name)
        else:
            files.append(p)
    frames = [load_results(files) if files else pd.DataFrame(),
              pd.DataFrame([r for folder in studies for r in _study_rows(folder)])]
    return pd.concat([f for f in frames if not f.empty] or [pd.DataFrame()],
                     ignore_index=True)
