"""Display names and units: what a variant, a backend spec and a number of seconds are called
in every table, figure and sentence (one definition each)."""

from __future__ import annotations

import math

import pandas as pd

from bench.workload.config import variant_of
from bench.workload.datasets import DEFAULT, get_dataset

__all__ = ["MISSING", "VARIANT_NAMES", "dataset_phrase", "format_seconds", "missing",
           "n_train_of", "spec_label", "variant_name"]

#: What a table or sentence shows where a value is missing (never ``nan``).
MISSING = "—"

#: A variant's name in prose, keyed by ``bench.workload.config.variant_of``.
VARIANT_NAMES = {"sgd": "per-sample SGD", "minibatch": "minibatch SGD", "full": "full-batch GD"}


def n_train_of(dataset: object) -> int:
    """The training-set size of a record's ``dataset`` (a name; missing = the default dataset,
    as records written before the dataset axis trained on it)."""
    return get_dataset(dataset if isinstance(dataset, str) else DEFAULT).n_train


def dataset_phrase(dataset: object) -> str:
    """``MNIST (50,000 train / 10,000 validation)``: a record's dataset (missing = the default)
    and its split."""
    d = get_dataset(dataset if isinstance(dataset, str) else DEFAULT)
    return f"{d.title} ({d.n_train:,} train / {d.n_valid:,} validation)"


def variant_name(batch_size: int, n_train: int) -> str:
    """``"per-sample SGD"`` (B = 1), ``"full-batch GD"`` (B >= n_train) or ``"minibatch SGD"``:
    the display name of ``variant_of(batch_size, n_train)``."""
    return VARIANT_NAMES[variant_of(int(batch_size), int(n_train))]


def spec_label(backend: str, device: str = "cpu", kernel: str = "eager") -> str:
    """``backend:device`` and ``:kernel`` unless eager, e.g. ``torch:cuda:cuda-graph``."""
    return f"{backend}:{device}" + (f":{kernel}" if kernel != "eager" else "")


def missing(x: object) -> bool:
    """Whether ``x`` is no value (None, NaN, ``pd.NA``)."""
    return x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x))


def format_seconds(x: float | None) -> str:
    """Seconds to three significant digits in the unit that suits them: ``123 s``, ``1.23 s``,
    ``12.3 ms``, ``45.6 µs``; ``—`` when missing."""
    if missing(x):
        return MISSING
    x = float(x)
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if abs(x) >= scale or unit == "µs":
            v = x / scale
            return f"{v:,.0f} {unit}" if abs(v) >= 100 else f"{v:#.3g} {unit}"
    raise AssertionError("unreachable")
