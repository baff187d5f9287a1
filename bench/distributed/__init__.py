"""The data-parallel runner: P processes on ``torch.distributed`` (gloo on CPUs, NCCL on GPUs).

Two ways to start the ranks:

* ``launch(job, P, ...)``: spawned here with ``torch.multiprocessing`` (start method "spawn"),
  rendezvous on ``tcp://127.0.0.1:<free port>``; every rank runs ``job(rank, P, *args)`` and
  the parent collects what each returns. A rank that raises, dies or outlives ``timeout_s``
  ends the launch with ``DistributedError`` naming the rank and what happened; the other
  ranks are terminated (the parent never hangs). Collectives time out after ``timeout_s``.
* ``torchrun --nproc-per-node P -m bench.distributed ...``: ``main`` sees ``RANK`` /
  ``WORLD_SIZE`` in the environment and joins the ``env://`` rendezvous torchrun set up (one
  machine or several: ``--nnodes N --rdzv-backend c10d --rdzv-endpoint HOST:PORT``).

A data-parallel run is ``bench.harness.train`` on an ``impls.pytorch_dp.DataParallelTorchTrainer``
(see there for the sharding and the weighting of uneven shards); afterwards the steps'
all-reduce seconds are moved out of ``compute_s`` into ``allreduce_s`` (they were measured inside
the host-clock window around the steps, so ``compute_s - allreduce`` is the steps' own time).

The all-reduce micro-benchmark times one SUM all-reduce of n bytes (float32) and fits the ring
model (Patarasuk & Yuan 2009; NCCL's "bus bandwidth" uses the same factor)::

    T(n) = 2 (P - 1) alpha + 2 (P - 1) / P * n * beta        alpha: s, beta: s/byte

by least squares on relative residuals ``(T_model - T) / T``, so 4 B and 64 MB count alike.
"""

from bench.distributed.allreduce import (
    DEFAULT_MESSAGE_BYTES,
    allreduce_benchmark,
    fit_ring,
    ring_seconds,
)
from bench.distributed.cli import main
from bench.distributed.launcher import (
    DEFAULT_TIMEOUT_S,
    DistributedError,
    dist_backend,
    launch,
    unavailable_reason,
)
from bench.distributed.training import DistributedRun, run_data_parallel, train_data_parallel

__all__ = ["DEFAULT_MESSAGE_BYTES", "DEFAULT_TIMEOUT_S", "DistributedError", "DistributedRun",
           "allreduce_benchmark", "dist_backend", "fit_ring", "launch", "main", "ring_seconds",
           "run_data_parallel", "train_data_parallel", "unavailable_reason"]
