"""The one result record: identity from the configuration, declared fields only, time per epoch
defined once, and a report that imports no implementation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench import record
from bench.harness import run
from bench.workload.config import RunConfig, placement_applies, variant_of
from tests.conftest import random_mnist

ROOT = Path(__file__).resolve().parents[1]


def test_identity_comes_from_the_config():
    cpu = record.identity("epoch", "quick", RunConfig(batch_size=20, model="mlp",
                                                      optimizer="nesterov"), "x")
    assert cpu["variant"] == "minibatch" and cpu["placement"] == record.NOT_APPLICABLE
    assert (cpu["model"], cpu["optimizer"], cpu["fast_path"]) == ("mlp", "nesterov", "x")
    gpu = record.identity("epoch", "gpu", RunConfig(backend="torch", device="cuda",
                                                    variant="full", placement="streamed",
                                                    pinned=True))
    assert gpu["batch_size"] == 50_000 and gpu["variant"] == "full"
    assert (gpu["placement"], gpu["pinned"]) == ("streamed", True)
    assert [variant_of(b, 50_000) for b in (1, 2, 49_999, 50_000)] == [
        "sgd", "minibatch", "minibatch", "full"]
    assert gpu["dataset"] == "mnist"
    digits = record.identity("epoch", "quick", RunConfig(dataset="digits", variant="full"))
    assert (digits["dataset"], digits["batch_size"], digits["variant"]) == ("digits", 1197, "full")
    assert not placement_applies("cpu") and placement_applies("cuda")


def test_write_refuses_undeclared_fields_and_keeps_the_run_record():
    bench = SimpleNamespace(extra_info={})
    r = run(RunConfig(batch_size=32, max_epochs=1), random_mnist())
    out = record.write(bench, kind="epoch", profile="quick", config=r.config,
                       **r.to_dict(), seconds_per_step=1e-4)
    assert bench.extra_info == out
    assert out["batch_size"] == 32 and out["curve_train_nll"] and out["steps"] == r.steps
    with pytest.raises(KeyError, match=r"undeclared field.*'seconds_per_fortnight'"):
        record.write(bench, kind="epoch", profile="quick", seconds_per_fortnight=1)


def test_time_per_epoch_has_one_definition():
    r = run(RunConfig(batch_size=32, max_epochs=2), random_mnist())
    t = r.times
    assert r.train_epoch_s == pytest.approx(record.per_epoch_seconds(
        t.compute_s + t.d2h_s, t.data_move_s, r.steps / r.batches_per_epoch, r.epochs))


def test_the_report_imports_no_implementation():
    code = ("import sys; sys.argv = ['x']; import reports.make_plots, bench.results, "
            "bench.analysis; bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('impls', 'torch', 'cupy', 'numba') or m == 'bench.harness'); print(bad)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_ab_cases_read_like_benchmark_ids(tmp_path):
    from bench.tools.ab import ABCase, export

    assert ABCase.parse("numpy-cpu-B600-in-order") == ABCase("numpy", 600, "in-order")
    assert ABCase.parse("torch-cpu-B20") == ABCase("torch", 20, "shuffle")
    with pytest.raises(ValueError, match="'torch-cuda-B20': write a case as"):
        ABCase.parse("torch-cuda-B20")
    tree = export("HEAD", tmp_path)
    assert (tree / "bench" / "harness.py").is_file() and not (tree / ".git").exists()


#: One record of each kind, with fields as its writer sets them.
_EXAMPLES = {
    "epoch": {"batch_size": 600, "seconds_per_step": 1e-4, "steps": 83},
    "step": {"batch_size": 1, "seconds_per_step": 3e-6, "steps_per_round": 1000},
    "time_to_target": {"batch_size": 20, "lr_source": "study s: best rate at B=16"},
    "transfer": {"copy": "pinned", "rows": 600, "bytes": 1881600, "event_median_s": 1e-4},
    "floor": {"floor": "peak_matmul", "flop": 2e9, "gflop_per_s": 151.0},
    "peer": {"peer": "sklearn-sgdclassifier", "seconds_per_epoch": 0.9},
    "distributed": {"world_size": 2, "allreduce_s_per_step": 1e-4, "allreduce_share": 0.3},
    "allreduce": {"message_bytes": [8, 1024], "seconds": [1e-5, 2e-5], "alpha_s": 5e-6},
    "context": {"started_utc": "2026-12-05T08:00:00+00:00", "machine_id": "cpu-amd-epyc-2c-23g",
                "purpose": "full", "study_config": "{}"},
    "trial": {"key": "abc", "batch_size": 16, "lr_units": -4, "seed": 1, "status": "reached",
              "steps_to_target": 900, "b_simple": 310.0},
    "timing": {"key": "numpy_B16", "spec": "numpy", "batch_size": 16, "step_s": 2e-5,
               "step_s_all": [2e-5, 2.1e-5], "epoch_move_s": 0.03},
    "skip": {"key": "cupy_B256", "spec": "cupy:cuda:fused", "reason": "no GPU",
             "error": "unusable"},
    "direct": {"key": "numpy_B16_d", "composed_s": 1.2, "measured_s": 1.3,
               "paired_composition_error": -0.05},
    "noise": {"key": "B16_n", "steps": 100, "valid_error": 0.1, "trace_cov": 5.0,
              "grad_sq_norm": 0.02},
}


def test_every_kind_of_record_round_trips_through_its_store_and_the_one_loader(tmp_path):
    """Each kind of RECORDS written as its suite writes it (a benchmark's extra_info saved by
    pytest-benchmark; a study line through bench.store) reads back as one row of one frame,
    every field intact; an unknown kind or field is refused where it is written."""
    import json

    from bench.results import load_records
    from bench.store import RecordStore

    assert set(_EXAMPLES) == set(record.RECORDS)
    benchmarks, study = [], RecordStore(tmp_path / "study" / "s")
    for kind, fields in _EXAMPLES.items():
        if record.suite_of(kind) == "benchmark":
            bench = SimpleNamespace(extra_info={})
            record.write(bench, kind=kind, profile="quick", **fields)
            benchmarks.append({"name": kind, "fullname": kind, "group": None,
                               "stats": {"median": 1.0, "rounds": 1},
                               "extra_info": bench.extra_info})
        else:
            study.put(kind, fields.get("key", "k"), [fields])
    (tmp_path / "cpu-x-2c").mkdir()
    (tmp_path / "cpu-x-2c" / "0001_x.json").write_text(json.dumps({
        "machine_info": {"gdbench": {"cpu_model": "X", "cpu_count": 2}},
        "commit_info": {"id": "abc"}, "datetime": "2026-12-05T08:00:00",
        "benchmarks": benchmarks}))
    df = load_records(tmp_path)
    assert sorted(df["record"]) == sorted(record.RECORDS)
    assert set(df.columns) <= set(record.columns())
    for kind, fields in _EXAMPLES.items():
        row = df[df["record"] == kind].iloc[0]
        assert row["suite"] == record.suite_of(kind)
        assert {k: row[k] for k in fields} == fields, kind
    with pytest.raises(KeyError, match=r"unknown record kind 'epochs'"):
        study.put("epochs", "k", [{}])
    with pytest.raises(KeyError, match=r"undeclared field.*'steps_per_fortnight'.*'trial'"):
        study.put("trial", "k", [{"steps_per_fortnight": 1}])
    with pytest.raises(KeyError, match=r"says record='trial'"):
        study.put("noise", "k", [{"record": "trial"}])
    assert not (tmp_path / "study" / "s" / "trial" / "k.jsonl").exists()


def test_every_column_of_the_committed_results_is_declared():
    """Old files read with today's names (RENAMED), and every column of the one frame --
    the records' fields and the reader's own -- has a declared meaning."""
    from bench.results import load_records

    df = load_records(ROOT / "results")
    assert set(df.columns) <= set(record.columns()), sorted(set(df.columns)
                                                           - set(record.columns()))
    assert "curve_train_cost" not in df and df.loc[df["record"] == "epoch",
                                                   "curve_train_nll"].notna().all()


def test_every_field_is_declared_once_and_the_record_imports_no_harness():
    """One table per kind of field, no name in two; a run's fields (RunResult.to_dict and the
    medians over rounds) are all declared; and bench.record reads none of them from
    bench.harness, which imports it (no cycle, not even inside a function)."""
    import ast
    from collections import Counter

    from bench.harness import summarize_rounds

    tables = (record.IDENTITY, record.MEASURED, record.STUDY, record.RUN, record.READ)
    twice = [k for k, n in Counter(k for t in tables for k in t).items() if n > 1]
    assert twice == []
    r = run(RunConfig(batch_size=32, max_epochs=1), random_mnist())
    assert set(r.to_dict()) | set(summarize_rounds([r])) <= set(record.FIELDS)
    tree = ast.parse((ROOT / "bench" / "record.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and m.startswith(("bench.harness", "impls"))}
