"""scikit-learn's bundled 8x8 handwritten digits (``sklearn.datasets.load_digits``): 1,797
images of 64 pixels with values 0..16, 10 classes; no download. The tests' fast dataset.

The split is fixed: the examples in the order ``numpy.random.default_rng(SPLIT_SEED)
.permutation(1797)``, then the first 1,197 train, the next 300 validation, the last 300 test.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from bench.workload.datasets.base import Data, DataError, Dataset, as_split

__all__ = ["DATASET", "SPLIT", "SPLIT_SEED", "load_digits"]

#: (train, validation, test) sizes, and the seed of the one permutation that deals them.
SPLIT = (1197, 300, 300)
SPLIT_SEED = 0


@lru_cache(maxsize=4)
def load_digits(*, pixel_scale: float = 16.0) -> Data:
    """The digits as a 1,197 / 300 / 300 split; pixels ``value / pixel_scale`` (16: [0, 1])."""
    if not (isinstance(pixel_scale, (int, float)) and pixel_scale > 0):
        raise DataError(f"pixel_scale must be a positive number (16). Got {pixel_scale!r}.")
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x, y = bunch.data.astype(np.uint8), bunch.target
    if len(y) != sum(SPLIT):
        raise DataError(f"sklearn.datasets.load_digits returned {len(y)} images, expected "
                        f"{sum(SPLIT)}; this scikit-learn bundles another version.")
    order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    a, b = SPLIT[0], SPLIT[0] + SPLIT[1]
    parts = [as_split(x[i], y[i], pixel_scale) for i in (order[:a], order[a:b], order[b:])]
    return Data(*parts, source="sklearn.datasets.load_digits", pixel_scale=float(pixel_scale))


DATASET = Dataset(
    name="digits", title="digits (8x8)", n_train=SPLIT[0], n_valid=SPLIT[1], n_test=SPLIT[2],
    input_shape=(8, 8), n_classes=10, pixel_scale=16.0, loader=load_digits,
    requires=("sklearn",), install_hint="pip install 'gdbench[peers]' (scikit-learn)",
)
