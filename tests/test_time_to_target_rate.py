"""Time to target trains at the tuned study's best rate per B: the learning-rate search is
defined once (the study's), and the benchmark takes its rate from the stored study."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bench.analysis.study import per_batch_size
from bench.benchmarks.bench_training import study_rate
from bench.profiles import PROFILES
from bench.results import load_study, select_studies
from bench.workload.config import RunConfig, batch_sizes_for
from bench.workload.datasets import get_dataset

ROOT = Path(__file__).resolve().parents[1]


def _trial(study: str, B: int, units: int, steps: int | None, extra: dict | None = None,
           seed: int = 1234) -> dict:
    return {"study": study, "record": "trial", "batch_size": B, "lr_units": units,
            "learning_rate": 10 ** (units / 8), "seed": seed, "backend": "numpy",
            "variant": "minibatch", "phase": "search", "budget": 10_000,
            "status": "reached" if steps else "diverged", "steps_to_target": steps,
            "validation_interval": 1, "dtype": "float32", "order": "shuffle", "init": "zeros",
            "target_error": 0.08, "extra_config": json.dumps(extra or {})}


def _config(**kw) -> RunConfig:
    return RunConfig(batch_size=2, learning_rate=0.1, target_error=0.08, **kw)


def test_the_rate_is_the_studys_best_at_its_b_and_the_largest_b_below_elsewhere():
    df = pd.DataFrame([_trial("s", 16, -8, 900), _trial("s", 16, -4, 700),
                       _trial("s", 16, 0, None), _trial("s", 64, 0, 300),
                       _trial("s", 64, 4, 250),
                       _trial("m", 16, -12, 500, {"optimizer": "momentum", "momentum": 0.9})])
    best = per_batch_size(df[df["study"] == "s"]).set_index("batch_size")["best_lr"]
    assert study_rate(df, _config(), 16) == (best[16], "study s: best rate at B=16")
    assert study_rate(df, _config(), 20) == (best[16], "study s: best rate at B=16")
    assert study_rate(df, _config(), 600)[0] == best[64] == pytest.approx(10 ** 0.5)
    lr, source = study_rate(df, _config(optimizer="momentum", momentum=0.9), 16)
    assert (lr, source) == (pytest.approx(10 ** -1.5), "study m: best rate at B=16")
    with pytest.raises(LookupError, match=r"optimizer=nesterov.*covers B=16"):
        study_rate(df, _config(optimizer="nesterov"), 16)
    with pytest.raises(LookupError, match="covers B=8 "):
        study_rate(df, _config(), 8)
    with pytest.raises(LookupError, match=r"target 0\.05"):
        study_rate(df, RunConfig(batch_size=2, learning_rate=0.1, target_error=0.05), 16)


def test_the_committed_study_gives_every_softmax_time_to_target_run_its_rate():
    studies, _ = select_studies(load_study(ROOT / "results" / "study"))
    for B in batch_sizes_for(PROFILES["standard"].ttt_batch_sizes, get_dataset("mnist").n_train):
        lr, source = study_rate(studies, _config(), B)
        assert source.startswith("study cpu-epyc-2c-race: best rate at B=") and lr > 0
