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
    assert [variant_of(b) for b in (1, 2, 49_999, 50_000)] == ["sgd", "minibatch",
                                                               "minibatch", "full"]
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
            "bench.targets; bad = sorted(m for m in sys.modules if m.split('.')[0] in "
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
