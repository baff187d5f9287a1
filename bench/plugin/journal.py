"""The journal that keeps a killed session's finished benchmarks (see ``Journal``)."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from bench.plugin.session import SessionRecord, interrupts_deferred

__all__ = ["Journal"]


class Journal:
    """Keeps a killed session's finished benchmarks: after each one, everything finished so
    far is written atomically (temporary file + rename) to ``<storage>/partial/``. When the
    session ends normally pytest-benchmark has saved the whole run, and the journal is removed;
    when it is interrupted, the journal stays, marked incomplete and interrupted.
    """

    def __init__(self, config: pytest.Config, record: SessionRecord) -> None:
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
        with interrupts_deferred(self.config, reraise=True):  # keep the journal whole
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
