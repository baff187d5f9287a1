"""The study's results on disk: one JSON Lines file per unit of work, written atomically
through the one store (``bench.store.RecordStore``, ``bench.record``'s schema).

Layout under ``results/study/<name>/``::

    context/<utc-time>.jsonl   the machine, commit, library versions, settings and purpose
                               (full, small, test, timing-only) of a run
    trial/<key>.jsonl          one trial (B, lr, seed, backend, budget → steps, status, noise)
    timing/<key>.jsonl         time per step of one backend spec (backend, device, kernel) at
                               one B (repeats, median)
    skip/<key>.jsonl           why a backend spec (at one B, or at all) was not timed
    direct/<key>.jsonl         a directly measured time-to-target (repeats)
    noise/<key>.jsonl          the exact noise scale at checkpoints along one run (one line each)
    study.csv                  every record above in one tidy table (rewritten at the end)

An interrupted study leaves only whole records; a rerun finds them by key and computes only
what is missing; a corrupt line is warned about with its file and line and recomputed
(``bench.store``). ``bench.results.load_records`` reads every study (and the benchmark runs)
into one DataFrame.

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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from bench.cli import Failure
from bench.results import load_study
from bench.store import CorruptRecordWarning, RecordStore, atomic_write

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


class StudyLockedError(Failure):
    """Another run holds the study's lock."""


class StudyStore(RecordStore):
    """Records of one study (``root / name``), keyed by kind and key."""

    def __init__(self, root: str | os.PathLike = DEFAULT_ROOT, name: str = "default") -> None:
        super().__init__(Path(root) / check_name(name))
        self.name = name

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

    def records(self) -> list[dict[str, Any]]:
        """Every stored record, each with ``study`` (this store's name) and ``record`` (kind)."""
        return [{"study": self.name, **r} for r in super().records()]

    def write_table(self) -> Path:
        """Write ``study.csv``: every record, one row each (atomically); returns its path."""
        path = self.path / "study.csv"
        atomic_write(path, pd.DataFrame(self.records()).to_csv(index=False))
        return path
