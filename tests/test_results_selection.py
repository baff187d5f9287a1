"""Which result files a report is made from: per machine id the newest complete run, partial
ones named; full studies only, smoke and test studies named; result files that are not what
they should be are skipped with a warning naming them. One loader reads benchmark runs and
studies, old and new, into one DataFrame."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.results import (
    NOISY_REL_IQR,
    load_records,
    load_results,
    load_study,
    run_info,
    select_runs,
    select_studies,
)
from bench.store import RecordStore

ROOT = Path(__file__).resolve().parents[1]
CPU = ROOT / "results" / "cpu-amd-epyc-2c"
H200 = (ROOT / "results" / "nvidia-h200-140g-intel-xeon-16c"
        / "0002_a842f60_20261127_gpu-profile.json")


def _bench(name="test_epoch[numpy-cpu-B600]", median=0.5, iqr=0.05, extra=True):
    b = {"name": name, "group": "epoch B=600", "fullname": f"bench.py::{name}",
         "stats": {"median": median, "iqr": iqr, "q1": median - iqr / 2,
                   "q3": median + iqr / 2, "rounds": 3}}
    if extra:
        b["extra_info"] = {"kind": "epoch", "batch_size": 600}
    return b


def _doc(when, benchmarks=None, gdbench=None, commit="abc1234", cpu="X"):
    doc = {"machine_info": {"node": "n", "gdbench": {"cpu_model": cpu, "cpu_count": 2}},
           "commit_info": {"id": commit, "dirty": False}, "datetime": when,
           "benchmarks": benchmarks if benchmarks is not None else [_bench()]}
    if gdbench is not None:
        doc["gdbench"] = gdbench
    return doc


def _write(folder: Path, name: str, doc) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(doc))
    return path


def test_the_newest_complete_run_is_chosen_and_the_others_are_named(tmp_path):
    m = tmp_path / "Linux-CPython-3.11-64bit"
    complete = _write(m, "0001.json", _doc("2026-01-01T00:00:00", gdbench={
        "profile": "standard", "complete": True, "incomplete_because": []}))
    _write(m, "0002.json", _doc("2026-01-02T00:00:00", gdbench={
        "profile": "standard", "complete": False, "incomplete_because": ["-k 'numpy'"]}))
    _write(m, "0003.json", _doc("2026-01-03T00:00:00", benchmarks=[_bench(extra=False)]))
    _write(tmp_path / "partial", "x_unfinished.json",
           _doc("2026-01-04T00:00:00", gdbench={"profile": "standard", "complete": False,
                                                "interrupted": True}))
    chosen, passed_over = select_runs(tmp_path)
    assert chosen == [complete]  # the journal folder is never a machine
    text = "\n".join(passed_over)
    assert "0002.json: passed over (partial: -k 'numpy')" in text
    assert "0003.json: passed over (partial: 1 benchmarks without gdbench's extra_info" in text
    # named by hand, a partial run says so in every row
    df = load_results([m / "0002.json"])
    assert df["run_status"].iloc[0] == "partial: -k 'numpy'"
    assert select_runs(tmp_path, profile="gpu")[0] == []


def test_the_committed_results_still_load_and_say_what_they_are():
    chosen, _ = select_runs(ROOT / "results")
    # each file lies in its machine's folder: the id of its own machine_info
    folders = [p.parent.name for p in chosen]
    assert folders == sorted({p.parent.name for p in (ROOT / "results").glob("*/*.json")
                              if p.parent.name not in ("ab", "partial")})
    assert {"cpu-amd-epyc-2c", "nvidia-h200-140g-intel-xeon-16c"} <= set(folders)
    chosen = [p for p in chosen if p.parent.name in ("cpu-amd-epyc-2c",
                                                    "nvidia-h200-140g-intel-xeon-16c")]
    assert chosen[1] == H200
    for path in (ROOT / "results").glob("*/*.json"):
        assert run_info(path, json.loads(path.read_text())).machine == path.parent.name
    # the CPU choice: the newest complete standard run (the files name their counter first)
    newest = max((p for p in CPU.glob("*.json")
                  if run_info(p, json.loads(p.read_text())).complete is not False),
                 key=lambda p: p.name)
    assert chosen[0] == newest and not newest.name.startswith(("0001", "0002", "0003"))
    for path in sorted(CPU.glob("*.json")):
        assert not load_results(path).empty
    info = run_info(H200, json.loads(H200.read_text()))
    assert (info.profile, info.commit, info.complete) == ("gpu", "a842f60", None)
    df = load_results(chosen)
    assert {"rel_iqr", "noisy", "run_status", "machine_profile"} <= set(df)
    assert set(df["machine_profile"]) == {"standard", "gpu"}
    # saved before the one schema: the benchmark kind was 'kind'; both columns now
    assert (df["record"] == df["kind"]).all() and set(df["suite"]) == {"benchmark"}


def test_runs_of_two_machines_in_one_folder_are_chosen_one_each(tmp_path):
    """A folder name is not a machine: files of two CPUs under pytest-benchmark's platform
    folder are two machines, each with its newest complete run."""
    m = tmp_path / "Linux-CPython-3.11-64bit"
    done = {"profile": "standard", "complete": True, "incomplete_because": []}
    epyc = _write(m, "0001.json", _doc("2026-01-01T00:00:00", gdbench=done, cpu="AMD EPYC"))
    xeon = _write(m, "0002.json", _doc("2026-01-02T00:00:00", gdbench=done,
                                       cpu="Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz"))
    chosen, passed_over = select_runs(tmp_path)
    assert sorted(chosen) == [epyc, xeon] and passed_over == []
    ids = set(load_results(tmp_path)["machine_id"])
    assert ids == {"cpu-amd-epyc-2c", "cpu-intel-xeon-platinum-8480-2c"}


def _study(root: Path, name: str, purpose: str | None, grid=None) -> RecordStore:
    store = RecordStore(root / name)
    ctx = {"started_utc": "2026-01-01T00:00:00", "commit": "abc1234",
           "machine_label": "AMD EPYC x2", "study_config": json.dumps({"grid": grid}),
           "machine_json": json.dumps({"cpu_model": "AMD EPYC", "cpu_count": 2,
                                       "memory_bytes": 23.5 * 2**30})}
    if purpose is not None:
        ctx["purpose"] = purpose
    store.put("context", "2026-01-01T00-00-00", [ctx])
    store.put("trial", "t1", [{"batch_size": 16, "learning_rate": 0.1, "seed": 1,
                               "status": "reached", "steps_to_target": 900, "steps": 900}])
    return store


def test_smoke_and_test_studies_are_passed_over_with_the_reason(tmp_path):
    _study(tmp_path, "tuned", "full")
    _study(tmp_path, "ci-small", "small")
    _study(tmp_path, "in-a-test", "test")
    _study(tmp_path, "old-small", None, grid=[-4, 0, 4])   # stored before 'purpose'
    _study(tmp_path, "old-tuned", None)
    RecordStore(tmp_path / "no-context").put("trial", "t", [{"batch_size": 16}])
    df = load_study(tmp_path)
    kept, passed_over = select_studies(df)
    assert set(kept["study"]) == {"tuned", "old-tuned"}
    text = "\n".join(passed_over)
    assert "study ci-small: passed over (a --small smoke study" in text
    assert "study old-small: passed over (a --small smoke study" in text
    assert "study in-a-test: passed over (written by a test run)" in text
    assert "study no-context: passed over (no context record: what it was run for" in text
    assert set(kept["machine_id"]) == {"cpu-amd-epyc-2c-23g"}


def test_one_loader_reads_a_folder_of_benchmark_runs_and_studies(tmp_path):
    """Benchmark JSON (old 'kind' and new 'record'), a study, and the committed study: one
    frame, one 'record' column, 'suite' and 'machine_id' on every row."""
    new = _bench("test_step[numpy-cpu-B1]")
    new["extra_info"] = {"record": "step", "batch_size": 1}
    _write(tmp_path / "cpu-x-2c", "0001.json", _doc("2026-01-01T00:00:00",
                                                    benchmarks=[_bench(), new]))
    _study(tmp_path / "study", "tuned", "full")
    df = load_records(tmp_path)
    assert df.groupby(["suite", "record"]).size().to_dict() == {
        ("benchmark", "epoch"): 1, ("benchmark", "step"): 1, ("study", "context"): 1,
        ("study", "trial"): 1}
    assert df["machine_id"].notna().all()
    bench = df[df["suite"] == "benchmark"]
    assert (bench["kind"] == bench["record"]).all()
    committed = load_records(ROOT / "results")
    assert {"trial", "timing", "direct", "noise", "context", "epoch", "floor"} <= set(
        committed["record"])
    timing = committed[committed["record"] == "timing"]
    assert set(timing["device"]) == {"cpu"} and set(timing["kernel"]) == {"eager"}
    studies = committed[committed["suite"] == "study"]
    assert set(studies["purpose"]) == {"full"} and set(studies["machine_id"]) == {
        "cpu-amd-epyc-2c", "cpu-amd-epyc-2c-23g"}     # each study keyed by its own machine


def test_noise_columns():
    from bench.results import rows_from_benchmarks

    df = rows_from_benchmarks([_bench(median=2.0, iqr=0.2),
                               _bench(median=2.0, iqr=2.0 * (NOISY_REL_IQR + 0.1))])
    assert df["rel_iqr"].round(3).tolist() == [0.1, round(NOISY_REL_IQR + 0.1, 3)]
    assert df["noisy"].tolist() == [False, True]


def test_extra_info_list_and_dangling_link_are_skipped_with_a_warning(tmp_path):
    bad = _bench()
    bad["extra_info"] = [1, 2]
    _write(tmp_path, "listy.json", _doc("2026-01-01T00:00:00", benchmarks=[bad, _bench()]))
    os.symlink(tmp_path / "gone.json", tmp_path / "dangling.json")
    with pytest.warns(UserWarning) as record:
        df = load_results(tmp_path)
    messages = " ".join(str(w.message) for w in record)
    assert "listy.json: benchmark 'test_epoch[numpy-cpu-B600]' skipped: its extra_info is a " \
           "list" in messages
    assert "dangling.json: skipped, a link to a missing file" in messages
    assert len(df) == 1


def test_a_study_records_its_purpose(monkeypatch):
    """A study run says what it is for: a test run under pytest, else its configuration's
    purpose (``--small`` sets 'small'); the loader reads it back."""
    from bench.study.core import StudyConfig, _context

    assert _context(StudyConfig(), "runner")["purpose"] == "test"
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    ctx = _context(StudyConfig(purpose="small"), "runner")
    assert ctx["purpose"] == "small" and ctx["machine_id"]
    assert _context(StudyConfig(), "runner")["purpose"] == "full"
    with pytest.raises(ValueError, match="'purpose' of StudyConfig must be 'full' or 'small'"):
        StudyConfig(purpose="tuned")
