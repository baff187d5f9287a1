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
what is missing. ``bench.results.load_records`` reads every study (and the benchmark runs)
into one DataFrame.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from bench.results import load_study
from bench.store import RecordStore, atomic_write

__all__ = ["DEFAULT_ROOT", "StudyStore", "load_study"]

DEFAULT_ROOT = Path("results") / "study"


class StudyStore(RecordStore):
    """Records of one study (``root / name``), keyed by kind and key."""

    def __init__(self, root: str | os.PathLike = DEFAULT_ROOT, name: str = "default") -> None:
        super().__init__(Path(root) / name)
        self.name = name

    def records(self) -> list[dict[str, Any]]:
        """Every stored record, each with ``study`` (this store's name) and ``record`` (kind)."""
        return [{"study": self.name, **r} for r in super().records()]

    def write_table(self) -> Path:
        """Write ``study.csv``: every record, one row each (atomically); returns its path."""
        path = self.path / "study.csv"
        atomic_write(path, pd.DataFrame(self.records()).to_csv(index=False))
        return path
