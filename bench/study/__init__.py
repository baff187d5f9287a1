"""The fair race: steps-to-target per batch size at its best learning rate, the critical batch
size, the exact gradient noise scale, and time-to-target per machine (see ``core``).

Names are imported on first use, so the report can read a study (``storage``, ``fit``,
``summary``) without importing the trainers."""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "FULL_GRID": "config", "StudyConfig": "config", "run_study": "core",
    "StepsFit": "fit", "fit_steps": "fit", "regime": "fit",
    "InProcessRunner": "runners", "PoolRunner": "runners", "RayRunner": "runners",
    "make_runner": "runners", "StudyStore": "storage", "load_study": "storage",
    "TrialSpec": "trial", "run_trial": "trial",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'bench.study' has no attribute {name!r}")
    return getattr(importlib.import_module(f"bench.study.{_WHERE[name]}"), name)
