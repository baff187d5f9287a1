"""The analysis layer's computations where they live: the one fit of S(B) (``bench.analysis.fit``)
and what the study and the data-parallel projection take from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.analysis import steps_curve
from bench.analysis.fit import fit_steps, regime
from bench.analysis.parallel import steps_curves
from bench.study.storage import load_study

ROOT = Path(__file__).resolve().parents[1]


def test_fit_recovers_known_s_min_and_e_min_exactly():
    B = 2.0 ** np.arange(0, 16)
    fit = fit_steps(B, 120.0 + 40_000.0 / B)
    assert fit.s_min == pytest.approx(120.0, rel=1e-6)
    assert fit.e_min == pytest.approx(40_000.0, rel=1e-6)
    assert fit.b_crit == pytest.approx(40_000 / 120, rel=1e-6)
    assert regime(fit, 1) == "perfect scaling"
    assert regime(fit, 1000) == "diminishing returns"
    assert regime(fit, 50_000) == "maximal data parallelism"


def test_fit_recovers_known_parameters_from_noisy_points():
    B = np.repeat(2.0 ** np.arange(0, 16), 3)
    rng = np.random.default_rng(0)
    S = (200.0 + 60_000.0 / B) * np.exp(rng.normal(0, 0.05, len(B)))   # 5 % relative noise
    fit = fit_steps(B, S)
    assert fit.s_min == pytest.approx(200.0, rel=0.1)
    assert fit.e_min == pytest.approx(60_000.0, rel=0.1)
    assert fit.rms_log_residual == pytest.approx(0.05, rel=0.3)


def test_fit_refuses_a_single_batch_size():
    with pytest.raises(ValueError, match="two or more distinct batch sizes"):
        fit_steps(np.array([8, 8]), np.array([100, 110]))


def test_the_study_and_the_projection_share_one_fit():
    """The committed plain-SGD studies give the projection its S(B) per model, the same
    objects the study pages show; the momentum studies do not (the data-parallel runs use
    plain SGD)."""
    curves = steps_curve(load_study(ROOT / "results" / "study"))
    assert set(curves) == {"softmax", "mlp"}
    fit, study = curves["softmax"]
    assert study == "cpu-epyc-2vcpu" and 100 < fit.b_crit < 1000
    mlp_fit, mlp_study = curves["mlp"]
    assert mlp_study == "cpu-epyc-2c-race-mlp" and 100 < mlp_fit.b_crit < 1000
    projected = steps_curves(pd.DataFrame(), curves)
    assert projected["softmax"].fit is fit and not projected["softmax"].placeholder
    assert projected["mlp"].fit is mlp_fit and not projected["mlp"].placeholder
