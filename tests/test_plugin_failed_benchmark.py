"""A benchmark that fails inside ``benchmark.pedantic`` (e.g. a data-parallel rank that died)
fails alone: the session goes on, saves the others and prints its summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BENCH = '''
def test_fails(benchmark):
    def target():
        raise RuntimeError("rank 1 exited with code 3")
    benchmark.pedantic(target, rounds=1, iterations=1)

def test_runs(benchmark):
    benchmark.extra_info.update(kind="allreduce", device="cpu", backend="torch")
    benchmark.pedantic(lambda: None, rounds=2, iterations=1)
'''


def test_a_benchmark_failing_in_pedantic_does_not_end_the_session(tmp_path):
    (tmp_path / "bench_x.py").write_text(BENCH)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "bench.pytest_plugin", "-p", "no:cacheprovider",
         "-o", "python_files=bench_*.py", "--rootdir", str(tmp_path), "-c", os.devnull,
         "--gdbench-profile", "quick", f"--benchmark-storage={tmp_path / 'results'}",
         "--benchmark-save=x", str(tmp_path / "bench_x.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert "INTERNALERROR" not in out and "Traceback" not in out.split("short test summary")[0]
    assert "1 failed, 1 passed" in out, out[-2000:]
    saved = list((tmp_path / "results").rglob("*_x.json"))
    assert len(saved) == 1
    names = [b["name"] for b in json.loads(saved[0].read_text())["benchmarks"]]
    assert names == ["test_runs"]
