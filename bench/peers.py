"""The peers' epochs: what a user would pick instead, one epoch each as a callable.

Shared by the peer benchmarks (``bench/benchmarks/bench_peers.py``) and the epoch benchmarks
that time a peer right before each of their rounds (``bench.analysis.targets.side_reference``). Each
raises ImportError when its package is missing.

* ``sklearn_epoch``: scikit-learn's ``SGDClassifier(loss='log_loss', learning_rate='constant')``,
  one epoch over the 50,000 training examples (one-vs-rest binary logistic regressions, not
  softmax): the per-sample baseline.
* ``dataloader_epoch``: the idiomatic PyTorch loop most tutorials teach (``TensorDataset`` +
  ``DataLoader(batch_size=B, shuffle=True)`` + ``nn.Linear`` + ``CrossEntropyLoss`` +
  ``optim.SGD``), one epoch.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.workload.datasets import Data
from bench.workload.models.softmax import N_OUT

__all__ = ["SKLEARN_LR", "dataloader_epoch", "dataloader_lr", "sklearn_epoch"]

SKLEARN_LR = 0.01


def dataloader_lr(batch_size: int) -> float:
    """The DataLoader loop's learning rate: the tutorial's 0.13, 0.01 per sample."""
    return 0.13 if batch_size > 1 else 0.01


def sklearn_epoch(data: Data, seed: int = 1234) -> Callable[[], Any]:
    """One epoch of ``SGDClassifier`` from scratch (n_jobs=1); the call returns the model."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import SGDClassifier

    X, y = np.ascontiguousarray(data.train.x), data.train.y

    def epoch() -> Any:
        clf = SGDClassifier(loss="log_loss", penalty=None, learning_rate="constant",
                            eta0=SKLEARN_LR, max_iter=1, tol=None, shuffle=True,
                            random_state=seed, n_jobs=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return clf.fit(X, y)

    return epoch


def dataloader_epoch(data: Data, batch_size: int, seed: int = 1234,
                     n_classes: int = N_OUT) -> Callable[[], Any]:
    """One epoch of the idiomatic PyTorch loop from scratch (a linear layer D -> ``n_classes``);
    the call returns the model."""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    dataset = TensorDataset(torch.from_numpy(np.array(data.train.x)),
                            torch.from_numpy(np.array(data.train.y)))

    def epoch() -> Any:
        torch.manual_seed(seed)
        model = nn.Linear(data.train.x.shape[1], n_classes)
        loss_fn = nn.CrossEntropyLoss()
        opt = torch.optim.SGD(model.parameters(), lr=dataloader_lr(batch_size))
        for xb, yb in DataLoader(dataset, batch_size=batch_size, shuffle=True):
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
        return model

    return epoch
