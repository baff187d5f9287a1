"""The data-parallel projection's S(B): the model's complete batch-size study when one is
present (through ``steps_curve``), never a smoke study, and the report says which."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bench.analysis.parallel import steps_curves, study_steps
from bench.analysis.study import steps_curve
from bench.study.storage import load_study

ROOT = Path(__file__).resolve().parents[1]
SOFTMAX = "cpu-epyc-2c-race"        # the committed complete plain-SGD softmax race


@pytest.fixture(scope="module")
def committed() -> pd.DataFrame:
    """The committed softmax race alone (other committed studies come and go)."""
    df = load_study(ROOT / "results" / "study")
    return df[df["study"] == SOFTMAX]


def _as_mlp(df: pd.DataFrame, name: str, purpose: str = "full") -> pd.DataFrame:
    """The committed softmax study's records relabelled as an MLP study ``name``."""
    rows = df[df["study"] == SOFTMAX].copy()
    rows["study"] = name
    ctx = rows["record"] == "context"
    cfg = json.loads(rows.loc[ctx, "study_config"].iloc[0])
    cfg.update(name=name, extra_config=[["model", "mlp"]])
    rows.loc[ctx, "study_config"] = json.dumps(cfg)
    rows["purpose"] = purpose
    return rows


def test_without_an_mlp_study_the_projection_says_so(committed):
    given = study_steps(committed)
    assert set(given) == {"softmax"} and given["softmax"][1] == SOFTMAX
    curves = steps_curves(pd.DataFrame(), given)
    assert f"`{SOFTMAX}`" in curves["softmax"].source
    assert curves["mlp"].placeholder
    assert "no complete mlp batch-size study is present" in curves["mlp"].source
    assert "--preset mlp" in curves["mlp"].source


def test_a_complete_mlp_study_gives_the_mlp_its_fit_and_a_smoke_one_does_not(committed):
    mlp = _as_mlp(committed, "mlp-full")
    smoke = _as_mlp(committed, "mlp-smoke", purpose="small")
    given = study_steps(pd.concat([committed, mlp, smoke], ignore_index=True))
    fit, study = given["mlp"]
    assert study == "mlp-full"
    assert fit == steps_curve(mlp)["mlp"][0]                      # steps_curve's, not redone
    curve = steps_curves(pd.DataFrame(), given)["mlp"]
    assert not curve.placeholder and "`mlp-full`" in curve.source
    only_smoke = study_steps(pd.concat([committed, smoke], ignore_index=True))
    assert "mlp" not in only_smoke
