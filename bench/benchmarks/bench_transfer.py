"""Transfer micro-benchmark: host-to-device (pageable, pinned) and device-to-device copies of
the training set and of one minibatch of each size, timed with device events.

On a CPU there is no device copy: those cases skip as not applicable (never a fake zero); the
CPU's own data movement (the reshuffle gather) is measured in the epoch benchmarks.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench import record
from bench.benchmarks.conftest import skip_unusable


def test_transfer(benchmark, transfer_case, profile, data, trainer_pool):
    case, kind = transfer_case
    if kind == "n/a":
        pytest.skip(f"{case.backend}-{case.device}: no host-to-device copy on a CPU; transfer "
                    "is not applicable (see data_move_s of the epoch benchmarks)")
    skip_unusable(case)
    trainer, _ = trainer_pool.get(case.config(max_epochs=1))
    host = np.ascontiguousarray(data.train.x[: case.batch_size])
    src, dst = trainer.copy_buffers(host, kind)
    seconds: list[float] = []
    benchmark.group = f"transfer rows={case.batch_size}"
    benchmark.pedantic(lambda: seconds.append(trainer.time_copy(src, dst)), rounds=20,
                       warmup_rounds=3, iterations=1)
    median = float(np.median(seconds))
    bytes_moved = host.nbytes * (2 if kind == "d2d" else 1)  # d2d reads and writes
    record.write(benchmark, kind="transfer", profile=profile.name, dataset=profile.dataset,
                 copy=kind,
                 backend=case.backend, device=case.device, rows=case.batch_size,
                 bytes=host.nbytes, event_median_s=median,
                 gb_per_s=bytes_moved / median / 1e9 if median > 0 else None)
    assert median > 0
