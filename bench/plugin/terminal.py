"""What the plugin writes to the terminal during and after a run: progress lines in the long
profiles and the performance targets of the run."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from bench.plugin.session import SessionRecord

__all__ = ["Progress", "targets_table"]


class Progress:
    """A progress line after each benchmark that ran in the long profiles: done / total (skips
    included), elapsed and an estimate of the time left (tqdm's meter)."""

    def __init__(self, config: pytest.Config, record: SessionRecord) -> None:
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


def targets_table(terminalreporter, config: pytest.Config) -> None:
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
