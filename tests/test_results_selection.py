"""Which result files a report is made from: complete runs only by default, partial ones named;
and result files that are not what they should be are skipped with a warning naming them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.results import NOISY_REL_IQR, load_results, run_info, select_runs

ROOT = Path(__file__).resolve().parents[1]
CPU = ROOT / "results" / "Linux-CPython-3.11-64bit"
H200 = ROOT / "results" / "nvidia-h200" / "0002_a842f60_20261127_gpu-profile.json"


def _bench(name="test_epoch[numpy-cpu-B600]", median=0.5, iqr=0.05, extra=True):
    b = {"name": name, "group": "epoch B=600", "fullname": f"bench.py::{name}",
         "stats": {"median": median, "iqr": iqr, "q1": median - iqr / 2,
                   "q3": median + iqr / 2, "rounds": 3}}
    if extra:
        b["extra_info"] = {"kind": "epoch", "batch_size": 600}
    return b


def _doc(when, benchmarks=None, gdbench=None, commit="abc1234"):
    doc = {"machine_info": {"node": "n", "gdbench": {"cpu_model": "X", "cpu_count": 2}},
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
    assert [p.parent.name for p in chosen] == ["Linux-CPython-3.11-64bit", "nvidia-h200"]
    assert chosen[1] == H200
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
