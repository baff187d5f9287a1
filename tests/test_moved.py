"""Moved module paths keep importing for one release, with a warning that names the new path."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

from bench._moved import MOVED, new_name


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_path_is_the_new_module_with_a_warning(old: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=rf"{old} moved to {MOVED[old]}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED[old])
    assert module.__spec__.name == MOVED[old]


def test_submodule_of_a_moved_package() -> None:
    for name in ("bench.spec", "bench.spec.models", "bench.spec.models.softmax"):
        sys.modules.pop(name, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from bench.spec.models.softmax import SoftmaxRegression
    assert SoftmaxRegression is importlib.import_module(
        "bench.workload.models.softmax").SoftmaxRegression
    assert [str(w.message).split()[0] for w in caught] == [
        "bench.spec", "bench.spec.models", "bench.spec.models.softmax"]
    assert new_name("bench.spec.models.softmax") == "bench.workload.models.softmax"
    assert new_name("bench.specs") is None and new_name("bench.harness") is None


def test_run_old_tool_path_as_a_script() -> None:
    out = subprocess.run([sys.executable, "-m", "bench.ab", "--help"], capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0 and "old" in out.stdout, out.stderr
