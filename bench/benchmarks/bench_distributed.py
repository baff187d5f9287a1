"""Data-parallel benchmarks: minibatch SGD at P ranks (``world_size``) and the all-reduce alone.

* ``test_distributed``: P spawned ranks (``bench.distributed``; gloo on the CPU, NCCL with one
  GPU per rank) train a fixed budget of steps at global batch B, ``warmup_rounds + rounds``
  times inside one launch; each rank loads the profile's dataset itself. On the CPU, P = 1
  runs with as many threads as there are cores (the fair single-process comparison) and with
  one thread (one worker's speed); P > 1 runs ``cores // P`` threads per rank. All P use the
  same step code (the data-parallel trainer; no fast paths), so the comparison isolates the
  parallelism.
  The benchmark's own timing includes starting the ranks and loading the data; the numbers to
  use are in ``extra_info`` (medians over the rounds, from rank 0).
* P runs over ``profile.world_sizes`` (1, 2), and 4, 8 in the ``full`` profile.
* ``test_allreduce``: one SUM all-reduce of 4 B .. 64 MB (and the two models' gradient sizes)
  at each P >= 2, with the ring model's alpha and beta fitted (``bench.distributed.fit_ring``).

Cases that cannot run here are collected and skipped with the reason (too few cores or GPUs,
no CUDA); a rank that raises, dies or hangs fails its benchmark with the launch's error
(``DistributedError``) within the timeout, and the session goes on.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

import numpy as np
import pytest

from bench import record
from bench.distributed import (
    DEFAULT_MESSAGE_BYTES,
    DistributedError,
    allreduce_benchmark,
    dist_backend,
    run_data_parallel,
    unavailable_reason,
)
from bench.harness import TimeSplit
from bench.workload.config import RunConfig
from bench.workload.models import model_spec


@dataclass(frozen=True)
class DPGrid:
    """What a profile runs data-parallel: models, global batch sizes, a step budget per round
    (``examples`` / B steps, at least ``min_steps``) and the launch's timeout."""

    models: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    examples: int
    min_steps: int = 5
    seconds_per_size: float = 0.3
    timeout_s: float = 600.0


GRIDS = {
    "quick": DPGrid(("softmax", "mlp"), (600,), 6_000, seconds_per_size=0.05, timeout_s=300.0),
    "standard": DPGrid(("softmax", "mlp"), (20, 100, 1000), 20_000),
    "gpu": DPGrid(("softmax", "mlp"), (600, 5000), 50_000),
    "full": DPGrid(("softmax", "mlp"), (100, 600, 5000), 50_000, seconds_per_size=1.0),
}



def model_gradient_bytes(dataset: str, models: tuple[str, ...] = ("softmax", "mlp")
                         ) -> tuple[int, ...]:
    """Float32 gradient bytes of each model on ``dataset`` (MNIST: softmax 7,850 and MLP
    397,510 parameters)."""
    return tuple(4 * sum(math.prod(s) for s in model_spec(m, dataset).shapes().values())
                 for m in models)


@dataclass(frozen=True)
class DPCase:
    device: str
    world_size: int
    threads_per_rank: int
    model: str = "softmax"
    batch_size: int = 600

    @property
    def id(self) -> str:
        return (f"torch-{self.device}-P{self.world_size}x{self.threads_per_rank}t-"
                f"{self.model}-B{self.batch_size}")

    def skip_reason(self) -> str | None:
        return unavailable_reason(self.device, self.world_size, self.threads_per_rank)


def _placements(world_sizes: tuple[int, ...]) -> list[tuple[str, int, int]]:
    """(device, P, threads per rank): CPU P = 1 at all cores and at one thread, P > 1 at
    cores // P threads; CUDA one rank per GPU."""
    cores = os.cpu_count() or 1
    out = []
    for P in world_sizes:
        if P == 1:
            out += [("cpu", 1, t) for t in sorted({cores, 1}, reverse=True)]
        else:
            out.append(("cpu", P, max(1, cores // P)))
        out.append(("cuda", P, 1))
    return out


#: World sizes the ``full`` profile adds to ``profile.world_sizes`` (skipped with the reason
#: where the machine has too few cores or GPUs).
FULL_EXTRA_WORLD_SIZES = (4, 8)


def _world_sizes(profile) -> tuple[int, ...]:
    extra = FULL_EXTRA_WORLD_SIZES if profile.name == "full" else ()
    return tuple(sorted({*profile.world_sizes, *extra}))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    profile = metafunc.config._gdbench_profile
    grid = GRIDS.get(profile.name, GRIDS["standard"])
    if "dp_case" in metafunc.fixturenames:
        found = [DPCase(d, P, t, m, B) for d, P, t in _placements(_world_sizes(profile))
                 for m in grid.models for B in grid.batch_sizes if d in profile.devices]
        metafunc.parametrize("dp_case", found, ids=[c.id for c in found])
    if "allreduce_case" in metafunc.fixturenames:
        found = [DPCase(d, P, t) for d, P, t in _placements(_world_sizes(profile))
                 if P >= 2 and d in profile.devices]
        metafunc.parametrize("allreduce_case", found,
                             ids=[f"torch-{c.device}-P{c.world_size}" for c in found])


def _median(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else float(np.median(values))


def test_distributed(benchmark, dp_case, profile):
    """Minibatch SGD at global batch B on P ranks: time per step, all-reduce apart."""
    reason = dp_case.skip_reason()
    if reason:
        pytest.skip(reason)
    grid = GRIDS.get(profile.name, GRIDS["standard"])
    B, P = dp_case.batch_size, dp_case.world_size
    config = RunConfig(backend="torch", device=dp_case.device, dataset=profile.dataset,
                       model=dp_case.model,
                       optimizer="sgd", batch_size=B, learning_rate=profile.learning_rate,
                       init="random" if dp_case.model == "mlp" else "zeros", max_epochs=1,
                       max_steps=max(grid.min_steps, grid.examples // B))
    runs = []

    def target():
        runs.append(run_data_parallel(config, P, threads_per_rank=dp_case.threads_per_rank,
                                      rounds=profile.rounds,
                                      warmup_rounds=profile.warmup_rounds,
                                      timeout_s=grid.timeout_s)[0])

    benchmark.group = f"distributed {dp_case.model} B={B}"
    try:
        benchmark.pedantic(target, rounds=1, iterations=1)
    except DistributedError as exc:
        pytest.fail(f"{dp_case.id}: {exc}", pytrace=False)
    load_1min = os.getloadavg()[0]
    run = runs[-1]
    rounds = run.rounds
    steps = [max(r["steps"], 1) for r in rounds]
    compute = [r["compute_s"] / s for r, s in zip(rounds, steps, strict=True)]
    allreduce = [r["allreduce_s"] / s for r, s in zip(rounds, steps, strict=True)]
    step = [c + a for c, a in zip(compute, allreduce, strict=True)]
    record.write(
        benchmark, kind="distributed", profile=profile.name, config=config,
        **{**rounds[-1], "batch_size": B},
        **{f"median_{k}": _median([r[k] for r in rounds]) for k in asdict(TimeSplit())},
        dist_backend=dist_backend(dp_case.device), world_size=P,
        threads_per_rank=run.threads_per_rank, local_batch_size=math.ceil(B / P),
        gradient_bytes=run.gradient_bytes, rounds=len(rounds),
        seconds_per_step=float(np.median(step)),
        compute_s_per_step=float(np.median(compute)),
        allreduce_s_per_step=float(np.median(allreduce)),
        allreduce_share=float(np.median([a / s if s > 0 else 0.0
                                         for a, s in zip(allreduce, step, strict=True)])),
        allreduce_s_per_epoch=float(np.median([r["allreduce_s"] / r["epoch_equivalents"]
                                               for r in rounds])),
        seconds_per_epoch=float(np.median([s * r["batches_per_epoch"]
                                           for s, r in zip(step, rounds, strict=True)])),
        load_avg_1min=load_1min)
    assert all(r["status"] == "ok" for r in rounds), [r["message"] for r in rounds]
    assert run.rounds[-1]["steps"] == config.max_steps


def test_allreduce(benchmark, allreduce_case, profile):
    """One SUM all-reduce per message size (4 B .. 64 MB) at P ranks, fitted to the ring
    model ``T(n) = 2 (P-1) alpha + 2 (P-1)/P n beta``."""
    reason = allreduce_case.skip_reason()
    if reason:
        pytest.skip(reason)
    grid = GRIDS.get(profile.name, GRIDS["standard"])
    sizes = tuple(sorted({*DEFAULT_MESSAGE_BYTES, *model_gradient_bytes(profile.dataset)}))
    out = {}

    def target():
        out.update(allreduce_benchmark(allreduce_case.world_size, sizes,
                                       device=allreduce_case.device,
                                       threads_per_rank=allreduce_case.threads_per_rank,
                                       seconds_per_size=grid.seconds_per_size,
                                       timeout_s=grid.timeout_s))

    benchmark.group = "all-reduce"
    try:
        benchmark.pedantic(target, rounds=1, iterations=1)
    except DistributedError as exc:
        pytest.fail(f"all-reduce P={allreduce_case.world_size}: {exc}", pytrace=False)
    record.write(
        benchmark, kind="allreduce", profile=profile.name, **out, backend="torch",
        device=allreduce_case.device, dist_backend=dist_backend(allreduce_case.device),
        world_size=allreduce_case.world_size, threads_per_rank=allreduce_case.threads_per_rank,
        dtype="float32", load_avg_1min=os.getloadavg()[0])
    assert len(out["seconds"]) == len(sizes) and all(s > 0 for s in out["seconds"])
    assert out["alpha_s"] >= 0 and out["beta_s_per_byte"] >= 0
