"""Module paths that moved, kept importable for one release with a ``DeprecationWarning`` that
names the new path. ``import bench`` installs the finder; ``python -m OLD`` works too.

The map is the one list of moves: old dotted name (a module, or a package and all below it)
-> new dotted name.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED: dict[str, str] = {
    "bench.spec": "bench.workload",
    "bench.mnist": "bench.workload.datasets.mnist",
    "bench.workload.mnist": "bench.workload.datasets.mnist",
    "bench.config": "bench.workload.config",
    "bench.protocols": "bench.workload.protocols",
    "bench.ab": "bench.tools.ab",
    "bench.gpu_probe": "bench.tools.gpu_probe",
    "bench.targets": "bench.analysis.targets",
    "bench.study.fit": "bench.analysis.fit",
    "bench.study.summary": "bench.analysis.study",
}


def new_name(old: str) -> str | None:
    """The current dotted name of ``old``, or None where it did not move."""
    for prefix, target in MOVED.items():
        if old == prefix or old.startswith(prefix + "."):
            return target + old[len(prefix):]
    return None


class _Alias(importlib.abc.Loader):
    """Loads an old name as the module object of its new name (one object, two names)."""

    def __init__(self, new: str) -> None:
        self.new = new
        self.spec = None

    def create_module(self, spec):
        warnings.warn(f"{spec.name} moved to {self.new}; import {self.new} instead "
                      "(the old path goes in the next release).", DeprecationWarning,
                      stacklevel=2)
        module = importlib.import_module(self.new)
        self.spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        module.__spec__ = self.spec  # the import machinery set it to the alias's

    def get_code(self, _name: str):
        """For ``python -m OLD``: the new module's code."""
        return importlib.util.find_spec(self.new).loader.get_code(self.new)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        new = new_name(fullname)
        found = None if new is None else importlib.util.find_spec(new)
        if found is None:
            return None
        return importlib.util.spec_from_loader(
            fullname, _Alias(new), origin=found.origin,
            is_package=found.submodule_search_locations is not None)


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
