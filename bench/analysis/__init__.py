"""The analysis layer: pure computation over records and DataFrames, for the report, the study's
command line and the pytest plugin.

It imports the workload, the run layer (``bench.results``, ``bench.record``) and libraries;
never a suite, ``reports`` or a framework. One definition each of:

=====================  ============================================================
``fit``                S(B) = S_min + E_min / B, B_crit, the regimes
``race``               the fair race's statistics: the rate chosen on search
                       seeds, held-out medians, bootstrap intervals,
                       oscillation, the winner or the tie
``study``              the study table's views: per-B S(B) (a race's held-out
                       median), fit, composed times, noise scale, which
                       studies may answer (races only)
``noise``              the noise scales per trajectory at first passage against B_crit
``composition``        time-to-target = S(B) x time per step + reshuffles
``parallel``           the data-parallel projection: step model, ring all-reduce,
                       interconnects
``targets``            the performance targets and their verdicts
``stats``              beyond-the-noise tests and speed-ups against a baseline
``views``              benchmark rows: series labels, per-epoch seconds, floor ratios
``machines``           which machine a row was measured on
``answer``             the one "fastest to target" answer per machine
``names``              display names of variants and specs; the formatting of seconds
=====================  ============================================================

The benchmark runs' loader (``load_results``, ``select_runs``) and the noise threshold
(``NOISY_REL_IQR``) are the run layer's (``bench.results``), re-exported here so that the report
reads everything through this package.
"""

from __future__ import annotations

from bench.analysis.composition import (
    composed_seconds,
    fastest_variant,
    overlapping,
    project_time_to_target,
)
from bench.analysis.fit import StepsFit, fit_steps, regime
from bench.analysis.names import VARIANT_NAMES, format_seconds, spec_label, variant_name
from bench.analysis.study import (
    fit_study,
    per_batch_size,
    steps_curve,
    steps_to_target,
)
from bench.results import NOISY_REL_IQR, load_results, select_runs

__all__ = ["NOISY_REL_IQR", "VARIANT_NAMES", "StepsFit", "composed_seconds",
           "fastest_variant", "fit_steps", "fit_study", "format_seconds", "load_results",
           "overlapping", "per_batch_size", "project_time_to_target", "regime", "select_runs",
           "spec_label", "steps_curve", "steps_to_target", "variant_name"]
