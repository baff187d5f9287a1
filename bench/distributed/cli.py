"""``python -m bench.distributed`` and ``torchrun ... -m bench.distributed``: one data-parallel
run (or the all-reduce micro-benchmark); prints rank 0's summary as JSON."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from bench import cli
from bench.distributed.allreduce import (
    DEFAULT_MESSAGE_BYTES,
    allreduce_benchmark,
    allreduce_job,
    ring_fit_fields,
)
from bench.distributed.launcher import DEFAULT_TIMEOUT_S, dist_backend
from bench.distributed.training import run_data_parallel, train_job
from bench.workload.config import RunConfig

__all__ = ["main", "parse"]


def _parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(
        prog="python -m bench.distributed",
        description="Data-parallel minibatch SGD (torch.distributed). Under torchrun "
                    "each process is one rank; run directly, it spawns --world-size ranks.")
    p.add_argument("--world-size", type=cli.int_in(1, 1024), default=None,
                   help="ranks to spawn (default 2; not under torchrun, which sets them)")
    p.add_argument("--device", type=cli.choice(["cpu", "cuda"]), default="cpu")
    p.add_argument("--model", default="softmax")
    p.add_argument("--optimizer", default="sgd")
    p.add_argument("--batch-size", type=cli.int_in(1, 50_000), default=600,
                   help="global minibatch size B")
    p.add_argument("--learning-rate", type=cli.float_in(0, None, lo_open=True), default=0.13)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--max-epochs", type=cli.int_in(1, 10**6), default=1)
    p.add_argument("--max-steps", type=cli.int_in(1, None), default=None)
    p.add_argument("--threads-per-rank", type=cli.int_in(1, 1024), default=1)
    p.add_argument("--timeout-s", type=cli.float_in(0, None, lo_open=True),
                   default=DEFAULT_TIMEOUT_S)
    p.add_argument("--allreduce", action="store_true",
                   help="run the all-reduce micro-benchmark instead of training")
    return p


def parse(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, RunConfig]:
    """The validated arguments and the run's configuration (a one-line usage error for a bad
    one, ``bench.cli``); runs nothing."""
    p = _parser()
    args = p.parse_args(argv)
    under_torchrun = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    if args.world_size is not None and under_torchrun:
        p.refuse("--world-size", args.world_size, "means nothing under torchrun (its "
                 "--nproc-per-node and --nnodes set the ranks)")
    args.world_size = args.world_size or 2
    if args.allreduce:
        for option, value, default in (("--model", args.model, "softmax"),
                                       ("--optimizer", args.optimizer, "sgd"),
                                       ("--batch-size", args.batch_size, 600),
                                       ("--max-steps", args.max_steps, None)):
            if value != default:
                p.refuse(option, value, "means nothing with --allreduce (no training)")
    config = RunConfig(backend="torch", device=args.device, model=args.model,
                       optimizer=args.optimizer, batch_size=args.batch_size,
                       learning_rate=args.learning_rate, dtype=args.dtype,
                       max_epochs=args.max_epochs, max_steps=args.max_steps,
                       init="random" if args.model == "mlp" else "zeros")
    return args, config


def _summary(result: dict[str, Any], world_size: int) -> dict[str, Any]:
    keys = ("steps", "epochs", "final_valid_error", "compute_s", "allreduce_s", "eval_s",
            "total_s")
    return {"world_size": world_size, **{k: result.get(k) for k in keys}}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.distributed``; its exit status (one-line errors: ``bench.cli``)."""
    return cli.run(_main, argv, prog="python -m bench.distributed")


def _main(argv: Sequence[str] | None = None) -> int:
    args, config = parse(argv)
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # started by torchrun
        import torch
        import torch.distributed as dist

        torch.set_num_threads(args.threads_per_rank)
        rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        if args.device == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(dist_backend(args.device), init_method="env://",
                                timeout=timedelta(seconds=args.timeout_s))
        try:
            if args.allreduce:
                out = allreduce_job(rank, world_size, DEFAULT_MESSAGE_BYTES, 5, 0.3,
                                     args.device)
                out.update(ring_fit_fields(out, world_size))
            else:
                out = _summary(train_job(rank, world_size, [config], None, 1, 0, False)[0]
                               ["rounds"][-1], world_size)
        finally:
            dist.destroy_process_group()
        if rank == 0:
            print(json.dumps(out))
        return 0
    if args.allreduce:
        out = allreduce_benchmark(args.world_size, device=args.device,
                                  threads_per_rank=args.threads_per_rank,
                                  timeout_s=args.timeout_s)
    else:
        run = run_data_parallel(config, args.world_size, threads_per_rank=args.threads_per_rank,
                                timeout_s=args.timeout_s)[0]
        out = _summary(run.rounds[-1], args.world_size)
    print(json.dumps(out))
    return 0
