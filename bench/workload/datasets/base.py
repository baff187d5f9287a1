"""What every dataset provides: its arrays (``Data`` of three ``Split``s), its description
(``Dataset``: sizes, shape, classes, scale, loader, files) and the one error of bad data.

Every split holds float32 images flattened to ``(n, D)``, ``D = prod(input_shape)``, with pixels
``byte / pixel_scale``, and int64 labels ``(n,)`` in ``0 .. n_classes - 1``; all read-only.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Data", "DataError", "Dataset", "Split", "as_split"]


class DataError(ValueError):
    """The data could not be found or is not what it should be."""


@dataclass(frozen=True)
class Split:
    """One part of the data: images ``x`` (n, D) and labels ``y`` (n,), both read-only."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def __repr__(self) -> str:
        return f"Split(n={len(self)}, x={self.x.dtype}{self.x.shape}, y={self.y.dtype})"


@dataclass(frozen=True)
class Data:
    """The train / validation / test split and where it came from."""

    train: Split
    valid: Split
    test: Split
    source: str
    pixel_scale: float

    def __repr__(self) -> str:
        return (
            f"Data(train={len(self.train)}, valid={len(self.valid)}, test={len(self.test)}, "
            f"pixel_scale={self.pixel_scale}, source={self.source!r})"
        )


def as_split(images: np.ndarray, labels: np.ndarray, scale: float) -> Split:
    """Bytes ``(n, ...)`` and integer labels as a read-only ``Split``: float32 ``(n, D)`` pixels
    ``byte / scale`` and int64 labels."""
    x = images.reshape(len(images), -1).astype(np.float32)
    x /= np.float32(scale)
    y = labels.astype(np.int64)
    x.flags.writeable = False
    y.flags.writeable = False
    return Split(x, y)


@dataclass(frozen=True, kw_only=True)
class Dataset:
    """A classification dataset: its standard split, its shape, and how to load it.

    ``n_train`` / ``n_valid`` / ``n_test``: examples of the standard split (what
    ``load()`` returns with default arguments); ``input_shape``: one example's pixels, flattened
    to ``n_features`` = D columns; ``pixel_scale``: the default divisor of the stored bytes;
    ``files``: file name -> ``"sha256:<hex>"`` or ``"md5:<hex>"``, the published digests;
    ``requires``: modules the loader imports (unavailable without them, with that reason).
    """

    name: str
    title: str
    n_train: int
    n_valid: int
    n_test: int
    input_shape: tuple[int, ...]
    n_classes: int
    pixel_scale: float
    loader: Callable[..., Data] = field(repr=False)
    files: Mapping[str, str] = field(default_factory=dict, repr=False)
    requires: tuple[str, ...] = ()
    install_hint: str = ""

    @property
    def n_features(self) -> int:
        """D: the width of one flattened example."""
        return math.prod(self.input_shape)

    def unavailable_reason(self) -> str | None:
        """Why this dataset cannot be loaded here (a module it needs is missing), or None."""
        missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if not missing:
            return None
        return (f"dataset {self.name!r} needs {', '.join(missing)}, which is not installed"
                f"{f' ({self.install_hint})' if self.install_hint else ''}")

    def load(self, *, pixel_scale: float | None = None, **kwargs) -> Data:
        """The data (loaded once per process): ``pixel_scale`` None means the dataset's own;
        other keyword arguments go to the dataset's loader."""
        reason = self.unavailable_reason()
        if reason:
            raise DataError(f"Cannot load {self.title}: {reason}.")
        return self.loader(pixel_scale=self.pixel_scale if pixel_scale is None else pixel_scale,
                           **kwargs)
