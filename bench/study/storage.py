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
what is missing. A line that is not valid JSON all the same (a copy cut short, a disk that
filled up) is reported with its file and line (``CorruptRecordWarning``) and skipped: the
loader goes on without it and a resume recomputes that unit of work.

A study's name is one path component of safe characters (``check_name``), so its folder is
always directly under the root. One run writes a study at a time: ``StudyStore.lock()`` holds
``<name>/study.lock`` (an advisory ``flock``, with the holder's host and pid written in it);
a second run is refused with ``StudyLockedError`` naming the holder, and a lock left by a
killed run is taken over (the kernel drops a dead process's ``flock``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from bench.cli import Failure

__all__ = ["DEFAULT_ROOT", "NAME_PATTERN", "CorruptRecordWarning", "StudyLockedError",
           "StudyStore", "check_name", "load_study"]

DEFAULT_ROOT = Path("results") / "study"

#: A study name: letters, digits, '.', '_', '-', starting with a letter or digit, <= 100.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
NAME_RULE = ("one folder name of letters, digits, '.', '_' and '-', starting with a letter or "
             "digit, at most 100 characters (e.g. 'cpu-xeon-2vcpu')")


def check_name(name: str) -> str:
    """``name`` when it is a valid study name (see ``NAME_RULE``), else a ValueError."""
    if not (isinstance(name, str) and NAME_PATTERN.fullmatch(name)):
        raise ValueError(f"The study name must be {NAME_RULE}. Got {name!r} instead.")
    return name


class CorruptRecordWarning(UserWarning):
    """A line of a study record that is not valid JSON was skipped."""


class StudyLockedError(Failure):
    """Another run holds the study's lock."""


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
        self.path = Path(root) / check_name(name)
        self.name = name

    def _file(self, kind: str, key: str) -> Path:
        return self.path / kind / f"{key}.jsonl"

    def get(self, kind: str, key: str) -> list[dict[str, Any]] | None:
        """The records stored under (kind, key), or None when there are none yet or one of
        its lines is corrupt (warned: the unit is then recomputed and rewritten)."""
        f = self._file(kind, key)
        if not f.exists():
            return None
        recs, whole = _read_records(f)
        return recs if whole else None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold this study's lock for the block (see the module docstring)."""
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        path = self.path / "study.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 1000).decode(errors="replace").strip() or "unknown"
                raise StudyLockedError(
                    f"study {self.name!r} at {self.path} is being written by another run "
                    f"({holder}); wait for it, stop it, or choose another --name.") from None
            stale = os.read(fd, 1000).decode(errors="replace").strip()
            if stale:
                print(f"study {self.name!r}: taking over the lock of a run that ended without "
                      f"releasing it ({stale})", file=sys.stderr)
            me = json.dumps({"host": socket.gethostname(), "pid": os.getpid()})
            os.ftruncate(fd, 0)
            os.pwrite(fd, me.encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

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
            for r in _read_records(f)[0]:
                rec = {"study": self.name, "record": f.parent.name, **r}
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


def _read_records(f: Path) -> tuple[list[dict[str, Any]], bool]:
    """(the records of file ``f``, whether every line was a JSON object); a bad line is warned
    about with its file and line number and skipped."""
    recs, whole = [], True
    try:
        text = f.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        warnings.warn(f"{f}: unreadable study record ({exc}); skipped (a resume recomputes it)",
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
            warnings.warn(f"{f}:{n}: corrupt study record ({exc}); skipped (a resume "
                          "recomputes it)", CorruptRecordWarning, stacklevel=3)
            whole = False
            continue
        recs.append(rec)
    return recs, whole


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
    for study_dir in sorted(p for p in root.glob("*")
                            if p.is_dir() and NAME_PATTERN.fullmatch(p.name)):
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
