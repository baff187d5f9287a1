"""The study under faults: one writer per study, corrupt records, Ray addresses that do not
answer, plain ``pytest``; and (real data) Ctrl-C at random moments, a killed worker, and a
resumed study equal to the uninterrupted one, trial for trial."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomllib

from bench.study.core import StudyConfig, run_study
from bench.study.runners import RayRunner, RunnerError
from bench.study.storage import (
    CorruptRecordWarning,
    StudyLockedError,
    StudyStore,
    check_name,
    load_study,
)
from tests.test_study import _FakeRunner

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- names and the lock


@pytest.mark.parametrize("name", ["../../x", "/abs/path", "a/b", "", ".", "..", "-x", "a b",
                                  "x" * 101])
def test_a_study_name_is_one_safe_path_component(tmp_path, name):
    with pytest.raises(ValueError, match="must be one folder name"):
        StudyStore(tmp_path, name)
    with pytest.raises(ValueError, match="must be one folder name"):
        StudyConfig(name=name)


def test_a_good_name_stays_under_the_root(tmp_path):
    assert check_name("cpu-xeon_2.vcpu") == "cpu-xeon_2.vcpu"
    assert StudyStore(tmp_path, "cpu-xeon_2.vcpu").path.parent == tmp_path


def test_a_second_writer_is_refused_naming_the_holder(tmp_path, capsys):
    from bench.study.__main__ import main

    store = StudyStore(tmp_path, "t")
    with store.lock():
        with pytest.raises(StudyLockedError, match=rf'"pid": {os.getpid()}'), \
                StudyStore(tmp_path, "t").lock():
            pass
        cfg = StudyConfig(name="t", batch_sizes=(256,), timing=False)
        with pytest.raises(StudyLockedError, match="being written by another run"):
            run_study(cfg, _FakeRunner(), tmp_path, noise=False, direct=False)
        status = main(["--name", "t", "--out", str(tmp_path), "--runner", "inprocess",
                       "--small"])
        err = capsys.readouterr().err.strip().splitlines()
        assert status == 1 and len(err) == 1 and socket.gethostname() in err[0], err
    assert not list((tmp_path / "t").glob("trial/*")), "the refused runs wrote nothing"
    with StudyStore(tmp_path, "t").lock():     # released: the next run takes it
        pass


def test_a_stale_lock_of_a_killed_run_is_taken_over(tmp_path, capsys):
    code = ("import os, sys; from bench.study.storage import StudyStore\n"
            "held = StudyStore(sys.argv[1], 't').lock(); held.__enter__(); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=120,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "pid" in (tmp_path / "t" / "study.lock").read_text()   # left behind
    with StudyStore(tmp_path, "t").lock():
        pass
    assert "taking over the lock of a run that ended" in capsys.readouterr().err


# ---------------------------------------------------------------- corrupt records


def test_a_corrupt_record_is_reported_skipped_and_recomputed(tmp_path):
    cfg = StudyConfig(name="c", batch_sizes=(256, 50_000), timing=False)
    first = _FakeRunner()
    run_study(cfg, first, tmp_path, noise=False, direct=False)
    files = sorted((tmp_path / "c" / "trial").glob("*.jsonl"))
    cut, invalid = files[0], files[1]
    cut.write_text(cut.read_text()[:40])                 # truncated mid-record
    invalid.write_text("[1, 2]\n")                       # JSON, not a record
    with pytest.warns(CorruptRecordWarning) as seen:
        df = load_study(tmp_path)
    messages = [str(w.message) for w in seen]
    assert any(f"{cut}:1: corrupt record" in m for m in messages), messages
    assert any(f"{invalid}:1: corrupt record" in m for m in messages), messages
    assert (df["record"] == "trial").sum() == first.submitted - 2
    rerun = _FakeRunner()
    with pytest.warns(CorruptRecordWarning):
        run_study(cfg, rerun, tmp_path, noise=False, direct=False)
    assert rerun.submitted == 2                          # exactly the two lost trials
    assert (load_study(tmp_path)["record"] == "trial").sum() == first.submitted


# ---------------------------------------------------------------- Ray


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_ray_address_nobody_listens_on_fails_at_once():
    pytest.importorskip("ray", reason="the 'ray' extra is not installed")
    t0 = time.monotonic()
    with pytest.raises(RunnerError, match="does not answer"):
        RayRunner(f"127.0.0.1:{_closed_port()}")
    assert time.monotonic() - t0 < 10


def test_a_ray_address_that_never_answers_fails_within_the_bound():
    pytest.importorskip("ray", reason="the 'ray' extra is not installed")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "GDBENCH_RAY_TIMEOUT_S": "3"}
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "bench.study", "--ray-address",
                               f"127.0.0.1:{silent.getsockname()[1]}", "--out", "unused"],
                              capture_output=True, text=True, env=env, timeout=120,
                              cwd=ROOT)
        took = time.monotonic() - t0
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(err) == 1 and "did not answer within 3 s" in err[0], err
    assert took < 3 + 30, "the bound plus starting Python and importing Ray"


def test_ctrl_c_while_connecting_to_ray_ends_in_one_line():
    pytest.importorskip("ray", reason="the 'ray' extra is not installed")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        proc = subprocess.Popen([sys.executable, "-m", "bench.study", "--ray-address",
                                 f"127.0.0.1:{silent.getsockname()[1]}", "--out", "unused"],
                                stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        time.sleep(6)                      # Python started, Ray imported, connecting
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=30)[1].strip().splitlines()
    assert proc.returncode == 130 and err == ["python -m bench.study: interrupted; what "
                                              "finished is kept."], err


def test_ray_client_addresses_need_the_documented_extra(monkeypatch):
    import importlib.util

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert any(r.startswith("ray[client]") for r in extras["ray"]), extras["ray"]
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "grpc" else real(name, *a))
    with pytest.raises(RunnerError, match=r"need ray\[client\].*pip install -e '.\[ray\]'"):
        RayRunner("ray://head:10001")


# ---------------------------------------------------------------- plain pytest

BENCHMARK = '''
def test_fast(benchmark, profile):
    benchmark.extra_info.update(kind="fake", profile=profile.name)
    benchmark(sum, [1, 2])
'''


@pytest.mark.parametrize("args", [(), ("--benchmark-only",)])
def test_plain_pytest_is_a_smoke_run_and_says_how_to_measure(tmp_path, args):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["bench.pytest_plugin"]\n')
    (tmp_path / "test_x.py").write_text(BENCHMARK)
    env = {k: v for k, v in os.environ.items() if k != "GDBENCH_PROFILE"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "--benchmark-storage=results", "--benchmark-autosave",
                           "--benchmark-json=out.json", *args], cwd=tmp_path, text=True,
                          capture_output=True, timeout=300, env={**env, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    profile = json.loads((tmp_path / "out.json").read_text())["benchmarks"][0]["extra_info"][
        "profile"]
    smoke = "plain pytest runs the benchmarks as a smoke test" in proc.stdout
    if args:
        assert profile == "standard" and not smoke
    else:
        assert profile == "quick" and smoke and "`pytest --benchmark-only`" in proc.stdout
        assert not list(tmp_path.glob("results/**/*.json")), "a smoke run is not saved"


# ---------------------------------------------------------------- interrupts (real data)

#: The study the interrupt tests run: one B, three rates, one seed, numpy only (seconds).
STUDY = ["--small", "--batch-sizes", "2048", "--backends", "numpy", "--no-direct",
         "--target-error", "0.12"]
#: Seconds a study may take to end after SIGINT (a loaded 2-core machine).
EXIT_BOUND_S = 15.0


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:
        return ""


def _study(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench.study", *STUDY, "--out", str(out),
                             "--name", "s", *extra], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def _watch(proc: subprocess.Popen, seconds: float) -> set[int]:
    """Every child seen while ``proc`` runs for up to ``seconds``."""
    seen: set[int] = set()
    deadline = time.monotonic() + seconds
    while proc.poll() is None and time.monotonic() < deadline:
        seen |= _children(proc.pid)
        time.sleep(0.05)
    return seen


def _trials(out: Path) -> dict[str, tuple]:
    df = load_study(out)
    trials = df[df["record"] == "trial"]
    cols = ["status", "steps", "steps_to_target", "best_valid_error", "final_valid_error",
            "max_steps", "b_simple"]
    return {r.key: tuple(getattr(r, c) for c in cols) for r in trials.itertuples()}


@pytest.fixture(scope="module")
def reference(real_mnist, tmp_path_factory):
    """The uninterrupted study and its wall seconds."""
    out = tmp_path_factory.mktemp("reference")
    t0 = time.monotonic()
    proc = _study(out)
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    return out, time.monotonic() - t0


def _interrupt(proc: subprocess.Popen, seen: set[int]) -> float | None:
    """Send SIGINT; check one line, status 130, no process left; the seconds it took to end
    (None when the study had finished just before: status 0, it said "done")."""
    proc.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    seen |= _watch(proc, EXIT_BOUND_S)
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - t0
    assert took < EXIT_BOUND_S, f"ended {took:.1f} s after SIGINT"
    assert "Traceback" not in err, err[-3000:]
    time.sleep(0.5)
    left = [p for p in seen if _alive(p)]
    assert not left, f"a process outlived the interrupted study: {[_cmdline(p) for p in left]}"
    if proc.returncode == 0 and "] done in " in err:
        return None
    last = err.strip().splitlines()[-1]
    # 130, or killed by SIGINT itself: CPython ends that way when the KeyboardInterrupt crossed
    # C code while an extension ran Python (unhandled_keyboard_interrupt), however it was
    # handled; a shell reports both as 130.
    assert proc.returncode in (130, -signal.SIGINT), err
    assert last.endswith("interrupted; what finished is kept."), err
    return took


@pytest.mark.realdata
@pytest.mark.slow
def test_ctrl_c_at_random_moments_then_resume_equals_the_uninterrupted_study(reference,
                                                                              tmp_path):
    """SIGINT at uniform random moments of the first half of a study's wall time (a resumed
    run is shorter, so later phases are hit too), in the pool and in-process, 20 times; every
    time the study is completed it is compared with the uninterrupted one and begun again."""
    ref_out, ref_s = reference
    rng = random.Random(20)
    interrupts, cycles, slowest = 0, 0, 0.0
    out = tmp_path / "cycle0"
    t_start = time.monotonic()
    while interrupts < 20:
        runner = ["--runner", "inprocess"] if interrupts % 2 else ["--workers", "2"]
        proc = _study(out, *runner)
        seen = _watch(proc, rng.uniform(0.3, ref_s / 2))
        took = _interrupt(proc, seen) if proc.poll() is None else None
        if took is not None:
            slowest = max(slowest, took)
            interrupts += 1
            continue
        assert proc.returncode == 0, proc.communicate()[1][-3000:]
        assert _trials(out) == _trials(ref_out), f"cycle {cycles}"
        cycles += 1
        out = tmp_path / f"cycle{cycles}"
    proc = _study(out)                        # complete the last cycle
    assert proc.communicate(timeout=600) and proc.returncode == 0
    assert _trials(out) == _trials(ref_out)
    print(f"\n{interrupts} interrupts over {cycles + 1} resumed studies in "
          f"{time.monotonic() - t_start:.0f} s; the slowest exit {slowest:.1f} s after SIGINT; "
          f"the uninterrupted study took {ref_s:.0f} s")


@pytest.mark.realdata
@pytest.mark.slow
def test_a_killed_worker_ends_the_study_naming_the_trial(reference, tmp_path):
    ref_out, _ = reference
    proc = _study(tmp_path, "--workers", "1")
    deadline = time.monotonic() + 300
    workers: set[int] = set()
    while time.monotonic() < deadline and proc.poll() is None:
        workers = {p for p in _children(proc.pid) if "spawn_main" in _cmdline(p)}
        if workers and list((tmp_path / "s").glob("timing/*.jsonl")):
            break                              # the timing phase is over: trials are running
        time.sleep(0.05)
    time.sleep(1.0)
    (victim,) = workers
    os.kill(victim, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    lines = err.strip().splitlines()
    assert proc.returncode == 1 and "Traceback" not in err, err[-3000:]
    assert f"worker {victim} was killed by SIGKILL while running trial B=2048" in lines[-1]
    assert "rerun the same command to resume" in lines[-1]
    assert not [p for p in _children(proc.pid) if _alive(p)]
    proc = _study(tmp_path, "--workers", "1")
    assert proc.communicate(timeout=600) and proc.returncode == 0
    assert _trials(tmp_path) == _trials(ref_out)


# ---------------------------------------------------------------- pure trials (real data)


@pytest.mark.realdata
def test_a_trial_is_the_same_first_and_fifth_in_a_worker(real_mnist):
    from bench.study.runners import PoolRunner
    from bench.study.trial import TrialSpec

    def spec(units: int, backend: str = "torch") -> TrialSpec:
        return TrialSpec(batch_size=2048, lr_units=units, seed=3, backend=backend,
                         max_steps=150, budget=150, validations_per_epoch=24)

    def outcome(r: dict) -> tuple:
        return (r["status"], r["steps"], r["steps_to_target"], r["best_valid_error"],
                r["final_valid_error"])

    pool = PoolRunner(workers=1)
    try:
        first = pool.submit(spec(8)).result()
        for units in (4, 0, -4):
            pool.submit(spec(units, "numpy" if units else "torch")).result()
        fifth = pool.submit(spec(8)).result()
    finally:
        pool.close()
    assert first["pid"] == fifth["pid"]
    assert outcome(first) == outcome(fifth)
