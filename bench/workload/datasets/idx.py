"""The IDX format shared by MNIST and Fashion-MNIST: where the four files are found, how they
are downloaded (pooch, hash-verified), read, checked and turned into a split.

Where a dataset's files are looked for, in order:

1. an explicit ``path`` argument (a folder);
2. ``$GDBENCH_DATA_DIR/<name>/`` (e.g. ``$GDBENCH_DATA_DIR/fashion-mnist/``); for MNIST, the
   default dataset, ``$GDBENCH_DATA_DIR`` itself when it has no ``mnist/`` sub-folder (the
   rule from before there were datasets, which CI uses). Both datasets use the same four file
   names, so a folder is never shared: each dataset has its own;
3. the cache: ``$GDBENCH_CACHE_DIR/<name>/`` (MNIST: ``$GDBENCH_CACHE_DIR`` itself, as
   before), else the platform's user cache folder ``.../gdbench/<name>/``;
4. a download of the four gzipped files into that cache, each checked against its published
   digest.

An IDX file is a big-endian magic number (0x00000801: 1-d, 0x00000803: 3-d unsigned bytes),
one big-endian uint32 per dimension, then exactly their product of bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.workload.datasets.base import DataError

__all__ = ["ENV_CACHE_DIR", "ENV_DATA_DIR", "IDX_FILES", "IdxSource", "cache_dir",
           "check_pair", "data_dir", "download", "read_idx", "read_idx_folder", "unreadable"]

#: The four files, by role (the same names for MNIST and Fashion-MNIST).
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
ENV_DATA_DIR = "GDBENCH_DATA_DIR"
ENV_CACHE_DIR = "GDBENCH_CACHE_DIR"
_IDX_MAGIC = {1: 0x00000801, 3: 0x00000803}
_ALGORITHMS = {"sha256": "SHA-256", "md5": "MD5"}


@dataclass(frozen=True)
class IdxSource:
    """One IDX dataset's names and published files: ``checksums`` maps a file name to
    ``"sha256:<hex>"`` or ``"md5:<hex>"``; ``mirrors`` are tried in order."""

    name: str
    title: str
    checksums: Mapping[str, str]
    mirrors: tuple[str, ...]
    image_shape: tuple[int, int] = (28, 28)
    n_classes: int = 10
    #: looked up in $GDBENCH_DATA_DIR itself (and the flat $GDBENCH_CACHE_DIR): MNIST only
    legacy_folder: bool = False


def cache_dir(src: IdxSource) -> Path:
    """The folder downloads of ``src`` go to (see the module docstring, rule 3)."""
    if os.environ.get(ENV_CACHE_DIR):
        root = Path(os.environ[ENV_CACHE_DIR]).expanduser()
        return root if src.legacy_folder else root / src.name
    import platformdirs

    return Path(platformdirs.user_cache_dir("gdbench")) / src.name


def idx_path(folder: Path, name: str) -> Path | None:
    """``folder/name.gz`` or ``folder/name``, whichever exists first, else None."""
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def has_idx_files(folder: Path) -> bool:
    return all(idx_path(folder, n) for n in IDX_FILES.values())


def data_dir(src: IdxSource) -> Path | None:
    """The folder ``$GDBENCH_DATA_DIR`` names for ``src`` (rule 2), or None when unset. A
    sub-folder named after the dataset comes first; the variable's folder itself only for
    the legacy dataset (MNIST)."""
    env = os.environ.get(ENV_DATA_DIR)
    if not env:
        return None
    root = Path(env).expanduser()
    if not root.is_dir():
        raise DataError(f"{ENV_DATA_DIR}={env} is not a folder. Set it to the folder that "
                        f"holds the {src.title} files, or unset it to use the cache.")
    own = root / src.name
    return own if own.is_dir() or not src.legacy_folder else root


def missing_message(folder: Path, origin: str, title: str, extra: str = "") -> str:
    wanted = ", ".join(f"{n}[.gz]" for n in IDX_FILES.values())
    missing = [f"{n}[.gz]" for n in IDX_FILES.values() if idx_path(folder, n) is None]
    lacks = f" ({', '.join(missing)} not found)" if len(missing) < len(IDX_FILES) else ""
    return (f"{origin} {folder} holds no {title} copy{lacks}: expected the four IDX files "
            f"({wanted}){extra}. Point it at the folder that holds them.")


def download(src: IdxSource, folder: Path, mirrors: tuple[str, ...] | None = None) -> Path:
    """Download the four gzipped IDX files of ``src`` into ``folder``, hash-verified.

    Each file is fetched from the first mirror that answers; a file whose digest differs from
    the published one is deleted and reported, never used.
    """
    import pooch
    import requests

    mirrors = src.mirrors if mirrors is None else mirrors
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in IDX_FILES.values():
        fname = f"{name}.gz"
        algorithm = _ALGORITHMS[src.checksums[fname].partition(":")[0]]
        errors = []
        for mirror in mirrors:
            try:
                pooch.retrieve(mirror + fname, known_hash=src.checksums[fname], fname=fname,
                               path=folder, progressbar=True)
                break
            except ValueError as exc:  # pooch: hash mismatch
                raise DataError(
                    f"{fname} downloaded from {mirror} failed its {algorithm} check ({exc}). "
                    f"The mirror serves a corrupt or different file; try again later, or copy "
                    f"the original files into {folder} yourself."
                ) from exc
            except (requests.RequestException, OSError) as exc:
                errors.append(f"{mirror}: {type(exc).__name__}")
        else:
            env = (f"${ENV_DATA_DIR} (unset)" if not os.environ.get(ENV_DATA_DIR) else
                   f"${ENV_DATA_DIR}/{src.name}")
            raise DataError(
                f"Could not download {fname} ({'; '.join(errors)}), and no local copy was found "
                f"(searched: {env} and the cache {folder}). If this machine is offline, copy "
                f"the four files {', '.join(f'{n}.gz' for n in IDX_FILES.values())} into "
                f"{folder}, or set {ENV_DATA_DIR} to a folder that holds them"
                f"{'' if src.legacy_folder else f' in a sub-folder {src.name}/'}."
            )
    return folder


def fix_advice(path: Path, src: IdxSource) -> str:
    """What to do about a bad file: true advice for where it lies. Only the cache folder is
    refilled by a download; a file in ``$GDBENCH_DATA_DIR`` or a named path is not."""
    try:
        in_cache = path.resolve().parent == cache_dir(src).resolve()
    except OSError:
        in_cache = False
    if in_cache:
        return f"Delete {path} to download it again, or replace it with an intact copy."
    return (f"Replace {path} with an intact copy of the original, or unset {ENV_DATA_DIR} (and "
            f"pass no path) to use the cache {cache_dir(src)}, where {src.title} is downloaded "
            "on first use.")


def unreadable(path: Path, exc: OSError) -> DataError:
    return DataError(
        f"{path}: cannot be read ({exc.strerror or exc}). Make it readable by this user "
        f"(e.g. `chmod a+r {path}`), or point {ENV_DATA_DIR} at a readable copy."
    )


def _read_bytes(path: Path, src: IdxSource) -> bytes:
    """Read a file, gunzipping it when its name ends in .gz; corrupt gzip is a DataError."""
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except PermissionError as exc:
        raise unreadable(path, exc) from exc
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(
            f"{path}: the gzip stream is truncated or corrupt ({exc}). {fix_advice(path, src)}"
        ) from exc


def _verify(path: Path, src: IdxSource) -> None:
    """Check ``path`` against its published digest, if it has one."""
    known = src.checksums.get(path.name)
    if known is None:
        return
    algorithm, _, expected = known.partition(":")
    try:
        found = hashlib.new(algorithm, path.read_bytes()).hexdigest()
    except PermissionError as exc:
        raise unreadable(path, exc) from exc
    if found != expected:
        raise DataError(
            f"{path.name}: {_ALGORITHMS[algorithm]} mismatch (expected {expected}, found "
            f"{found}); the file is corrupt or not the original. {fix_advice(path, src)}"
        )


def read_idx(path: str | os.PathLike, ndim: int, src: IdxSource, verify: bool = True
             ) -> np.ndarray:
    """Read one IDX file of unsigned bytes with ``ndim`` dimensions (1 = labels, 3 = images),
    checked against ``src``'s digest (``verify``) and image shape."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found. Check the folder, or put the original file "
                        "there.")
    if verify:
        _verify(path, src)
    raw = _read_bytes(path, src)
    header = 4 * (1 + ndim)
    if len(raw) < header:
        raise DataError(f"{path}: only {len(raw)} bytes, shorter than an IDX header; the file "
                        "is truncated. Replace it with an intact copy.")
    magic = int.from_bytes(raw[:4], "big")
    if magic != _IDX_MAGIC[ndim]:
        raise DataError(
            f"{path}: wrong IDX magic number 0x{magic:08x} (expected 0x{_IDX_MAGIC[ndim]:08x} "
            f"for a {ndim}-d unsigned-byte array); this is not an {src.title} "
            f"{'label' if ndim == 1 else 'image'} file."
        )
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if ndim == 3 and dims[1:] != src.image_shape:
        raise DataError(f"{path}: images are {dims[1]}x{dims[2]}, expected "
                        f"{src.image_shape[0]}x{src.image_shape[1]}.")
    expected = int(np.prod(dims))
    found = len(raw) - header
    if found != expected:
        raise DataError(
            f"{path}: header says {dims[0]} items ({expected} bytes) but the file holds "
            f"{found} bytes; the file is truncated or corrupt. Replace it with an intact copy."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def check_pair(images: np.ndarray, labels: np.ndarray, where: str, title: str,
               n_classes: int) -> None:
    """Labels are integers ``0 .. n_classes - 1``, one per image."""
    top = n_classes - 1
    if labels.dtype.kind not in "iu":
        raise DataError(f"{where}: labels are {labels.dtype}, expected integer class numbers "
                        f"0-{top}; this is not an {title} label array. Replace the file with "
                        "an intact copy.")
    if labels.ndim != 1:
        raise DataError(f"{where}: labels have shape {labels.shape}, expected (n,).")
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{where}: {images.shape[0]} images but {labels.shape[0]} labels; "
                        "the image and label files do not belong together.")
    outside = (labels >= n_classes) | (labels < 0)
    if outside.any():
        bad = int(np.argmax(outside))
        raise DataError(f"{where}: label {int(labels[bad])} at index {bad} is outside 0-{top}; "
                        "the label file is corrupt.")


def read_idx_folder(folder: Path, src: IdxSource, verify: bool) -> tuple[np.ndarray, ...]:
    """``(train images, train labels, test images, test labels)`` of the folder's four files."""
    out = {}
    for role, name in IDX_FILES.items():
        path = idx_path(folder, name)
        if path is None:
            raise DataError(f"{folder / name}[.gz]: file not found. " +
                            missing_message(folder, "The folder", src.title))
        out[role] = read_idx(path, 3 if role.endswith("images") else 1, src, verify=verify)
    check_pair(out["train_images"], out["train_labels"], f"{folder} (train)", src.title,
               src.n_classes)
    check_pair(out["test_images"], out["test_labels"], f"{folder} (t10k)", src.title,
               src.n_classes)
    return out["train_images"], out["train_labels"], out["test_images"], out["test_labels"]
