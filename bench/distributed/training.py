"""Data-parallel training: ``bench.harness.train`` on P ranks (see ``bench.distributed``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from bench.distributed.launcher import DEFAULT_TIMEOUT_S, launch
from bench.workload.config import RunConfig
from bench.workload.datasets import Data

__all__ = ['DistributedRun', 'run_data_parallel', 'train_data_parallel']


@dataclass
class DistributedRun:
    """One data-parallel configuration's rounds, as rank 0 saw them.

    ``rounds``: ``RunResult.to_dict()`` of each timed round (warm-up rounds dropped), with
    ``allreduce_s`` split out of ``compute_s``. ``params``: the final float64 parameters of the
    last round when asked for, per rank (to check that the ranks agree).
    """

    config: RunConfig
    world_size: int
    threads_per_rank: int
    device: str
    gradient_bytes: int
    rounds: list[dict[str, Any]]
    params: list[dict[str, np.ndarray]] = field(default_factory=list)


def train_data_parallel(trainer: Any, config: RunConfig) -> Any:
    """``bench.harness.train`` on a ``DataParallelTorchTrainer`` (``reset`` first), with the
    steps' all-reduce seconds moved from ``compute_s`` into ``allreduce_s``."""
    from bench.harness import reset, train

    reset(trainer, config)
    trainer.take_allreduce_seconds()
    result = train(trainer, config)
    allreduce = trainer.take_allreduce_seconds()
    result.times.compute_s -= allreduce
    result.times.allreduce_s = allreduce
    return result


def train_job(rank: int, world_size: int, configs: Sequence[RunConfig], data: Data | None,
               rounds: int, warmup_rounds: int, return_params: bool) -> list[dict[str, Any]]:
    """A rank's share of ``run_data_parallel``: every config, ``warmup + rounds`` times."""
    import torch

    from bench.workload.datasets import load
    from impls.pytorch_dp import DataParallelTorchTrainer

    out = []
    for config in configs:
        trainer = DataParallelTorchTrainer(
            rank=rank, world_size=world_size, device=config.device or "cpu",
            dtype=config.dtype, dataset=config.dataset, model=config.model,
            optimizer=config.optimizer, momentum=config.momentum)
        trainer.load(data if data is not None else
                     load(config.dataset, pixel_scale=config.pixel_scale))
        results = [train_data_parallel(trainer, config).to_dict()
                   for _ in range(warmup_rounds + rounds)][warmup_rounds:]
        out.append({"rounds": results, "gradient_bytes": trainer.gradient_bytes,
                    "threads": torch.get_num_threads(),
                    "params": trainer.get_params() if return_params else None})
        del trainer
    return out


def run_data_parallel(configs: RunConfig | Sequence[RunConfig], world_size: int, *,
                      data: Data | None = None, threads_per_rank: int = 1, rounds: int = 1,
                      warmup_rounds: int = 0, return_params: bool = False,
                      timeout_s: float = DEFAULT_TIMEOUT_S) -> list[DistributedRun]:
    """Train each config data-parallel on ``world_size`` spawned ranks (one launch for all).

    Every config must be a torch config on one device kind (``cpu``: gloo, ``cuda``: NCCL, one
    GPU per rank) with resident data; ``data`` is sent to every rank (small data, tests), else
    each rank loads the configs' dataset itself (``bench.workload.datasets.load``).
    """
    configs = [configs] if isinstance(configs, RunConfig) else list(configs)
    devices = {c.device or "cpu" for c in configs}
    bad = [c for c in configs if c.backend != "torch" or c.placement != "resident"
           or c.kernel != "eager"]
    if bad or len(devices) != 1:
        raise ValueError("run_data_parallel runs backend='torch', placement='resident', "
                         "kernel='eager' configs on one device kind; got "
                         f"{[(c.backend, c.device, c.placement, c.kernel) for c in configs]}. "
                         "Set backend='torch' and device='cpu' (gloo) or 'cuda' (nccl).")
    configs = [replace(c, device=c.device or "cpu") for c in configs]
    device = devices.pop()
    per_rank = launch(train_job, world_size,
                      (configs, data, rounds, warmup_rounds, return_params),
                      device=device, threads_per_rank=threads_per_rank, timeout_s=timeout_s)
    runs = []
    for i, config in enumerate(configs):
        first = per_rank[0][i]
        runs.append(DistributedRun(
            config=config, world_size=world_size, threads_per_rank=first["threads"],
            device=device, gradient_bytes=first["gradient_bytes"], rounds=first["rounds"],
            params=[r[i]["params"] for r in per_rank] if return_params else []))
    return runs
