"""gdbench's pytest plugin: the profile option, shared fixtures, machine info, progress, and
the session record that tells a complete run from a partial one.

Registered by the project's root ``conftest.py``.

Each saved result file gets a top-level ``gdbench`` block (``pytest_benchmark_update_json``):
the profile, the selection (``-k``, ``-m``, explicit paths or node ids, deselected items), the
benchmark counts (collected / passed / skipped / failed), the exit status, whether the run was
interrupted, ``complete`` (all of the profile's benchmarks ran or were skipped with a reason, no
selection, no failure, no interruption), the machine load before and after, and the volatile
details (commit, BLAS thread pools) kept out of ``machine_info`` so that ``--benchmark-compare``
on the same machine does not warn about them. An interrupted run saves no ordinary result file:
what finished stays in the journal (``<storage>/partial/``), marked interrupted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from bench.grid import Case, cases
from bench.profiles import ENV_PROFILE, Profile, get_profile
from bench.workload.config import batch_sizes_for, placement_applies
from bench.workload.datasets import get_dataset

#: Load per CPU (1-minute load average / CPU count) above which a machine counts as loaded: the
#: benchmarks use every core (BLAS and torch threads), so half a core's worth of other runnable
#: work already shows as slower, noisier rounds.
LOADED_PER_CPU = 0.5
BENCH_FOLDER = "bench/benchmarks"

__all__ = ["Case", "cases"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gdbench")
    group.addoption("--gdbench-profile", default=None, choices=["quick", "standard", "gpu", "full"],
                    help=f"benchmark profile (default: ${ENV_PROFILE}, else 'standard')")
    group.addoption("--gdbench-dataset", default=None,
                    help="dataset the benchmarks train on (bench.workload.datasets.DATASETS; "
                         "default: mnist)")


def machine_load() -> dict[str, Any]:
    """The 1-, 5- and 15-minute load averages against the CPU count (None where unknown)."""
    try:
        one, five, fifteen = os.getloadavg()
    except (OSError, AttributeError):  # not available on this platform
        one = five = fifteen = None
    cpus = os.cpu_count() or 1
    return {"load_1min": one, "load_5min": five, "load_15min": fifteen, "cpu_count": cpus,
            "loaded": None if one is None else one / cpus > LOADED_PER_CPU}


def _resolve_storage(config: pytest.Config) -> None:
    """A relative ``--benchmark-storage`` is taken from the project root, not from the folder
    pytest starts in, so results land in the same place wherever pytest is run."""
    storage = config.getoption("benchmark_storage", None)
    if not storage:
        return
    path = storage[len("file://"):] if storage.startswith("file://") else storage
    if "://" in path or Path(path).is_absolute():
        return
    config.option.benchmark_storage = "file://" + str(config.rootpath / path)


def _name_storage_by_machine(config: pytest.Config) -> None:
    """Runs are saved under ``<storage>/<machine id>/`` (``bench.machine.machine_id``), not
    pytest-benchmark's ``Linux-CPython-3.11-64bit``, which names a platform shared by
    different machines, so one machine's run would be compared with, and chosen over,
    another's. pytest-benchmark offers no option or hook for the folder (ionelmc/pytest-benchmark
    #185): its session takes it from ``pytest_benchmark.session.get_machine_id`` when its own
    ``pytest_configure`` (trylast, after this one) creates the session and loads
    ``--benchmark-compare``'s files, so that name answers the machine id until
    ``pytest_unconfigure`` puts it back. Not asked (py-cpuinfo takes about a second) when
    benchmarks are disabled: nothing is saved or compared then."""
    if config.getoption("benchmark_disable", False):
        return
    import pytest_benchmark.session as benchmark_session

    from bench.machine import machine_id

    folder = machine_id()
    config._gdbench_platform_id = benchmark_session.get_machine_id
    benchmark_session.get_machine_id = lambda: folder


def pytest_unconfigure(config: pytest.Config) -> None:
    platform_id = getattr(config, "_gdbench_platform_id", None)
    if platform_id is not None:
        import pytest_benchmark.session as benchmark_session

        benchmark_session.get_machine_id = platform_id


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    try:
        config._gdbench_profile = get_profile(config.getoption("--gdbench-profile"),
                                              config.getoption("--gdbench-dataset"))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    _resolve_storage(config)
    _name_storage_by_machine(config)
    if config._gdbench_profile.name == "quick" and not config.getoption("benchmark_save"):
        # A smoke run: not autosaved into results/, so reports keep showing real runs.
        config.option.benchmark_autosave = False
    record = _SessionRecord(config)
    config.pluginmanager.register(record, "gdbench-session")
    if config._gdbench_profile.progress:
        config.pluginmanager.register(_Progress(config, record), "gdbench-progress")
    if config.getoption("benchmark_autosave") or config.getoption("benchmark_save"):
        config.pluginmanager.register(_Journal(config, record), "gdbench-journal")


@pytest.fixture(scope="session")
def profile(request: pytest.FixtureRequest) -> Profile:
    """The benchmark profile of this session."""
    return request.config._gdbench_profile


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    prof = metafunc.config._gdbench_profile
    n_train = get_dataset(prof.dataset).n_train
    grids = {"epoch_case": cases(prof, prof.batch_sizes, gpu_batch_sizes=prof.gpu_batch_sizes,
                                 model_batch_sizes=prof.model_batch_sizes, variations=True),
             "step_case": cases(prof, prof.step_batch_sizes,
                                model_batch_sizes=prof.model_batch_sizes),
             "ttt_case": cases(prof, prof.ttt_batch_sizes,
                               model_batch_sizes=prof.model_ttt_batch_sizes)}
    for fixture, found in grids.items():
        if fixture in metafunc.fixturenames:
            if fixture != "epoch_case":
                found = [c for c in found if c.placement == "resident" and c.kernel == "eager"
                         and c.order == "shuffle"]
            metafunc.parametrize(fixture, found, ids=[c.id for c in found])
    for fixture, sizes in (("peer_batch", prof.peer_batch_sizes),
                           ("floor_batch", prof.batch_sizes)):
        if fixture in metafunc.fixturenames:
            sizes = batch_sizes_for(sizes, n_train)
            metafunc.parametrize(fixture, sizes, ids=[f"B{b}" for b in sizes])
    if "transfer_case" in metafunc.fixturenames:
        found = []
        transfer = cases(prof, prof.transfer_batch_sizes)
        smallest = min(c.batch_size for c in transfer)
        for c in transfer:
            if not placement_applies(c.device):
                if c.batch_size == smallest:
                    found.append((c, "n/a"))
            elif c.placement == "resident" and c.kernel == "eager":
                found += [(c, kind) for kind in ("pageable", "pinned", "d2d")]
        metafunc.parametrize("transfer_case", found, ids=[
            f"{c.backend}-{c.device}" if k == "n/a" else f"{c.backend}-{c.device}-{k}-"
            f"rows{c.batch_size}" for c, k in found])


def pytest_benchmark_update_machine_info(config: pytest.Config,
                                         machine_info: dict[str, Any]) -> None:
    """The stable description of the machine (what a comparison must match); the volatile
    parts go into the result file's ``gdbench`` block instead."""
    from bench.machine import describe_machine, split_volatile

    machine_info["gdbench"], _ = split_volatile(describe_machine())


@pytest.hookimpl(tryfirst=True)
def pytest_benchmark_compare_machine_info(config: pytest.Config, benchmarksession: Any,
                                          machine_info: dict[str, Any],
                                          compared_benchmark: dict[str, Any]) -> None:
    """Older result files kept the volatile details (commit, BLAS thread pools, profile) in
    ``machine_info``: drop them from the loaded copy, so pytest-benchmark's own check that
    follows warns only about a real difference of machine."""
    from bench.machine import VOLATILE

    old = compared_benchmark.get("machine_info")
    if isinstance(old, dict):
        old.pop("gdbench_profile", None)
        if isinstance(old.get("gdbench"), dict):
            for key in VOLATILE:
                old["gdbench"].pop(key, None)


def _is_benchmark(item: pytest.Item) -> bool:
    return "benchmark" in getattr(item, "fixturenames", ())


class _SessionRecord:
    """What this session selected, ran and skipped, and how it ended."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.load_before = machine_load()
        self.load_after: dict[str, Any] | None = None
        self.collected: list[str] = []
        self.collected_ids: set[str] = set()
        self.passed_ids: set[str] = set()
        self.modules: set[str] = set()
        self.deselected = 0
        self.outcomes: Counter[str] = Counter()
        self.skip_reasons: Counter[str] = Counter()
        self.exitstatus: int | None = None

    # ---------------------------------------------------------------- collection and outcomes
    def _load_warning(self) -> list[str]:
        load = self.load_before
        if not load["loaded"]:
            return []
        return [f"gdbench: WARNING: this machine is loaded (load {load['load_1min']:.2f} on "
                f"{load['cpu_count']} CPUs): other processes share the cores, so timings will "
                "be slower and noisier than on an idle machine. The report marks the run."]

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        return [f"gdbench: profile {config._gdbench_profile.name}, results in "
                f"{config.getoption('benchmark_storage', '')}", *self._load_warning()]

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Under ``-q`` pytest shows no header: say the warning anyway."""
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None and self.config.get_verbosity() < 0:
            for line in self._load_warning():
                tr.write_line(line)

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.deselected += sum(_is_benchmark(i) for i in items)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        bench = [i for i in items if _is_benchmark(i)]
        self.collected = [i.nodeid for i in bench]
        self.collected_ids = set(self.collected)
        self.modules = {str(i.path) for i in bench}

    @pytest.hookimpl(tryfirst=True)  # before the journal, which may re-raise an interrupt
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.nodeid not in self.collected_ids:
            if report.skipped and report.when == "setup":
                self.skip_reasons[_skip_reason(report)] += 1
            return
        if report.failed:
            self.outcomes["failed"] += 1
        elif report.skipped:
            self.outcomes["skipped"] += 1
            self.skip_reasons[_skip_reason(report)] += 1
        elif report.when == "call":
            self.outcomes["passed"] += 1
            self.passed_ids.add(report.nodeid)

    # ---------------------------------------------------------------- the verdict
    def selection(self) -> dict[str, Any]:
        opt = self.config.option
        root = self.config.rootpath
        args = [str(Path(a).resolve().relative_to(root)) if Path(a.split("::")[0]).exists()
                and Path(a).resolve().is_relative_to(root) else a
                for a in self.config.args]
        return {"args": args, "keyword": getattr(opt, "keyword", "") or "",
                "markexpr": getattr(opt, "markexpr", "") or "", "deselected": self.deselected}

    def missing_modules(self) -> list[str]:
        folder = self.config.rootpath / BENCH_FOLDER
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.glob("bench_*.py") if str(p) not in self.modules)

    def why_incomplete(self) -> list[str]:
        """Reasons this run is not a complete run of its profile (empty: complete)."""
        sel = self.selection()
        why = []
        if self.exitstatus == pytest.ExitCode.INTERRUPTED:
            why.append("interrupted")
        if sel["keyword"]:
            why.append(f"-k {sel['keyword']!r}")
        if sel["markexpr"]:
            why.append(f"-m {sel['markexpr']!r}")
        if sel["deselected"]:
            why.append(f"{sel['deselected']} benchmarks deselected")
        if any("::" in a for a in sel["args"]):
            why.append("node ids named")
        missing = self.missing_modules()
        if missing:
            why.append("not collected: " + ", ".join(missing))
        if self.outcomes["failed"]:
            why.append(f"{self.outcomes['failed']} benchmarks failed")
        done = self.outcomes["passed"] + self.outcomes["skipped"]
        if done < len(self.collected) and "interrupted" not in why:
            why.append(f"{len(self.collected) - done} of {len(self.collected)} benchmarks "
                       "did not finish")
        if not self.collected:
            why.append("no benchmarks")
        return why

    def as_dict(self) -> dict[str, Any]:
        from bench.machine import describe_machine, split_volatile

        _, volatile = split_volatile(describe_machine())
        why = self.why_incomplete()
        return {"profile": self.config._gdbench_profile.name, "complete": not why,
                "incomplete_because": why,
                "interrupted": self.exitstatus == pytest.ExitCode.INTERRUPTED,
                "exitstatus": None if self.exitstatus is None else int(self.exitstatus),
                "selection": self.selection(),
                "benchmarks": {"collected": len(self.collected), "passed": self.outcomes["passed"],
                               "skipped": self.outcomes["skipped"],
                               "failed": self.outcomes["failed"]},
                "load_before": self.load_before,
                "load_after": self.load_after or machine_load(), **volatile}

    # ---------------------------------------------------------------- the end
    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int):
        """Runs around pytest-benchmark's save: drops benchmarks cut short inside a round (no
        timings: they broke its save), saves nothing for an interrupted or empty run."""
        self.exitstatus = exitstatus
        self.load_after = machine_load()
        bs = getattr(self.config, "_benchmarksession", None)
        if bs is not None:
            bs.benchmarks[:] = [b for b in bs.benchmarks if b]
            if exitstatus == pytest.ExitCode.INTERRUPTED:  # show only what finished
                bs.benchmarks[:] = [b for b in bs.benchmarks if b.fullname in self.passed_ids]
            if exitstatus == pytest.ExitCode.INTERRUPTED or not bs.benchmarks:
                bs.save = bs.autosave = None  # the journal keeps what finished
        with _interrupts_deferred(self.config, "gdbench: interrupt received while the finished "
                                  "run is saved and summarised; finishing that first."):
            yield  # a Ctrl-C now would tear the saved file

    def pytest_benchmark_update_json(self, config: pytest.Config, benchmarks: list,
                                     output_json: dict[str, Any]) -> None:
        output_json["gdbench"] = self.as_dict()

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_terminal_summary(self, terminalreporter, exitstatus: int, config: pytest.Config):
        """After pytest's own summary: the skips, one line per reason, then the targets."""
        yield
        tr = terminalreporter
        if self.skip_reasons:
            tr.write_sep("-", "skipped, by reason")
            for reason, n in self.skip_reasons.most_common():
                tr.write_line(f"{n:4d} × {reason}")
        if self.collected:
            why = self.why_incomplete()
            state = "complete" if not why else "partial (" + "; ".join(why) + ")"
            tr.write_line(f"gdbench: {state} run of the {config._gdbench_profile.name} profile; "
                          + _load_line(self.load_before, self.load_after))
        _targets_table(tr, config)


@contextlib.contextmanager
def _interrupts_deferred(config: pytest.Config, message: str | None = None,
                         reraise: bool = False):
    """SIGINT inside the block is noted (and ``message`` shown) instead of raised at once, so a
    file being written is never torn; with ``reraise`` the interrupt takes effect right after.
    Used around the journal's writes (then it re-raises) and around the final save and
    summary (the run has ended by then: it is finished, not stopped)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    heard = []

    def note(signum: int, frame: object) -> None:
        if not heard and message:
            tr = config.pluginmanager.get_plugin("terminalreporter")
            if tr is not None:
                tr.write_line(message)
        heard.append(signum)

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if heard and reraise:
        raise KeyboardInterrupt


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr)
    return reason.removeprefix("Skipped: ")


def _load_line(before: dict[str, Any], after: dict[str, Any] | None) -> str:
    if before.get("load_1min") is None:
        return "machine load not available on this platform."
    after = after or before
    text = (f"machine load {before['load_1min']:.2f} before, {after['load_1min']:.2f} after "
            f"(the run's own threads included), on {before['cpu_count']} CPUs")
    # Only the load before the run says whether other work shared the machine: the load
    # average after it counts the benchmarks' own threads (about one per core).
    if before["loaded"]:
        text += " -- LOADED: timings are slower and noisier than on an idle machine"
    return text + "."


class _Journal:
    """Keeps a killed session's finished benchmarks: after each one, everything finished so
    far is written atomically (temporary file + rename) to ``<storage>/partial/``. When the
    session ends normally pytest-benchmark has saved the whole run, and the journal is removed;
    when it is interrupted, the journal stays, marked incomplete and interrupted.
    """

    def __init__(self, config: pytest.Config, record: _SessionRecord) -> None:
        self.config = config
        self.record = record
        self.path: Path | None = None
        self.context: dict[str, Any] | None = None
        self.benchmarks: list[dict[str, Any]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        bs = getattr(self.config, "_benchmarksession", None)
        if (report.when != "call" or not report.passed or bs is None or not bs.benchmarks
                or not hasattr(bs.storage, "path")):
            return
        with _interrupts_deferred(self.config, reraise=True):  # keep the journal whole
            self._record(bs)

    def _record(self, bs: Any) -> None:
        if self.context is None:
            import pytest_benchmark

            started = datetime.now(timezone.utc)
            self.context = {
                "machine_info": bs.get_machine_info(),
                "commit_info": self.config.hook.pytest_benchmark_generate_commit_info(
                    config=self.config),
                "datetime": started.isoformat(), "version": pytest_benchmark.__version__,
                "gdbench_partial": True}
            folder = Path(bs.storage.path) / "partial"  # file storage (the default)
            folder.mkdir(parents=True, exist_ok=True)
            self.path = folder / f"{started:%Y%m%d_%H%M%S}_{os.getpid()}_unfinished.json"
        self.benchmarks = [b.as_dict(include_data=False) for b in bs.benchmarks
                           if b and not b.has_error]
        self._write(complete=False)

    def _write(self, complete: bool, interrupted: bool = False) -> None:
        doc = {**self.context, "gdbench": {
            "profile": self.config._gdbench_profile.name, "complete": complete,
            "interrupted": interrupted, "incomplete_because": ["journal of an unfinished run"],
            "load_before": self.record.load_before}, "benchmarks": self.benchmarks}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, default=str))
        os.replace(tmp, self.path)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.path is None or not self.path.exists():
            return
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            self._write(complete=False, interrupted=True)
            tr = self.config.pluginmanager.get_plugin("terminalreporter")
            if tr is not None:
                tr.write_line(f"gdbench: interrupted; the {len(self.benchmarks)} benchmarks that "
                              f"finished are kept in {self.path} (not a complete run: reports "
                              "skip it unless named).")
            return
        # pytest-benchmark's own sessionfinish (a wrapper) has saved the run by now
        self.path.unlink()
        if not any(self.path.parent.iterdir()):
            self.path.parent.rmdir()


class _Progress:
    """A progress line after each benchmark that ran in the long profiles: done / total (skips
    included), elapsed and an estimate of the time left (tqdm's meter)."""

    def __init__(self, config: pytest.Config, record: _SessionRecord) -> None:
        self.config = config
        self.record = record
        self.start = time.perf_counter()
        self.done = 0
        self.skipped = 0

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.start = time.perf_counter()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.nodeid not in self.record.collected_ids:
            return
        not_run = (report.when == "setup" and not report.passed) or (
            report.when == "call" and report.skipped)
        if not_run:
            self.done += 1
            self.skipped += 1
            return  # skipped (or failed before it ran): counted, not announced
        if report.when != "call":
            return
        self.done += 1
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is None:
            return
        from tqdm import tqdm

        meter = tqdm.format_meter(
            self.done, len(self.record.collected), time.perf_counter() - self.start,
            bar_format="{n_fmt}/{total_fmt} benchmarks done, {elapsed} elapsed, ~{remaining} left")
        skipped = f" ({self.skipped} of them skipped)" if self.skipped else ""
        tr.write_line(f"[gdbench {self.config._gdbench_profile.name}] {meter}{skipped}: "
                      f"{report.nodeid.split('::')[-1]}")


def _targets_table(terminalreporter, config: pytest.Config) -> None:
    """The performance targets of this run, when it measured what they compare."""
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    from bench.analysis.targets import evaluate, verdict
    from bench.results import rows_from_benchmarks

    table = evaluate(rows_from_benchmarks(
        [b.as_dict(include_data=False) for b in session.benchmarks
         if b and not b.has_error]))
    if table.empty:
        return
    title = "gdbench performance targets (ratios from this run)"
    if config._gdbench_profile.name == "quick":
        title += " -- quick profile: smoke values, not numbers to quote"
    terminalreporter.write_sep("-", title)
    terminalreporter.write_line("(paired: the median of per-round ratios, the reference timed "
                                "right before each round)")
    for r in table.itertuples():
        how = "paired" if r.paired else "      "
        terminalreporter.write_line(f"{verdict(r):9} {r.ratio:7.2f} (limit {r.limit:g}) {how}  "
                                    f"{r.subject}: {r.target}")
    if table["noisy"].any():
        terminalreporter.write_line("(too noisy: a row it compares has IQR / median above "
                                    "bench.results.NOISY_REL_IQR, or an epoch measured below "
                                    "its own floor; rerun on a quiet machine)")
