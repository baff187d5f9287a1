"""The study's results on disk: one JSON Lines file per unit of work, written atomically.

Layout under ``results/study/<name>/`` (``.jsonl``, never ``.json``: the pytest-benchmark loader
globs ``results/**/*.json``)::

    context/<utc-time>.jsonl   the machine, commit, library versions and study settings of a run
    trial/<key>.jsonl          one trial (B, lr, seed, backend, budget → steps, status, noise)
    timing/<key>.jsonl         time per step of one backend spec (backend, device, kernel) at
                               one B (repeats, median)
    skip/<key>.jsonl           why a backend spec (at one B, or at all) was not timed
    direct/<key>.jsonl         a directly measured time-to-target (repeats)
    noise/<key>.jsonl          the exact noise scale at checkpoints along one run (one line each)
    study.csv                  every record above in one tidy table (rewritten at the end)

Each file is written to a temporary name and moved into place with ``os.replace``, so an
interrupted study leaves only whole records; a rerun finds them by key and computes only
what is missing.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["DEFAULT_ROOT", "StudyStore", "load_study"]

DEFAULT_ROOT = Path("results") / "study"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class StudyStore:
    """Records of one study (``root / name``), keyed by kind and key."""

    def __init__(self, root: str | os.PathLike = DEFAULT_ROOT, name: str = "default") -> None:
        self.path = Path(root) / name
        self.name = name

    def _file(self, kind: str, key: str) -> Path:
        return self.path / kind / f"{key}.jsonl"

    def get(self, kind: str, key: str) -> list[dict[str, Any]] | None:
        """The records stored under (kind, key), or None when there are none yet."""
        f = self._file(kind, key)
        if not f.exists():
            return None
        return [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line]

    def put(self, kind: str, key: str, records: list[dict[str, Any]]) -> None:
        """Store ``records`` under (kind, key), atomically (temporary file + ``os.replace``)."""
        text = "".join(json.dumps(r, default=_jsonable) + "\n" for r in records)
        _atomic_write(self._file(kind, key), text)

    def drop(self, kind: str, key: str) -> None:
        """Remove the records stored under (kind, key), if any."""
        self._file(kind, key).unlink(missing_ok=True)

    def records(self) -> list[dict[str, Any]]:
        """Every stored record, each with ``study`` (this store's name) and ``record`` (kind);
        a timing record stored before timings named their device and kernel is the CPU's,
        eager."""
        out = []
        for f in sorted(self.path.glob("*/*.jsonl")):
            for line in f.read_text(encoding="utf-8").splitlines():
                if line:
                    rec = {"study": self.name, "record": f.parent.name, **json.loads(line)}
                    if rec["record"] == "timing":
                        rec.setdefault("device", "cpu")
                        rec.setdefault("kernel", "eager")
                    out.append(rec)
        return out

    def write_table(self) -> Path:
        """Write ``study.csv``: every record, one row each (atomically); returns its path."""
        df = pd.DataFrame(self.records())
        path = self.path / "study.csv"
        _atomic_write(path, df.to_csv(index=False))
        return path


def _jsonable(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    if isinstance(v, (set, tuple)):
        return list(v)
    return str(v)


def load_study(root: str | os.PathLike = DEFAULT_ROOT) -> pd.DataFrame:
    """Every study under ``root`` as one tidy DataFrame.

    Columns: ``study`` (the folder name), ``record`` ('context', 'trial', 'timing', 'skip',
    'direct', 'noise') and the fields of each kind (timing records always have ``device`` and
    ``kernel``: 'cpu' and 'eager' where a study stored before them has none); every row also
    carries ``machine`` (the CPU model and count, or the GPU) and ``commit`` from its study's
    newest context record. Empty (no columns) when there is no study.
    """
    root = Path(root)
    rows: list[dict[str, Any]] = []
    for study_dir in sorted(p for p in root.glob("*") if p.is_dir()):
        recs = StudyStore(root, study_dir.name).records()
        ctx = [r for r in recs if r["record"] == "context"]
        ctx.sort(key=lambda r: r.get("started_utc", ""))
        machine = ctx[-1].get("machine_label") if ctx else None
        commit = ctx[-1].get("commit") if ctx else None
        for r in recs:
            r.setdefault("machine", machine)
            r.setdefault("commit", commit)
        rows.extend(recs)
    return pd.DataFrame(rows)
