"""MNIST: the classic 50,000 / 10,000 / 10,000 split of LeCun's handwritten digits.

Sources, in the order they are searched (``bench.workload.datasets.idx`` says more):

1. an explicit ``path`` argument (a folder, or an ``mnist.npz`` / ``mnist.pkl.gz`` file);
2. ``$GDBENCH_DATA_DIR/mnist/``, else ``$GDBENCH_DATA_DIR`` itself (a folder holding the files);
3. the user cache folder (``$GDBENCH_CACHE_DIR``, else the platform's cache folder);
4. a download of the four IDX files into that cache, SHA-256 verified, with a progress bar.

A folder may hold the four original IDX files (gzipped or not), the Keras ``mnist.npz`` or the
Deep Learning Tutorials' ``mnist.pkl.gz``. Every source becomes uint8 pixels first and is scaled
once, by ``pixel_scale``: ``x / 255`` by default, ``x / 256`` as the tutorial's data file had.

The split is the classic one: train = the first 50,000 training images, validation = the last
10,000, test = the 10,000 ``t10k`` images. Images are float32 ``(n, 784)``, labels int64 ``(n,)``.
"""

from __future__ import annotations

import gzip
import os
import pickle
import zipfile
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from bench.workload.datasets import idx
from bench.workload.datasets.base import Data, DataError, Dataset, Split, as_split
from bench.workload.datasets.idx import IDX_FILES, unreadable

__all__ = [
    "DATASET",
    "IDX_FILES",
    "MIRRORS",
    "MNIST",
    "SHA256",
    "DataError",
    "Split",
    "cache_dir",
    "download",
    "load_mnist",
    "read_idx",
]

#: The data of any dataset; the name this module gave it first.
MNIST = Data

#: Published SHA-256 digests of the canonical files, gzipped and not.
SHA256 = {
    "train-images-idx3-ubyte.gz":
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz":
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

#: Public mirrors of the original gzipped IDX files, tried in order.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

ENV_DATA_DIR = idx.ENV_DATA_DIR
ENV_CACHE_DIR = idx.ENV_CACHE_DIR
N_PIXELS = 28 * 28
N_CLASSES = 10
_NPZ_NAME = "mnist.npz"
_PKL_NAME = "mnist.pkl.gz"
_SOURCE = idx.IdxSource("mnist", "MNIST", {k: f"sha256:{v}" for k, v in SHA256.items()},
                        MIRRORS, legacy_folder=True)


# --------------------------------------------------------------------------- locating


def cache_dir() -> Path:
    """The folder downloads go to: ``$GDBENCH_CACHE_DIR``, else the user cache folder."""
    return idx.cache_dir(_SOURCE)


def _describe_source(folder: Path) -> str | None:
    """Which kind of MNIST copy ``folder`` holds, or None."""
    if idx.has_idx_files(folder):
        return "idx"
    if (folder / _NPZ_NAME).is_file():
        return "npz"
    if (folder / _PKL_NAME).is_file():
        return "pkl"
    return None


def _missing_message(folder: Path, origin: str) -> str:
    return idx.missing_message(folder, origin, "MNIST", f", or {_NPZ_NAME}, or {_PKL_NAME}")


def _resolve(path: str | os.PathLike | None, download_missing: bool) -> tuple[str, Path]:
    """Return (kind, location) of the data to read; kind is 'idx', 'npz' or 'pkl'."""
    if path is not None:
        p = Path(path).expanduser()
        if p.is_file():
            if p.name.endswith(".npz"):
                return "npz", p
            if p.name.endswith((".pkl.gz", ".pkl")):
                return "pkl", p
            raise DataError(f"{p}: not a file this loader reads (expected .npz or .pkl.gz).")
        if not p.is_dir():
            raise DataError(f"MNIST path {p} does not exist. Pass an existing folder or file.")
        kind = _describe_source(p)
        if kind is None:
            raise DataError(_missing_message(p, "The folder"))
        return kind, (p / _NPZ_NAME if kind == "npz" else p / _PKL_NAME if kind == "pkl" else p)
    env = idx.data_dir(_SOURCE)
    if env is not None:
        if _describe_source(env) is None:
            raise DataError(_missing_message(env, f"{ENV_DATA_DIR} folder"))
        return _resolve(env, download_missing)
    cache = cache_dir()
    if cache.is_dir() and _describe_source(cache) is not None:
        return _resolve(cache, download_missing)
    if not download_missing:
        raise DataError(
            f"No MNIST data found (searched: the path argument, ${ENV_DATA_DIR} (unset), "
            f"the cache {cache}) and downloading is off. Set {ENV_DATA_DIR} to a folder with "
            "the four IDX files, or allow the download."
        )
    download(cache)
    return "idx", cache


def download(folder: Path | None = None, mirrors: tuple[str, ...] | None = None) -> Path:
    """Download the four gzipped IDX files into ``folder`` (default: the cache), hash-verified.

    Each file is fetched from the first mirror that answers; a file whose SHA-256 differs from
    the published digest is deleted and reported, never used.
    """
    return idx.download(_SOURCE, cache_dir() if folder is None else folder,
                        MIRRORS if mirrors is None else mirrors)


# --------------------------------------------------------------------------- reading


def _fix(path: Path) -> str:
    return idx.fix_advice(path, _SOURCE)


def read_idx(path: str | os.PathLike, ndim: int, verify: bool = True) -> np.ndarray:
    """Read one MNIST IDX file (1 = labels, 3 = images), SHA-256 checked when ``verify``."""
    return idx.read_idx(path, ndim, _SOURCE, verify)


def _check_pair(images: np.ndarray, labels: np.ndarray, where: str) -> None:
    idx.check_pair(images, labels, where, "MNIST", N_CLASSES)


def _read_npz(path: Path) -> tuple[np.ndarray, ...]:
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise DataError(
                    f"{path}: missing array {', '.join(map(repr, missing))} (found: "
                    f"{', '.join(map(repr, f.files)) or 'none'}); expected the Keras mnist.npz "
                    f"with x_train, y_train, x_test, y_test. {_fix(path)}")
            arrays = [np.asarray(f[k]) for k in keys]
    except DataError:
        raise
    except PermissionError as exc:
        raise unreadable(path, exc) from exc
    except (OSError, ValueError, zlib.error, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc}); it is truncated or "
                        f"corrupt. {_fix(path)}") from exc
    xtr, ytr, xte, yte = arrays
    for name, x in (("x_train", xtr), ("x_test", xte)):
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
            raise DataError(f"{path}: {name} is {x.dtype}{x.shape}, expected uint8 (n, 28, 28).")
    _check_pair(xtr, ytr, f"{path} (train)")
    _check_pair(xte, yte, f"{path} (test)")
    return xtr, ytr, xte, yte


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only what a pickled tuple of NumPy arrays needs: no other class is imported,
    so a foreign pickle cannot run code while it loads."""

    _ALLOWED = frozenset({
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
    })

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"it refers to {module}.{name}, which a pickle of NumPy arrays never needs "
                "(refused unloaded: unpickling runs code)")
        return super().find_class(module, name)


def _read_pkl(path: Path) -> tuple[np.ndarray, ...]:
    """The tutorial's ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))``.

    Its pixels are stored as float32 ``k / 256``; they are turned back into the bytes ``k`` so
    that every source is scaled the same way, and train + valid are rejoined in their order.
    """
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as fh:
            parts = _ArrayUnpickler(fh, encoding="latin1").load()
    except PermissionError as exc:
        raise unreadable(path, exc) from exc
    except pickle.UnpicklingError as exc:
        raise DataError(f"{path}: not the tutorial's pickle of NumPy arrays: {exc}. "
                        f"{_fix(path)}") from exc
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DataError(f"{path}: not a readable gzipped pickle ({exc}); it is truncated or "
                        f"corrupt. {_fix(path)}") from exc
    try:
        (trx, tr_y), (vax, va_y), (tex, te_y) = parts
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: expected ((train_x, train_y), (valid_x, valid_y), (test_x, "
                        "test_y)), the tutorial's mnist.pkl.gz layout.") from exc
    out = []
    for name, x, y in (("train", trx, tr_y), ("valid", vax, va_y), ("test", tex, te_y)):
        x = np.asarray(x)
        if x.dtype.kind != "f":
            raise DataError(f"{path}: {name}_x is {x.dtype}, expected float pixels k/256; this "
                            "is not the tutorial's mnist.pkl.gz.")
        if x.ndim != 2 or x.shape[1] != N_PIXELS:
            raise DataError(f"{path}: {name}_x has shape {x.shape}, expected (n, 784).")
        k = np.rint(x.astype(np.float64) * 256.0)
        if not np.allclose(k, x * 256.0, atol=1e-3) or k.min() < 0 or k.max() > 255:
            raise DataError(f"{path}: {name}_x pixels are not k/256 for bytes k; this is not "
                            "the tutorial's mnist.pkl.gz.")
        y = np.asarray(y)
        _check_pair(x, y, f"{path} ({name})")
        out.append((k.astype(np.uint8).reshape(-1, 28, 28), y))
    (trx, tr_y), (vax, va_y), (tex, te_y) = out
    return np.concatenate([trx, vax]), np.concatenate([tr_y, va_y]), tex, te_y


# --------------------------------------------------------------------------- splitting


@lru_cache(maxsize=8)
def _load_cached(kind: str, location: str, pixel_scale: float, n_valid: int,
                 verify: bool) -> Data:
    loc = Path(location)
    if kind == "idx":
        xtr, ytr, xte, yte = idx.read_idx_folder(loc, _SOURCE, verify)
    elif kind == "npz":
        xtr, ytr, xte, yte = _read_npz(loc)
    else:
        xtr, ytr, xte, yte = _read_pkl(loc)
    n_train = len(ytr) - n_valid
    if n_train < 1:
        raise DataError(f"{location}: {len(ytr)} training images cannot leave {n_valid} for "
                        "validation; the file is truncated or n_valid is too large.")
    return Data(
        train=as_split(xtr[:n_train], ytr[:n_train], pixel_scale),
        valid=as_split(xtr[n_train:], ytr[n_train:], pixel_scale),
        test=as_split(xte, yte, pixel_scale),
        source=f"{kind}:{location}",
        pixel_scale=pixel_scale,
    )


def check_load_arguments(pixel_scale: float, n_valid: int) -> None:
    """The loaders' shared arguments, checked before any file is touched."""
    if not (isinstance(pixel_scale, (int, float)) and pixel_scale > 0):
        raise DataError(f"pixel_scale must be a positive number (255 or 256). Got {pixel_scale!r}.")
    if not (isinstance(n_valid, int) and n_valid >= 1):
        raise DataError(f"n_valid must be a positive int. Got {n_valid!r}.")


def load_mnist(
    path: str | os.PathLike | None = None,
    *,
    pixel_scale: float = 255.0,
    n_valid: int = 10_000,
    verify: bool = True,
    download_missing: bool = True,
) -> Data:
    """Load MNIST as the classic 50,000 / 10,000 / 10,000 train / validation / test split.

    Parameters
    ----------
    path : folder or file, optional
        Where the data is; default: ``$GDBENCH_DATA_DIR``, then the cache, then a download.
    pixel_scale : float
        Pixels become ``byte / pixel_scale``: 255 (default) maps to [0, 1]; 256 is the
        tutorial's ``mnist.pkl.gz`` scaling, under which its published numbers reproduce.
    n_valid : int
        How many of the last training images form the validation set.
    verify : bool
        Check each IDX file's SHA-256 against the published digest (on by default).
    download_missing : bool
        Download into the cache when no local copy is found.

    Loaded once per process: repeated calls with the same arguments return the same object.
    """
    check_load_arguments(pixel_scale, n_valid)
    kind, location = _resolve(path, download_missing)
    return _load_cached(kind, str(location.resolve()), float(pixel_scale), n_valid, verify)


DATASET = Dataset(
    name="mnist", title="MNIST", n_train=50_000, n_valid=10_000, n_test=10_000,
    input_shape=(28, 28), n_classes=N_CLASSES, pixel_scale=255.0, loader=load_mnist,
    files={k: f"sha256:{v}" for k, v in SHA256.items()},
)
