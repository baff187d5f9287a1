"""Where trials run: in this process, a local process pool (the default), or a Ray cluster.

Every runner has ``workers`` (how many trials it runs at once), ``submit(spec) -> Future`` of
the trial's record, and ``close()``. Trials run on one thread each (``trial.thread_limit``),
so a pool of as many workers as cores is the fair use of a machine.

Faults: pool workers ignore SIGINT (Ctrl-C reaches the driver alone, which then stops them:
``close(cancel=True)``); a worker that dies makes its trials fail with ``WorkerDied`` naming
the worker's exit (e.g. killed by SIGKILL). A Ray address that does not answer within
``connect_timeout_s`` (default 30 s, ``$GDBENCH_RAY_TIMEOUT_S``) raises ``RunnerError``; Ctrl-C
works while connecting.
"""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from bench.cli import Failure
from bench.study.trial import TrialSpec, pin_process_threads, run_trial

__all__ = ["RAY_ADDRESS_ENV", "RAY_TIMEOUT_ENV", "RUNNERS", "InProcessRunner", "PoolRunner",
           "RayRunner", "Runner", "RunnerError", "WorkerDied", "make_runner"]

RAY_ADDRESS_ENV = "GDBENCH_RAY_ADDRESS"
RAY_TIMEOUT_ENV = "GDBENCH_RAY_TIMEOUT_S"
#: Seconds a Ray address gets to answer before the study gives up on it.
RAY_CONNECT_TIMEOUT_S = 30.0
RUNNERS = ("pool", "inprocess", "ray")


class RunnerError(Failure):
    """The runner cannot start (e.g. a Ray address that does not answer)."""


class WorkerDied(Failure):
    """A pool worker ended while running a trial (killed by a signal, out of memory...)."""


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

    def close(self, cancel: bool = False) -> None:
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
        if workers is not None and not (isinstance(workers, int) and workers >= 1):
            raise ValueError(f"The 'workers' of PoolRunner must be an int >= 1 or None (the "
                             f"CPU count). Got {workers!r} instead.")
        self.workers = workers or os.cpu_count() or 1
        self._pool = ProcessPoolExecutor(self.workers, initializer=_worker_init,
                                         mp_context=multiprocessing.get_context("spawn"))
        self._procs: dict[int, Any] = {}

    def submit(self, spec: TrialSpec) -> Future:
        # Workers start inside submit: SIGINT is blocked meanwhile (and so in the new worker
        # until its initializer ignores it), delivered to the driver right after.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            inner = self._pool.submit(run_trial, spec)
            self._procs.update(self._pool._processes or {})   # no public API lists them
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        outer: Future = Future()

        def relay(f: Future) -> None:
            if outer.done():                # cancelled by the driver meanwhile
                return
            if f.cancelled():
                outer.cancel()
                outer.set_running_or_notify_cancel()
            elif isinstance(f.exception(), BrokenProcessPool):
                outer.set_exception(WorkerDied(self._deaths()))
            elif f.exception() is not None:
                outer.set_exception(f.exception())
            else:
                outer.set_result(f.result())
        inner.add_done_callback(relay)
        return outer

    def _deaths(self) -> str:
        """How the pool's workers ended (the ones that died first)."""
        ended = []
        for pid, p in self._procs.items():
            p.join(1.0)
            code = p.exitcode
            if code is not None and code < 0:
                ended.append(f"worker {pid} was killed by {signal.Signals(-code).name}")
            elif code not in (None, 0):
                ended.append(f"worker {pid} exited with status {code}")
        return "; ".join(ended) or "a worker process ended abruptly"

    def close(self, cancel: bool = False) -> None:
        """Shut the pool down; with ``cancel`` (an interrupt, a failure) stop running trials
        too: the workers are terminated, never left blocked on the call queue. A second
        Ctrl-C meanwhile waits until the workers are gone."""
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            self._stop(cancel)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def _stop(self, cancel: bool) -> None:
        if cancel:
            for p in list(self._procs.values()):
                if p.is_alive():
                    p.terminate()
            for p in list(self._procs.values()):
                p.join(5.0)
                if p.is_alive():
                    p.kill()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __repr__(self) -> str:
        return f"PoolRunner(workers={self.workers})"


def _worker_init() -> None:
    """A pool worker: Ctrl-C is the driver's to handle; threads pinned before any trial."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pin_process_threads(1)


def _ray_trial(spec: TrialSpec) -> dict[str, Any]:
    return run_trial(spec)


def _ray_timeout() -> float:
    text = os.environ.get(RAY_TIMEOUT_ENV)
    if text is None:
        return RAY_CONNECT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise RunnerError(f"${RAY_TIMEOUT_ENV}={text!r}: must be a number of seconds > 0.")
    return value


#: Run in a child process by ``_probe``: connect to the address, disconnect.
_RAY_PROBE = """
import logging, sys, ray
ray.init(address=sys.argv[1], logging_level=logging.ERROR, log_to_driver=False)
ray.shutdown()
"""


def _probe(address: str, timeout_s: float) -> None:
    """Raise RunnerError unless the cluster at ``address`` answers within ``timeout_s``.

    A closed port or an unreachable host fails at once (a TCP connect); anything else is tried
    by ``ray.init`` in a child process, killed when the bound is spent (or on Ctrl-C), so that
    this process never holds a half-made connection (Ray's own retries take minutes)."""
    if address != "auto":
        host, sep, port = address.removeprefix("ray://").rpartition(":")
        if not sep or not port.isdigit():
            raise RunnerError(f"Ray address {address!r}: expected 'auto', 'local', "
                              "'host:port' or 'ray://host:port'.")
        try:
            socket.create_connection((host, int(port)), timeout=timeout_s).close()
        except OSError as exc:
            raise RunnerError(f"Ray address {address!r} does not answer ({exc}); start the "
                              "cluster (ray start --head) or fix the address.") from None
    env = {**os.environ, "RAY_BACKEND_LOG_LEVEL": "fatal"}
    try:
        done = subprocess.run([sys.executable, "-c", _RAY_PROBE, address], env=env,
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise RunnerError(f"Ray address {address!r} did not answer within {timeout_s:g} s "
                          f"(${RAY_TIMEOUT_ENV} sets the bound); is the cluster up?") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise RunnerError(f"Ray address {address!r}: {last}")


class RayRunner:
    """Each trial a Ray task declaring ``num_cpus=1`` on a cluster at ``address``.

    ``address``: ``"auto"`` (a running local cluster), ``"host:6379"`` (a cluster's GCS),
    ``"ray://host:10001"`` (Ray Client: the 'ray' extra installs ``ray[client]``), or
    ``"local"`` (start a private instance of ``num_cpus`` CPUs here, as the tests do). Workers
    need gdbench importable and MNIST reachable: the driver's ``GDBENCH_DATA_DIR`` and
    ``PYTHONPATH`` are passed in the runtime environment. The address is trusted: the
    cluster's results are unpickled here (running on a cluster is running its code).

    Connecting is bounded by ``connect_timeout_s`` (default ``$GDBENCH_RAY_TIMEOUT_S``, else
    30 s): a port nobody listens on fails at once, an address that accepts but never answers
    when the bound is spent (``_probe``: a child process, killed then or on Ctrl-C); only an
    address that answered is then connected to here.
    """

    def __init__(self, address: str, num_cpus: int | None = None,
                 connect_timeout_s: float | None = None) -> None:
        timeout_s = connect_timeout_s if connect_timeout_s is not None else _ray_timeout()
        if address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
            raise RunnerError(f"Ray address {address!r}: Ray Client addresses need "
                              "ray[client] (grpcio): pip install -e '.[ray]'.")
        try:
            import ray
        except ImportError as exc:
            raise RunnerError(f"Running the study on Ray (address {address!r}) needs the "
                              f"'ray' extra: pip install -e '.[ray]'. ({exc})") from exc
        if address != "local" and not ray.is_initialized():
            _probe(address, timeout_s)
        self._ray = ray
        env = {k: os.environ[k] for k in ("GDBENCH_DATA_DIR", "PYTHONPATH", "GDBENCH_COMMIT")
               if k in os.environ}
        self._started = not ray.is_initialized()
        if self._started:
            kw: dict[str, Any] = {"runtime_env": {"env_vars": env}, "log_to_driver": False,
                                  "logging_level": logging.ERROR}
            if address == "local":
                kw.update(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False)
            else:
                kw["address"] = address
            ray.init(**kw)      # in the main thread: Ray starts and signals its node here
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_ray_trial)

    def submit(self, spec: TrialSpec) -> Future:
        return self._remote.remote(spec).future()

    def close(self, cancel: bool = False) -> None:
        if self._started:
            self._ray.shutdown()

    def __repr__(self) -> str:
        return f"RayRunner(workers={self.workers})"


def make_runner(kind: str | None = None, workers: int | None = None,
                ray_address: str | None = None) -> Runner:
    """The runner ``kind`` (one of ``RUNNERS``). An explicit ``kind`` wins over
    ``$GDBENCH_RAY_ADDRESS``; with no ``kind``, a Ray address (argument, else the environment)
    selects Ray, else the pool."""
    if kind is not None and kind not in RUNNERS:
        raise ValueError(f"The 'runner' of the study must be one of {', '.join(RUNNERS)}. "
                         f"Got {kind!r} instead.")
    if kind in (None, "ray"):
        ray_address = ray_address or os.environ.get(RAY_ADDRESS_ENV)
    if kind == "ray" or (kind is None and ray_address):
        return RayRunner(ray_address or "auto", num_cpus=workers)
    if kind == "inprocess":
        return InProcessRunner()
    return PoolRunner(workers)
