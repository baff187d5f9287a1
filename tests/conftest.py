"""Shared test helpers: synthetic MNIST-shaped data and the real files when available."""

from __future__ import annotations

import gzip
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from bench.workload.datasets.mnist import MNIST, Split, load_mnist
from impls.registry import targets


def pytest_configure(config):
    # The Ctrl-C tests need SIGINT to reach Python, here and in the runs they start: a test run
    # started in the background of a script inherits SIGINT ignored (bash does that to
    # background jobs), and Python then never raises KeyboardInterrupt (seen in CI started with
    # `nohup ... &`: 4 interrupt tests ran to the end). A handled signal is reset to the default
    # in every child at exec, so the children get Python's handler too.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)

ALL_TARGETS = [(b, d) for b, d, _ in targets()]


def target_params():
    """(backend, device) pairs as params; unusable ones skip with the registry's reason."""
    out = []
    for backend, device, reason in targets():
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        if device != "cpu":
            marks.append(pytest.mark.gpu)
        out.append(pytest.param(backend, device, marks=marks, id=f"{backend}-{device}"))
    return out


def write_idx(path: Path, array: np.ndarray, magic: int | None = None,
              count: int | None = None) -> Path:
    """Write ``array`` (uint8) as an IDX file, gzipped when the name ends in .gz."""
    dims = array.shape
    magic = (0x800 | array.ndim) if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(
        (count if (i == 0 and count is not None) else d).to_bytes(4, "big")
        for i, d in enumerate(dims))
    payload = header + array.astype(np.uint8).tobytes()
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)
    return path


def synthetic_arrays(n_train: int = 120, n_test: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, n_train, dtype=np.uint8),
            rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, n_test, dtype=np.uint8))


def write_idx_folder(folder: Path, arrays=None, gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = arrays or synthetic_arrays()
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")
    for name, a in zip(names, arrays, strict=True):
        write_idx(folder / (name + (".gz" if gz else "")), a)
    return folder


def random_mnist(n_train: int = 256, n_valid: int = 64, n_test: int = 64,
                 seed: int = 0) -> MNIST:
    """Random MNIST-shaped data with a learnable signal (class-dependent pixel means)."""
    rng = np.random.default_rng(seed)
    centers = rng.random((10, 784)).astype(np.float32)

    def make(n):
        y = rng.integers(0, 10, n)
        x = np.clip(centers[y] + 0.3 * rng.standard_normal((n, 784)), 0, 1).astype(np.float32)
        return Split(x, y.astype(np.int64))

    return MNIST(make(n_train), make(n_valid), make(n_test), "synthetic", 255.0)


@pytest.fixture(scope="session")
def real_mnist() -> MNIST:
    """The real data, only where GDBENCH_DATA_DIR names it (CI sets it)."""
    if not os.environ.get("GDBENCH_DATA_DIR"):
        pytest.skip("real MNIST tests need GDBENCH_DATA_DIR (a folder with the IDX files)")
    return load_mnist()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never let a test touch the user's real cache folder."""
    monkeypatch.setenv("GDBENCH_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
