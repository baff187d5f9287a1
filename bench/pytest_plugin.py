"""gdbench's pytest plugin: the profile option, shared fixtures, machine info, progress, and
the session record that tells a complete run from a partial one.

Registered by the project's root ``conftest.py``.

Plain ``pytest`` runs the tests and the benchmarks as a smoke run of the ``quick`` profile (not
saved; the run says so and how to run the benchmarks); ``pytest --benchmark-only`` runs the
benchmarks (``standard`` profile unless ``--gdbench-profile`` or ``$GDBENCH_PROFILE`` names
another).

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

import os
from pathlib import Path
from typing import Any

import pytest

from bench.grid import Case, cases
from bench.plugin.journal import Journal
from bench.plugin.session import LOADED_PER_CPU, SessionRecord, load_line, machine_load
from bench.plugin.terminal import Progress
from bench.profiles import ENV_PROFILE, Profile, get_profile
from bench.workload.config import batch_sizes_for, placement_applies
from bench.workload.datasets import get_dataset

__all__ = ["LOADED_PER_CPU", "Case", "cases", "load_line", "machine_load"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gdbench")
    group.addoption("--gdbench-profile", default=None, choices=["quick", "standard", "gpu", "full"],
                    help=f"benchmark profile (default: ${ENV_PROFILE}, else 'standard' with "
                         f"--benchmark-only and '{SMOKE_PROFILE}' as a smoke run without)")
    group.addoption("--gdbench-dataset", default=None,
                    help="dataset the benchmarks train on (bench.workload.datasets.DATASETS; "
                         "default: mnist)")


#: The profile of a plain ``pytest`` (no --benchmark-only, no profile named): a smoke run.
SMOKE_PROFILE = "quick"
SMOKE_LINE = (f"gdbench: plain pytest runs the benchmarks as a smoke test ({SMOKE_PROFILE} "
              "profile, not saved); to measure, run `pytest --benchmark-only` (standard "
              "profile; --gdbench-profile quick|standard|gpu|full picks another)")


def _smoke(config: pytest.Config) -> bool:
    """Whether this is a plain ``pytest``: no --benchmark-only and no profile named."""
    return not (config.getoption("--gdbench-profile") or os.environ.get(ENV_PROFILE)
                or config.getoption("benchmark_only", False))



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
    config._gdbench_smoke = _smoke(config)
    try:
        config._gdbench_profile = get_profile(
            SMOKE_PROFILE if config._gdbench_smoke else config.getoption("--gdbench-profile"),
            config.getoption("--gdbench-dataset"))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    _resolve_storage(config)
    _name_storage_by_machine(config)
    if config._gdbench_profile.name == "quick" and not config.getoption("benchmark_save"):
        # A smoke run: not autosaved into results/, so reports keep showing real runs.
        config.option.benchmark_autosave = False
    record = SessionRecord(config)
    config.pluginmanager.register(record, "gdbench-session")
    if config._gdbench_profile.progress:
        config.pluginmanager.register(Progress(config, record), "gdbench-progress")
    if config.getoption("benchmark_autosave") or config.getoption("benchmark_save"):
        config.pluginmanager.register(Journal(config, record), "gdbench-journal")


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [SMOKE_LINE] if config._gdbench_smoke else []


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    """Under ``-q`` there is no header: say it at the end too, where benchmarks ran."""
    record = config.pluginmanager.get_plugin("gdbench-session")
    if config._gdbench_smoke and record is not None and record.collected:
        terminalreporter.write_line(SMOKE_LINE)


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
                                model_batch_sizes=prof.model_step_batch_sizes),
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


