"""What a pytest session selected, ran and skipped, how it ended and under what machine load:
the ``gdbench`` block of each saved result file (see ``bench.pytest_plugin``)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bench.plugin.terminal import targets_table

__all__ = ["BENCH_FOLDER", "LOADED_PER_CPU", "SessionRecord", "interrupts_deferred",
           "load_line", "machine_load"]

#: Load per CPU (1-minute load average / CPU count) above which a machine counts as loaded: the
#: benchmarks use every core (BLAS and torch threads), so half a core's worth of other runnable
#: work already shows as slower, noisier rounds.
LOADED_PER_CPU = 0.5
BENCH_FOLDER = "bench/benchmarks"


def machine_load() -> dict[str, Any]:
    """The 1-, 5- and 15-minute load averages against the CPU count (None where unknown)."""
    try:
        one, five, fifteen = os.getloadavg()
    except (OSError, AttributeError):  # not available on this platform
        one = five = fifteen = None
    cpus = os.cpu_count() or 1
    return {"load_1min": one, "load_5min": five, "load_15min": fifteen, "cpu_count": cpus,
            "loaded": None if one is None else one / cpus > LOADED_PER_CPU}


def _is_benchmark(item: pytest.Item) -> bool:
    return "benchmark" in getattr(item, "fixturenames", ())


class SessionRecord:
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
        with interrupts_deferred(self.config, "gdbench: interrupt received while the finished "
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
                          + load_line(self.load_before, self.load_after))
        targets_table(tr, config)


@contextlib.contextmanager
def interrupts_deferred(config: pytest.Config, message: str | None = None,
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


def load_line(before: dict[str, Any], after: dict[str, Any] | None) -> str:
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
