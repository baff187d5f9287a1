"""The one store of gdbench's records (``bench.record``'s schema).

Benchmark rounds live in pytest-benchmark's storage: ``bench.record.write`` puts a record
into the benchmark's ``extra_info`` and pytest-benchmark saves the run as
``results/<machine id>/<NNNN>_<commit>_<date>.json`` (``bench.pytest_plugin`` names the
folder), so ``pytest-benchmark compare`` and ``--benchmark-compare`` read them as ever.

Every other record (a study's) goes through ``RecordStore``: one JSON Lines file per unit of
work, ``<folder>/<kind>/<key>.jsonl`` (``.jsonl``, never ``.json``: the benchmark reader globs
``*.json``), each checked against the schema and written to a temporary name, then moved into
place with ``os.replace``, so an interrupted writer leaves only whole records and a rerun finds
them by key. ``bench.results`` reads both into one DataFrame.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from bench.record import RECORDS, checked

__all__ = ["RecordStore", "atomic_write"]


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
        """The records stored under (kind, key), or None when there are none yet."""
        f = self._file(kind, key)
        if not f.exists():
            return None
        return _read_lines(f)

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
                for r in _read_lines(f)]


def _read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
