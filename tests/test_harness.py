"""The harness's bookkeeping, the results loader, and the benchmarks end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bench.analysis.targets import T_MATMUL, T_MLP_MATMUL, T_SHUFFLE, T_SKLEARN, evaluate
from bench.harness import run
from bench.results import load_results, newest_result_file
from bench.workload.config import RunConfig
from tests.conftest import random_mnist, target_params

DATA = random_mnist()
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("backend, device", target_params())
@pytest.mark.parametrize("order", ["in-order", "shuffle"])
def test_time_split_adds_up(backend, device, order):
    r = run(RunConfig(backend=backend, device=device, batch_size=8, max_epochs=2, order=order),
            DATA)
    t = r.times
    parts = t.parts()
    assert set(parts) >= {"compute_s", "d2h_s", "eval_s", "data_move_s", "other_s"}
    assert all(v >= 0 for k, v in parts.items() if k != "other_s")
    assert sum(parts.values()) == pytest.approx(t.total_s, rel=1e-9)
    assert abs(t.other_s) < 0.05 * t.total_s + 1e-3   # bookkeeping is a small remainder
    assert t.compute_s > 0 and t.eval_s > 0
    if device == "cpu":
        assert t.h2d_s is None and r.upload_s is None  # not applicable, not zero
    else:
        assert r.upload_s > 0


def test_early_stopping_and_target():
    r = run(RunConfig(batch_size=16, max_epochs=50, early_stopping=True, patience=40), DATA)
    assert r.epochs < 50 and r.status == "ok"
    assert r.best_valid_error <= min(p.valid_error for p in r.curve)
    t = run(RunConfig(batch_size=16, max_epochs=50, target_error=0.5), DATA)
    assert t.target_reached and t.steps_to_target == t.steps
    assert t.curve[-1].valid_error <= 0.5
    miss = run(RunConfig(batch_size=16, max_epochs=1, learning_rate=1e-9, target_error=0.05),
               DATA)
    assert miss.target_reached is False and miss.time_to_target_s is None


def test_after_target_trains_on_past_first_passage():
    """``after_target`` keeps first passage as steps-to-target and trains on to
    ceil((1 + after_target) x) it, validating as before."""
    base = RunConfig(batch_size=4, max_epochs=20, validations_per_epoch=8, target_error=0.5)
    first = run(base, DATA)
    on = run(replace(base, after_target=1.0), DATA)
    assert first.target_reached and on.target_reached
    assert on.steps_to_target == first.steps_to_target == first.steps
    assert on.steps == 2 * first.steps_to_target
    assert [p.steps for p in on.curve[:len(first.curve)]] == [p.steps for p in first.curve]
    assert on.curve[-1].steps == on.steps
    with pytest.raises(ValueError, match="after_target"):
        RunConfig(batch_size=4, after_target=-1)


EXTRA_INFO_KEYS = {
    "final_valid_error", "best_valid_error", "test_error_at_best", "epochs", "steps",
    "examples_per_second", "compute_s", "h2d_s", "d2h_s", "eval_s", "data_move_s",
    "total_s", "curve_valid_error", "curve_wall_s", "curve_epoch", "diverged", "status",
    "cfg_learning_rate", "cfg_l1", "cfg_l2", "cfg_dtype", "cfg_seed", "cfg_order",
    "cfg_placement", "upload_s",
}


def test_result_dict_is_complete_and_json():
    d = run(RunConfig(variant="full", max_epochs=2), DATA).to_dict()
    assert set(d) >= EXTRA_INFO_KEYS
    assert json.loads(json.dumps(d)) == d
    assert len(d["curve_valid_error"]) == 2


@pytest.mark.realdata
def test_benchmarks_end_to_end(tmp_path, real_mnist):
    """Run a slice of the quick profile as a user would and read its results back."""
    out = tmp_path / "run.json"
    cmd = [sys.executable, "-m", "pytest", "bench/benchmarks", "--benchmark-only",
           "--gdbench-profile", "quick", "-k", "numpy or transfer", "-p", "no:cacheprovider",
           f"--benchmark-storage={tmp_path / 'storage'}", "--benchmark-save=e2e",
           f"--benchmark-json={out}", "-q"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "not applicable" in proc.stdout or "skipped" in proc.stdout
    df = load_results(out)
    kinds = set(df["kind"])
    assert {"epoch", "step", "time_to_target"} <= kinds
    epochs = df[df["kind"] == "epoch"]
    assert set(epochs.columns) >= EXTRA_INFO_KEYS
    mlp, epochs = epochs[epochs["model"] == "mlp"], epochs[epochs["model"] == "softmax"]
    assert sorted(zip(mlp["batch_size"], mlp["cfg_order"], strict=True)) == [
        (600, "in-order"), (600, "shuffle")]        # the model is a benchmark axis
    assert mlp.set_index("cfg_order")["side_reference"].get("in-order") == "products"
    by_batch = epochs["gather"] == "batch"      # minibatches gathered through the permutation
    assert sorted(epochs[by_batch]["batch_size"]) == [600, 50_000]
    epochs = epochs[~by_batch]
    shuffled = epochs["cfg_order"] == "shuffle"
    assert sorted(epochs[shuffled]["batch_size"]) == [1, 20, 600, 50_000]
    assert sorted(epochs[~shuffled]["batch_size"]) == [600, 50_000]  # in-order references
    assert epochs["machine_cpu"].notna().all()
    assert (epochs["stat_median"] > 0).all()
    assert epochs["h2d_s"].isna().all()                 # CPU: not applicable
    # the targets' references, timed next to each round (bench.analysis.targets.side_reference)
    side = epochs.set_index(["batch_size", "cfg_order"])["side_reference"].to_dict()
    assert side[(600, "in-order")] == side[(50_000, "in-order")] == "products"
    assert side[(600, "shuffle")] == "in-order"
    assert side[(1, "shuffle")] == "sklearn"
    table = evaluate(df)
    assert table["paired"].all() and set(table["target"]) == {T_MATMUL, T_SHUFFLE, T_SKLEARN,
                                                              T_MLP_MATMUL}
    saved = list((tmp_path / "storage").rglob("*.json"))
    assert len(saved) == 1 and newest_result_file(tmp_path / "storage") == saved[0]


def test_results_loader_skips_malformed_files_with_a_warning(tmp_path):
    good = {"machine_info": {"node": "n", "gdbench": {"cpu_model": "X", "cpu_count": 2}},
            "commit_info": {"id": "abc"}, "datetime": "2026-01-01T00:00:00",
            "benchmarks": [{"name": "test_epoch[numpy-cpu-B600]", "group": "epoch B=600",
                            "fullname": "f", "stats": {"median": 0.5, "rounds": 3},
                            "extra_info": {"kind": "epoch", "batch_size": 600,
                                           "curve_valid_error": [0.2, 0.1]}}]}
    (tmp_path / "good.json").write_text(json.dumps(good))
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "foreign.json").write_text(json.dumps({"hello": "world"}))
    with pytest.warns(UserWarning) as record:
        df = load_results(tmp_path)
    messages = " ".join(str(w.message) for w in record)
    assert "broken.json: skipped, not readable JSON" in messages
    assert "foreign.json: skipped, not a pytest-benchmark result file" in messages
    assert len(df) == 1
    row = df.iloc[0]
    assert (row["stat_median"], row["batch_size"], row["machine_cpu"], row["commit"]) == (
        0.5, 600, "X", "abc")
    assert row["curve_valid_error"] == [0.2, 0.1]


def test_sweep_goes_on_after_divergence():
    rows = [run(RunConfig(batch_size=16, learning_rate=lr, max_epochs=1), DATA)
            for lr in (0.1, 1e38, 0.1)]
    assert [r.status for r in rows] == ["ok", "diverged", "ok"]


def test_bad_batch_size_for_the_data():
    with pytest.raises(ValueError, match=r"'batch_size' parameter of RunConfig must be an int in"):
        run(replace(RunConfig(batch_size=10_000)), DATA)


def test_validations_per_epoch_and_training_time_to_target():
    r = run(RunConfig(batch_size=16, max_epochs=2, validations_per_epoch=4), DATA)
    assert [p.steps for p in r.curve] == [4, 8, 12, 16, 20, 24, 28, 32]
    t = run(RunConfig(batch_size=4, max_epochs=3, validations_per_epoch=8, target_error=0.5),
            DATA)
    assert t.target_reached and t.steps_to_target % 8 == 0
    assert 0 < t.time_to_target_s < t.time_to_target_wall_s   # evaluation excluded


def test_machine_description_records_the_context(monkeypatch):
    from bench.machine import describe_machine

    monkeypatch.setenv("GDBENCH_COMMIT", "abc123")
    info = describe_machine()
    assert info["commit"] == "abc123"
    assert info["cpu_count"] >= 1 and info["numpy"] and info["versions"]["numpy"]
    assert "blas" in info and "torch" in info and "cupy" in info


@pytest.mark.realdata
def test_a_killed_session_keeps_its_finished_benchmarks(tmp_path, real_mnist):
    """SIGKILL in the middle of a sweep: the benchmarks that finished stay on disk, readable."""
    import signal
    import time

    storage = tmp_path / "storage"
    cmd = [sys.executable, "-m", "pytest", "bench/benchmarks/bench_training.py",
           "--benchmark-only", "--gdbench-profile", "quick", "-k", "numpy", "-p",
           "no:cacheprovider", f"--benchmark-storage={storage}", "--benchmark-save=killed", "-q"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not list((storage / "partial").glob("*.json")):
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    partial = list((storage / "partial").glob("*.json"))
    assert len(partial) == 1, "no journal was written before the kill"
    df = load_results(partial[0])
    assert len(df) >= 1 and (df["stat_median"] > 0).all()
    assert not list(storage.rglob("*.tmp"))  # written atomically: no torn file left


def test_a_finished_session_removes_its_journal(tmp_path):
    storage = tmp_path / "storage"
    cmd = [sys.executable, "-m", "pytest", "bench/benchmarks/bench_floors.py",
           "--benchmark-only", "--gdbench-profile", "quick", "-k", "peak_matmul",
           "-p", "no:cacheprovider", f"--benchmark-storage={storage}", "--benchmark-save=done",
           "-q"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert len(list(storage.rglob("*done.json"))) == 1
    assert not (storage / "partial").exists()
