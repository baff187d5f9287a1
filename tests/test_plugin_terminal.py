"""What a user sees in the terminal and where results go: clean errors for a bad profile name,
results stored under the project root wherever pytest starts, no pytest-benchmark warning when
no benchmark ran, progress as done/total, skips by reason, the targets table last."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_interrupts import BENCHMARKS, _project

ROOT = Path(__file__).resolve().parents[1]


def _run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
           "--benchmark-storage=results", "--benchmark-autosave", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


@pytest.mark.parametrize("how, expected", [
    ({"GDBENCH_PROFILE": "Quick"}, "Unknown benchmark profile 'Quick' (from $GDBENCH_PROFILE)"),
    ("--gdbench-profile=fast", "invalid choice: 'fast'"),
])
def test_a_bad_profile_name_is_a_one_line_error(tmp_path, how, expected):
    project = _project(tmp_path)
    env, args = (how, ()) if isinstance(how, dict) else (None, (how,))
    proc = _run(project, "--co", *args, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, out
    assert expected in out and "INTERNALERROR" not in out and "Traceback" not in out
    if isinstance(how, dict):
        assert "Did you mean 'quick'?" in out


def test_results_go_under_the_root_wherever_pytest_starts(tmp_path):
    project = _project(tmp_path)
    sub = project / "sub"
    sub.mkdir()
    (project / "test_fake.py").rename(sub / "test_fake.py")
    (sub / "test_fake.py").write_text(BENCHMARKS.replace("rounds=30", "rounds=2") + '''
import pytest

@pytest.mark.parametrize("i", [1, 2, 3])
def test_unusable(benchmark, i):
    pytest.skip("cupy: not installed")

def test_not_a_benchmark():
    assert True
''')
    proc = _run(sub, "--gdbench-profile", "standard")
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert len(list((project / "results").rglob("*.json"))) == 1
    assert not (sub / "results").exists()
    # progress: done / total with time left; skips: one line per reason; the targets last
    assert "[gdbench standard] 1/5 benchmarks done" in out and "left: test_a" in out
    assert "5/5 benchmarks done" not in out  # the last three were skipped: not announced
    assert "   3 × cupy: not installed" in out
    assert out.count("cupy: not installed") == 1
    assert "gdbench: complete run of the standard profile" in out
    # a run without benchmarks: no "Not saving anything" warning
    proc = _run(sub, "--gdbench-profile", "standard", "-k", "not_a_benchmark")
    assert proc.returncode == 0, proc.stdout
    assert "Not saving anything" not in proc.stdout + proc.stderr


def test_older_files_compare_without_their_volatile_machine_info():
    from bench.machine import VOLATILE
    from bench.pytest_plugin import pytest_benchmark_compare_machine_info

    old = {"machine_info": {"node": "n", "gdbench_profile": "standard",
                            "gdbench": {"cpu_count": 2, "commit": "abc", "blas": [{"n": 1}],
                                        "omp_num_threads": None}}}
    pytest_benchmark_compare_machine_info(config=None, benchmarksession=None,
                                          machine_info={}, compared_benchmark=old)
    assert old["machine_info"] == {"node": "n", "gdbench": {"cpu_count": 2}}
    assert set(VOLATILE) == {"commit", "blas", "omp_num_threads"}


def test_a_loaded_machine_is_recognised_and_said(monkeypatch):
    from bench import pytest_plugin as P

    monkeypatch.setattr(P.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(P.os, "getloadavg", lambda: (0.4, 0.3, 0.2))
    quiet = P.machine_load()
    assert quiet["loaded"] is False and quiet["cpu_count"] == 2
    monkeypatch.setattr(P.os, "getloadavg", lambda: (1.9, 1.5, 1.0))
    busy = P.machine_load()
    assert busy["loaded"] is True   # 0.95 per CPU > LOADED_PER_CPU
    # only the load before the run counts: the one after it includes the run's own threads
    assert "LOADED" in P.load_line(busy, quiet) and "LOADED" not in P.load_line(quiet, busy)
    assert "load 0.40 before, 1.90 after (the run's own threads included), on 2 CPUs" in \
        P.load_line(quiet, busy)
