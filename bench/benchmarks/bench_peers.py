"""Peers: what a user would pick instead, timed in the same run.

* scikit-learn's ``SGDClassifier(loss='log_loss', learning_rate='constant')``, one epoch over
  the same 50,000 examples (one-vs-rest binary logistic regressions, not softmax): the
  per-sample baseline.
* the idiomatic PyTorch loop most tutorials teach: ``TensorDataset`` + ``DataLoader(batch_size=B,
  shuffle=True)`` + ``nn.Linear`` + ``CrossEntropyLoss`` + ``optim.SGD``, one epoch.

Each skips with the reason when its package is missing.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest


def _info(benchmark, profile, **kw):
    benchmark.extra_info.update(kind="peer", profile=profile.name, device="cpu",
                                seconds_per_epoch=benchmark.stats.stats.median, **kw)


def test_peer_sklearn_sgdclassifier(benchmark, profile, mnist):
    sklearn = pytest.importorskip("sklearn", reason="peer skipped: scikit-learn is not "
                                  "installed (pip install 'gdbench[peers]')")
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import SGDClassifier

    X, y = np.ascontiguousarray(mnist.train.x), mnist.train.y
    models = []

    def epoch():
        clf = SGDClassifier(loss="log_loss", penalty=None, learning_rate="constant", eta0=0.01,
                            max_iter=1, tol=None, shuffle=True, random_state=1234, n_jobs=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            models.append(clf.fit(X, y))

    benchmark.group = "peer per-sample"
    benchmark.pedantic(epoch, rounds=3, warmup_rounds=1)
    valid_error = float(np.mean(models[-1].predict(mnist.valid.x) != mnist.valid.y))
    _info(benchmark, profile, peer="sklearn-sgdclassifier", backend="sklearn", batch_size=1,
          learning_rate=0.01, final_valid_error=valid_error, sklearn=sklearn.__version__,
          note="one-vs-rest binary logistic regressions, not softmax")


def test_peer_torch_dataloader(benchmark, profile, mnist, peer_batch):
    torch = pytest.importorskip("torch", reason="peer skipped: torch is not installed "
                                "(pip install 'gdbench[torch]')")
    batch_size = peer_batch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    dataset = TensorDataset(torch.from_numpy(np.array(mnist.train.x)),
                            torch.from_numpy(np.array(mnist.train.y)))
    models = []

    def epoch():
        torch.manual_seed(1234)
        model = nn.Linear(784, 10)
        loss_fn = nn.CrossEntropyLoss()
        opt = torch.optim.SGD(model.parameters(), lr=0.13 if batch_size > 1 else 0.01)
        for xb, yb in DataLoader(dataset, batch_size=batch_size, shuffle=True):
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
        models.append(model)

    benchmark.group = f"peer B={batch_size}"
    big = batch_size == 1
    benchmark.pedantic(epoch, rounds=1 if big else 3, warmup_rounds=0 if big else 1)
    with torch.no_grad():
        pred = models[-1](torch.from_numpy(np.array(mnist.valid.x))).argmax(1).numpy()
    _info(benchmark, profile, peer="torch-dataloader", backend="torch-idiomatic",
          batch_size=batch_size, final_valid_error=float(np.mean(pred != mnist.valid.y)))
