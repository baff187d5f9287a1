"""The datasets, chosen by name: each a ``Dataset`` (sizes, shape, classes, scale, loader,
files) in its own module and one line in ``DATASETS``. Every size, width and class count the
rest of gdbench uses comes from here.

Adding a dataset: a module defining ``DATASET = Dataset(...)`` with its loader (which returns a
``Data``), its tests, and one line below.
"""

from __future__ import annotations

import importlib

from bench.workload.datasets.base import Data, DataError, Dataset, Split

__all__ = ["DATASETS", "DEFAULT", "Data", "DataError", "Dataset", "Split", "get_dataset", "load"]

#: dataset name -> "module:attribute" of its ``Dataset``.
DATASETS: dict[str, str] = {
    "mnist": "bench.workload.datasets.mnist:DATASET",
    "fashion-mnist": "bench.workload.datasets.fashion_mnist:DATASET",
    "digits": "bench.workload.datasets.digits:DATASET",
}
#: The dataset of a run that names none (the tutorials' and the project's origin).
DEFAULT = "mnist"


def get_dataset(name: str) -> Dataset:
    """The ``Dataset`` called ``name``; a ValueError naming the choices otherwise."""
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {', '.join(DATASETS)} "
                         "(check the spelling).")
    module, _, attribute = DATASETS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def load(name: str, **kwargs) -> Data:
    """The data of dataset ``name`` (``Dataset.load``: pixel_scale None = the dataset's own)."""
    return get_dataset(name).load(**kwargs)
