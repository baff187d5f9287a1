"""A machine is what makes its numbers differ: its id is stable for one machine, distinct for a
different CPU, core count, memory or GPU, and names the folder its benchmark runs are saved in,
so a second machine's run never replaces (or is compared with) the first's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.machine import describe_machine, machine_id
from bench.results import find_result_files, run_info, select_runs

ROOT = Path(__file__).resolve().parents[1]

EPYC = {"cpu_model": "AMD EPYC", "cpu_count": 2, "memory_bytes": 24683784 * 1024}
H200 = {"cpu_model": "Intel(R) Xeon(R) Processor", "cpu_count": 16,
        "memory_bytes": 128 * 2**30, "gpu_name": "NVIDIA H200", "gpu_memory": "143771 MiB"}


def test_the_id_names_cpu_count_memory_and_gpu():
    assert machine_id(EPYC) == "cpu-amd-epyc-2c-23g"
    assert machine_id(H200) == "nvidia-h200-140g-intel-xeon-16c-128g"
    assert machine_id({**H200, "gpu_count": 8}).startswith("8x-nvidia-h200-140g-")
    xeon = {**EPYC, "cpu_model": "Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz"}
    assert machine_id(xeon) == "cpu-intel-xeon-platinum-8480-2c-23g"
    # older descriptions without memory: the part is left out, not guessed
    assert machine_id({"cpu_model": "AMD EPYC", "cpu_count": 2}) == "cpu-amd-epyc-2c"


def test_the_id_differs_for_each_part_and_ignores_what_changes_between_runs():
    ids = {machine_id(EPYC), machine_id({**EPYC, "cpu_count": 4}),
           machine_id({**EPYC, "memory_bytes": 64 * 2**30}),
           machine_id({**EPYC, "cpu_model": "Intel(R) Xeon(R) Processor"}),
           machine_id({**EPYC, "gpu_name": "NVIDIA H100 80GB HBM3", "gpu_memory": "81559 MiB"})}
    assert len(ids) == 5
    here = describe_machine()
    assert machine_id(here) == machine_id() == machine_id(describe_machine())
    moved = {**here, "commit": "0" * 40, "blas": [], "omp_num_threads": "1", "torch_threads": 7}
    assert machine_id(moved) == machine_id(here)


BENCHMARK = '''
import time

def test_a(benchmark):
    benchmark.extra_info["record"] = "epoch"
    benchmark.pedantic(time.sleep, args=(0.001,), rounds=2)
'''


def _run(project: Path, hardware: dict, *args: str) -> str:
    """One benchmark session of the synthetic project on a machine described by ``hardware``
    (what bench.machine reads of the machine, replaced in the session's conftest)."""
    (project / "conftest.py").write_text(
        "import bench.machine\n"
        f"bench.machine._hardware = lambda: {hardware!r}\n"
        'pytest_plugins = ["bench.pytest_plugin"]\n')
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
           "--benchmark-only", "--benchmark-storage=results", "--benchmark-autosave", *args]
    out = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def test_a_second_machines_run_never_replaces_the_first(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_fake.py").write_text(BENCHMARK)
    _run(tmp_path, EPYC)
    _run(tmp_path, H200)
    results = tmp_path / "results"
    saved = sorted(p.relative_to(results).parts[0] for p in find_result_files(results))
    assert saved == ["cpu-amd-epyc-2c-23g", "nvidia-h200-140g-intel-xeon-16c-128g"]
    chosen, passed_over = select_runs(results)
    assert len(chosen) == 2 and passed_over == []
    for path in chosen:
        doc = json.loads(path.read_text())
        assert run_info(path, doc).machine == path.parent.name
    # --benchmark-compare looks in this machine's folder only: the EPYC's run, not the H200's
    out = _run(tmp_path, EPYC, "--benchmark-compare")
    assert "Comparing against benchmarks from: cpu-amd-epyc-2c-23g/0001_" in out
    assert len(list((results / "cpu-amd-epyc-2c-23g").glob("*.json"))) == 2
    assert len(list((results / "nvidia-h200-140g-intel-xeon-16c-128g").glob("*.json"))) == 1
