"""The machine's floors, measured by the suite itself (NumPy's BLAS, float32).

* peak matrix-product rate: a large square product (2 n^3 FLOP);
* the epoch's own products at each B: (B x D) @ (D x K) forward and (D x B) @ (B x K)
  weight gradient, over in-order slices of the real training set: the "matrix-products-only"
  epoch, which the implementations' epochs are compared with;
* memory bandwidth: a streaming read of the 157 MB training set, and a copy of it.

From them the report derives the FLOP floor (1.57 GFLOP per epoch / peak rate) and the
bandwidth floor (one read of the training set / read rate) of an epoch. A floor is the best
the machine showed, so each uses the fastest round (``min``), not the median: on a shared
machine the median of a 2048^3 product was seen to vary 2x between runs.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench import record
from bench.floors import epoch_flop, products_only_epoch
from bench.workload.datasets import get_dataset

pytestmark = pytest.mark.measures("cpu")


def _info(benchmark, profile, **kw):
    record.write(benchmark, kind="floor", profile=profile.name, dataset=profile.dataset,
                 backend="numpy", device="cpu",
                 **kw)


def test_floor_peak_matmul(benchmark, profile):
    n = 2048
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), np.float32), rng.random((n, n), np.float32)
    out = np.empty((n, n), np.float32)
    benchmark.group = "floor"
    benchmark.pedantic(np.matmul, args=(a, b), kwargs={"out": out}, rounds=7, warmup_rounds=2)
    flops = 2 * n**3
    _info(benchmark, profile, floor="peak_matmul", flop=flops,
          gflop_per_s=flops / benchmark.stats.stats.min / 1e9,
          epoch_flop=epoch_flop(profile.dataset),
          flop_floor_epoch_s=epoch_flop(profile.dataset) / (flops / benchmark.stats.stats.min))


def test_floor_read_bandwidth(benchmark, profile, data):
    X = np.ascontiguousarray(data.train.x)
    benchmark.group = "floor"
    benchmark.pedantic(np.add.reduce, args=(X,), kwargs={"axis": 0}, rounds=7,
                       warmup_rounds=2)
    best = benchmark.stats.stats.min
    _info(benchmark, profile, floor="read_bandwidth", bytes=X.nbytes,
          gb_per_s=X.nbytes / best / 1e9, bandwidth_floor_epoch_s=best)


def test_floor_copy_bandwidth(benchmark, profile, data):
    X = np.ascontiguousarray(data.train.x)
    out = np.empty_like(X)
    out[...] = 0
    benchmark.group = "floor"
    benchmark.pedantic(np.copyto, args=(out, X), rounds=7, warmup_rounds=2)
    _info(benchmark, profile, floor="copy_bandwidth", bytes=2 * X.nbytes,
          gb_per_s=2 * X.nbytes / benchmark.stats.stats.min / 1e9)


def test_floor_matmul_epoch(benchmark, profile, data, floor_batch):
    """Only the two products of every step of an in-order epoch at batch size B."""
    B = floor_batch
    K = get_dataset(profile.dataset).n_classes
    epoch = products_only_epoch(data.train.x, B, n_classes=K)
    n_batches, D = len(data.train.x) // B, data.train.x.shape[1]
    benchmark.group = "floor mm-epoch"
    rounds = 3 if B < 20 else 5
    benchmark.pedantic(epoch, rounds=rounds, warmup_rounds=1)
    best = benchmark.stats.stats.min
    _info(benchmark, profile, floor="matmul_epoch", batch_size=B, batches=n_batches,
          mm_epoch_s=best, gflop_per_s=2 * 2 * n_batches * B * D * K / best / 1e9)
