"""gdbench's pytest plugin: the profile option, shared fixtures, machine info and progress.

Registered by the project's root ``conftest.py``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from bench.profiles import ENV_PROFILE, Profile, get_profile

__all__ = ["Case"]


@dataclass(frozen=True)
class Case:
    """One benchmark point: where it runs, the batch size and the data placement."""

    backend: str
    device: str
    batch_size: int
    placement: str = "resident"
    pinned: bool = False
    kernel: str = "eager"
    order: str = "shuffle"

    @property
    def id(self) -> str:
        where = ""
        if self.device != "cpu":
            where = f"-{self.placement}" + ("-pinned" if self.pinned else "")
        fast = "" if self.kernel == "eager" else f"-{self.kernel}"
        order = "" if self.order == "shuffle" else f"-{self.order}"
        return f"{self.backend}-{self.device}-B{self.batch_size}{where}{fast}{order}"

    @property
    def variant(self) -> str:
        return "sgd" if self.batch_size == 1 else "minibatch"

    def skip_reason(self) -> str | None:
        from impls.registry import unavailable_reason

        return unavailable_reason(self.backend, self.device)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gdbench")
    group.addoption("--gdbench-profile", default=None, choices=["quick", "standard", "gpu", "full"],
                    help=f"benchmark profile (default: ${ENV_PROFILE}, else 'standard')")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config._gdbench_profile = get_profile(config.getoption("--gdbench-profile"))
    if config._gdbench_profile.name == "quick" and not config.getoption("benchmark_save"):
        # A smoke run: not autosaved into results/, so reports keep showing real runs.
        config.option.benchmark_autosave = False
    if config._gdbench_profile.progress:
        config.pluginmanager.register(_Progress(config), "gdbench-progress")
    if config.getoption("benchmark_autosave") or config.getoption("benchmark_save"):
        config.pluginmanager.register(_Journal(config), "gdbench-journal")


@pytest.fixture(scope="session")
def profile(request: pytest.FixtureRequest) -> Profile:
    """The benchmark profile of this session."""
    return request.config._gdbench_profile


def _placements(device: str) -> list[tuple[str, bool]]:
    if device == "cpu":
        return [("resident", False)]  # placement is a no-op on the CPU
    return [("resident", False), ("streamed", False), ("streamed", True)]


#: GPU fast paths by backend, and the largest B each supports.
FAST_KERNELS = {"torch": ("cuda-graph", 50_000), "cupy": ("fused", 32)}
#: From this B on, CPU epochs are also run in order: the reference for the products-only
#: floor and for the reshuffle's cost.
IN_ORDER_FROM_BATCH = 600


def cases(profile: Profile, batch_sizes: str = "batch_sizes") -> list[Case]:
    """Every (backend, device, B, placement) point of the profile, usable or not."""
    from impls.registry import BACKENDS

    out = []
    for backend, (_, devices) in BACKENDS.items():
        for device in devices:
            sizes = getattr(profile, batch_sizes)
            if device != "cpu" and batch_sizes == "batch_sizes":
                sizes = profile.gpu_batch_sizes
            for B in sizes:
                for placement, pinned in _placements(device):
                    out.append(Case(backend, device, B, placement, pinned))
                if device == "cpu" and B >= IN_ORDER_FROM_BATCH:
                    out.append(Case(backend, device, B, order="in-order"))
                kernel, max_batch = FAST_KERNELS.get(backend, (None, 0))
                if device != "cpu" and kernel and B <= max_batch:
                    out.append(Case(backend, device, B, "resident", False, kernel))
    return out


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    prof = metafunc.config._gdbench_profile
    for fixture, sizes, all_placements in (("epoch_case", "batch_sizes", True),
                                           ("step_case", "step_batch_sizes", False),
                                           ("ttt_case", "ttt_batch_sizes", False)):
        if fixture in metafunc.fixturenames:
            found = [c for c in cases(prof, sizes) if all_placements or (
                c.placement == "resident" and c.kernel == "eager" and c.order == "shuffle")]
            metafunc.parametrize(fixture, found, ids=[c.id for c in found])
    if "peer_batch" in metafunc.fixturenames:
        metafunc.parametrize("peer_batch", prof.peer_batch_sizes,
                             ids=[f"B{b}" for b in prof.peer_batch_sizes])
    if "floor_batch" in metafunc.fixturenames:
        metafunc.parametrize("floor_batch", prof.batch_sizes,
                             ids=[f"B{b}" for b in prof.batch_sizes])
    if "transfer_case" in metafunc.fixturenames:
        found = []
        for c in cases(prof, "transfer_batch_sizes"):
            if c.device == "cpu":
                if c.batch_size == prof.transfer_batch_sizes[0]:
                    found.append((c, "n/a"))
            elif c.placement == "resident" and c.kernel == "eager":
                found += [(c, kind) for kind in ("pageable", "pinned", "d2d")]
        metafunc.parametrize("transfer_case", found, ids=[
            f"{c.backend}-{c.device}" if k == "n/a" else f"{c.backend}-{c.device}-{k}-"
            f"rows{c.batch_size}" for c, k in found])


def pytest_benchmark_update_machine_info(config: pytest.Config,
                                         machine_info: dict[str, Any]) -> None:
    from bench.machine import describe_machine

    machine_info["gdbench"] = describe_machine()
    machine_info["gdbench_profile"] = config._gdbench_profile.name


class _Journal:
    """Keeps a killed session's finished benchmarks: after each one, everything finished so
    far is written atomically (temporary file + rename) to ``<storage>/partial/``. When the
    session ends normally pytest-benchmark has saved the whole run, and the journal is removed.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.path: Path | None = None
        self.context: dict[str, Any] | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        bs = getattr(self.config, "_benchmarksession", None)
        if (report.when != "call" or not report.passed or bs is None or not bs.benchmarks
                or not hasattr(bs.storage, "path")):
            return
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
        doc = {**self.context, "benchmarks": [b.as_dict(include_data=False)
                                              for b in bs.benchmarks if not b.has_error]}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, default=str))
        os.replace(tmp, self.path)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # pytest-benchmark's own sessionfinish (a wrapper) has saved the run by now
        if self.path is not None and self.path.exists():
            self.path.unlink()
            if not any(self.path.parent.iterdir()):
                self.path.parent.rmdir()


class _Progress:
    """A progress line after each benchmark of the long profiles (count, elapsed minutes)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.start = time.perf_counter()
        self.done = 0

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" or "/benchmarks/" not in report.fspath.replace("\\", "/"):
            return
        self.done += 1
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line(f"[gdbench {self.config._gdbench_profile.name}] {self.done} "
                          f"benchmarks done, {(time.perf_counter() - self.start) / 60:.1f} min "
                          f"elapsed: {report.nodeid.split('::')[-1]}")


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    """The performance targets of this run, when it measured what they compare."""
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    from bench.results import rows_from_benchmarks
    from bench.targets import evaluate

    table = evaluate(rows_from_benchmarks(
        [b.as_dict(include_data=False) for b in session.benchmarks if not b.has_error]))
    if table.empty:
        return
    title = "gdbench performance targets (ratios from this run)"
    if config._gdbench_profile.name == "quick":
        title += " -- quick profile: smoke values, not numbers to quote"
    terminalreporter.write_sep("-", title)
    terminalreporter.write_line("(paired: the median of per-round ratios, the reference timed "
                                "right before each round)")
    for r in table.itertuples():
        verdict = "holds" if r.holds else "MISSED"
        how = "paired" if r.paired else "      "
        terminalreporter.write_line(f"{verdict:7} {r.ratio:7.2f} (limit {r.limit:g}) {how}  "
                                    f"{r.subject}: {r.target}")
