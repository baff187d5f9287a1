"""Where trials run: in this process, a local process pool (the default), or a Ray cluster.

Every runner has ``workers`` (how many trials it runs at once), ``submit(spec) -> Future`` of
the trial's record, and ``close()``. Trials run on one thread each (``trial.thread_limit``),
so a pool of as many workers as cores is the fair use of a machine.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Protocol

from bench.study.trial import TrialSpec, run_trial

__all__ = ["InProcessRunner", "PoolRunner", "RayRunner", "Runner", "make_runner"]

RAY_ADDRESS_ENV = "GDBENCH_RAY_ADDRESS"


class Runner(Protocol):
    workers: int

    def submit(self, spec: TrialSpec) -> Future: ...

    def close(self) -> None: ...


class InProcessRunner:
    """Run each trial at once, here (for debugging: breakpoints and tracebacks work)."""

    workers = 1

    def submit(self, spec: TrialSpec) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(run_trial(spec))
        except Exception as exc:
            fut.set_exception(exc)
        return fut

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return "InProcessRunner()"


class PoolRunner:
    """A local ``ProcessPoolExecutor`` of ``workers`` processes (default: the CPU count).

    Processes are spawned, not forked: the driver may already hold PyTorch/OpenMP threads,
    which a fork would copy in a broken state. Each worker loads MNIST once and keeps one
    trainer per backend across its trials.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._pool = ProcessPoolExecutor(self.workers,
                                         mp_context=multiprocessing.get_context("spawn"))

    def submit(self, spec: TrialSpec) -> Future:
        return self._pool.submit(run_trial, spec)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __repr__(self) -> str:
        return f"PoolRunner(workers={self.workers})"


def _ray_trial(spec: TrialSpec) -> dict[str, Any]:
    return run_trial(spec)


class RayRunner:
    """Each trial a Ray task declaring ``num_cpus=1`` on a cluster at ``address``.

    ``address``: ``"auto"`` (a running local cluster), ``"ray://host:10001"`` (Ray Client), or
    ``"local"`` (start a private instance of ``num_cpus`` CPUs here, as the tests do). Workers
    need gdbench importable and MNIST reachable: the driver's ``GDBENCH_DATA_DIR`` and
    ``PYTHONPATH`` are passed in the runtime environment.
    """

    def __init__(self, address: str, num_cpus: int | None = None) -> None:
        try:
            import ray
        except ImportError as exc:
            raise RuntimeError(f"Running the study on Ray (address {address!r}) needs the "
                               f"'ray' extra: pip install -e '.[ray]'. ({exc})") from exc
        self._ray = ray
        env = {k: os.environ[k] for k in ("GDBENCH_DATA_DIR", "PYTHONPATH", "GDBENCH_COMMIT")
               if k in os.environ}
        self._started = not ray.is_initialized()
        if self._started:
            kw: dict[str, Any] = {"runtime_env": {"env_vars": env}, "log_to_driver": False}
            if address == "local":
                ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, **kw)
            else:
                ray.init(address=address, **kw)
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_ray_trial)

    def submit(self, spec: TrialSpec) -> Future:
        return self._remote.remote(spec).future()

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()

    def __repr__(self) -> str:
        return f"RayRunner(workers={self.workers})"


def make_runner(kind: str = "pool", workers: int | None = None,
                ray_address: str | None = None) -> Runner:
    """``kind`` in ("pool", "inprocess", "ray"); a Ray address (argument or
    ``$GDBENCH_RAY_ADDRESS``) selects Ray whatever ``kind`` says."""
    ray_address = ray_address or os.environ.get(RAY_ADDRESS_ENV)
    if ray_address or kind == "ray":
        return RayRunner(ray_address or "auto", num_cpus=workers)
    if kind == "pool":
        return PoolRunner(workers)
    if kind == "inprocess":
        return InProcessRunner()
    raise ValueError(f"The 'runner' of the study must be one of 'pool', 'inprocess', 'ray'. "
                     f"Got {kind!r} instead.")
