"""The one store of gdbench's records (``bench.record``'s schema).

Benchmark rounds live in pytest-benchmark's storage: ``bench.record.write`` puts a record
into the benchmark's ``extra_info`` and pytest-benchmark saves the run as
``results/<machine id>/<NNNN>_<commit>_<date>.json`` (``bench.pytest_plugin`` names the
folder), so ``pytest-benchmark compare`` and ``--benchmark-compare`` read them as ever.

Every other record (a study's) goes through ``RecordStore``: one JSON Lines file per unit of
work, ``<folder>/<kind>/<key>.jsonl`` (``.jsonl``, never ``.json``: the benchmark reader globs
``*.json``), each checked against the schema and written to a temporary name, then moved into
place with ``os.replace``, so an interrupted writer leaves only whole records and a rerun finds
them by key. A line that is not a JSON object all the same (a copy cut short, a disk that
filled up) is reported with its file and line (``CorruptRecordWarning``) and skipped: readers go
on without it, and ``get`` answers None so a resume recomputes that unit of work.
``bench.results`` reads both into one DataFrame.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from bench.record import RECORDS, checked

__all__ = ["CorruptRecordWarning", "RecordStore", "atomic_write"]


class CorruptRecordWarning(UserWarning):
    """A stored record line that is not a JSON object was skipped."""


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
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


def _jsonable(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    if isinstance(v, (set, tuple)):
        return list(v)
    return str(v)


class RecordStore:
    """Records of one folder, keyed by (kind, key): ``<path>/<kind>/<key>.jsonl``."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def _file(self, kind: str, key: str) -> Path:
        return self.path / kind / f"{key}.jsonl"

    def get(self, kind: str, key: str) -> list[dict[str, Any]] | None:
        """The records stored under (kind, key), or None when there are none yet or one of its
        lines is corrupt (warned: the unit is then recomputed and rewritten)."""
        f = self._file(kind, key)
        if not f.exists():
            return None
        recs, whole = _read_lines(f)
        return recs if whole else None

    def put(self, kind: str, key: str, records: list[dict[str, Any]]) -> None:
        """Store ``records`` of ``kind`` under ``key``, atomically; each is checked against
        the schema first (``bench.record.checked``: a KeyError names what is undeclared)."""
        where = f"{self._file(kind, key)}"
        text = "".join(json.dumps(checked(kind, r, where), default=_jsonable) + "\n"
                       for r in records)
        atomic_write(self._file(kind, key), text)

    def drop(self, kind: str, key: str) -> None:
        """Remove the records stored under (kind, key), if any."""
        self._file(kind, key).unlink(missing_ok=True)

    def records(self) -> list[dict[str, Any]]:
        """Every stored record, each with its ``record`` kind (the folder it is in)."""
        return [{**r, "record": f.parent.name}
                for f in sorted(self.path.glob("*/*.jsonl")) if f.parent.name in RECORDS
                for r in _read_lines(f)[0]]


def _read_lines(f: Path) -> tuple[list[dict[str, Any]], bool]:
    """(the records of file ``f``, whether every line was a JSON object); a bad line is warned
    about with its file and line number and skipped."""
    recs, whole = [], True
    try:
        text = f.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        warnings.warn(f"{f}: unreadable record ({exc}); skipped (a resume recomputes it)",
                      CorruptRecordWarning, stacklevel=3)
        return [], False
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError(f"a JSON {type(rec).__name__}, not an object")
        except ValueError as exc:
            warnings.warn(f"{f}:{n}: corrupt record ({exc}); skipped (a resume recomputes it)",
                          CorruptRecordWarning, stacklevel=3)
            whole = False
            continue
        recs.append(rec)
    return recs, whole
