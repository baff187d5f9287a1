"""The fair race: steps-to-target per batch size at its best learning rate, the critical batch
size, the exact gradient noise scale, and time-to-target per machine (see ``core``).

Names are imported on first use, so the report can read a study (``storage``) without importing
the trainers; the fit of S(B) lives in the analysis layer (``bench.analysis.fit``)."""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "STUDY_GRID": "config", "StudyConfig": "config", "run_study": "core",
    "StepsFit": "bench.analysis.fit", "fit_steps": "bench.analysis.fit",
    "regime": "bench.analysis.fit",
    "InProcessRunner": "runners", "PoolRunner": "runners", "RayRunner": "runners",
    "make_runner": "runners", "StudyStore": "storage", "load_study": "storage",
    "TrialSpec": "trial", "run_trial": "trial",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'bench.study' has no attribute {name!r}")
    where = _WHERE[name]
    return getattr(importlib.import_module(where if "." in where else f"bench.study.{where}"),
                   name)
