"""A run interrupted (SIGINT, as Ctrl-C sends) at any moment ends cleanly, keeps what finished
in the journal, and leaves no file a report would take for a complete run; a complete run and a
filtered run are marked as such. A tiny synthetic project stands in for the benchmarks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.results import find_result_files, select_runs

ROOT = Path(__file__).resolve().parents[1]

BENCHMARKS = '''
import time
from pathlib import Path

def test_a(benchmark):
    Path("started_a").touch()
    benchmark.extra_info["kind"] = "fake"
    benchmark.pedantic(time.sleep, args=(0.3,), rounds=3)

def test_b(benchmark):
    Path("started_b").touch()
    benchmark.extra_info["kind"] = "fake"
    benchmark.pedantic(time.sleep, args=(0.3,), rounds=30)
'''


def _project(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["bench.pytest_plugin"]\n')
    (tmp_path / "test_fake.py").write_text(BENCHMARKS)
    return tmp_path


def _pytest(project: Path, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
           "--benchmark-storage=results", "--benchmark-autosave", "--benchmark-only", *args]
    return subprocess.Popen(cmd, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize("moment", ["inside the first round", "inside a later benchmark"])
def test_sigint_ends_cleanly_and_keeps_what_finished(tmp_path, moment):
    project = _project(tmp_path)
    proc = _pytest(project)
    try:
        _wait_for(project / ("started_a" if moment.startswith("inside the first") else
                             "started_b"), proc)
        time.sleep(0.4)
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=60)[0]
    finally:
        proc.kill()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    for bad in ("Traceback", "INTERNALERROR", "min() arg"):
        assert bad not in out, out
    results = project / "results"
    saved = find_result_files(results) if results.exists() else []
    ordinary = [p for p in saved if "partial" not in p.parts]
    assert ordinary == [], "an interrupted run saved an ordinary result file"
    assert select_runs(results)[0] == [] if results.exists() else True
    journals = [p for p in saved if "partial" in p.parts]
    if moment == "inside a later benchmark":
        assert len(journals) == 1
        doc = json.loads(journals[0].read_text())
        assert [b["name"] for b in doc["benchmarks"]] == ["test_a"]
        assert doc["gdbench"]["interrupted"] is True and doc["gdbench"]["complete"] is False
        assert "finished are kept in" in out
    else:
        assert journals == []  # nothing had finished


SLOW_SAVE = '''
import time
from pathlib import Path

pytest_plugins = ["bench.pytest_plugin"]

def pytest_benchmark_update_json(config, benchmarks, output_json):
    Path("saving").touch()
    time.sleep(2.0)
'''


def test_sigint_while_saving_a_finished_run_is_deferred(tmp_path):
    project = _project(tmp_path)
    (project / "conftest.py").write_text(SLOW_SAVE)
    (project / "test_fake.py").write_text(BENCHMARKS.replace("rounds=30", "rounds=2"))
    proc = _pytest(project)
    try:
        _wait_for(project / "saving", proc)
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=60)[0]
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert "Traceback" not in out and "interrupt received while the finished run is saved" in out
    (saved,) = find_result_files(project / "results")
    assert json.loads(saved.read_text())["gdbench"]["complete"] is True


def test_complete_and_filtered_runs_are_marked(tmp_path):
    project = _project(tmp_path)
    (project / "test_fake.py").write_text(BENCHMARKS.replace("rounds=30", "rounds=2"))
    for args in ((), ("-k", "test_a")):
        proc = _pytest(project, *args)
        out = proc.communicate(timeout=120)[0]
        assert proc.returncode == 0, out
    saved = find_result_files(project / "results")
    assert len(saved) == 2 and not (project / "results" / "partial").exists()
    marks = [json.loads(p.read_text())["gdbench"] for p in saved]
    assert marks[0]["complete"] is True and marks[0]["benchmarks"]["passed"] == 2
    assert marks[1]["complete"] is False and marks[1]["selection"]["keyword"] == "test_a"
    assert "-k 'test_a'" in marks[1]["incomplete_because"]
    assert select_runs(project / "results")[0] == [saved[0]]
    # volatile details live in the gdbench block, not in machine_info (--benchmark-compare)
    doc = json.loads(saved[0].read_text())
    assert "blas" in marks[0] and "blas" not in doc["machine_info"]["gdbench"]
    assert "load_before" in marks[0] and "load_after" in marks[0]
    assert "partial (-k 'test_a'" in out
