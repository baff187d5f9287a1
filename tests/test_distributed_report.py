"""The data-parallel report section (``reports/distributed.py``) on synthetic result rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.analysis import parallel as pa
from bench.analysis.fit import StepsFit
from reports import distributed as rd

ALPHA, BETA = 50e-6, 1e-9          # s, s/byte
T0, C = {"softmax": 20e-6, "mlp": 50e-6}, {"softmax": 0.2e-6, "mlp": 4e-6}
NBYTES = {"softmax": 31_400, "mlp": 1_590_040}


def _rows() -> pd.DataFrame:
    rows = []
    for model in ("softmax", "mlp"):
        for B in (100, 1000):
            for P, threads in ((1, 2), (1, 1), (2, 1)):
                b = -(-B // P)
                compute = T0[model] + C[model] * b
                ar = 0.0 if P == 1 else 2 * ALPHA + NBYTES[model] * BETA
                rows.append(dict(kind="distributed", device="cpu", model=model, batch_size=B,
                                 world_size=P, threads_per_rank=threads, local_batch_size=b,
                                 compute_s_per_step=compute, allreduce_s_per_step=ar,
                                 seconds_per_step=compute + ar, allreduce_share=ar / (compute + ar),
                                 allreduce_s_per_epoch=ar * 50_000 / B,
                                 gradient_bytes=NBYTES[model], load_avg_1min=1.0,
                                 datetime="2026-11-28T07:00:00"))
    n = [4 * 4**k for k in range(13)]
    rows.append(dict(kind="allreduce", device="cpu", dist_backend="gloo", world_size=2,
                     message_bytes=n, seconds=[2 * ALPHA + x * BETA for x in n],
                     alpha_s=ALPHA, beta_s_per_byte=BETA, fit_rms_relative=0.0,
                     load_avg_1min=1.0, datetime="2026-11-28T07:00:00"))
    for B in (10, 20, 100, 600):
        rows.append(dict(kind="time_to_target", cfg_model="softmax", batch_size=B,
                         steps_to_target=2000 + 45_000 / B, target_reached=True,
                         cfg_learning_rate=0.13, cfg_target_error=0.08,
                         datetime="2026-11-28T07:00:00"))
    return pd.DataFrame(rows)


def test_inputs_are_recovered_from_the_rows():
    df = _rows()
    models = pa.step_models(df)
    for m in ("softmax", "mlp"):
        assert models[m].per_example_s == pytest.approx(C[m], rel=1e-9)
        assert models[m].t0_s == pytest.approx(T0[m], rel=1e-6)
        assert models[m].gradient_bytes == NBYTES[m]
    curves = pa.steps_curves(df)
    assert curves["softmax"].s_min == pytest.approx(2000) and not curves["softmax"].placeholder
    assert curves["softmax"].e_min == pytest.approx(45_000)
    assert curves["mlp"].placeholder and "PLACEHOLDER" in curves["mlp"].source
    assert pa.steps_curves(df, {"mlp": (StepsFit(100.0, 1e6, 0.0, 3), "s")})["mlp"].b_crit == 1e4


def test_projection_finds_where_the_allreduce_dominates():
    df = _rows()
    step, curve = pa.step_models(df)["mlp"], pa.steps_curves(df)["softmax"]
    ic = pa.inputs(df)["measured: gloo P=2 (cpu)"]
    b = 100
    proj = pa.project_data_parallel(step, curve, ic, b)
    s = pa.summarize(proj, curve, b)
    compute = T0["mlp"] + C["mlp"] * b
    P = np.arange(1, pa.MAX_P + 1)
    ring = 2 * (P - 1) * ALPHA + 2 * (P - 1) / P * NBYTES["mlp"] * BETA
    assert s["p_allreduce_dominates"] == int(P[ring > compute][0])
    assert s["p_batch_stops_saving"] == pytest.approx(22.5 / b)
    ttt = (2000 + 45_000 / (P * b)) * (compute + ring)
    assert s["p_best"] == int(P[np.argmin(ttt)])


def test_section_and_figures(tmp_path):
    df = _rows()
    text = rd.section(df)
    assert "### Measured" in text and "### Projection" in text
    assert "α (µs)" in text and "50.0" in text
    assert "placeholder S(B)" in text and "NVLink" in text
    drawn = rd.figures(df, tmp_path)
    assert len(drawn) == 3 and all(p.is_file() and p.stat().st_size > 10_000 for _, p in drawn)


def test_section_without_rows_says_how_to_get_them():
    text = rd.section(pd.DataFrame({"kind": ["epoch"]}))
    assert "bench_distributed.py" in text
    assert rd.figures(pd.DataFrame({"kind": ["epoch"]}), ".") == []
