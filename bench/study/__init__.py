"""The fair race: steps-to-target per batch size at its best learning rate, the critical batch
size, the exact gradient noise scale, and time-to-target per machine (see ``core``)."""

from bench.study.core import FULL_GRID, StudyConfig, run_study
from bench.study.fit import StepsFit, fit_steps, regime
from bench.study.runners import InProcessRunner, PoolRunner, RayRunner, make_runner
from bench.study.storage import StudyStore, load_study
from bench.study.trial import TrialSpec, run_trial

__all__ = ["FULL_GRID", "InProcessRunner", "PoolRunner", "RayRunner", "StepsFit", "StudyConfig",
           "StudyStore", "TrialSpec", "fit_steps", "load_study", "make_runner", "regime",
           "run_study", "run_trial"]
