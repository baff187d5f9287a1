"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): Zalando's 28x28 grey article images in 10
classes, MNIST's drop-in replacement, in the same four IDX files with the same names.

Split as MNIST's: train = the first 50,000 training images, validation = the last 10,000, test
= the 10,000 ``t10k`` images. Found in ``$GDBENCH_DATA_DIR/fashion-mnist/``, else the cache
(``.../fashion-mnist/``), else downloaded there on first use and checked against the MD5s
published in zalandoresearch/fashion-mnist's README (see ``bench.workload.datasets.idx``).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from bench.workload.datasets import idx
from bench.workload.datasets.base import Data, DataError, Dataset, as_split
from bench.workload.datasets.mnist import check_load_arguments

__all__ = ["DATASET", "MD5", "MIRRORS", "load_fashion_mnist"]

#: The MD5 digests published with the files (zalandoresearch/fashion-mnist, README.md).
MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
#: The publisher's download location.
MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
_SOURCE = idx.IdxSource("fashion-mnist", "Fashion-MNIST",
                        {k: f"md5:{v}" for k, v in MD5.items()}, MIRRORS)


def _folder(path: str | os.PathLike | None, download_missing: bool,
            mirrors: tuple[str, ...] | None) -> Path:
    """The folder holding the four files (the module docstring's search order)."""
    if path is not None:
        folder = Path(path).expanduser()
        if not idx.has_idx_files(folder):
            raise DataError(idx.missing_message(folder, "The folder", _SOURCE.title))
        return folder
    env = idx.data_dir(_SOURCE)
    if env is not None and env.is_dir():
        if not idx.has_idx_files(env):
            raise DataError(idx.missing_message(env, f"{idx.ENV_DATA_DIR} folder",
                                                _SOURCE.title))
        return env
    cache = idx.cache_dir(_SOURCE)
    if idx.has_idx_files(cache):
        return cache
    if not download_missing:
        raise DataError(
            f"No Fashion-MNIST data found (searched: the path argument, "
            f"${idx.ENV_DATA_DIR}/fashion-mnist, the cache {cache}) and downloading is off. "
            f"Put the four IDX files in ${idx.ENV_DATA_DIR}/fashion-mnist/, or allow the "
            "download.")
    return idx.download(_SOURCE, cache, mirrors)


@lru_cache(maxsize=8)
def _load_cached(folder: str, pixel_scale: float, n_valid: int, verify: bool) -> Data:
    xtr, ytr, xte, yte = idx.read_idx_folder(Path(folder), _SOURCE, verify)
    n_train = len(ytr) - n_valid
    if n_train < 1:
        raise DataError(f"{folder}: {len(ytr)} training images cannot leave {n_valid} for "
                        "validation; the file is truncated or n_valid is too large.")
    return Data(train=as_split(xtr[:n_train], ytr[:n_train], pixel_scale),
                valid=as_split(xtr[n_train:], ytr[n_train:], pixel_scale),
                test=as_split(xte, yte, pixel_scale), source=f"idx:{folder}",
                pixel_scale=pixel_scale)


def load_fashion_mnist(path: str | os.PathLike | None = None, *, pixel_scale: float = 255.0,
                       n_valid: int = 10_000, verify: bool = True,
                       download_missing: bool = True,
                       mirrors: tuple[str, ...] | None = None) -> Data:
    """Load Fashion-MNIST as 50,000 / 10,000 / 10,000 train / validation / test.

    The arguments are ``load_mnist``'s (``path``: a folder with the four IDX files; ``verify``:
    check the gzipped files' MD5s); ``mirrors`` replaces the download location. Loaded once
    per process.
    """
    check_load_arguments(pixel_scale, n_valid)
    folder = _folder(path, download_missing, mirrors)
    return _load_cached(str(folder.resolve()), float(pixel_scale), n_valid, verify)


DATASET = Dataset(
    name="fashion-mnist", title="Fashion-MNIST", n_train=50_000, n_valid=10_000, n_test=10_000,
    input_shape=(28, 28), n_classes=10, pixel_scale=255.0, loader=load_fashion_mnist,
    files={k: f"md5:{v}" for k, v in MD5.items()},
)
