"""The GPU probe: its arithmetic here, its measurements only where there is a CUDA device."""

from __future__ import annotations

import pytest

from bench.tools.gpu_probe import main, summarise


def test_summarise_gives_median_min_and_max():
    assert summarise([3.0, 1.0, 2.0, 10.0]) == {"median": 2.5, "min": 1.0, "max": 10.0}


def test_without_a_gpu_the_probe_says_so_and_writes_nothing(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the probe would run (see .ci/gpu_check.sh)")
    out = tmp_path / "probe.json"
    assert main(["--out", str(out)]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert not out.exists()
