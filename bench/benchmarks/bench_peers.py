"""Peers: what a user would pick instead, timed in the same run (``bench.peers``).

Each skips with the reason when its package is missing.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench import record
from bench.peers import SKLEARN_LR, dataloader_epoch, dataloader_lr, sklearn_epoch
from bench.workload.datasets import get_dataset

pytestmark = pytest.mark.measures("cpu")


def _info(benchmark, profile, **kw):
    record.write(benchmark, kind="peer", profile=profile.name, dataset=profile.dataset,
                 device="cpu",
                 seconds_per_epoch=benchmark.stats.stats.median, **kw)


def test_peer_sklearn_sgdclassifier(benchmark, profile, data):
    sklearn = pytest.importorskip("sklearn", reason="peer skipped: scikit-learn is not "
                                  "installed (pip install 'gdbench[peers]')")
    epoch = sklearn_epoch(data)
    models = []
    benchmark.group = "peer per-sample"
    benchmark.pedantic(lambda: models.append(epoch()), rounds=3, warmup_rounds=1)
    valid_error = float(np.mean(models[-1].predict(data.valid.x) != data.valid.y))
    _info(benchmark, profile, peer="sklearn-sgdclassifier", backend="sklearn", batch_size=1,
          learning_rate=SKLEARN_LR, final_valid_error=valid_error, sklearn=sklearn.__version__,
          note="one-vs-rest binary logistic regressions, not softmax")


def test_peer_torch_dataloader(benchmark, profile, data, peer_batch):
    torch = pytest.importorskip("torch", reason="peer skipped: torch is not installed "
                                "(pip install 'gdbench[torch]')")
    batch_size = peer_batch
    epoch = dataloader_epoch(data, batch_size, n_classes=get_dataset(profile.dataset).n_classes)
    models = []
    benchmark.group = f"peer B={batch_size}"
    big = batch_size == 1
    benchmark.pedantic(lambda: models.append(epoch()), rounds=1 if big else 3,
                       warmup_rounds=0 if big else 1)
    with torch.no_grad():
        pred = models[-1](torch.from_numpy(np.array(data.valid.x))).argmax(1).numpy()
    _info(benchmark, profile, peer="torch-dataloader", backend="torch-idiomatic",
          batch_size=batch_size, learning_rate=dataloader_lr(batch_size),
          final_valid_error=float(np.mean(pred != data.valid.y)))
