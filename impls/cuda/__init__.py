"""CUDA C sources of the CuPy backend's kernels (``*.cu``, the text handed to NVRTC and, in the
tests, to the CPU emulator ``tests/cuda_emu``) and the host-side data they read.

Importing this module needs NumPy only (no CuPy), so the tests can use it anywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["KERNEL_DIR", "csr_rows", "kernel_defines", "kernel_options", "kernel_source"]

KERNEL_DIR = Path(__file__).parent


def kernel_defines(n_features: int, n_classes: int) -> dict[str, int]:
    """The kernels' compile-time sizes: ``D`` pixels per example, ``K`` classes (from the
    dataset, e.g. ``model_spec("softmax", dataset)``'s ``n_in`` and ``n_out``)."""
    return {"D": int(n_features), "K": int(n_classes)}


def kernel_options(n_features: int, n_classes: int) -> tuple[str, ...]:
    """``kernel_defines`` as NVRTC options (``-DD=784``, ``-DK=10``)."""
    return tuple(f"-D{k}={v}" for k, v in kernel_defines(n_features, n_classes).items())


def kernel_source(name: str) -> str:
    """The CUDA C text of ``impls/cuda/<name>.cu``."""
    return (KERNEL_DIR / f"{name}.cu").read_text()


def csr_rows(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``X`` (N x D, D <= 32,767) as sparse rows: ``(indptr, indices, values)`` with
    ``indptr`` int32 (N + 1; row i's non-zeros are ``indptr[i] .. indptr[i + 1] - 1``),
    ``indices`` int16 column numbers in increasing order within a row and ``values`` float32.
    Exact: only zeros are left out."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] > np.iinfo(np.int16).max:
        raise ValueError(f"csr_rows: a 2-D array of at most 32,767 columns expected; got shape "
                         f"{X.shape}")
    nonzero = X != 0
    counts = nonzero.sum(axis=1)
    if counts.sum() > np.iinfo(np.int32).max:
        raise ValueError(f"csr_rows: {counts.sum()} non-zeros overflow int32 row pointers")
    indptr = np.zeros(len(X) + 1, np.int32)
    np.cumsum(counts, out=indptr[1:])
    indices = np.nonzero(nonzero)[1].astype(np.int16)
    values = np.ascontiguousarray(X[nonzero], dtype=np.float32)
    return indptr, indices, values
